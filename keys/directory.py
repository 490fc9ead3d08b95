"""The signed authority directory: who the federation's authorities are and how to reach them.

Trust is layered. Each authority signs its own record with its identity key, so the secretariat
cannot put words (endpoints, prekeys) in an authority's mouth; the secretariat's keys, M of N,
sign the whole directory, so no single secretariat member and no relay can add, drop or swap an
authority. Nodes pin the secretariat keys and refuse a lower serial than one already adopted
(rollback) or two different directories under one serial (equivocation).

Signed things travel as the exact bytes that were signed, base64url inside the JSON that carries
them, and are verified over those bytes; nothing is ever re-canonicalised to check a signature.
Formats::

    file    = {"directory": b64(body), "signatures": [{"key_id", "sig"}, ...]}  ; by key_id
    body    = {"v":1, "federation", "serial", "issued", "records": [signed, ...]}  ; by authority
    signed  = {"record": b64(record bytes), "sig": b64(Ed25519 over PAE(authority-record))}

This module is pure: bytes in, objects out, no file I/O and no clock reads.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from keys.identity import IdentityKey
from keys.prekeys import Prekey, SignedPrekey
from protocol.encoding import (
    b64decode,
    b64encode,
    canonical_json,
    parse_canonical_json,
    require_fields,
)
from protocol.errors import (
    ConfigError,
    DirectoryAuthorityIdInvalid,
    DirectoryEquivocation,
    DirectoryKeyUnknown,
    DirectoryMalformed,
    DirectoryNoPrekey,
    DirectoryRecordSignatureInvalid,
    DirectoryRollback,
    DirectoryThresholdNotMet,
    DirectoryUnknownAuthority,
    EncodingError,
    EnvelopeKeyRevoked,
    EnvelopeUnknownSender,
    KeyMalformed,
    KeyMaterialError,
    PrekeySignatureInvalid,
)
from protocol.header import KEY_ID, is_authority_id
from protocol.signing import LABELS, PUBLIC_LENGTH, SIGNATURE_LENGTH, verify
from protocol.suites import Suite, key_id

__all__ = [
    "DIRECTORY_VERSION",
    "AuthorityRecord",
    "Directory",
    "DraftDirectory",
    "Revocation",
    "SignedRecord",
    "add_signature",
    "build_directory",
    "check_adoption",
    "read_draft",
    "sign_directory",
    "sign_record",
    "unsigned_directory",
    "verify_directory",
]

DIRECTORY_VERSION = 1
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_SIGNATURES = 64
MAX_RECORDS = 10_000
MAX_PREKEYS = 128  # daily rotation with a 30-day lifetime publishes ~30
MAX_REVOKED = 256
MAX_LIST_ITEMS = 64
MAX_ITEM = 128
MAX_TEXT = 1024
MAX_NOTES = 8192
MAX_FEDERATION = 128

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
# Bidi overrides and isolates let a name display as something other than what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_RECORD_FIELDS = (
    "authority",
    "channels",
    "contact_24_7",
    "endpoint",
    "formats",
    "identity_key",
    "languages",
    "legal_bases",
    "name",
    "notes",
    "office_hours",
    "prekeys",
    "request_types",
    "revoked",
    "time_zone",
    "tls_fingerprint",
    "updated",
    "urgent_procedure",
)
_LIST_FIELDS = ("languages", "request_types", "legal_bases", "channels", "formats")
_TEXT_FIELDS = ("office_hours", "urgent_procedure", "contact_24_7", "notes")
_REVOCATION_FIELDS = ("effective", "key_id", "public", "reason")
_SIGNED_RECORD_FIELDS = ("record", "sig")
_BODY_FIELDS = ("federation", "issued", "records", "serial", "v")
_FILE_FIELDS = ("directory", "signatures")
_SIGNATURE_FIELDS = ("key_id", "sig")


# --- field checks ------------------------------------------------------------------------------


def _text(value: object, what: str, *, limit: int, empty: bool, multiline: bool = False) -> str:
    """A human-readable string that displays as what it is and encodes canonically."""
    if not isinstance(value, str):
        raise DirectoryMalformed(f"{what} must be a string")
    if not empty and not value:
        raise DirectoryMalformed(f"{what} must not be empty")
    if len(value) > limit:
        raise DirectoryMalformed(f"{what} is longer than {limit} characters")
    for char in value:
        if multiline and char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS:
            raise DirectoryMalformed(f"{what} contains control character U+{ord(char):04X}")
    return value


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DirectoryMalformed(f"{what} must be a non-negative integer")
    return value


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise DirectoryMalformed(f"{what} must be a list")
    if len(value) > MAX_LIST_ITEMS:
        raise DirectoryMalformed(f"{what} has more than {MAX_LIST_ITEMS} entries")
    items = tuple(_text(item, f"{what} entry", limit=MAX_ITEM, empty=False) for item in value)
    if len(set(items)) != len(items):
        raise DirectoryMalformed(f"{what} lists an entry twice")
    return items


def _b64(value: object, what: str, length: int | None = None) -> bytes:
    try:
        if not isinstance(value, str):
            raise EncodingError("not a string")
        raw = b64decode(value)
    except EncodingError as exc:
        raise DirectoryMalformed(f"{what} is not base64url: {exc.detail}") from exc
    if length is not None and len(raw) != length:
        raise DirectoryMalformed(f"{what} must be {length} bytes, not {len(raw)}")
    return raw


def _object(value: object, what: str, fields: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DirectoryMalformed(f"{what} must be a JSON object")
    try:
        require_fields(value, fields, DirectoryMalformed)
    except DirectoryMalformed as exc:
        raise DirectoryMalformed(f"{what}: {exc.detail}") from exc
    return value


def _list(value: object, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise DirectoryMalformed(f"{what} must be a list")
    if len(value) > limit:
        raise DirectoryMalformed(f"{what} has more than {limit} entries")
    return value


def _parse(data: bytes, what: str) -> Any:
    try:
        return parse_canonical_json(data)
    except EncodingError as exc:
        raise DirectoryMalformed(f"{what}: {exc.message}") from exc


def _check_endpoint(endpoint: object, fingerprint: object) -> None:
    if not isinstance(endpoint, str) or not endpoint.isascii() or not endpoint.isprintable():
        raise DirectoryMalformed("endpoint must be a printable ASCII URL")
    if any(char.isspace() for char in endpoint) or len(endpoint) > MAX_TEXT:
        raise DirectoryMalformed("endpoint must be a URL without spaces")
    try:
        url = urlsplit(endpoint)
        url.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        raise DirectoryMalformed(f"endpoint {endpoint!r}: {exc}") from exc
    if url.scheme not in ("https", "http"):
        raise DirectoryMalformed(f"endpoint {endpoint!r} must be https:// or http://")
    if not url.hostname or url.username is not None or url.password is not None:
        raise DirectoryMalformed(f"endpoint {endpoint!r} must name a host and no credentials")
    if url.query or url.fragment or endpoint.endswith(("?", "#")):
        raise DirectoryMalformed(f"endpoint {endpoint!r} must not carry a query or fragment")
    if not isinstance(fingerprint, str):
        raise DirectoryMalformed("tls_fingerprint must be a string")
    if fingerprint == "":
        # The fingerprint is the only thing that authenticates the TLS peer (no public CA).
        if url.scheme == "https":
            raise DirectoryMalformed("an https endpoint needs a tls_fingerprint to pin")
    elif _FINGERPRINT.fullmatch(fingerprint) is None:
        raise DirectoryMalformed("tls_fingerprint must be 64 lowercase hex digits (SHA-256)")


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    """A retired identity key, kept in the record so old signatures stay checkable until
    ``effective`` and are refused from then on."""

    key_id: str
    public_raw: bytes = field(repr=False)
    effective: int
    reason: str

    def __post_init__(self) -> None:
        if not isinstance(self.public_raw, bytes) or len(self.public_raw) != PUBLIC_LENGTH:
            raise DirectoryMalformed(f"a revoked key is {PUBLIC_LENGTH} bytes")
        if self.key_id != key_id(self.public_raw):
            raise DirectoryMalformed("revocation key_id is not the key id of its public key")
        _integer(self.effective, "revocation effective time")
        _text(self.reason, "revocation reason", limit=MAX_TEXT, empty=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public": b64encode(self.public_raw),
            "effective": self.effective,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, obj: object) -> Revocation:
        data = _object(obj, "revocation", _REVOCATION_FIELDS)
        key = data["key_id"]
        if not isinstance(key, str):
            raise DirectoryMalformed("revocation key_id must be a string")
        return cls(
            key_id=key,
            public_raw=_b64(data["public"], "revoked public key", PUBLIC_LENGTH),
            effective=_integer(data["effective"], "revocation effective time"),
            reason=_text(data["reason"], "revocation reason", limit=MAX_TEXT, empty=True),
        )


@dataclass(frozen=True)
class AuthorityRecord:
    """One authority's entry: routing and keys for nodes, UNODC directory fields for people.

    Validated on construction, so a malformed record can neither be signed nor parsed.
    """

    authority: str
    name: str
    endpoint: str
    tls_fingerprint: str
    identity_key: bytes = field(repr=False)
    prekeys: tuple[SignedPrekey, ...]
    revoked: tuple[Revocation, ...] = ()
    languages: tuple[str, ...] = ()
    office_hours: str = ""
    time_zone: str = "UTC"
    request_types: tuple[str, ...] = ()
    legal_bases: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    urgent_procedure: str = ""
    contact_24_7: str = ""
    notes: str = ""
    updated: int = 0

    def __post_init__(self) -> None:
        if not is_authority_id(self.authority):
            raise DirectoryAuthorityIdInvalid(repr(self.authority))
        _text(self.name, "name", limit=MAX_TEXT, empty=False)
        _check_endpoint(self.endpoint, self.tls_fingerprint)
        if not isinstance(self.identity_key, bytes) or len(self.identity_key) != PUBLIC_LENGTH:
            raise DirectoryMalformed(f"identity_key must be {PUBLIC_LENGTH} bytes")
        if not isinstance(self.prekeys, tuple) or not all(
            isinstance(p, SignedPrekey) for p in self.prekeys
        ):
            raise DirectoryMalformed("prekeys must be a tuple of signed prekeys")
        if len(self.prekeys) > MAX_PREKEYS:
            raise DirectoryMalformed(f"more than {MAX_PREKEYS} prekeys")
        prekey_ids = [p.prekey.id for p in self.prekeys]
        if len(set(prekey_ids)) != len(prekey_ids):
            raise DirectoryMalformed("a prekey is listed twice")
        if not isinstance(self.revoked, tuple) or not all(
            isinstance(r, Revocation) for r in self.revoked
        ):
            raise DirectoryMalformed("revoked must be a tuple of revocations")
        if len(self.revoked) > MAX_REVOKED:
            raise DirectoryMalformed(f"more than {MAX_REVOKED} revoked keys")
        revoked_ids = [r.key_id for r in self.revoked]
        if len(set(revoked_ids)) != len(revoked_ids):
            raise DirectoryMalformed("a key is revoked twice")
        # A key both current and revoked would make its status depend on lookup order.
        if key_id(self.identity_key) in revoked_ids:
            raise DirectoryMalformed("the identity key is listed as revoked")
        for name in _LIST_FIELDS:
            if _strings(getattr(self, name), name) != getattr(self, name):
                raise DirectoryMalformed(f"{name} must be a tuple of strings")
        for name in _TEXT_FIELDS:
            limit = MAX_NOTES if name == "notes" else MAX_TEXT
            _text(getattr(self, name), name, limit=limit, empty=True, multiline=True)
        _text(self.time_zone, "time_zone", limit=MAX_ITEM, empty=False)
        _integer(self.updated, "updated")

    @property
    def identity_key_id(self) -> str:
        return key_id(self.identity_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "name": self.name,
            "endpoint": self.endpoint,
            "tls_fingerprint": self.tls_fingerprint,
            "identity_key": b64encode(self.identity_key),
            "prekeys": [p.to_json() for p in self.prekeys],
            "revoked": [r.to_json() for r in self.revoked],
            "languages": list(self.languages),
            "office_hours": self.office_hours,
            "time_zone": self.time_zone,
            "request_types": list(self.request_types),
            "legal_bases": list(self.legal_bases),
            "channels": list(self.channels),
            "formats": list(self.formats),
            "urgent_procedure": self.urgent_procedure,
            "contact_24_7": self.contact_24_7,
            "notes": self.notes,
            "updated": self.updated,
        }

    @classmethod
    def from_json(cls, obj: object) -> AuthorityRecord:
        """Strict: every field present, of its type, and nothing else."""
        data = _object(obj, "authority record", _RECORD_FIELDS)
        try:
            prekeys = tuple(
                SignedPrekey.from_json(p) for p in _list(data["prekeys"], "prekeys", MAX_PREKEYS)
            )
        except KeyMalformed as exc:
            raise DirectoryMalformed(f"prekey: {exc.message}") from exc
        revoked = tuple(
            Revocation.from_json(r) for r in _list(data["revoked"], "revoked", MAX_REVOKED)
        )

        def strings(name: str) -> tuple[str, ...]:
            return _strings(_list(data[name], name, MAX_LIST_ITEMS), name)

        for name in ("authority", "name", "endpoint", "tls_fingerprint", "time_zone",
                     *_TEXT_FIELDS):
            if not isinstance(data[name], str):
                raise DirectoryMalformed(f"{name} must be a string")
        return cls(
            authority=data["authority"],
            name=data["name"],
            endpoint=data["endpoint"],
            tls_fingerprint=data["tls_fingerprint"],
            identity_key=_b64(data["identity_key"], "identity_key", PUBLIC_LENGTH),
            prekeys=prekeys,
            revoked=revoked,
            time_zone=data["time_zone"],
            updated=_integer(data["updated"], "updated"),
            languages=strings("languages"),
            request_types=strings("request_types"),
            legal_bases=strings("legal_bases"),
            channels=strings("channels"),
            formats=strings("formats"),
            office_hours=data["office_hours"],
            urgent_procedure=data["urgent_procedure"],
            contact_24_7=data["contact_24_7"],
            notes=data["notes"],
        )


@dataclass(frozen=True)
class SignedRecord:
    """A record together with the exact bytes its authority signed."""

    record: AuthorityRecord
    record_bytes: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def verify(self) -> None:
        """Check the authority's signature on the record and on each of its prekeys."""
        record = self.record
        if not verify(
            record.identity_key, LABELS["authority-record"], self.record_bytes, self.signature
        ):
            raise DirectoryRecordSignatureInvalid(record.authority)
        for signed in record.prekeys:
            try:
                signed.verify(record.identity_key)
            except PrekeySignatureInvalid as exc:
                raise DirectoryRecordSignatureInvalid(
                    f"{record.authority}: prekey {signed.prekey.id} not signed by its identity key"
                ) from exc

    def to_json(self) -> dict[str, Any]:
        return {"record": b64encode(self.record_bytes), "sig": b64encode(self.signature)}

    @classmethod
    def from_json(cls, obj: object) -> SignedRecord:
        data = _object(obj, "signed record", _SIGNED_RECORD_FIELDS)
        record_bytes = _b64(data["record"], "record")
        signature = _b64(data["sig"], "record signature", SIGNATURE_LENGTH)
        record = AuthorityRecord.from_json(_parse(record_bytes, "authority record"))
        return cls(record, record_bytes, signature)


def sign_record(record: AuthorityRecord, identity: IdentityKey) -> SignedRecord:
    """Sign a record with the authority's own identity key (the one the record names)."""
    if identity.public_raw != record.identity_key:
        raise KeyMaterialError(
            f"the signing key {identity.key_id} is not the record's identity key "
            f"{record.identity_key_id}"
        )
    for signed in record.prekeys:
        # Publishing a prekey we did not sign would only make every sender refuse the record.
        signed.verify(record.identity_key)
    record_bytes = canonical_json(record.to_json())
    signature = identity.sign(LABELS["authority-record"], record_bytes)
    return SignedRecord(record, record_bytes, signature)


# --- the directory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Directory:
    """A verified directory: the records a node routes and authenticates by."""

    federation: str
    serial: int
    issued: int
    records: Mapping[str, AuthorityRecord]
    body: bytes = field(repr=False)
    file: bytes = field(repr=False)
    signed_records: Mapping[str, SignedRecord] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )

    @property
    def digest(self) -> str:
        """What a node remembers to detect equivocation: hex SHA-256 of the signed body."""
        return hashlib.sha256(self.body).hexdigest()

    def record(self, authority: str) -> AuthorityRecord:
        try:
            return self.records[authority]
        except KeyError:
            raise DirectoryUnknownAuthority(authority) from None

    def sender_key(self, authority_id: str, key_id: str, *, now: int, created: int) -> bytes:
        """The key to check an envelope's signature with, honouring revocation times.

        A revoked key is refused once its revocation is effective, judged both at the time
        the envelope claims to be created and now: a thief with a revoked key could otherwise
        backdate ``created``.
        """
        record = self.records.get(authority_id)
        if record is None:
            raise EnvelopeUnknownSender(authority_id)
        if key_id == record.identity_key_id:
            return record.identity_key
        for revocation in record.revoked:
            if revocation.key_id == key_id:
                if revocation.effective <= now or revocation.effective <= created:
                    raise EnvelopeKeyRevoked(
                        f"{authority_id} key {key_id} revoked from {revocation.effective}"
                    )
                return revocation.public_raw
        raise EnvelopeUnknownSender(f"{authority_id} has no key {key_id}")

    def receiver_key(self, authority_id: str, key_id: str) -> bytes:
        """The key a receipt names: current or revoked (whether its time fits is the caller's)."""
        record = self.record(authority_id)
        if key_id == record.identity_key_id:
            return record.identity_key
        for revocation in record.revoked:
            if revocation.key_id == key_id:
                return revocation.public_raw
        raise DirectoryKeyUnknown(f"{authority_id} has no key {key_id}")

    def prekey_for(self, authority_id: str, now: int) -> Prekey:
        """The prekey to seal to: strongest suite first, then the most recently started."""
        record = self.record(authority_id)
        current = [s.prekey for s in record.prekeys if s.prekey.valid_at(now)]
        if not current:
            raise DirectoryNoPrekey(f"{authority_id} at {now}")
        return max(current, key=lambda p: (p.suite.strength, p.not_before, p.id))

    def strongest_suite(self, authority_id: str, now: int) -> Suite:
        return self.prekey_for(authority_id, now).suite


def _validate_header(federation: object, serial: object, issued: object) -> None:
    _text(federation, "federation", limit=MAX_FEDERATION, empty=False)
    _integer(serial, "serial")
    _integer(issued, "issued")


def build_directory(
    federation: str, serial: int, issued: int, records: Iterable[SignedRecord]
) -> bytes:
    """The canonical directory body the secretariat signs; every record is verified first."""
    _validate_header(federation, serial, issued)
    by_authority: dict[str, SignedRecord] = {}
    for signed in records:
        authority = signed.record.authority
        if authority in by_authority:
            raise DirectoryMalformed(f"authority {authority} listed twice")
        signed.verify()
        by_authority[authority] = signed
    if len(by_authority) > MAX_RECORDS:
        raise DirectoryMalformed(f"more than {MAX_RECORDS} records")
    return canonical_json(
        {
            "v": DIRECTORY_VERSION,
            "federation": federation,
            "serial": serial,
            "issued": issued,
            "records": [by_authority[a].to_json() for a in sorted(by_authority)],
        }
    )


def _parse_body(body: bytes) -> tuple[str, int, int, dict[str, SignedRecord]]:
    data = _parse(body, "directory body")
    if isinstance(data, dict) and data.get("v") != DIRECTORY_VERSION:
        raise DirectoryMalformed(f"unsupported directory version {data.get('v')!r}")
    data = _object(data, "directory body", _BODY_FIELDS)
    _validate_header(data["federation"], data["serial"], data["issued"])
    records: dict[str, SignedRecord] = {}
    previous = ""
    for entry in _list(data["records"], "records", MAX_RECORDS):
        signed = SignedRecord.from_json(entry)
        authority = signed.record.authority
        # Sorted and unique, so one set of records has exactly one body.
        if authority <= previous:
            raise DirectoryMalformed(f"records not sorted by authority, or {authority} twice")
        previous = authority
        signed.verify()
        records[authority] = signed
    return data["federation"], data["serial"], data["issued"], records


def _parse_file(file_bytes: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    if len(file_bytes) > MAX_FILE_BYTES:
        raise DirectoryMalformed(f"directory file larger than {MAX_FILE_BYTES} bytes")
    data = _object(_parse(file_bytes, "directory file"), "directory file", _FILE_FIELDS)
    body = _b64(data["directory"], "directory")
    signatures: list[tuple[str, bytes]] = []
    for entry in _list(data["signatures"], "signatures", MAX_SIGNATURES):
        item = _object(entry, "signature", _SIGNATURE_FIELDS)
        signer = item["key_id"]
        if not isinstance(signer, str) or KEY_ID.fullmatch(signer) is None:
            raise DirectoryMalformed("signature key_id must be 24 lowercase hex digits")
        signatures.append((signer, _b64(item["sig"], "signature", SIGNATURE_LENGTH)))
    return body, signatures


def _encode_file(body: bytes, signatures: Mapping[str, bytes]) -> bytes:
    return canonical_json(
        {
            "directory": b64encode(body),
            "signatures": [
                {"key_id": signer, "sig": b64encode(signatures[signer])}
                for signer in sorted(signatures)
            ],
        }
    )


def sign_directory(body: bytes, key: IdentityKey) -> bytes:
    """Start a directory file with one secretariat signature over the body bytes."""
    _parse_body(body)  # never sign what a node would refuse to parse
    return _encode_file(body, {key.key_id: key.sign(LABELS["directory"], body)})


def unsigned_directory(body: bytes) -> bytes:
    """A directory file with no signature yet: what the secretariat passes round to be signed."""
    _parse_body(body)
    return _encode_file(body, {})


@dataclass(frozen=True)
class DraftDirectory:
    """A directory file read for editing or display, its secretariat signatures NOT checked.

    Records are still verified against their own authorities' keys; only the quorum is
    unchecked, so nothing here may be used to decide whom to trust.
    """

    federation: str
    serial: int
    issued: int
    records: Mapping[str, SignedRecord]
    signers: tuple[str, ...]


def read_draft(file_bytes: bytes) -> DraftDirectory:
    body, signatures = _parse_file(file_bytes)
    federation, serial, issued, records = _parse_body(body)
    return DraftDirectory(federation, serial, issued, records,
                          tuple(signer for signer, _ in signatures))


def add_signature(file_bytes: bytes, key: IdentityKey) -> bytes:
    """Add another secretariat member's signature (replacing an older one by the same key)."""
    body, existing = _parse_file(file_bytes)
    _parse_body(body)
    signatures = dict(existing)
    signatures[key.key_id] = key.sign(LABELS["directory"], body)
    return _encode_file(body, signatures)


def verify_directory(
    file_bytes: bytes, secretariat_keys: Sequence[bytes], threshold: int
) -> Directory:
    """Accept a directory only with ``threshold`` valid signatures from distinct pinned keys.

    Signatures by keys that are not pinned are ignored, and several signatures by one key
    count once, so neither an outsider nor one insider can make up the quorum.
    """
    pinned: dict[str, bytes] = {}
    for raw in secretariat_keys:
        if not isinstance(raw, bytes) or len(raw) != PUBLIC_LENGTH:
            raise ConfigError(f"a pinned secretariat key is {PUBLIC_LENGTH} bytes")
        pinned[key_id(raw)] = raw
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not (
        1 <= threshold <= len(pinned)
    ):
        raise ConfigError(
            f"threshold {threshold!r} must be between 1 and the {len(pinned)} distinct pinned keys"
        )
    body, signatures = _parse_file(file_bytes)
    valid = {
        signer
        for signer, signature in signatures
        if signer in pinned and verify(pinned[signer], LABELS["directory"], body, signature)
    }
    if len(valid) < threshold:
        raise DirectoryThresholdNotMet(f"{len(valid)} valid of {threshold} required")
    federation, serial, issued, signed = _parse_body(body)
    return Directory(
        federation=federation,
        serial=serial,
        issued=issued,
        records=MappingProxyType({a: s.record for a, s in signed.items()}),
        body=body,
        file=file_bytes,
        signed_records=MappingProxyType(signed),
    )


def check_adoption(previous: tuple[int, str] | None, new: Directory) -> None:
    """Refuse rollback and equivocation against the (serial, digest) last adopted."""
    if previous is None:
        return
    serial, digest = previous
    if new.serial < serial:
        raise DirectoryRollback(f"serial {new.serial} is older than adopted serial {serial}")
    if new.serial == serial and new.digest != digest:
        raise DirectoryEquivocation(f"serial {serial} with digest {new.digest}, adopted {digest}")


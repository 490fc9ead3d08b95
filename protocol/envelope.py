"""Envelope v1: seal a signed package to a recipient's prekey, and open it with every check.

Layout (all integers big-endian; ``frame`` is a 4-byte length prefix)::

    envelope   = "RGTE" %x01 frame(header) frame(sealed) outer-sig
    sealed     = HPKE-Seal(prekey, info, package)             ; enc || AEAD ciphertext
    info       = "rogatory/v1/envelope-hpke" %x00 SHA-256(header)
    package    = frame(header) frame(content-type) frame(payload) [frame(manifest)] inner-sig
    inner-sig  = Ed25519(PAE("rogatory/v1/envelope-inner", everything before it))
    outer-sig  = Ed25519(PAE("rogatory/v1/envelope", SHA-256(sealed) || header))

The inner signature is what the recipient can later show a third party: it covers the header,
recipient included, so a package forwarded to someone else is recognisably not addressed to
them. The outer signature lets a node refuse forgeries before it spends work on decryption.

The optional manifest lists the attachments that travel beside the envelope
(``protocol.attachment``): inside the signature and the encryption, since it holds their keys.

The receiver's checks run in the order of ``open_envelope`` below and PROTOCOL.md §5; each
failure raises its own ``envelope.*`` error and the caller stores nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from protocol.encoding import Reader, frame
from protocol.errors import (
    EnvelopeClockSkew,
    EnvelopeExpired,
    EnvelopeForwarded,
    EnvelopeHeaderMismatch,
    EnvelopeInnerSignatureInvalid,
    EnvelopeLifetimeInvalid,
    EnvelopeMalformed,
    EnvelopePrekeyExpired,
    EnvelopePrekeyUnknown,
    EnvelopeReflected,
    EnvelopeReplayed,
    EnvelopeSignatureInvalid,
    EnvelopeSuiteDowngrade,
    EnvelopeSuiteUnsupported,
    EnvelopeVersionUnsupported,
    EnvelopeWrongRecipient,
    KeyMalformed,
    RogatoryError,
)
from protocol.header import EnvelopeHeader
from protocol.signing import LABELS, SIGNATURE_LENGTH, public_key_of, sign, verify
from protocol.suites import Suite, hpke_open, hpke_seal, key_id

__all__ = [
    "DEFAULT_MAX_SKEW",
    "MAGIC",
    "MAX_CONTENT_TYPE",
    "MAX_LIFETIME",
    "OpenedEnvelope",
    "ParsedEnvelope",
    "ReceiverPrekey",
    "SealedEnvelope",
    "SenderKeys",
    "SignedPackage",
    "envelope_hash",
    "open_envelope",
    "parse_envelope",
    "seal",
    "verify_package",
]

MAGIC = b"RGTE"
WIRE_VERSION = 1
MAX_LIFETIME = 30 * 24 * 3600
DEFAULT_MAX_SKEW = 300
MAX_CONTENT_TYPE = 128
HPKE_INFO_LABEL = b"rogatory/v1/envelope-hpke\x00"


def envelope_hash(data: bytes) -> str:
    """The name of an envelope everywhere (receipts, logs, dedup): hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def _hpke_info(header_bytes: bytes) -> bytes:
    return HPKE_INFO_LABEL + hashlib.sha256(header_bytes).digest()


def _outer_body(header_bytes: bytes, sealed: bytes) -> bytes:
    return hashlib.sha256(sealed).digest() + header_bytes


@dataclass(frozen=True)
class SealedEnvelope:
    """The envelope bytes, and the signed package inside them for the sender's own archive."""

    data: bytes
    header: EnvelopeHeader
    package: bytes

    @property
    def hash(self) -> str:
        return envelope_hash(self.data)


@dataclass(frozen=True)
class SignedPackage:
    """The sender-signed plaintext: what a recipient keeps as proof of what was sent."""

    data: bytes
    header_bytes: bytes
    header: EnvelopeHeader
    content_type: str
    payload: bytes
    signature: bytes
    manifest: bytes = b""


MAX_MANIFEST = 1024 * 1024


def _package_body(header_bytes: bytes, content_type: str, payload: bytes,
                  manifest: bytes = b"") -> bytes:
    body = frame(header_bytes, content_type.encode("ascii"), payload)
    return body + frame(manifest) if manifest else body


def _check_content_type(content_type: str) -> None:
    if (
        not content_type
        or len(content_type) > MAX_CONTENT_TYPE
        or not content_type.isascii()
        or not content_type.isprintable()
        or " " in content_type
    ):
        raise EnvelopeMalformed(f"content type {content_type!r} is not a printable ASCII token")


def seal(
    header: EnvelopeHeader,
    content_type: str,
    payload: bytes,
    *,
    sender_seed: bytes,
    recipient_public: bytes,
    manifest: bytes = b"",
) -> SealedEnvelope:
    """Sign the package, seal it to the recipient's prekey, sign the result; return the bytes.

    ``manifest``: the encoded attachment manifest, if the message has attachments.
    """
    if key_id(public_key_of(sender_seed)) != header.sender_key:
        raise KeyMalformed("header.sender_key does not name the signing key")
    if key_id(recipient_public) != header.recipient_prekey:
        raise KeyMalformed("header.recipient_prekey does not name the recipient public key")
    _check_content_type(content_type)
    header_bytes = header.encode()
    if len(manifest) > MAX_MANIFEST:
        raise EnvelopeMalformed(f"manifest larger than {MAX_MANIFEST} bytes")
    body = _package_body(header_bytes, content_type, payload, manifest)
    package = body + sign(sender_seed, LABELS["envelope-inner"], body)
    sealed = hpke_seal(header.suite, recipient_public, _hpke_info(header_bytes), package)
    outer = sign(sender_seed, LABELS["envelope"], _outer_body(header_bytes, sealed))
    data = MAGIC + bytes([WIRE_VERSION]) + frame(header_bytes, sealed) + outer
    return SealedEnvelope(data=data, header=header, package=package)


@dataclass(frozen=True)
class ParsedEnvelope:
    """An envelope's outer structure, parsed but not yet trusted."""

    data: bytes
    header_bytes: bytes
    header: EnvelopeHeader
    sealed: bytes
    signature: bytes

    @property
    def hash(self) -> str:
        return envelope_hash(self.data)


def parse_envelope(data: bytes, *, max_sealed: int = 64 * 1024 * 1024) -> ParsedEnvelope:
    """Split an envelope into its parts; refuses anything malformed, trusts nothing."""
    reader = Reader(data, EnvelopeMalformed)
    if reader.fixed(4) != MAGIC:
        raise EnvelopeMalformed("not a Rogatory envelope (bad magic)")
    version = reader.fixed(1)[0]
    if version != WIRE_VERSION:
        raise EnvelopeVersionUnsupported(f"envelope version {version}")
    header_bytes = reader.framed(limit=4096)
    sealed = reader.framed(limit=max_sealed)
    signature = reader.fixed(SIGNATURE_LENGTH)
    reader.end()
    header = EnvelopeHeader.decode(header_bytes)
    return ParsedEnvelope(data, header_bytes, header, sealed, signature)


def parse_package(data: bytes, *, outer: ParsedEnvelope | None = None) -> SignedPackage:
    """Split a signed package. ``outer``: the envelope it came in, whose header is reused
    when the sealed header is the same bytes (it then decodes to the same value)."""
    reader = Reader(data, EnvelopeMalformed)
    header_bytes = reader.framed(limit=4096)
    content_type_bytes = reader.framed(limit=MAX_CONTENT_TYPE)
    payload = reader.framed()
    manifest = b""
    if reader.remaining() > SIGNATURE_LENGTH:
        manifest = reader.framed(limit=MAX_MANIFEST)
        if not manifest:
            raise EnvelopeMalformed("an empty manifest frame; leave it out instead")
    signature = reader.fixed(SIGNATURE_LENGTH)
    reader.end()
    if outer is not None and header_bytes == outer.header_bytes:
        header = outer.header
    else:
        header = EnvelopeHeader.decode(header_bytes)
    try:
        content_type = content_type_bytes.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EnvelopeMalformed("content type is not ASCII") from exc
    _check_content_type(content_type)
    return SignedPackage(data, header_bytes, header, content_type, payload, signature,
                         manifest)


def verify_package(data: bytes, sender_public: bytes) -> SignedPackage:
    """Check a kept package against its sender's key, e.g. for a court or an auditor."""
    return _verified(parse_package(data), sender_public)


def _verified(package: SignedPackage, sender_public: bytes) -> SignedPackage:
    body = package.data[:-SIGNATURE_LENGTH]
    if not verify(sender_public, LABELS["envelope-inner"], body, package.signature):
        raise EnvelopeInnerSignatureInvalid()
    return package


class SenderKeys(Protocol):
    """What the receiver's directory must answer: the sender's key, or why there is none."""

    def sender_key(self, authority_id: str, key_id: str, *, now: int, created: int) -> bytes:
        """Raise ``EnvelopeUnknownSender`` or ``EnvelopeKeyRevoked`` when unusable."""
        ...


@dataclass(frozen=True)
class ReceiverPrekey:
    """A private prekey the receiving node still holds."""

    id: str
    suite: Suite
    private_raw: bytes
    not_before: int
    not_after: int


@dataclass(frozen=True)
class OpenedEnvelope:
    envelope: ParsedEnvelope
    package: SignedPackage
    sender_public: bytes

    @property
    def header(self) -> EnvelopeHeader:
        return self.envelope.header

    @property
    def hash(self) -> str:
        return self.envelope.hash


def open_envelope(
    data: bytes,
    *,
    me: str,
    now: int,
    senders: SenderKeys,
    prekey: Callable[[str], ReceiverPrekey | None],
    strongest_suite: Suite,
    already_used: Callable[[str, str], bool],
    max_skew: int = DEFAULT_MAX_SKEW,
) -> OpenedEnvelope:
    """Run the receiver's checks in the normative order; the first failure is the answer.

    ``prekey`` looks a private prekey up by id; ``strongest_suite`` is the strongest suite the
    receiver currently offers; ``already_used(sender, message_id)`` says whether that pair was
    accepted before (the caller answers an exact duplicate with its stored receipt before it
    calls this function, so a true here means a *different* envelope reuses the id).
    """
    # 1. structure
    envelope = parse_envelope(data)
    header = envelope.header
    # 2. outer signature against the directory, before any other work
    sender_public = senders.sender_key(
        header.sender, header.sender_key, now=now, created=header.created
    )
    outer_body = _outer_body(envelope.header_bytes, envelope.sealed)
    if not verify(sender_public, LABELS["envelope"], outer_body, envelope.signature):
        raise EnvelopeSignatureInvalid()
    # 3. addressed to this node, sealed to a current prekey of an acceptable suite
    if header.sender == me:
        raise EnvelopeReflected(f"{header.id} claims to come from {me}")
    if header.recipient != me:
        raise EnvelopeWrongRecipient(f"addressed to {header.recipient}, this node is {me}")
    held = prekey(header.recipient_prekey)
    if held is None:
        raise EnvelopePrekeyUnknown(f"prekey {header.recipient_prekey}")
    if header.suite is not held.suite:
        if header.suite.strength < held.suite.strength:
            raise EnvelopeSuiteDowngrade(f"{header.suite.value} against a {held.suite.value} key")
        raise EnvelopeSuiteUnsupported(f"{header.suite.value} does not match the prekey")
    if header.suite.strength < strongest_suite.strength:
        raise EnvelopeSuiteDowngrade(
            f"{header.suite.value}; this node offers {strongest_suite.value}"
        )
    if not held.not_before - max_skew <= header.created <= held.not_after:
        raise EnvelopePrekeyExpired(f"prekey {held.id} not valid at {header.created}")
    # 4. time and freshness
    if not header.created < header.expires <= header.created + MAX_LIFETIME:
        raise EnvelopeLifetimeInvalid(f"created {header.created}, expires {header.expires}")
    if header.created > now + max_skew:
        raise EnvelopeClockSkew(f"created {header.created - now}s in the future")
    if now >= header.expires:
        raise EnvelopeExpired(f"expired {now - header.expires}s ago")
    if already_used(header.sender, header.id):
        raise EnvelopeReplayed(f"message id {header.id} from {header.sender}")
    # 5. decrypt
    plaintext = hpke_open(header.suite, held.private_raw, _hpke_info(envelope.header_bytes),
                          envelope.sealed)
    # 6. the header sealed inside must be the outer header, byte for byte
    package = parse_package(plaintext, outer=envelope)
    if package.header_bytes != envelope.header_bytes:
        inner = package.header
        if inner.recipient != header.recipient or inner.sender != header.sender:
            raise EnvelopeForwarded(
                f"package signed by {inner.sender} for {inner.recipient}, "
                f"sent by {header.sender} to {header.recipient}"
            )
        raise EnvelopeHeaderMismatch()
    # 7. the sender's signature over header, content type and payload
    _verified(package, sender_public)
    return OpenedEnvelope(envelope=envelope, package=package, sender_public=sender_public)


def refusal_code(error: BaseException) -> str:
    """The stable code to put in a rejection receipt for any failure while opening."""
    if isinstance(error, RogatoryError):
        return error.code
    return EnvelopeMalformed.code

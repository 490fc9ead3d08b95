"""The signed authority directory: record and M-of-N signatures, adoption, key lookups."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nacl.pwhash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.directory import (
    AuthorityRecord,
    Directory,
    Revocation,
    SignedRecord,
    add_signature,
    build_directory,
    check_adoption,
    sign_directory,
    sign_record,
    verify_directory,
)
from keys.identity import IdentityKey
from keys.keystore import KeyStore
from keys.prekeys import DAY, PrivatePrekey, SignedPrekey, generate_prekey
from protocol.encoding import b64decode, b64encode, canonical_json
from protocol.envelope import open_envelope, seal
from protocol.errors import RogatoryError
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind
from protocol.receipt import ReceiptStatus, parse_receipt, sign_receipt
from protocol.signing import LABELS
from protocol.suites import Suite, key_id

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
FINGERPRINT = "ab" * 32


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(RogatoryError) as info:
        call()
    return info.value.code


@dataclass(frozen=True)
class Authority:
    id: str
    identity: IdentityKey
    hybrid: PrivatePrekey
    x25519: PrivatePrekey

    def record(self, **changes: Any) -> AuthorityRecord:
        base = AuthorityRecord(
            authority=self.id,
            name=f"Ministry of Justice of {self.id[:2]}",
            endpoint=f"https://{self.id[:2].lower()}.example:8443",
            tls_fingerprint=FINGERPRINT,
            identity_key=self.identity.public_raw,
            prekeys=(self.hybrid.signed, self.x25519.signed),
            languages=("en", "fr"),
            request_types=("mla", "extradition"),
            legal_bases=("UNTOC art. 18",),
            office_hours="Mon-Fri 09:00-17:00",
            time_zone="Europe/Paris",
            urgent_procedure="Call the duty prosecutor",
            contact_24_7="+33 1 00 00 00 00",
            updated=NOW,
        )
        return replace(base, **changes)

    def signed(self, **changes: Any) -> SignedRecord:
        return sign_record(self.record(**changes), self.identity)


def make_authority(authority: str) -> Authority:
    identity = IdentityKey.generate()
    return Authority(
        authority,
        identity,
        generate_prekey(identity, Suite.HYBRID, NOW - DAY),
        generate_prekey(identity, Suite.X25519, NOW - DAY),
    )


ALICE = make_authority("XA:MOJ")
BOB = make_authority("XB:MOJ")
SECRETARIAT = tuple(IdentityKey.generate() for _ in range(3))
PINNED = [k.public_raw for k in SECRETARIAT]


def directory_file(
    records: Iterable[SignedRecord] | None = None,
    signers: Iterable[IdentityKey] = SECRETARIAT[:2],
    serial: int = 7,
) -> bytes:
    if records is None:
        records = [ALICE.signed(), BOB.signed()]
    body = build_directory("UNTOC-TEST", serial, NOW, records)
    signers = list(signers)
    file = sign_directory(body, signers[0])
    for signer in signers[1:]:
        file = add_signature(file, signer)
    return file


def file_with(body: bytes, signatures: list[tuple[str, bytes]]) -> bytes:
    return canonical_json(
        {
            "directory": b64encode(body),
            "signatures": [{"key_id": k, "sig": b64encode(s)} for k, s in signatures],
        }
    )


@pytest.fixture(scope="module")
def directory() -> Directory:
    return verify_directory(directory_file(), PINNED, 2)


# --- records ------------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(directory: Directory) -> None:
    assert directory.federation == "UNTOC-TEST"
    assert directory.serial == 7 and directory.issued == NOW
    assert sorted(directory.records) == ["XA:MOJ", "XB:MOJ"]
    assert directory.record("XA:MOJ") == ALICE.record()
    assert directory.digest == hashlib.sha256(directory.body).hexdigest()
    outer = json.loads(directory.file)
    assert b64decode(outer["directory"]) == directory.body
    assert [s["key_id"] for s in outer["signatures"]] == sorted(
        k.key_id for k in SECRETARIAT[:2]
    )
    signed = directory.signed_records["XB:MOJ"]
    assert signed.record_bytes == canonical_json(BOB.record().to_json())
    signed.verify()


def test_body_is_canonical_and_sorted_whatever_the_input_order() -> None:
    forward = build_directory("F", 1, NOW, [ALICE.signed(), BOB.signed()])
    backward = build_directory("F", 1, NOW, [BOB.signed(), ALICE.signed()])
    assert forward == backward
    body = json.loads(forward)
    assert body["v"] == 1
    assert [SignedRecord.from_json(r).record.authority for r in body["records"]] == [
        "XA:MOJ",
        "XB:MOJ",
    ]


def test_duplicate_authority_refused() -> None:
    call = lambda: build_directory("F", 1, NOW, [ALICE.signed(), ALICE.signed(name="x")])  # noqa: E731
    assert code_of(call) == "directory.malformed"


def test_sign_record_needs_the_records_own_identity() -> None:
    assert code_of(lambda: sign_record(ALICE.record(), BOB.identity)) == "key.invalid"


def test_sign_record_refuses_a_foreign_prekey() -> None:
    record = ALICE.record(prekeys=(BOB.hybrid.signed,))
    assert code_of(lambda: sign_record(record, ALICE.identity)) == "prekey.signature_invalid"


def test_tampered_record_byte_breaks_the_record_signature() -> None:
    signed = ALICE.signed()
    forged_record = replace(signed.record, endpoint="https://evil.example:8443")
    forged = SignedRecord(
        forged_record, canonical_json(forged_record.to_json()), signed.signature
    )
    assert code_of(forged.verify) == "directory.record_signature_invalid"
    flipped = bytearray(signed.record_bytes)
    flipped[flipped.index(b"Ministry")] = ord("m")
    parsed = SignedRecord.from_json(
        {"record": b64encode(bytes(flipped)), "sig": b64encode(signed.signature)}
    )
    assert code_of(parsed.verify) == "directory.record_signature_invalid"


def test_secretariat_cannot_slip_in_a_tampered_record() -> None:
    """A dishonest secretariat signs a body whose record the authority never signed."""
    signed = ALICE.signed()
    forged_record = replace(signed.record, endpoint="https://evil.example:8443")
    forged = SignedRecord(
        forged_record, canonical_json(forged_record.to_json()), signed.signature
    )
    body = canonical_json(
        {"v": 1, "federation": "F", "serial": 1, "issued": NOW, "records": [forged.to_json()]}
    )
    signatures = [(k.key_id, k.sign(LABELS["directory"], body)) for k in SECRETARIAT]
    file = file_with(body, signatures)
    assert code_of(lambda: verify_directory(file, PINNED, 2)) == (
        "directory.record_signature_invalid"
    )


def test_tampered_prekey_breaks_the_record() -> None:
    # A prekey whose own signature is not by the record's identity, even though the
    # authority (carelessly) signed the record around it.
    foreign = SignedPrekey(ALICE.hybrid.prekey, BOB.identity.sign(LABELS["prekey"], b"x"))
    record = ALICE.record(prekeys=(foreign,))
    record_bytes = canonical_json(record.to_json())
    signed = SignedRecord(
        record, record_bytes, ALICE.identity.sign(LABELS["authority-record"], record_bytes)
    )
    with pytest.raises(RogatoryError) as info:
        signed.verify()
    assert info.value.code == "directory.record_signature_invalid"
    assert ALICE.hybrid.id in str(info.value)
    assert code_of(lambda: build_directory("F", 1, NOW, [signed])) == (
        "directory.record_signature_invalid"
    )


def test_prekey_swapped_in_record_bytes_breaks_the_signature() -> None:
    signed = ALICE.signed()
    obj = json.loads(signed.record_bytes)
    obj["prekeys"][0] = ALICE.x25519.signed.to_json()
    obj["prekeys"][1] = ALICE.hybrid.signed.to_json()
    swapped = SignedRecord.from_json(
        {"record": b64encode(canonical_json(obj)), "sig": b64encode(signed.signature)}
    )
    assert code_of(swapped.verify) == "directory.record_signature_invalid"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"authority": "xa:moj"}, "directory.authority_id_invalid"),
        ({"authority": "XAMOJ"}, "directory.authority_id_invalid"),
        ({"name": ""}, "directory.malformed"),
        ({"name": "Evil\u202eMinistry"}, "directory.malformed"),
        ({"name": "line\nbreak"}, "directory.malformed"),
        ({"endpoint": "ftp://xa.example:21"}, "directory.malformed"),
        ({"endpoint": "https://:8443"}, "directory.malformed"),
        ({"endpoint": "https://user:pw@xa.example:8443"}, "directory.malformed"),
        ({"endpoint": "https://xa.example:99999"}, "directory.malformed"),
        ({"endpoint": "https://xa.example:8443?x=1"}, "directory.malformed"),
        ({"endpoint": "https://xa .example:8443"}, "directory.malformed"),
        ({"tls_fingerprint": ""}, "directory.malformed"),
        ({"tls_fingerprint": "AB" * 32}, "directory.malformed"),
        ({"tls_fingerprint": "ab" * 31}, "directory.malformed"),
        ({"identity_key": b"\x01" * 31}, "directory.malformed"),
        ({"languages": ("en", "en")}, "directory.malformed"),
        ({"languages": ("",)}, "directory.malformed"),
        ({"languages": ["en"]}, "directory.malformed"),
        ({"time_zone": ""}, "directory.malformed"),
        ({"updated": -1}, "directory.malformed"),
        ({"notes": "x" * 9000}, "directory.malformed"),
    ],
)
def test_invalid_records_refused(changes: dict[str, Any], code: str) -> None:
    assert code_of(lambda: ALICE.record(**changes)) == code


def test_http_endpoint_may_omit_the_fingerprint_and_multiline_notes_allowed() -> None:
    record = ALICE.record(
        endpoint="http://127.0.0.1:8001", tls_fingerprint="", notes="first\nsecond"
    )
    assert AuthorityRecord.from_json(record.to_json()) == record
    ipv6 = ALICE.record(endpoint="https://[::1]:8443")
    assert ipv6.endpoint == "https://[::1]:8443"


def test_revocation_consistency() -> None:
    other = IdentityKey.generate()
    assert code_of(lambda: Revocation("0" * 24, other.public_raw, NOW, "")) == (
        "directory.malformed"
    )
    own = Revocation(ALICE.identity.key_id, ALICE.identity.public_raw, NOW, "lost")
    assert code_of(lambda: ALICE.record(revoked=(own,))) == "directory.malformed"
    twice = Revocation(other.key_id, other.public_raw, NOW, "lost")
    assert code_of(lambda: ALICE.record(revoked=(twice, twice))) == "directory.malformed"


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o.update(extra="x"),
        lambda o: o.pop("notes"),
        lambda o: o.update(languages="en"),
        lambda o: o.update(languages=[1]),
        lambda o: o.update(updated=True),
        lambda o: o.update(updated="1"),
        lambda o: o.update(identity_key=o["identity_key"] + "="),
        lambda o: o.update(name=None),
        lambda o: o.update(prekeys={}),
        lambda o: o["prekeys"][0].update(sig="AA"),
        lambda o: o["prekeys"][0]["prekey"].update(suite="rot13"),
        lambda o: o.update(revoked=[{"key_id": "x"}]),
    ],
)
def test_record_from_json_is_strict(change: Callable[[dict[str, Any]], None]) -> None:
    obj = json.loads(canonical_json(ALICE.record().to_json()))
    change(obj)
    assert code_of(lambda: AuthorityRecord.from_json(obj)) == "directory.malformed"


def test_record_from_json_refuses_a_non_object() -> None:
    assert code_of(lambda: AuthorityRecord.from_json(["authority"])) == "directory.malformed"


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_item = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=BIDI),
    min_size=1,
    max_size=20,
)
_items = st.lists(_item, max_size=5, unique=True).map(tuple)
_revocations = st.lists(
    st.builds(
        lambda seed, effective, reason: Revocation(
            key_id(IdentityKey(seed).public_raw), IdentityKey(seed).public_raw, effective, reason
        ),
        st.binary(min_size=32, max_size=32),
        st.integers(0, 2**53 - 1),
        _item | st.just(""),
    ),
    max_size=3,
    unique_by=lambda r: r.key_id,
).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    authority=st.from_regex(r"\A[A-Z]{2}:[A-Z0-9][A-Z0-9_-]{0,31}\Z"),
    name=_item,
    host=st.sampled_from(["xa.example", "10.0.0.1", "[::1]", "localhost"]),
    port=st.integers(1, 65535),
    https=st.booleans(),
    fingerprint=st.binary(min_size=32, max_size=32),
    prekeys=st.lists(st.sampled_from([ALICE.hybrid, ALICE.x25519]), unique_by=lambda p: p.id),
    revoked=_revocations,
    lists=st.tuples(_items, _items, _items, _items, _items),
    texts=st.tuples(_item | st.just(""), _item | st.just(""), st.text(max_size=5).filter(
        lambda s: all(c in "\n\tab é" for c in s))),
    updated=st.integers(0, 2**53 - 1),
)
def test_record_json_round_trip(
    authority: str,
    name: str,
    host: str,
    port: int,
    https: bool,
    fingerprint: bytes,
    prekeys: list[PrivatePrekey],
    revoked: tuple[Revocation, ...],
    lists: tuple[tuple[str, ...], ...],
    texts: tuple[str, str, str],
    updated: int,
) -> None:
    record = AuthorityRecord(
        authority=authority,
        name=name,
        endpoint=f"{'https' if https else 'http'}://{host}:{port}",
        tls_fingerprint=fingerprint.hex() if https else "",
        identity_key=ALICE.identity.public_raw,
        prekeys=tuple(p.signed for p in prekeys),
        revoked=revoked,
        languages=lists[0],
        request_types=lists[1],
        legal_bases=lists[2],
        channels=lists[3],
        formats=lists[4],
        office_hours=texts[0],
        contact_24_7=texts[1],
        notes=texts[2],
        updated=updated,
    )
    encoded = canonical_json(record.to_json())
    assert AuthorityRecord.from_json(json.loads(encoded)) == record
    signed = sign_record(record, ALICE.identity)
    again = SignedRecord.from_json(json.loads(canonical_json(signed.to_json())))
    assert again == signed
    again.verify()


# --- M of N -------------------------------------------------------------------------------------


def test_threshold_not_met() -> None:
    file = directory_file(signers=SECRETARIAT[:1])
    assert verify_directory(file, PINNED, 1).serial == 7
    assert code_of(lambda: verify_directory(file, PINNED, 2)) == "directory.threshold_not_met"


def test_all_three_signatures_meet_three() -> None:
    assert verify_directory(directory_file(signers=SECRETARIAT), PINNED, 3).serial == 7


def test_signatures_from_one_key_count_once() -> None:
    body = build_directory("F", 1, NOW, [ALICE.signed()])
    signer = SECRETARIAT[0]
    signature = signer.sign(LABELS["directory"], body)
    file = file_with(body, [(signer.key_id, signature), (signer.key_id, signature)])
    assert verify_directory(file, PINNED, 1).serial == 1
    assert code_of(lambda: verify_directory(file, PINNED, 2)) == "directory.threshold_not_met"
    # Re-signing with the same key replaces, never adds.
    again = add_signature(add_signature(sign_directory(body, signer), signer), signer)
    assert len(json.loads(again)["signatures"]) == 1


def test_pinning_one_key_twice_does_not_lower_the_bar() -> None:
    file = directory_file(signers=SECRETARIAT[:1])
    twice = [PINNED[0], PINNED[0]]
    assert code_of(lambda: verify_directory(file, twice, 2)) == "config.invalid"


def test_unpinned_signers_are_ignored() -> None:
    outsiders = [IdentityKey.generate(), IdentityKey.generate()]
    file = directory_file(signers=[SECRETARIAT[0], *outsiders])
    assert len(json.loads(file)["signatures"]) == 3
    assert code_of(lambda: verify_directory(file, PINNED, 2)) == "directory.threshold_not_met"


def test_signature_over_another_body_does_not_count() -> None:
    body = build_directory("F", 1, NOW, [ALICE.signed()])
    other = build_directory("F", 2, NOW, [ALICE.signed()])
    file = file_with(
        body,
        [
            (SECRETARIAT[0].key_id, SECRETARIAT[0].sign(LABELS["directory"], body)),
            (SECRETARIAT[1].key_id, SECRETARIAT[1].sign(LABELS["directory"], other)),
            # The right body under another structure's label is no directory signature.
            (SECRETARIAT[2].key_id, SECRETARIAT[2].sign(LABELS["authority-record"], body)),
        ],
    )
    assert code_of(lambda: verify_directory(file, PINNED, 2)) == "directory.threshold_not_met"


def test_a_secretariat_signature_by_mistaken_identity_is_ignored() -> None:
    """A key id claiming to be a pinned key, with a signature by another key."""
    body = build_directory("F", 1, NOW, [ALICE.signed()])
    impostor = IdentityKey.generate()
    file = file_with(body, [(SECRETARIAT[0].key_id, impostor.sign(LABELS["directory"], body))])
    assert code_of(lambda: verify_directory(file, PINNED, 1)) == "directory.threshold_not_met"


@pytest.mark.parametrize("threshold", [0, -1, 4])
def test_impossible_threshold_is_a_configuration_error(threshold: int) -> None:
    file = directory_file()
    assert code_of(lambda: verify_directory(file, PINNED, threshold)) == "config.invalid"


def test_bad_pinned_key_is_a_configuration_error() -> None:
    assert code_of(lambda: verify_directory(directory_file(), [b"\x00" * 31], 1)) == (
        "config.invalid"
    )


def test_tampered_body_fails_the_quorum() -> None:
    file = json.loads(directory_file())
    body = json.loads(b64decode(file["directory"]))
    body["serial"] = 8
    file["directory"] = b64encode(canonical_json(body))
    assert code_of(lambda: verify_directory(canonical_json(file), PINNED, 1)) == (
        "directory.threshold_not_met"
    )


def signed_everywhere(body: bytes) -> bytes:
    return file_with(body, [(k.key_id, k.sign(LABELS["directory"], body)) for k in SECRETARIAT])


@pytest.mark.parametrize(
    "file",
    [
        b"",
        b"not json",
        b"[]",
        b'{"directory":"","signatures":[]} ',
        b'{"directory": "", "signatures": []}',
        b'{"directory":"","signatures":[],"x":1}',
        b'{"signatures":[]}',
        b'{"directory":"!!","signatures":[]}',
        b'{"directory":"","signatures":{}}',
        b'{"directory":"","signatures":[{"key_id":"nothex","sig":""}]}',
        b'{"directory":"","signatures":[{"key_id":"' + b"0" * 24 + b'","sig":"AA"}]}',
    ],
)
def test_malformed_file_refused(file: bytes) -> None:
    assert code_of(lambda: verify_directory(file, PINNED, 1)) == "directory.malformed"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        canonical_json({"v": 2, "federation": "F", "serial": 1, "issued": NOW, "records": []}),
        canonical_json({"v": 1, "federation": "", "serial": 1, "issued": NOW, "records": []}),
        canonical_json({"v": 1, "federation": "F", "serial": -1, "issued": NOW, "records": []}),
        canonical_json({"v": 1, "federation": "F", "serial": 1, "issued": NOW, "records": {}}),
        canonical_json(
            {"v": 1, "federation": "F", "serial": 1, "issued": NOW, "records": [], "x": 0}
        ),
        canonical_json(
            {
                "v": 1,
                "federation": "F",
                "serial": 1,
                "issued": NOW,
                "records": [BOB.signed().to_json(), ALICE.signed().to_json()],
            }
        ),
        canonical_json(
            {
                "v": 1,
                "federation": "F",
                "serial": 1,
                "issued": NOW,
                "records": [ALICE.signed().to_json(), ALICE.signed().to_json()],
            }
        ),
        canonical_json(
            {"v": 1, "federation": "F", "serial": 1, "issued": NOW, "records": [{"record": ""}]}
        ),
        b'{"federation":"F", "issued":1,"records":[],"serial":1,"v":1}',
    ],
)
def test_malformed_body_refused_even_with_a_quorum(body: bytes) -> None:
    file = signed_everywhere(body)
    assert code_of(lambda: verify_directory(file, PINNED, 3)) == "directory.malformed"
    # ...and the secretariat's tools refuse to sign it in the first place.
    assert code_of(lambda: sign_directory(body, SECRETARIAT[0])) == "directory.malformed"


def test_empty_directory_is_allowed() -> None:
    directory = verify_directory(directory_file(records=[]), PINNED, 2)
    assert dict(directory.records) == {}
    assert code_of(lambda: directory.record("XA:MOJ")) == "directory.unknown_authority"


# --- adoption -----------------------------------------------------------------------------------


def test_check_adoption(directory: Directory) -> None:
    check_adoption(None, directory)
    check_adoption((directory.serial, directory.digest), directory)
    check_adoption((directory.serial - 1, "0" * 64), directory)
    older = (directory.serial + 1, "0" * 64)
    assert code_of(lambda: check_adoption(older, directory)) == "directory.rollback"
    fork = (directory.serial, "0" * 64)
    assert code_of(lambda: check_adoption(fork, directory)) == "directory.equivocation"


def test_same_serial_different_content_is_equivocation(directory: Directory) -> None:
    other = verify_directory(directory_file(records=[ALICE.signed()]), PINNED, 2)
    assert other.serial == directory.serial and other.digest != directory.digest
    previous = (directory.serial, directory.digest)
    assert code_of(lambda: check_adoption(previous, other)) == "directory.equivocation"


def test_re_signed_same_body_is_not_equivocation(directory: Directory) -> None:
    resigned = add_signature(directory.file, SECRETARIAT[2])
    assert resigned != directory.file
    again = verify_directory(resigned, PINNED, 2)
    check_adoption((directory.serial, directory.digest), again)
    assert again.digest == directory.digest


# --- key lookups --------------------------------------------------------------------------------


def test_unknown_authority(directory: Directory) -> None:
    assert code_of(lambda: directory.record("XZ:NOBODY")) == "directory.unknown_authority"
    assert code_of(lambda: directory.prekey_for("XZ:NOBODY", NOW)) == (
        "directory.unknown_authority"
    )
    assert code_of(lambda: directory.receiver_key("XZ:NOBODY", ALICE.identity.key_id)) == (
        "directory.unknown_authority"
    )
    call = lambda: directory.sender_key(  # noqa: E731
        "XZ:NOBODY", ALICE.identity.key_id, now=NOW, created=NOW
    )
    assert code_of(call) == "envelope.unknown_sender"


@pytest.fixture(scope="module")
def rotated() -> tuple[Directory, IdentityKey, IdentityKey]:
    """XA:MOJ moved to a new identity key; the old one is revoked from NOW + 1 day."""
    old = ALICE.identity
    new = IdentityKey.generate()
    hybrid = generate_prekey(new, Suite.HYBRID, NOW - DAY)
    revocation = Revocation(old.key_id, old.public_raw, NOW + DAY, "rotated")
    record = ALICE.record(
        identity_key=new.public_raw, prekeys=(hybrid.signed,), revoked=(revocation,)
    )
    file = directory_file(records=[sign_record(record, new), BOB.signed()])
    return verify_directory(file, PINNED, 2), old, new


def test_sender_key_for_current_identity(
    rotated: tuple[Directory, IdentityKey, IdentityKey],
) -> None:
    directory, _, new = rotated
    later = NOW + 365 * DAY
    assert directory.sender_key("XA:MOJ", new.key_id, now=later, created=later) == new.public_raw


def test_revoked_key_works_until_effective(
    rotated: tuple[Directory, IdentityKey, IdentityKey],
) -> None:
    directory, old, _ = rotated
    effective = NOW + DAY
    assert (
        directory.sender_key("XA:MOJ", old.key_id, now=effective - 1, created=effective - 60)
        == old.public_raw
    )

    def at(now: int, created: int) -> str:
        return code_of(lambda: directory.sender_key("XA:MOJ", old.key_id, now=now, created=created))

    assert at(effective, effective - 60) == "envelope.key_revoked"
    assert at(effective + DAY, NOW) == "envelope.key_revoked"  # old envelope, now too late
    assert at(effective - 1, effective) == "envelope.key_revoked"  # created after revocation


def test_unknown_key_id(rotated: tuple[Directory, IdentityKey, IdentityKey]) -> None:
    directory, _, _ = rotated
    stranger = IdentityKey.generate().key_id
    call = lambda: directory.sender_key("XA:MOJ", stranger, now=NOW, created=NOW)  # noqa: E731
    assert code_of(call) == "envelope.unknown_sender"
    # A key of another authority is not this authority's key.
    call = lambda: directory.sender_key(  # noqa: E731
        "XA:MOJ", BOB.identity.key_id, now=NOW, created=NOW
    )
    assert code_of(call) == "envelope.unknown_sender"
    assert code_of(lambda: directory.receiver_key("XA:MOJ", stranger)) == (
        "directory.key_unknown"
    )


def test_receiver_key_includes_revoked_keys(
    rotated: tuple[Directory, IdentityKey, IdentityKey],
) -> None:
    directory, old, new = rotated
    assert directory.receiver_key("XA:MOJ", new.key_id) == new.public_raw
    assert directory.receiver_key("XA:MOJ", old.key_id) == old.public_raw


def test_receipt_verifies_with_receiver_key(directory: Directory) -> None:
    receipt = sign_receipt(
        status=ReceiptStatus.ACCEPTED,
        envelope_hash="ab" * 32,
        message_id="cd" * 16,
        sender="XA:MOJ",
        receiver="XB:MOJ",
        receiver_key=BOB.identity.key_id,
        received=NOW,
        receiver_seed=BOB.identity.seed,
    )
    parsed = parse_receipt(receipt.data)
    parsed.verify(directory.receiver_key(parsed.receiver, parsed.receiver_key))
    with pytest.raises(RogatoryError) as info:
        parsed.verify(directory.receiver_key("XA:MOJ", ALICE.identity.key_id))
    assert info.value.code == "receipt.signature_invalid"


def authority_with(prekeys: Iterable[PrivatePrekey], identity: IdentityKey) -> Directory:
    record = ALICE.record(
        identity_key=identity.public_raw, prekeys=tuple(p.signed for p in prekeys)
    )
    return verify_directory(directory_file(records=[sign_record(record, identity)]), PINNED, 2)


def test_prekey_for_prefers_hybrid_over_a_newer_x25519() -> None:
    identity = IdentityKey.generate()
    hybrid = generate_prekey(identity, Suite.HYBRID, NOW - 2 * DAY)
    x25519 = generate_prekey(identity, Suite.X25519, NOW - DAY)
    directory = authority_with([x25519, hybrid], identity)
    assert directory.prekey_for("XA:MOJ", NOW) == hybrid.prekey
    assert directory.strongest_suite("XA:MOJ", NOW) is Suite.HYBRID


def test_prekey_for_ignores_expired_and_future_prekeys() -> None:
    identity = IdentityKey.generate()
    expired = generate_prekey(identity, Suite.HYBRID, NOW - 10 * DAY, lifetime=5 * DAY)
    future = generate_prekey(identity, Suite.HYBRID, NOW + DAY)
    x25519 = generate_prekey(identity, Suite.X25519, NOW - DAY)
    directory = authority_with([expired, future, x25519], identity)
    assert directory.prekey_for("XA:MOJ", NOW) == x25519.prekey
    assert directory.strongest_suite("XA:MOJ", NOW) is Suite.X25519
    assert directory.prekey_for("XA:MOJ", NOW + DAY) == future.prekey
    # not_after is exclusive
    assert directory.prekey_for("XA:MOJ", expired.prekey.not_after - 1) == expired.prekey


def test_prekey_for_takes_the_latest_of_one_suite() -> None:
    identity = IdentityKey.generate()
    older = generate_prekey(identity, Suite.HYBRID, NOW - 5 * DAY)
    newer = generate_prekey(identity, Suite.HYBRID, NOW - DAY)
    directory = authority_with([newer, older], identity)
    assert directory.prekey_for("XA:MOJ", NOW) == newer.prekey


def test_no_current_prekey() -> None:
    identity = IdentityKey.generate()
    expired = generate_prekey(identity, Suite.HYBRID, NOW - 10 * DAY, lifetime=DAY)
    directory = authority_with([expired], identity)
    assert code_of(lambda: directory.prekey_for("XA:MOJ", NOW)) == "directory.no_current_prekey"
    assert code_of(lambda: directory.strongest_suite("XA:MOJ", NOW)) == (
        "directory.no_current_prekey"
    )
    empty = authority_with([], identity)
    assert code_of(lambda: empty.prekey_for("XA:MOJ", NOW)) == "directory.no_current_prekey"


def test_directory_and_keystore_carry_an_envelope_end_to_end(tmp_path: Path) -> None:
    """Publish a node's key store in a directory, seal with the directory, open with the store."""
    store = KeyStore.create(
        tmp_path / "ks",
        b"pass",
        "XB:MOJ",
        NOW - DAY,
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN,
    )
    bob = BOB.record(
        identity_key=store.identity.public_raw,
        prekeys=tuple(store.prekeys.published(NOW)),
    )
    directory = verify_directory(
        directory_file(records=[ALICE.signed(), sign_record(bob, store.identity)]), PINNED, 2
    )
    prekey = directory.prekey_for("XB:MOJ", NOW)
    header = EnvelopeHeader(
        id="ef" * 16,
        kind=Kind.REQUEST,
        sender="XA:MOJ",
        recipient="XB:MOJ",
        sender_key=ALICE.identity.key_id,
        recipient_prekey=prekey.id,
        suite=prekey.suite,
        created=NOW,
        expires=NOW + DAY,
    )
    sealed = seal(
        header, "application/json", b"{}", sender_seed=ALICE.identity.seed,
        recipient_public=prekey.public_raw,
    )
    opened = open_envelope(
        sealed.data,
        me="XB:MOJ",
        now=NOW,
        senders=directory,
        prekey=KeyStore.open(store.path, b"pass").receiver_prekey,
        strongest_suite=directory.strongest_suite("XB:MOJ", NOW),
        already_used=lambda _s, _m: False,
    )
    assert opened.sender_public == ALICE.identity.public_raw
    assert opened.package.payload == b"{}"

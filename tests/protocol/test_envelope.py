"""Envelope seal/open, and every attack refused by the receiver with its own code."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_kit import (
    DAY,
    HPKE_INFO_PREFIX,
    MAGIC,
    NOW,
    Directory,
    World,
    craft_envelope,
    craft_package,
)

from protocol.encoding import Reader, frame
from protocol.envelope import (
    MAX_LIFETIME,
    envelope_hash,
    open_envelope,
    parse_envelope,
    refusal_code,
    verify_package,
)
from protocol.errors import (
    EnvelopeError,
    EnvelopeMalformed,
    KeyMalformed,
    RogatoryError,
)
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind
from protocol.signing import LABELS, sign, verify
from protocol.suites import Suite, hpke_open, hpke_seal

SUITES = [Suite.HYBRID, Suite.X25519]


def refused(call: object) -> str:
    """Run a zero-argument callable that must raise an envelope error; return its code."""
    assert callable(call)
    with pytest.raises(EnvelopeError) as caught:
        call()
    return caught.value.code


# --- the happy path ------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_seal_open_round_trip(world: World, suite: Suite) -> None:
    header = world.header(world.alice, world.bob, suite=suite)
    sealed = world.seal(header, world.alice, world.bob, payload=b"\x00payload\xff")
    opened = world.open(sealed.data, world.bob, strongest=suite)
    assert opened.header == header
    assert opened.hash == sealed.hash == envelope_hash(sealed.data)
    assert opened.package.payload == b"\x00payload\xff"
    assert opened.package.content_type == "application/json"
    assert opened.package.data == sealed.package
    assert opened.sender_public == world.alice.public
    assert opened.envelope.header_bytes == header.encode()


@pytest.mark.parametrize("suite", SUITES)
def test_envelope_layout_follows_the_spec(world: World, suite: Suite) -> None:
    """Take a sealed envelope apart by hand, following PROTOCOL.md, not the parser."""
    header = world.header(world.alice, world.bob, suite=suite)
    sealed = world.seal(header, world.alice, world.bob, payload=b"abc", content_type="text/plain")
    reader = Reader(sealed.data)
    assert reader.fixed(5) == MAGIC
    header_bytes = reader.framed()
    sealed_part = reader.framed()
    outer = reader.fixed(64)
    reader.end()
    assert header_bytes == header.encode()
    assert verify(world.alice.public, "rogatory/v1/envelope",
                  hashlib.sha256(sealed_part).digest() + header_bytes, outer)
    enc_length = 1120 if suite is Suite.HYBRID else 32
    package = hpke_open(suite, world.bob.prekey(suite).private,
                        HPKE_INFO_PREFIX + hashlib.sha256(header_bytes).digest(), sealed_part)
    assert len(sealed_part) == enc_length + len(package) + 16
    assert package == sealed.package
    body = frame(header_bytes, b"text/plain", b"abc")
    assert package[:-64] == body
    assert verify(world.alice.public, "rogatory/v1/envelope-inner", body, package[-64:])


def test_each_seal_is_fresh(world: World) -> None:
    header = world.header(world.alice, world.bob)
    first = world.seal(header, world.alice, world.bob)
    second = world.seal(header, world.alice, world.bob)
    assert first.package == second.package  # Ed25519 is deterministic
    assert first.data != second.data  # HPKE encapsulation is not
    opened = world.open(first.data, world.bob)
    assert opened.package.payload == b'{"request":"hearing of a witness"}'


def test_receiver_passes_sender_and_times_to_the_directory(world: World) -> None:
    header = world.header(world.alice, world.bob, created=NOW - 5)
    directory = world.directory()
    world.open(world.seal(header, world.alice, world.bob).data, world.bob, directory=directory)
    assert directory.calls == [("XA:MOJ", world.alice.key_id, NOW, NOW - 5)]


def test_empty_payload_and_every_kind(world: World) -> None:
    for number, kind in enumerate(Kind):
        header = world.header(world.alice, world.bob, name=f"kind{number}", kind=kind)
        sealed = world.seal(header, world.alice, world.bob, payload=b"")
        opened = world.open(sealed.data, world.bob)
        assert (opened.header.kind, opened.package.payload) == (kind, b"")


def test_verify_package_for_a_third_party(world: World) -> None:
    """What the recipient keeps proves to an auditor what the sender signed, and to whom."""
    sealed = world.seal(world.header(world.alice, world.bob), world.alice, world.bob)
    kept = world.open(sealed.data, world.bob).package.data
    package = verify_package(kept, world.alice.public)
    assert package.header.recipient == "XB:MOJ"
    assert refused(lambda: verify_package(kept, world.carol.public)) == (
        "envelope.inner_signature_invalid"
    )
    tampered = kept[:-70] + bytes([kept[-70] ^ 1]) + kept[-69:]
    assert refused(lambda: verify_package(tampered, world.alice.public)) == (
        "envelope.inner_signature_invalid"
    )


# --- what seal refuses to produce -------------------------------------------------------------


def test_seal_checks_its_keys_and_content_type(world: World) -> None:
    header = world.header(world.alice, world.bob)
    bob_public = world.bob.hybrid.public
    with pytest.raises(KeyMalformed) as wrong_signer:
        world.seal(header, world.carol, world.bob)
    assert wrong_signer.value.code == "key.malformed"
    with pytest.raises(KeyMalformed) as wrong_prekey:
        world.seal(header, world.alice, world.carol)
    assert wrong_prekey.value.code == "key.malformed"
    for content_type in ("", "text/plain; charset=utf-8", "tëxt", "a\x00b", "x" * 129):
        with pytest.raises(EnvelopeMalformed) as bad_type:
            world.seal(header, world.alice, world.bob, content_type=content_type)
        assert bad_type.value.code == "envelope.malformed"
    assert world.seal(header, world.alice, world.bob, content_type="x" * 128).data
    assert len(bob_public) == 1216


# --- attacks, each with its own code ----------------------------------------------------------


def test_tampered_header_byte(world: World) -> None:
    header = world.header(world.alice, world.bob)
    data = world.seal(header, world.alice, world.bob).data
    at = data.index(b"XA/2026/0001") + 11
    tampered = data[:at] + b"2" + data[at + 1 :]
    assert parse_envelope(tampered).header.case == "XA/2026/0002"  # still a valid header
    assert refused(lambda: world.open(tampered, world.bob)) == "envelope.signature_invalid"


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_tampered_ciphertext_byte(world: World, where: str) -> None:
    header = world.header(world.alice, world.bob)
    data = world.seal(header, world.alice, world.bob).data
    envelope = parse_envelope(data)
    start = 5 + 4 + len(envelope.header_bytes) + 4
    offset = {"start": 0, "middle": len(envelope.sealed) // 2, "end": len(envelope.sealed) - 1}
    at = start + offset[where]
    tampered = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    assert parse_envelope(tampered).sealed != envelope.sealed
    assert refused(lambda: world.open(tampered, world.bob)) == "envelope.signature_invalid"


def test_tampered_outer_signature(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    tampered = data[:-1] + bytes([data[-1] ^ 0x80])
    assert refused(lambda: world.open(tampered, world.bob)) == "envelope.signature_invalid"


def test_signature_by_another_authority(world: World) -> None:
    """Carol signs an envelope claiming to be from Alice: the outer signature fails."""
    header = world.header(world.alice, world.bob)
    header_bytes = header.encode()
    package = craft_package(header_bytes, "text/plain", b"x", world.carol.seed)
    data = craft_envelope(header_bytes, package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.carol.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.signature_invalid"


def test_wrong_recipient(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    assert refused(lambda: world.open(data, world.carol)) == "envelope.wrong_recipient"


def test_surreptitious_forwarding(world: World) -> None:
    """Bob opens Alice's package and re-seals her signed bytes to Carol under his own signature."""
    original = world.seal(world.header(world.alice, world.bob), world.alice, world.bob)
    alices_package = world.open(original.data, world.bob).package.data
    forward_header = world.header(world.bob, world.carol, name="forward").encode()
    data = craft_envelope(forward_header, alices_package, suite=Suite.HYBRID,
                          recipient_public=world.carol.hybrid.public, signer_seed=world.bob.seed)
    code = refused(lambda: world.open(data, world.carol))
    assert code == "envelope.forwarded"


def test_forwarding_with_the_original_message_id(world: World) -> None:
    """Even copying every other field, the recipient inside Alice's signature gives it away."""
    original = world.header(world.alice, world.bob)
    sealed = world.seal(original, world.alice, world.bob)
    forward = replace(original, sender="XB:MOJ", sender_key=world.bob.key_id, recipient="XC:PGO",
                      recipient_prekey=world.carol.hybrid.id)
    data = craft_envelope(forward.encode(), sealed.package, suite=Suite.HYBRID,
                          recipient_public=world.carol.hybrid.public, signer_seed=world.bob.seed)
    assert refused(lambda: world.open(data, world.carol)) == "envelope.forwarded"


def test_header_splicing(world: World) -> None:
    """Same parties, but the sealed package's header is not the outer one byte for byte."""
    inner = world.header(world.alice, world.bob, name="inner", kind=Kind.WITHDRAWAL).encode()
    outer = world.header(world.alice, world.bob, name="outer").encode()
    package = craft_package(inner, "text/plain", b"withdrawn", world.alice.seed)
    data = craft_envelope(outer, package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.header_mismatch"


def test_replay(world: World) -> None:
    header = world.header(world.alice, world.bob)
    data = world.seal(header, world.alice, world.bob).data
    seen = frozenset({("XA:MOJ", header.id)})
    assert refused(lambda: world.open(data, world.bob, seen=seen)) == "envelope.replayed"
    other = frozenset({("XC:PGO", header.id), ("XA:MOJ", "0" * 32)})
    assert world.open(data, world.bob, seen=other).header.id == header.id


def test_reflection(world: World) -> None:
    """Alice's own envelope to Bob, played back to Alice."""
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    assert refused(lambda: world.open(data, world.alice)) == "envelope.reflected"


def test_expired(world: World) -> None:
    header = world.header(world.alice, world.bob, created=NOW - 2 * DAY, lifetime=DAY)
    data = world.seal(header, world.alice, world.bob).data
    assert refused(lambda: world.open(data, world.bob)) == "envelope.expired"
    assert refused(lambda: world.open(data, world.bob, now=header.expires)) == "envelope.expired"
    assert world.open(data, world.bob, now=header.expires - 1).header == header


def test_clock_skew(world: World) -> None:
    header = world.header(world.alice, world.bob, created=NOW + 301)
    data = world.seal(header, world.alice, world.bob).data
    assert refused(lambda: world.open(data, world.bob)) == "envelope.clock_skew"
    assert world.open(data, world.bob, now=NOW + 1).header == header
    assert world.open(data, world.bob, max_skew=301).header == header


@pytest.mark.parametrize(
    ("created", "expires"),
    [(NOW, NOW), (NOW, NOW - 1), (NOW - 60, NOW - 60 + MAX_LIFETIME + 1)],
)
def test_lifetime_invalid(world: World, created: int, expires: int) -> None:
    header = replace(world.header(world.alice, world.bob, created=created), expires=expires)
    data = world.seal(header, world.alice, world.bob).data
    assert refused(lambda: world.open(data, world.bob)) == "envelope.lifetime_invalid"


def test_longest_lifetime_accepted(world: World) -> None:
    header = world.header(world.alice, world.bob, lifetime=MAX_LIFETIME)
    assert world.open(world.seal(header, world.alice, world.bob).data, world.bob).header == header


def test_unknown_sender(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    directory = Directory().add(world.bob).add(world.carol)
    assert refused(lambda: world.open(data, world.bob, directory=directory)) == (
        "envelope.unknown_sender"
    )


def test_revoked_key(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    directory = world.directory()
    directory.revoked.add(("XA:MOJ", world.alice.key_id))
    assert refused(lambda: world.open(data, world.bob, directory=directory)) == (
        "envelope.key_revoked"
    )


def test_suite_downgrade_to_a_hybrid_node(world: World) -> None:
    """An X25519 envelope to a node whose strongest suite is hybrid, though it still holds the
    X25519 prekey."""
    header = world.header(world.alice, world.bob, suite=Suite.X25519)
    data = world.seal(header, world.alice, world.bob).data
    assert refused(lambda: world.open(data, world.bob, strongest=Suite.HYBRID)) == (
        "envelope.suite_downgrade"
    )
    assert world.open(data, world.bob, strongest=Suite.X25519).header == header


def test_suite_downgrade_against_a_hybrid_prekey(world: World) -> None:
    """The header names Bob's hybrid prekey but claims the X25519 suite."""
    header = world.header(world.alice, world.bob, suite=Suite.X25519,
                          recipient_prekey=world.bob.hybrid.id)
    header_bytes = header.encode()
    package = craft_package(header_bytes, "text/plain", b"x", world.alice.seed)
    data = craft_envelope(header_bytes, package, suite=Suite.X25519,
                          recipient_public=world.bob.x25519.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob, strongest=Suite.X25519)) == (
        "envelope.suite_downgrade"
    )


def test_suite_stronger_than_the_prekey(world: World) -> None:
    header = world.header(world.alice, world.bob, suite=Suite.HYBRID,
                          recipient_prekey=world.bob.x25519.id)
    header_bytes = header.encode()
    package = craft_package(header_bytes, "text/plain", b"x", world.alice.seed)
    data = craft_envelope(header_bytes, package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.suite_unsupported"


def test_prekey_unknown(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    only_x25519 = {world.bob.x25519.id: world.bob.x25519.held()}
    assert refused(lambda: world.open(data, world.bob, prekeys=only_x25519)) == (
        "envelope.prekey_unknown"
    )


def test_prekey_expired(world: World) -> None:
    header = world.header(world.alice, world.bob)
    data = world.seal(header, world.alice, world.bob).data
    hybrid = world.bob.hybrid
    too_old = {hybrid.id: hybrid.held(not_before=NOW - 40 * DAY, not_after=NOW - 30 * DAY)}
    assert refused(lambda: world.open(data, world.bob, prekeys=too_old)) == (
        "envelope.prekey_expired"
    )
    not_yet = {hybrid.id: hybrid.held(not_before=header.created + 301, not_after=NOW + DAY)}
    assert refused(lambda: world.open(data, world.bob, prekeys=not_yet)) == (
        "envelope.prekey_expired"
    )
    within_skew = {hybrid.id: hybrid.held(not_before=header.created + 300, not_after=NOW + DAY)}
    assert world.open(data, world.bob, prekeys=within_skew).header == header
    last_second = {hybrid.id: hybrid.held(not_after=header.created)}
    assert world.open(data, world.bob, prekeys=last_second).header == header


def test_decrypt_failed_with_the_wrong_private_key(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    hybrid = world.bob.hybrid
    wrong = {hybrid.id: replace(hybrid.held(), private_raw=world.carol.hybrid.private)}
    assert refused(lambda: world.open(data, world.bob, prekeys=wrong)) == "envelope.decrypt_failed"


def test_decrypt_failed_on_signed_garbage(world: World) -> None:
    header_bytes = world.header(world.alice, world.bob).encode()
    data = craft_envelope(header_bytes, b"", suite=Suite.HYBRID, recipient_public=b"",
                          signer_seed=world.alice.seed, sealed=b"\x00" * 1200)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.decrypt_failed"


def test_decrypt_failed_when_info_is_not_bound_to_the_header(world: World) -> None:
    header_bytes = world.header(world.alice, world.bob).encode()
    package = craft_package(header_bytes, "text/plain", b"x", world.alice.seed)
    data = craft_envelope(header_bytes, package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed,
                          info=b"rogatory/v1/envelope-hpke\x00" + b"\x00" * 32)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.decrypt_failed"


def test_inner_signature_invalid(world: World) -> None:
    header_bytes = world.header(world.alice, world.bob).encode()
    package = bytearray(craft_package(header_bytes, "text/plain", b"x", world.alice.seed))
    package[-1] ^= 0x01
    data = craft_envelope(header_bytes, bytes(package), suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.inner_signature_invalid"


def test_inner_signature_under_the_outer_label(world: World) -> None:
    """A package signed with the envelope label instead of the inner one is refused."""
    header_bytes = world.header(world.alice, world.bob).encode()
    body = frame(header_bytes, b"text/plain", b"x")
    package = body + sign(world.alice.seed, LABELS["envelope"], body)
    data = craft_envelope(header_bytes, package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.inner_signature_invalid"


def test_malformed_package_inside(world: World) -> None:
    header_bytes = world.header(world.alice, world.bob).encode()
    package = craft_package(header_bytes, "text/plain", b"x", world.alice.seed) + b"extra"
    data = craft_envelope(header_bytes, package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.malformed"


# --- order of checks ---------------------------------------------------------------------------


def test_signature_checked_before_addressing_and_time(world: World) -> None:
    """An expired, misaddressed, replayed envelope with a bad signature is a signature failure."""
    header = world.header(world.alice, world.bob, created=NOW - 10 * DAY, lifetime=DAY)
    data = world.seal(header, world.alice, world.bob).data
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    seen = frozenset({("XA:MOJ", header.id)})
    assert refused(lambda: world.open(tampered, world.carol, seen=seen)) == (
        "envelope.signature_invalid"
    )
    assert refused(lambda: world.open(data, world.carol, seen=seen)) == "envelope.wrong_recipient"
    assert refused(lambda: world.open(data, world.bob, seen=seen)) == "envelope.expired"


def test_replay_is_checked_after_time(world: World) -> None:
    header = world.header(world.alice, world.bob, created=NOW + 1000)
    data = world.seal(header, world.alice, world.bob).data
    seen = frozenset({("XA:MOJ", header.id)})
    assert refused(lambda: world.open(data, world.bob, seen=seen)) == "envelope.clock_skew"


# --- malformed bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda d: b"RGTX" + d[4:], "envelope.malformed"),
        (lambda d: d[:4] + b"\x02" + d[5:], "envelope.version_unsupported"),
        (lambda d: d + b"\x00", "envelope.malformed"),
        (lambda d: d[:-1], "envelope.malformed"),
        (lambda d: d[:5], "envelope.malformed"),
        (lambda d: b"", "envelope.malformed"),
        (lambda d: d[:5] + b"\x00\x00\x10\x01" + d[9:], "envelope.malformed"),  # header > 4096
    ],
)
def test_malformed_structure(world: World, mangle: object, code: str) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    assert callable(mangle)
    assert refused(lambda: parse_envelope(mangle(data))) == code
    assert refused(lambda: world.open(mangle(data), world.bob)) == code


def test_sealed_size_limit(world: World) -> None:
    data = world.seal(world.header(world.alice, world.bob), world.alice, world.bob).data
    sealed_length = len(parse_envelope(data).sealed)
    assert parse_envelope(data, max_sealed=sealed_length).sealed
    assert refused(lambda: parse_envelope(data, max_sealed=sealed_length - 1)) == (
        "envelope.malformed"
    )


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("kind", b'"letter"', "envelope.kind_unknown"),
        ("suite", b'"x448-hkdfsha512-aes256gcm"', "envelope.suite_unsupported"),
        ("v", b"2", "envelope.version_unsupported"),
        ("id", b'"nope"', "envelope.malformed"),
    ],
)
def test_bad_header_inside_a_well_framed_envelope(
    world: World, field: str, value: bytes, code: str
) -> None:
    header = world.header(world.alice, world.bob)
    obj_bytes = header.encode()
    start = obj_bytes.index(f'"{field}":'.encode()) + len(field) + 3
    end = min(i for i in (obj_bytes.find(b",", start), obj_bytes.find(b"}", start)) if i > 0)
    bad_header = obj_bytes[:start] + value + obj_bytes[end:]
    data = craft_envelope(bad_header, b"", suite=Suite.HYBRID, recipient_public=b"",
                          signer_seed=world.alice.seed, sealed=b"\x00" * 64)
    assert refused(lambda: parse_envelope(data)) == code
    assert refused(lambda: world.open(data, world.bob)) == code


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_parse_envelope_fuzz(data: bytes) -> None:
    try:
        parse_envelope(data)
    except RogatoryError as exc:
        assert exc.code.startswith("envelope.")


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_parse_envelope_fuzz_behind_a_valid_prefix(tail: bytes) -> None:
    try:
        parse_envelope(b"RGTE\x01" + tail)
    except RogatoryError as exc:
        assert exc.code.startswith("envelope.")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_single_byte_change_is_refused(world: World, data: st.DataObject) -> None:
    envelope = _reference_envelope(world)
    at = data.draw(st.integers(min_value=0, max_value=len(envelope) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    mangled = envelope[:at] + bytes([envelope[at] ^ flip]) + envelope[at + 1 :]
    with pytest.raises(RogatoryError) as caught:
        world.open(mangled, world.bob)
    assert caught.value.code in {
        "envelope.malformed",
        "envelope.version_unsupported",
        "envelope.kind_unknown",
        "envelope.suite_unsupported",
        "envelope.signature_invalid",
        "envelope.unknown_sender",
    }


_REFERENCE: dict[str, bytes] = {}


def _reference_envelope(world: World) -> bytes:
    if "data" not in _REFERENCE:
        header = world.header(world.alice, world.bob, suite=Suite.X25519)
        sealed = world.seal(header, world.alice, world.bob, payload=b"p")
        _REFERENCE["data"] = sealed.data
    return _REFERENCE["data"]


def test_refusal_code() -> None:
    assert refusal_code(EnvelopeMalformed()) == "envelope.malformed"
    assert refusal_code(KeyMalformed()) == "key.malformed"
    assert refusal_code(ValueError("boom")) == "envelope.malformed"


def test_open_envelope_keyword_interface(world: World) -> None:
    """The receiver's inputs are all explicit: no clock, no I/O inside protocol/."""
    header = world.header(world.alice, world.bob)
    data = world.seal(header, world.alice, world.bob).data
    held = world.bob.hybrid.held()
    opened = open_envelope(
        data,
        me="XB:MOJ",
        now=NOW,
        senders=world.directory(),
        prekey=lambda wanted: held if wanted == held.id else None,
        strongest_suite=Suite.HYBRID,
        already_used=lambda sender, mid: False,
    )
    assert isinstance(opened.header, EnvelopeHeader)
    assert opened.package.header_bytes == opened.envelope.header_bytes


def test_hpke_seal_used_by_crafting_matches_seal(world: World) -> None:
    """The crafting helper and ``seal`` produce envelopes the receiver treats identically."""
    header = world.header(world.alice, world.bob, suite=Suite.X25519)
    header_bytes = header.encode()
    package = craft_package(header_bytes, "application/json", b"{}", world.alice.seed)
    info = HPKE_INFO_PREFIX + hashlib.sha256(header_bytes).digest()
    sealed = hpke_seal(Suite.X25519, world.bob.x25519.public, info, package)
    data = craft_envelope(header_bytes, package, suite=Suite.X25519, sealed=sealed,
                          recipient_public=b"", signer_seed=world.alice.seed)
    opened = world.open(data, world.bob, strongest=Suite.X25519)
    assert opened.package.data == package

"""Receipts: the receiver's signed word that it accepted, or refused, one exact envelope."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_kit import World

from protocol.encoding import canonical_json, frame
from protocol.errors import ERRORS_BY_CODE, ReceiptError, RogatoryError
from protocol.receipt import (
    MAX_DETAIL,
    RECEIPT_FIELDS,
    Receipt,
    ReceiptStatus,
    parse_receipt,
    sign_receipt,
)
from protocol.signing import LABELS, sign, verify

ENVELOPE = hashlib.sha256(b"an envelope").hexdigest()
MESSAGE = "0123456789abcdef0123456789abcdef"


def accepted(world: World, **changes: Any) -> Receipt:
    args: dict[str, Any] = {
        "status": ReceiptStatus.ACCEPTED,
        "envelope_hash": ENVELOPE,
        "message_id": MESSAGE,
        "sender": "XA:MOJ",
        "receiver": "XB:MOJ",
        "receiver_key": world.bob.key_id,
        "received": 1_767_225_600,
        "receiver_seed": world.bob.seed,
    }
    args.update(changes)
    return sign_receipt(**args)


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(ReceiptError) as caught:
        call()
    return caught.value.code


def resign(world: World, body: bytes) -> bytes:
    return b"RGTR\x01" + frame(body) + sign(world.bob.seed, LABELS["receipt"], body)


def test_sign_parse_verify(world: World) -> None:
    receipt = accepted(world)
    assert receipt.accepted
    assert receipt.code == ""
    parsed = parse_receipt(receipt.data)
    assert parsed == receipt
    assert parsed.verify(world.bob.public) is parsed
    parsed.check_names(envelope_hash=ENVELOPE, message_id=MESSAGE, sender="XA:MOJ",
                       receiver="XB:MOJ")


def test_layout(world: World) -> None:
    receipt = accepted(world)
    body = receipt.body
    assert receipt.data == b"RGTR\x01" + len(body).to_bytes(4, "big") + body + receipt.data[-64:]
    assert body == canonical_json(receipt.to_json())
    assert sorted(json.loads(body)) == sorted(RECEIPT_FIELDS)
    assert verify(world.bob.public, "rogatory/v1/receipt", body, receipt.data[-64:])
    assert body == (
        b'{"code":"","detail":"","envelope":"' + ENVELOPE.encode() + b'","from":"XA:MOJ",'
        b'"id":"' + MESSAGE.encode() + b'","key":"' + world.bob.key_id.encode() + b'",'
        b'"received":1767225600,"status":"accepted","to":"XB:MOJ","v":1}'
    )


def test_signing_is_deterministic(world: World) -> None:
    assert accepted(world).data == accepted(world).data


def test_wrong_key(world: World) -> None:
    receipt = accepted(world)
    assert code_of(lambda: receipt.verify(world.carol.public)) == "receipt.signature_invalid"
    assert code_of(lambda: receipt.verify(b"short")) == "receipt.signature_invalid"


def test_signed_by_someone_else(world: World) -> None:
    forged = accepted(world, receiver_seed=world.carol.seed)  # claims XB:MOJ and Bob's key id
    assert code_of(lambda: forged.verify(world.bob.public)) == "receipt.signature_invalid"


def test_tampered_body_byte(world: World) -> None:
    data = accepted(world).data
    at = data.index(b"1767225600") + 9
    tampered = data[:at] + b"1" + data[at + 1 :]
    parsed = parse_receipt(tampered)
    assert parsed.received == 1_767_225_601
    assert code_of(lambda: parsed.verify(world.bob.public)) == "receipt.signature_invalid"


def test_tampered_status(world: World) -> None:
    """An acceptance cannot be turned into a refusal (or back) without breaking the signature."""
    receipt = sign_receipt(
        status=ReceiptStatus.REJECTED, envelope_hash=ENVELOPE, message_id=MESSAGE,
        sender="XA:MOJ", receiver="XB:MOJ", receiver_key=world.bob.key_id, received=5,
        receiver_seed=world.bob.seed, code="envelope.expired",
    )
    obj = json.loads(receipt.body)
    obj.update(status="accepted", code="")
    body = canonical_json(obj)
    swapped = b"RGTR\x01" + frame(body) + receipt.data[-64:]
    parsed = parse_receipt(swapped)
    assert parsed.accepted
    assert code_of(lambda: parsed.verify(world.bob.public)) == "receipt.signature_invalid"


def test_tampered_signature(world: World) -> None:
    data = accepted(world).data
    tampered = data[:-64] + bytes([data[-64] ^ 1]) + data[-63:]
    assert code_of(lambda: parse_receipt(tampered).verify(world.bob.public)) == (
        "receipt.signature_invalid"
    )


def test_signature_under_another_label(world: World) -> None:
    body = accepted(world).body
    data = b"RGTR\x01" + frame(body) + sign(world.bob.seed, LABELS["envelope"], body)
    assert code_of(lambda: parse_receipt(data).verify(world.bob.public)) == (
        "receipt.signature_invalid"
    )


@pytest.mark.parametrize(
    "name",
    ["envelope_hash", "message_id", "sender", "receiver"],
)
def test_check_names_mismatch(world: World, name: str) -> None:
    receipt = accepted(world)
    expected = {
        "envelope_hash": ENVELOPE, "message_id": MESSAGE, "sender": "XA:MOJ",
        "receiver": "XB:MOJ",
    }
    receipt.check_names(**expected)
    expected[name] = {
        "envelope_hash": hashlib.sha256(b"another").hexdigest(),
        "message_id": "f" * 32,
        "sender": "XC:PGO",
        "receiver": "XC:PGO",
    }[name]
    assert code_of(lambda: receipt.check_names(**expected)) == "receipt.mismatch"


def test_rejection_receipt(world: World) -> None:
    receipt = sign_receipt(
        status=ReceiptStatus.REJECTED, envelope_hash=ENVELOPE, message_id=MESSAGE,
        sender="XA:MOJ", receiver="XB:MOJ", receiver_key=world.bob.key_id, received=7,
        receiver_seed=world.bob.seed, code="envelope.replayed", detail="seen before",
    )
    parsed = parse_receipt(receipt.data).verify(world.bob.public)
    assert not parsed.accepted
    assert (parsed.status, parsed.code, parsed.detail) == (
        ReceiptStatus.REJECTED, "envelope.replayed", "seen before",
    )


def test_rejection_of_unreadable_bytes_names_nothing(world: World) -> None:
    receipt = sign_receipt(
        status=ReceiptStatus.REJECTED, envelope_hash="", message_id="", sender="",
        receiver="XB:MOJ", receiver_key=world.bob.key_id, received=7,
        receiver_seed=world.bob.seed, code="transport.body_too_large",
    )
    parsed = parse_receipt(receipt.data).verify(world.bob.public)
    assert (parsed.envelope_hash, parsed.message_id, parsed.sender) == ("", "", "")
    assert code_of(lambda: parsed.check_names(
        envelope_hash=ENVELOPE, message_id=MESSAGE, sender="XA:MOJ", receiver="XB:MOJ"
    )) == "receipt.mismatch"


@pytest.mark.parametrize("code", sorted(ERRORS_BY_CODE))
def test_every_error_code_can_be_carried(world: World, code: str) -> None:
    receipt = sign_receipt(
        status=ReceiptStatus.REJECTED, envelope_hash=ENVELOPE, message_id=MESSAGE,
        sender="XA:MOJ", receiver="XB:MOJ", receiver_key=world.bob.key_id, received=7,
        receiver_seed=world.bob.seed, code=code,
    )
    assert parse_receipt(receipt.data).code == code


def test_detail_is_truncated(world: World) -> None:
    receipt = sign_receipt(
        status=ReceiptStatus.REJECTED, envelope_hash="", message_id="", sender="",
        receiver="XB:MOJ", receiver_key=world.bob.key_id, received=7,
        receiver_seed=world.bob.seed, code="envelope.malformed", detail="é" * 1000,
    )
    assert receipt.detail == "é" * MAX_DETAIL


@pytest.mark.parametrize(
    "changes",
    [
        {"code": "envelope.replayed"},  # an acceptance carries no code
        {"status": ReceiptStatus.REJECTED},  # a refusal must carry one
        {"status": ReceiptStatus.REJECTED, "code": "envelope.no_such_code"},
        {"envelope_hash": ""},  # an acceptance names the envelope
        {"envelope_hash": ENVELOPE.upper()},
        {"message_id": ""},
        {"sender": ""},
        {"receiver": "nobody"},
        {"receiver_key": "XB"},
        {"received": -1},
    ],
)
def test_sign_receipt_refuses_ill_formed_receipts(world: World, changes: dict[str, Any]) -> None:
    assert code_of(lambda: accepted(world, **changes)) == "receipt.malformed"


BODY_CHANGES: list[tuple[str, Any]] = [
    ("v", 2),
    ("v", True),
    ("v", "1"),
    ("status", "ACCEPTED"),
    ("status", None),
    ("code", []),
    ("code", {"x": 1}),
    ("code", 5),
    ("detail", "x" * 257),
    ("detail", None),
    ("received", True),
    ("received", "5"),
    ("envelope", 5),
    ("key", ""),
    ("to", ""),
]


@pytest.mark.parametrize(("name", "value"), BODY_CHANGES)
def test_parse_refuses_ill_formed_bodies(world: World, name: str, value: Any) -> None:
    obj = accepted(world).to_json()
    obj[name] = value
    data = resign(world, canonical_json(obj))
    assert code_of(lambda: parse_receipt(data)) == "receipt.malformed"


def test_parse_refuses_missing_and_extra_fields(world: World) -> None:
    obj = accepted(world).to_json()
    extra = canonical_json({**obj, "audit": 3})
    missing = canonical_json({k: v for k, v in obj.items() if k != "detail"})
    assert code_of(lambda: parse_receipt(resign(world, extra))) == "receipt.malformed"
    assert code_of(lambda: parse_receipt(resign(world, missing))) == "receipt.malformed"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"RGTE" + d[4:],
        lambda d: d[:4] + b"\x02" + d[5:],
        lambda d: d + b"\x00",
        lambda d: d[:-1],
        lambda d: d[:5] + b"\x00\x00\x10\x01" + d[9:],  # body longer than 4096
        lambda d: d[:9] + b" " + d[10:],  # body not JSON
    ],
)
def test_parse_refuses_bad_structure(world: World, mangle: object) -> None:
    assert callable(mangle)
    data = accepted(world).data
    assert code_of(lambda: parse_receipt(mangle(data))) == "receipt.malformed"


def test_non_canonical_body(world: World) -> None:
    body = json.dumps(accepted(world).to_json()).encode()
    assert code_of(lambda: parse_receipt(resign(world, body))) == "receipt.malformed"


def test_unsigned_receipt_never_verifies(world: World) -> None:
    unsigned = replace(accepted(world), data=b"", body=b"")
    assert code_of(lambda: unsigned.verify(world.bob.public)) == "receipt.signature_invalid"


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_parse_receipt_fuzz(data: bytes) -> None:
    try:
        parse_receipt(b"RGTR\x01" + frame(data) + b"\x00" * 64)
    except RogatoryError as exc:
        assert exc.code == "receipt.malformed"
    try:
        parse_receipt(data)
    except RogatoryError as exc:
        assert exc.code == "receipt.malformed"


json_leaf = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4)
json_any = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.text("abc", max_size=2), inner, max_size=2), max_leaves=4)


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(RECEIPT_FIELDS), json_any, min_size=1))
def test_parse_receipt_with_arbitrary_field_values(world: World, changes: dict[str, Any]) -> None:
    obj = {**accepted(world).to_json(), **changes}
    data = b"RGTR\x01" + frame(canonical_json(obj)) + b"\x00" * 64
    try:
        receipt = parse_receipt(data)
    except RogatoryError as exc:
        assert exc.code == "receipt.malformed"
    else:
        assert receipt.to_json() == obj


def test_a_refusal_with_a_code_from_a_newer_peer_still_parses_and_verifies(world: World) -> None:
    known = sign_receipt(
        status=ReceiptStatus.REJECTED, envelope_hash=ENVELOPE, message_id="", sender="",
        receiver="XB:MOJ", receiver_key=world.bob.key_id, received=7,
        receiver_seed=world.bob.seed, code="envelope.malformed",
    )
    body = known.body.replace(b'"envelope.malformed"', b'"envelope.some_future_check"')
    data = known.data[:5] + frame(body) + sign(world.bob.seed, LABELS["receipt"], body)
    receipt = parse_receipt(data).verify(world.bob.public)
    assert receipt.code == "envelope.some_future_check"
    assert code_of(lambda: parse_receipt(data.replace(b"some_future_check", b"Not-A-Code!!!!!"))) \
        == "receipt.malformed"


def test_acceptance_with_log_index_and_proof_round_trips(world: World) -> None:
    receipt = accepted(world, log_index=41)
    assert receipt.log_index == 41 and receipt.proof == b""
    proved = receipt.with_proof(b"c2sp.org/tlog-proof@v1\n...")
    again = parse_receipt(proved.data).verify(world.bob.public)
    assert again.proof == b"c2sp.org/tlog-proof@v1\n..." and again.log_index == 41
    assert again.signed == receipt.data and again.digest == receipt.digest
    assert again == proved


def test_completing_a_receipt_keeps_every_other_field(world: World) -> None:
    """``with_proof`` and ``sign_receipt`` copy the fields by hand: one added to ``Receipt``
    and forgotten there would be silently reset."""
    wire = {"data", "body", "signature", "proof"}
    marked = replace(accepted(world), **{f.name: object() for f in fields(Receipt)})
    done = marked._completed(data=b"d", body=b"b", signature=b"s", proof=b"p")
    assert all(getattr(done, f.name) is getattr(marked, f.name)
               for f in fields(Receipt) if f.name not in wire)
    assert (done.data, done.body, done.signature, done.proof) == (b"d", b"b", b"s", b"p")


@pytest.mark.parametrize("index", [-1, True, "3", None])
def test_log_index_must_be_a_small_natural_number(world: World, index: Any) -> None:
    obj = {**accepted(world).to_json(), "log_index": index}
    assert code_of(lambda: parse_receipt(resign(world, canonical_json(obj)))) \
        == "receipt.malformed"


def test_refusals_carry_neither_log_index_nor_proof(world: World) -> None:
    refusal = accepted(world, status=ReceiptStatus.REJECTED, code="envelope.replayed")
    obj = {**refusal.to_json(), "log_index": 1}
    assert code_of(lambda: parse_receipt(resign(world, canonical_json(obj)))) \
        == "receipt.malformed"
    assert code_of(lambda: refusal.with_proof(b"x")) == "receipt.malformed"
    assert code_of(lambda: parse_receipt(refusal.data + frame(b"proof"))) == "receipt.malformed"


def _signed_then_read_back(**args: Any) -> Receipt:
    """What sign_receipt did before: sign, then parse its own bytes."""
    from protocol.receipt import parse_receipt

    return parse_receipt(sign_receipt(**args).data)


def _outcome(call: Any, args: dict[str, Any]) -> tuple[str, str, Receipt | None]:
    try:
        return ("ok", "", call(**args))
    except RogatoryError as exc:
        return (type(exc).__name__, exc.message, None)
    except (TypeError, AttributeError) as exc:  # a value of the wrong type, before signing
        return (type(exc).__name__, str(exc), None)


@settings(max_examples=300)
@given(st.dictionaries(
    st.sampled_from(["status", "code", "envelope_hash", "message_id", "sender", "receiver",
                     "receiver_key", "received", "detail", "log_index"]),
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=80)
    | st.sampled_from([ReceiptStatus.ACCEPTED, ReceiptStatus.REJECTED, "envelope.replayed",
                       "XC:MOJ", MESSAGE, ENVELOPE, "0" * 24, 2**53 - 1, 2**53])
    | st.text(min_size=3000, max_size=4200), max_size=3))
def test_sign_receipt_returns_what_parsing_its_bytes_returns(world: World,
                                                             changes: dict[str, Any]) -> None:
    """sign_receipt no longer parses its own output: the receipt it returns, or the error it
    raises, must be what parsing those bytes gives."""
    args: dict[str, Any] = {
        "status": ReceiptStatus.ACCEPTED, "envelope_hash": ENVELOPE, "message_id": MESSAGE,
        "sender": "XA:MOJ", "receiver": "XB:MOJ", "receiver_key": world.bob.key_id,
        "received": 1_767_225_600, "receiver_seed": world.bob.seed, **changes}
    direct = _outcome(sign_receipt, args)
    if direct[0] == "ok":
        assert direct == _outcome(_signed_then_read_back, args)
    else:  # refused before or at the read-back: the same refusal either way
        assert direct[:2] == _outcome(_signed_then_read_back, args)[:2]

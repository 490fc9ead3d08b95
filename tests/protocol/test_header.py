"""The envelope header: exact fields, exact types, one canonical spelling."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.encoding import canonical_json
from protocol.errors import (
    EnvelopeError,
    EnvelopeKindUnknown,
    EnvelopeMalformed,
    RogatoryError,
)
from protocol.header import (
    HEADER_FIELDS,
    MAX_HEADER_BYTES,
    EnvelopeHeader,
    is_authority_id,
)
from protocol.kinds import Kind, Priority
from protocol.suites import Suite

MAX_TIME = 2**53 - 1

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
authority_ids = st.builds(
    lambda country, first, rest: f"{country}:{first}{rest}",
    st.text(UPPER, min_size=2, max_size=2),
    st.sampled_from(UPPER + "0123456789"),
    st.text(UPPER + "0123456789_-", max_size=31),
)
message_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
key_ids = st.binary(min_size=12, max_size=12).map(bytes.hex)
case_refs = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=128)
times = st.integers(min_value=0, max_value=MAX_TIME)
headers = st.builds(
    EnvelopeHeader,
    id=message_ids,
    kind=st.sampled_from(Kind),
    sender=authority_ids,
    recipient=authority_ids,
    sender_key=key_ids,
    recipient_prekey=key_ids,
    suite=st.sampled_from(Suite),
    created=times,
    expires=times,
    in_reply_to=st.just("") | message_ids,
    case=case_refs,
    priority=st.sampled_from(Priority),
)

EXAMPLE = EnvelopeHeader(
    id="0123456789abcdef0123456789abcdef",
    kind=Kind.REQUEST,
    sender="XA:MOJ",
    recipient="XB:MOJ",
    sender_key="00112233445566778899aabb",
    recipient_prekey="ccddeeff0011223344556677",
    suite=Suite.HYBRID,
    created=1_767_225_540,
    expires=1_767_830_340,
    in_reply_to="",
    case="XA/2026/0001",
    priority=Priority.URGENT,
)


def example_json() -> dict[str, Any]:
    return EXAMPLE.to_json()


def decode_code(obj: Any) -> str:
    with pytest.raises(EnvelopeError) as caught:
        EnvelopeHeader.decode(canonical_json(obj))
    return caught.value.code


@given(headers)
def test_round_trip(header: EnvelopeHeader) -> None:
    data = header.encode()
    assert EnvelopeHeader.decode(data) == header
    assert json.loads(data) == header.to_json()
    assert sorted(json.loads(data)) == sorted(HEADER_FIELDS)


def test_exact_bytes() -> None:
    assert EXAMPLE.encode() == (
        b'{"case":"XA/2026/0001","created":1767225540,"expires":1767830340,"from":"XA:MOJ",'
        b'"from_key":"00112233445566778899aabb","id":"0123456789abcdef0123456789abcdef",'
        b'"in_reply_to":"","kind":"request","priority":"urgent",'
        b'"suite":"mlkem768x25519-hkdfsha256-chacha20poly1305","to":"XB:MOJ",'
        b'"to_key":"ccddeeff0011223344556677","v":1}'
    )


def test_defaults() -> None:
    header = EnvelopeHeader(
        id=EXAMPLE.id, kind=Kind.STATUS, sender="XA:MOJ", recipient="XB:MOJ",
        sender_key=EXAMPLE.sender_key, recipient_prekey=EXAMPLE.recipient_prekey,
        suite=Suite.X25519, created=0, expires=1,
    )
    obj = header.to_json()
    assert (obj["in_reply_to"], obj["case"], obj["priority"]) == ("", "", "normal")
    assert EnvelopeHeader.decode(header.encode()) == header


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("v", 2, "envelope.version_unsupported"),
    ("v", 0, "envelope.version_unsupported"),
    ("v", "1", "envelope.version_unsupported"),
    ("v", True, "envelope.version_unsupported"),
    ("id", "0123456789ABCDEF0123456789ABCDEF", "envelope.malformed"),
    ("id", "0123", "envelope.malformed"),
    ("id", 12, "envelope.malformed"),
    ("kind", "letter", "envelope.kind_unknown"),
    ("kind", "REQUEST", "envelope.kind_unknown"),
    ("kind", None, "envelope.kind_unknown"),
    ("from", "xa:moj", "envelope.malformed"),
    ("from", "XAA:MOJ", "envelope.malformed"),
    ("from", "XA:" + "A" * 33, "envelope.malformed"),
    ("from", "XA:-MOJ", "envelope.malformed"),
    ("to", "XB", "envelope.malformed"),
    ("to", ["XB:MOJ"], "envelope.malformed"),
    ("from_key", "00112233445566778899AABB", "envelope.malformed"),
    ("from_key", "00112233445566778899aa", "envelope.malformed"),
    ("to_key", "", "envelope.malformed"),
    ("suite", "x25519-hkdfsha256-aes128gcm", "envelope.suite_unsupported"),
    ("suite", 1, "envelope.malformed"),
    ("created", -1, "envelope.malformed"),
    ("created", "1767225540", "envelope.malformed"),
    ("created", True, "envelope.malformed"),
    ("expires", None, "envelope.malformed"),
    ("in_reply_to", "nope", "envelope.malformed"),
    ("in_reply_to", None, "envelope.malformed"),
    ("case", "x" * 129, "envelope.malformed"),
    ("case", "tab\there", "envelope.malformed"),
    ("case", "café", "envelope.malformed"),
    ("priority", "high", "envelope.malformed"),
    ("priority", "", "envelope.malformed"),
]


@pytest.mark.parametrize(("name", "value", "code"), BAD_FIELDS)
def test_each_invalid_field_refused_with_its_code(name: str, value: Any, code: str) -> None:
    obj = example_json()
    obj[name] = value
    assert decode_code(obj) == code


@pytest.mark.parametrize("name", HEADER_FIELDS)
def test_missing_field_refused(name: str) -> None:
    obj = example_json()
    del obj[name]
    expected = "envelope.version_unsupported" if name == "v" else "envelope.malformed"
    assert decode_code(obj) == expected


def test_unknown_field_refused() -> None:
    obj = example_json()
    obj["note"] = ""
    assert decode_code(obj) == "envelope.malformed"


@pytest.mark.parametrize("value", [[], "header", 1, None])
def test_header_must_be_an_object(value: Any) -> None:
    assert decode_code(value) == "envelope.malformed"


@pytest.mark.parametrize(
    "data",
    [
        json.dumps(EXAMPLE.to_json()).encode(),  # whitespace, unsorted
        EXAMPLE.encode().replace(b'"kind":"request"', b'"kind":"\\u0072equest"'),
        EXAMPLE.encode().replace(b'"v":1', b'"v":1.0'),
        EXAMPLE.encode()[:-1],
        EXAMPLE.encode().replace(b'"case":', b'"case":"x","case":'),
    ],
)
def test_non_canonical_or_broken_json_is_malformed(data: bytes) -> None:
    with pytest.raises(EnvelopeMalformed) as caught:
        EnvelopeHeader.decode(data)
    assert caught.value.code == "envelope.malformed"


def test_size_limit() -> None:
    obj = example_json()
    obj["case"] = "x" * 128
    assert len(canonical_json(obj)) < MAX_HEADER_BYTES
    with pytest.raises(EnvelopeMalformed, match="larger than") as caught:
        EnvelopeHeader.decode(canonical_json(obj) + b" " * MAX_HEADER_BYTES)
    assert caught.value.code == "envelope.malformed"


def test_encode_refuses_what_decode_would_refuse() -> None:
    from dataclasses import replace

    for bad in (
        replace(EXAMPLE, sender="not an authority"),
        replace(EXAMPLE, id="short"),
        replace(EXAMPLE, case="\n"),
        replace(EXAMPLE, created=-5),
    ):
        with pytest.raises(EnvelopeMalformed) as caught:
            bad.encode()
        assert caught.value.code == "envelope.malformed"


@given(st.binary(max_size=300))
def test_decode_raises_only_rogatory_errors(data: bytes) -> None:
    try:
        EnvelopeHeader.decode(data)
    except RogatoryError as exc:
        assert exc.code.startswith("envelope.")


@given(st.dictionaries(st.sampled_from(HEADER_FIELDS), st.none() | st.integers(-2, 2)
                       | st.text(max_size=3) | st.lists(st.booleans(), max_size=2)))
def test_decode_of_arbitrary_objects_raises_only_envelope_errors(obj: dict[str, Any]) -> None:
    merged = {**example_json(), **obj}
    try:
        header = EnvelopeHeader.decode(canonical_json(merged))
    except EnvelopeError as exc:
        assert exc.code.startswith("envelope.")
    else:
        assert header.to_json() == merged


def test_authority_ids() -> None:
    assert is_authority_id("XA:MOJ")
    assert is_authority_id("FR:MJ-BEPI_2")
    assert is_authority_id("DE:" + "A" * 32)
    for bad in ("XA:", "xa:MOJ", "XA:moj", "XA-MOJ", "XA:" + "A" * 33, "XA:_A", 7, None):
        assert not is_authority_id(bad)


def test_kinds_and_priorities() -> None:
    assert Kind.from_name("spontaneous-information") is Kind.SPONTANEOUS_INFORMATION
    assert len({kind.value for kind in Kind}) == len(Kind) == 13
    with pytest.raises(EnvelopeKindUnknown) as kind_error:
        Kind.from_name("Request")
    assert kind_error.value.code == "envelope.kind_unknown"
    assert Priority.from_name("urgent") is Priority.URGENT
    with pytest.raises(EnvelopeMalformed) as priority_error:
        Priority.from_name("URGENT")
    assert priority_error.value.code == "envelope.malformed"


def _read_back(header: EnvelopeHeader) -> bytes:
    """What encode did before: encode, then refuse what decode refuses."""
    data = canonical_json(header.to_json())
    EnvelopeHeader.decode(data)
    return data


def _outcome(call: Any, header: EnvelopeHeader) -> tuple[str, str, bytes]:
    try:
        return ("ok", "", call(header))
    except RogatoryError as exc:
        return (type(exc).__name__, exc.message, b"")


@given(headers, st.dictionaries(
    st.sampled_from(["id", "sender", "recipient", "sender_key", "recipient_prekey", "created",
                     "expires", "in_reply_to", "case"]),
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=140)
    | message_ids | authority_ids | key_ids | st.text(min_size=3900, max_size=4200), max_size=3))
def test_encode_refuses_exactly_what_reading_back_refuses(header: EnvelopeHeader,
                                                           changes: dict[str, Any]) -> None:
    from dataclasses import replace

    changed = replace(header, **changes)
    assert _outcome(EnvelopeHeader.encode, changed) == _outcome(_read_back, changed)

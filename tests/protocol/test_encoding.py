"""Canonical JSON, base64url and length-prefixed framing: one value, one spelling."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    Reader,
    b64decode,
    b64encode,
    canonical_json,
    frame,
    pae,
    parse_canonical_json,
    require_fields,
)
from protocol.errors import EncodingError, EnvelopeMalformed, RogatoryError

MALFORMED = "encoding.malformed"
NON_CANONICAL = "encoding.non_canonical"

safe_ints = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
ascii_keys = st.text(alphabet=st.characters(max_codepoint=127), max_size=8)
scalars = st.none() | st.booleans() | safe_ints | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(ascii_keys, children, max_size=4),
    max_leaves=20,
)


def _code(data: bytes) -> str:
    with pytest.raises(EncodingError) as caught:
        parse_canonical_json(data)
    return caught.value.code


# --- canonical JSON ----------------------------------------------------------------------------


@given(json_values)
def test_canonical_json_round_trips(value: Any) -> None:
    data = canonical_json(value)
    assert parse_canonical_json(data) == value
    assert canonical_json(parse_canonical_json(data)) == data


@given(json_values)
def test_canonical_json_matches_the_written_rules(value: Any) -> None:
    """Sorted keys, no whitespace between tokens, UTF-8 without \\u escapes for non-ASCII."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode("utf-8")


@given(json_values)
def test_every_other_spelling_of_a_value_is_non_canonical(value: Any) -> None:
    canonical = canonical_json(value)
    spellings = [
        json.dumps(value, indent=1).encode(),
        json.dumps(value).encode(),
        json.dumps(value, sort_keys=True, ensure_ascii=True).encode(),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
        b" " + canonical,
        canonical + b"\n",
    ]
    for spelling in spellings:
        if spelling != canonical:
            assert _code(spelling) == NON_CANONICAL, spelling


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # unsorted keys
        b'{"a": 1}',  # space after colon
        b'{"a":1 }',
        b"[1, 2]",
        b'"\\u0041"',  # escape where a plain character is canonical
        b'"\\/"',  # escaped solidus
        b'"\\u00e9"',  # non-ASCII must be raw UTF-8, not escaped
        b'"\\u001F"',  # control escapes use lower-case hex
        b"-0",
        b"{} ",  # trailing space
    ],
)
def test_non_canonical_spellings_refused(data: bytes) -> None:
    assert _code(data) == NON_CANONICAL


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, False, None]}, b'{"a":[true,false,null],"b":1}'),
        ("é\u2028😀", '"é\u2028😀"'.encode()),
        ("\x00\x1f\"\\\b\f\n\r\t", b'"\\u0000\\u001f\\"\\\\\\b\\f\\n\\r\\t"'),
        ({"": 0, "A": 1, "a": 2, "_": 3}, b'{"":0,"A":1,"_":3,"a":2}'),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        ((1, 2), b"[1,2]"),
    ],
)
def test_canonical_json_known_answers(value: Any, expected: bytes) -> None:
    assert canonical_json(value) == expected
    if not isinstance(value, tuple):
        assert parse_canonical_json(expected) == value


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":1}',
        b'{"a":1,"a":2}',
        b'[{"x":{"k":true,"k":false}}]',
    ],
)
def test_duplicate_keys_refused(data: bytes) -> None:
    with pytest.raises(EncodingError, match="duplicate") as caught:
        parse_canonical_json(data)
    assert caught.value.code == MALFORMED


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_refused_when_parsing(number: float) -> None:
    assert _code(json.dumps({"n": number}).encode()) == MALFORMED


@pytest.mark.parametrize(
    "data", [b"1.0", b"1e3", b"1E3", b"-0.0", b"NaN", b"Infinity", b"-Infinity"]
)
def test_non_integer_numbers_refused(data: bytes) -> None:
    assert _code(data) == MALFORMED


@pytest.mark.parametrize("value", [1.5, float("nan"), {"f": 0.0}, [float("inf")]])
def test_floats_refused_when_encoding(value: Any) -> None:
    with pytest.raises(EncodingError) as caught:
        canonical_json(value)
    assert caught.value.code == MALFORMED


@given(st.integers(min_value=MAX_SAFE_INTEGER + 1, max_value=2**200) | st.integers(
    max_value=-MAX_SAFE_INTEGER - 1, min_value=-(2**200)))
def test_integers_outside_the_safe_range_refused(number: int) -> None:
    with pytest.raises(EncodingError) as caught:
        canonical_json([number])
    assert caught.value.code == MALFORMED
    assert _code(f"[{number}]".encode()) == MALFORMED


def test_integer_range_is_inclusive() -> None:
    for number in (MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER):
        assert parse_canonical_json(str(number).encode()) == number


@pytest.mark.parametrize(
    "value",
    [
        {1: "non-string key"},
        {"clé": "non-ASCII key"},
        b"bytes",
        {"set": {1, 2}},
        object(),
        "\ud800",  # lone surrogate: not encodable as UTF-8
    ],
)
def test_unencodable_values_refused(value: Any) -> None:
    with pytest.raises(EncodingError) as caught:
        canonical_json(value)
    assert caught.value.code == MALFORMED


def test_nesting_limit() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert parse_canonical_json(canonical_json(deep)) == deep
    with pytest.raises(EncodingError) as caught:
        canonical_json([deep])
    assert caught.value.code == MALFORMED
    assert _code(b"[" * (MAX_DEPTH + 1) + b"0" + b"]" * (MAX_DEPTH + 1)) == MALFORMED
    assert _code(b"[" * 100_000 + b"]" * 100_000) == MALFORMED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"\xff",
        b'"\xc3"',  # truncated UTF-8
        b"\xef\xbb\xbf{}",  # byte order mark
        b'{"a":1}{"b":2}',
        b"'a'",
        b'"tab\tinside"',  # raw control character in a string
        b'{"\xc3\xa9":1}',  # non-ASCII key
        b'"\\ud800"',  # escaped lone surrogate
    ],
)
def test_malformed_json_refused(data: bytes) -> None:
    assert _code(data) == MALFORMED


@given(st.binary(max_size=64))
def test_parse_canonical_json_raises_only_encoding_errors(data: bytes) -> None:
    try:
        value = parse_canonical_json(data)
    except EncodingError as exc:
        assert exc.code in (MALFORMED, NON_CANONICAL)
    else:
        assert canonical_json(value) == data


# --- base64url -----------------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_b64_round_trip(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(text) == (len(data) * 4 + 2) // 3
    assert b64decode(text) == data


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"", ""), (b"\xfb\xff", "-_8"), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v")],
)
def test_b64_known_answers(data: bytes, text: str) -> None:
    assert b64encode(data) == text
    assert b64decode(text) == data


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Zg==", MALFORMED),  # padding
        ("Zm8=", MALFORMED),
        ("Z", MALFORMED),  # impossible length
        ("Zh", NON_CANONICAL),  # non-zero spare bits
        ("Zm9", NON_CANONICAL),
        ("+_8", NON_CANONICAL),  # standard alphabet
        ("-/8", NON_CANONICAL),
        ("Zm 9v", NON_CANONICAL),  # whitespace
        ("Zm9v\n", NON_CANONICAL),
        ("Zm9v Zg", MALFORMED),  # ... that also breaks the length
        ("Zm9$v", NON_CANONICAL),  # a character outside any alphabet
        ("Zé", MALFORMED),
    ],
)
def test_b64_strictness(text: str, code: str) -> None:
    with pytest.raises(EncodingError) as caught:
        b64decode(text)
    assert caught.value.code == code


def test_b64decode_refuses_non_strings() -> None:
    with pytest.raises(EncodingError) as caught:
        b64decode(b"Zm9v")  # type: ignore[arg-type]
    assert caught.value.code == MALFORMED


@given(st.text(max_size=12))
def test_b64decode_accepts_only_its_own_output(text: str) -> None:
    try:
        data = b64decode(text)
    except EncodingError as exc:
        assert exc.code in (MALFORMED, NON_CANONICAL)
    else:
        assert b64encode(data) == text


# --- framing, Reader, PAE ------------------------------------------------------------------------


def test_frame_layout() -> None:
    assert frame() == b""
    assert frame(b"") == b"\x00\x00\x00\x00"
    assert frame(b"ab", b"c") == b"\x00\x00\x00\x02ab\x00\x00\x00\x01c"
    assert frame(b"x" * 256)[:4] == b"\x00\x00\x01\x00"


@given(st.lists(st.binary(max_size=40), max_size=6))
def test_frame_reader_round_trip(parts: list[bytes]) -> None:
    reader = Reader(frame(*parts))
    assert [reader.framed() for _ in parts] == parts
    reader.end()
    assert reader.position == sum(4 + len(part) for part in parts)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=6), st.data())
def test_every_truncation_is_refused(parts: list[bytes], data: st.DataObject) -> None:
    encoded = frame(*parts)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    reader = Reader(encoded[:cut])
    with pytest.raises(EncodingError) as caught:
        for _ in parts:
            reader.framed()
    assert caught.value.code == MALFORMED


@given(st.lists(st.binary(max_size=40), max_size=4), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(parts: list[bytes], extra: bytes) -> None:
    reader = Reader(frame(*parts) + extra)
    for _ in parts:
        reader.framed()
    with pytest.raises(EncodingError, match="trailing") as caught:
        reader.end()
    assert caught.value.code == MALFORMED


def test_reader_raises_the_callers_error_class() -> None:
    reader = Reader(b"\x00\x00\x00\x05abc", EnvelopeMalformed)
    with pytest.raises(EnvelopeMalformed) as caught:
        reader.framed()
    assert caught.value.code == "envelope.malformed"


def test_reader_fixed_u32_and_limits() -> None:
    reader = Reader(b"RG" + b"\x01\x02\x03\x04" + frame(b"abcdef"))
    assert reader.fixed(2) == b"RG"
    assert reader.u32() == 0x01020304
    with pytest.raises(EncodingError, match="limit") as caught:
        reader.framed(limit=5)
    assert caught.value.code == MALFORMED
    assert Reader(frame(b"abcdef")).framed(limit=6) == b"abcdef"
    with pytest.raises(EncodingError):
        Reader(b"\xff\xff\xff\xff").framed()


def test_pae_known_answers() -> None:
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("rogatory/v1/receipt", b"{}") == b"DSSEv1 19 rogatory/v1/receipt 2 {}"
    assert pae("é", b"\x00" * 10) == b"DSSEv1 2 \xc3\xa9 10 " + b"\x00" * 10


@settings(max_examples=200)
@given(st.text(max_size=10), st.binary(max_size=10), st.text(max_size=10), st.binary(max_size=10))
def test_pae_is_injective(t1: str, b1: bytes, t2: str, b2: bytes) -> None:
    if (t1, b1) != (t2, b2):
        assert pae(t1, b1) != pae(t2, b2)


# --- require_fields ------------------------------------------------------------------------------


def test_require_fields() -> None:
    require_fields({"a": 1, "b": 2}, ("b", "a"))
    with pytest.raises(EncodingError, match=r"missing \['b'\]"):
        require_fields({"a": 1}, ("a", "b"))
    with pytest.raises(EnvelopeMalformed, match=r"unexpected \['c'\]") as caught:
        require_fields({"a": 1, "b": 2, "c": 3}, ("a", "b"), EnvelopeMalformed)
    assert caught.value.code == "envelope.malformed"


def test_errors_are_rogatory_errors() -> None:
    with pytest.raises(RogatoryError) as caught:
        parse_canonical_json(b"{")
    assert str(caught.value).startswith("encoding.malformed: ")

"""The fast paths of canonical JSON answer exactly as the plain implementation did.

``canonical_json`` and ``parse_canonical_json`` check exact types first and parse without a
per-object duplicate hook, falling back to the strict parse on anything unusual. Both must give
the same value, or the same error class, code and message, as the straightforward version
below (the code before the fast paths, kept verbatim as the oracle), for every input: the error
a peer gets back in a signed refusal is part of the protocol.
"""

from __future__ import annotations

import json
import struct
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    Reader,
    canonical_json,
    frame,
    parse_canonical_json,
)
from protocol.errors import EncodingError, NonCanonicalEncoding, ReceiptMalformed, RogatoryError

# --- the oracle: the implementation before the fast paths --------------------------------------


def _reference_check(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise EncodingError(f"integer {value} outside the interoperable range ±(2^53-1)")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise EncodingError(f"object key {key!r} is not an ASCII string")
            _reference_check(item, depth + 1)
        return
    if isinstance(value, Sequence):
        for item in value:
            _reference_check(item, depth + 1)
        return
    raise EncodingError(f"type {type(value).__name__} cannot be encoded")


def reference_canonical_json(value: Any) -> bytes:
    _reference_check(value)
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise EncodingError(str(exc)) from exc


def _reference_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise EncodingError(f"duplicate object key {key!r}")
        result[key] = item
    return result


def _reference_refuse_float(text: str) -> Any:
    raise EncodingError(f"number {text} is not an integer")


def reference_parse_canonical_json(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_reference_no_duplicates,
            parse_float=_reference_refuse_float,
            parse_constant=_reference_refuse_float,
        )
    except EncodingError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EncodingError(f"not JSON: {exc}") from exc
    if reference_canonical_json(value) != data:
        raise NonCanonicalEncoding("re-encoding the value gives different bytes")
    return value


def _outcome(func: Any, arg: Any) -> tuple[str, Any]:
    try:
        result = func(arg)
    except EncodingError as exc:
        return "error", (type(exc), exc.code, exc.detail)
    return "value", (type(result), result)


def assert_same_parse(data: bytes) -> tuple[str, Any]:
    expected = _outcome(reference_parse_canonical_json, data)
    assert _outcome(parse_canonical_json, data) == expected, data
    return expected


def assert_same_encoding(value: Any) -> tuple[str, Any]:
    expected = _outcome(reference_canonical_json, value)
    assert _outcome(canonical_json, value) == expected, value
    return expected


# --- pinned errors ------------------------------------------------------------------------------


def _nested(levels: int, inner: bytes = b"0") -> bytes:
    return b"[" * levels + inner + b"]" * levels


PINNED: list[tuple[bytes, type[EncodingError], str]] = [
    (b'{"a":1,"a":1}', EncodingError, "duplicate object key 'a'"),
    (b'{"a":1,"a":2}', EncodingError, "duplicate object key 'a'"),
    (b'{"a":1,"\\u0061":2}', EncodingError, "duplicate object key 'a'"),
    (b'[{"x":{"k":true,"k":false}}]', EncodingError, "duplicate object key 'k'"),
    (b'{"a":{"k":1,"k":2},"b":1.5}', EncodingError, "duplicate object key 'k'"),
    (b'{"a":1.5,"b":{"k":1,"k":2}}', EncodingError, "number 1.5 is not an integer"),
    (b'{"b":{"k":1,"k":2},"a":1}', EncodingError, "duplicate object key 'k'"),
    (b'{"a": {"k":1,"k":2}}', EncodingError, "duplicate object key 'k'"),
    (b'{"k":1,"k":2} ', EncodingError, "duplicate object key 'k'"),
    (b'{"k":1,"k":2', EncodingError,
     "not JSON: Expecting ',' delimiter: line 1 column 13 (char 12)"),
    (b'{"a":1,"a":9007199254740992}', EncodingError, "duplicate object key 'a'"),
    (b"1.0", EncodingError, "number 1.0 is not an integer"),
    (b"1e3", EncodingError, "number 1e3 is not an integer"),
    (b'{"n":-0.0}', EncodingError, "number -0.0 is not an integer"),
    (b"NaN", EncodingError, "number NaN is not an integer"),
    (b"[Infinity]", EncodingError, "number Infinity is not an integer"),
    (b"-Infinity", EncodingError, "number -Infinity is not an integer"),
    (b'{"a": 1}', NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b"[1, 2]", NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b" {}", NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b"{}\n", NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b'{"b":1,"a":2}', NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b'{"a":{"d":1,"c":2}}', NonCanonicalEncoding,
     "re-encoding the value gives different bytes"),
    (b'"\\u00e9"', NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b"-0", NonCanonicalEncoding, "re-encoding the value gives different bytes"),
    (b"9007199254740992", EncodingError,
     "integer 9007199254740992 outside the interoperable range ±(2^53-1)"),
    (b'{"a":[-9007199254740992]}', EncodingError,
     "integer -9007199254740992 outside the interoperable range ±(2^53-1)"),
    (b'{"b":1,"a":9007199254740992}', EncodingError,
     "integer 9007199254740992 outside the interoperable range ±(2^53-1)"),
    (_nested(MAX_DEPTH + 1), EncodingError, f"nesting deeper than {MAX_DEPTH}"),
    (_nested(MAX_DEPTH + 2, b""), EncodingError, f"nesting deeper than {MAX_DEPTH}"),
    (b'{"\xc3\xa9":1}', EncodingError, "object key 'é' is not an ASCII string"),
    (b'"\\ud800"', EncodingError,
     "'utf-8' codec can't encode character '\\ud800' in position 1: surrogates not allowed"),
    (b"\xef\xbb\xbf{}", EncodingError,
     "not JSON: Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"),
    (b'{"a":1}{"b":2}', EncodingError, "not JSON: Extra data: line 1 column 8 (char 7)"),
    (b"", EncodingError, "not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"\xff", EncodingError,
     "not JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
]


@pytest.mark.parametrize(("data", "error", "detail"), PINNED)
def test_pinned_parse_errors(data: bytes, error: type[EncodingError], detail: str) -> None:
    with pytest.raises(EncodingError) as caught:
        parse_canonical_json(data)
    assert type(caught.value) is error
    assert caught.value.detail == detail
    assert_same_parse(data)


def test_deep_nesting_beyond_the_json_parser() -> None:
    data = _nested(100_000, b"")
    outcome = assert_same_parse(data)
    assert outcome[0] == "error"
    assert outcome[1][1] == "encoding.malformed"
    assert outcome[1][2].startswith("not JSON: maximum recursion depth exceeded")


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2])
def test_depth_boundary(levels: int) -> None:
    for inner in (b"0", b"", b"{}", b'{"a":0}', b'"s"', b"null", b"9007199254740992"):
        assert_same_parse(_nested(levels, inner))
        assert_same_parse(b'{"a":' * levels + inner + b"}" * levels)
    deep: Any = 0
    for _ in range(levels):
        deep = [deep]
    assert_same_encoding(deep)
    deep = {}
    for _ in range(levels):
        deep = {"k": deep}
    assert_same_encoding(deep)


class _Small(IntEnum):
    ONE = 1


@pytest.mark.parametrize(
    "value",
    [
        {1: "non-string key"},
        {"clé": "non-ASCII key"},
        {"a": 1, 2: "second key"},
        {"a": {"b": [1, 2**60]}},
        b"bytes",
        [b"bytes"],
        {"set": {1, 2}},
        object(),
        [1, object()],
        "\ud800",
        {"a": "\ud800"},
        1.5,
        [0.0],
        {"f": float("nan")},
        (1, (2, [3])),
        OrderedDict([("b", 1), ("a", [True])]),
        MappingProxyType({"a": 1}),
        [_Small.ONE, True, False, None],
        {"k": _Small.ONE},
        [2**53, 2**53 - 1, -(2**53)],
    ],
)
def test_unusual_values_encode_as_before(value: Any) -> None:
    assert_same_encoding(value)


# --- differential properties --------------------------------------------------------------------

ints = st.integers(min_value=-(2**54), max_value=2**54)
scalars = st.none() | st.booleans() | ints | st.text(max_size=8) | st.floats(width=16)
keys = st.text(max_size=4) | st.sampled_from(["a", "b", "é"])
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(keys, children, max_size=4)
    | st.tuples(children, children),
    max_leaves=16,
)


@settings(max_examples=400)
@given(values)
def test_encoding_matches_the_reference(value: Any) -> None:
    assert_same_encoding(value)


def _spellings(value: Any) -> list[bytes]:
    try:
        canonical = reference_canonical_json(value)
    except EncodingError:
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    text = canonical.decode("utf-8", "surrogatepass")
    duplicated = text.replace("{", '{"dup":0,"dup":1,', 1) if "{" in text else text
    return [
        canonical,
        canonical + b" ",
        b" " + canonical,
        json.dumps(value).encode("utf-8", "surrogatepass"),
        json.dumps(value, ensure_ascii=True).encode(),
        duplicated.encode("utf-8", "surrogatepass"),
        text.replace("}", ',"z":1.5}', 1).encode("utf-8", "surrogatepass"),
        canonical[: len(canonical) // 2],
    ]


@settings(max_examples=400)
@given(values)
def test_parsing_matches_the_reference(value: Any) -> None:
    for data in _spellings(value):
        assert_same_parse(data)


@settings(max_examples=400)
@given(st.binary(max_size=48) | st.text(alphabet='{}[]":,0123456789-.eE ntrufals\\a', max_size=40)
       .map(str.encode))
def test_arbitrary_bytes_parse_as_before(data: bytes) -> None:
    assert_same_parse(data)


# --- Reader -------------------------------------------------------------------------------------


class ReferenceReader:
    """``Reader`` before it sliced bytes directly."""

    def __init__(self, data: Any, error: type[RogatoryError] = EncodingError) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._error = error

    def _take(self, count: int) -> bytes:
        if count < 0 or self._pos + count > len(self._data):
            raise self._error(f"truncated at byte {self._pos}: {count} more bytes expected")
        chunk = bytes(self._data[self._pos : self._pos + count])
        self._pos += count
        return chunk

    def fixed(self, count: int) -> bytes:
        return self._take(count)

    def u32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def framed(self, limit: int | None = None) -> bytes:
        size = self.u32()
        if limit is not None and size > limit:
            raise self._error(f"field of {size} bytes exceeds the limit of {limit}")
        return self._take(size)

    def end(self) -> None:
        if self._pos != len(self._data):
            raise self._error(f"{len(self._data) - self._pos} unexpected trailing bytes")

    def remaining(self) -> int:
        return len(self._data) - self._pos


class _Bytes(bytes):
    pass


def _script(reader_type: Any, data: Any, steps: list[tuple[str, int]]) -> list[Any]:
    log: list[Any] = []
    try:
        reader = reader_type(data, ReceiptMalformed)
    except TypeError as exc:
        return [("init", type(exc))]
    for step, arg in steps:
        try:
            if step == "fixed":
                result: Any = reader.fixed(arg)
            elif step == "framed":
                result = reader.framed(arg if arg >= 0 else None)
            elif step == "u32":
                result = reader.u32()
            elif step == "end":
                result = reader.end()
            else:
                result = reader.remaining()
        except RogatoryError as exc:
            log.append(("error", type(exc), exc.detail))
            continue
        except struct.error as exc:  # a buffer of 2-byte items: 4 items are 8 bytes
            log.append(("struct.error", str(exc)))
            continue
        log.append(("ok", type(result), result, reader.remaining()))
    return log


STEPS = st.lists(st.tuples(st.sampled_from(["fixed", "framed", "u32", "end", "remaining"]),
                           st.integers(min_value=-2, max_value=12)), max_size=8)


def _buffers(raw: bytes) -> list[Any]:
    return [raw, bytearray(raw), memoryview(raw), _Bytes(raw), array("B", raw),
            array("H", raw[: len(raw) // 2 * 2])]


@settings(max_examples=300)
@given(st.binary(max_size=24) | st.lists(st.binary(max_size=6), max_size=3).map(
    lambda parts: frame(*parts)), STEPS)
def test_reader_reads_as_before(raw: bytes, steps: list[tuple[str, int]]) -> None:
    for data in _buffers(raw):
        assert _script(Reader, data, steps) == _script(ReferenceReader, data, steps), data


@pytest.mark.parametrize("data", ["text", 42, None])
def test_reader_refuses_non_buffers_as_before(data: Any) -> None:
    assert _script(Reader, data, []) == _script(ReferenceReader, data, []) == [
        ("init", TypeError)]

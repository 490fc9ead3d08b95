"""Canonical encodings: the exact bytes that are hashed and signed.

Rogatory signs bytes, never objects. Structured values travel as *canonical JSON* (a strict
subset of RFC 8785: objects, arrays, strings, integers, booleans; keys sorted, no whitespace,
no floats), and a decoder re-encodes what it parsed and refuses anything that is not
byte-identical, so every value has exactly one encoding and a signature over the bytes is a
signature over the value. Binary framing uses big-endian length prefixes read by ``Reader``,
which refuses trailing bytes. Signature inputs use DSSE's pre-authentication encoding with one
type string per structure and version, so no signature can be replayed as another structure's.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from protocol.errors import EncodingError, NonCanonicalEncoding, RogatoryError

__all__ = [
    "JSONValue",
    "Reader",
    "b64decode",
    "b64encode",
    "canonical_json",
    "frame",
    "pae",
    "parse_canonical_json",
    "require_fields",
]

JSONValue: TypeAlias = (
    "dict[str, JSONValue] | list[JSONValue] | str | int | bool | None"
)

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 32


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse what canonical JSON cannot carry, reporting the first offence in document order.

    Decoded JSON holds only exact ``dict``, ``list``, ``str``, ``int``, ``bool`` and ``None``,
    so those are recognised by exact type, and scalar members are checked in the loop instead
    of by a call each; anything else (tuples, other mappings, subclasses) takes the general
    ``Mapping``/``Sequence`` path. Inline checks stop one level short of ``MAX_DEPTH`` so the
    depth error comes from the same place, in the same order, as before.
    """
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is dict and depth < MAX_DEPTH:
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise EncodingError(f"object key {key!r} is not an ASCII string")
            kind = type(item)
            if kind is str or item is None or kind is bool:
                continue
            if kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            _check_value(item, depth + 1)
        return
    if kind is list and depth < MAX_DEPTH:
        for item in value:
            kind = type(item)
            if kind is str or item is None or kind is bool:
                continue
            if kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            _check_value(item, depth + 1)
        return
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
            _check_value(item, depth + 1)
        return
    if isinstance(value, Sequence):
        for item in value:
            _check_value(item, depth + 1)
        return
    raise EncodingError(f"type {type(value).__name__} cannot be encoded")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Encode a value as canonical JSON bytes (UTF-8, sorted keys, no insignificant space)."""
    _check_value(value)
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise EncodingError(str(exc)) from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise EncodingError(f"duplicate object key {key!r}")
        result[key] = item
    return result


def _refuse_float(text: str) -> Any:
    raise EncodingError(f"number {text} is not an integer")


_PLAIN = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_float)


def parse_canonical_json(data: bytes) -> Any:
    """Decode canonical JSON, refusing duplicates, floats and any non-canonical spelling.

    Canonical JSON never repeats a key, so input whose plain parse re-encodes to the same
    bytes holds no duplicate and needs no per-object hook. Anything else, error or mismatch,
    goes through the strict parse, which raises exactly the error it always has (a duplicate
    key or float before the mismatch, in document order).
    """
    try:
        text = data.decode("utf-8")
        value, end = _PLAIN.raw_decode(text)
        if end == len(text) and canonical_json(value) == data:
            return value
    except (ValueError, RecursionError, RogatoryError):
        pass
    return _parse_strict(data)


def _parse_strict(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_refuse_float,
            parse_constant=_refuse_float,
        )
    except EncodingError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EncodingError(f"not JSON: {exc}") from exc
    if canonical_json(value) != data:
        raise NonCanonicalEncoding("re-encoding the value gives different bytes")
    return value


def b64encode(data: bytes) -> str:
    """Base64url without padding (RFC 4648 §5), the one spelling used on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Decode base64url without padding, refusing padding, other alphabets and spare bits."""
    if not isinstance(text, str) or not text.isascii() or "=" in text:
        raise EncodingError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EncodingError(f"not base64url: {exc}") from exc
    if b64encode(data) != text:
        raise NonCanonicalEncoding("base64url with non-zero spare bits or foreign characters")
    return data


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what every Ed25519 signature in Rogatory covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def frame(*parts: bytes) -> bytes:
    """Concatenate byte strings, each preceded by its length as a 32-bit big-endian integer."""
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


class Reader:
    """Reads a binary structure front to back; every short read is a malformed-input error."""

    def __init__(self, data: bytes, error: type[RogatoryError] = EncodingError) -> None:
        # A bytes slice is one copy; a memoryview slice is an object and then a copy. Other
        # buffers keep the memoryview, whose slices bytes() turns into bytes as before.
        self._data: bytes | memoryview = data if type(data) is bytes else memoryview(data)
        self._size = len(self._data)
        self._pos = 0
        self._error = error

    def _take(self, count: int) -> bytes:
        pos = self._pos
        if count < 0 or pos + count > self._size:
            raise self._error(f"truncated at byte {pos}: {count} more bytes expected")
        chunk = self._data[pos : pos + count]
        self._pos = pos + count
        return chunk if type(chunk) is bytes else bytes(chunk)

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
        if self._pos != self._size:
            raise self._error(f"{self._size - self._pos} unexpected trailing bytes")

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._size - self._pos


def require_fields(
    obj: Mapping[str, Any], names: Sequence[str], error: type[RogatoryError] = EncodingError
) -> None:
    """Require exactly these keys: unknown or missing fields are refused, never ignored."""
    present = set(obj)
    wanted = set(names)
    if present != wanted:
        missing = sorted(wanted - present)
        extra = sorted(present - wanted)
        raise error(f"fields missing {missing} / unexpected {extra}")

"""The faster note and tlog-proof checks refuse and accept exactly what the plain ones did.

``check_key_name`` tests a name with one regular expression, ``std_b64decode`` calls binascii
directly, and ``TlogProof`` remembers the tree size of the last checkpoints it parsed. Each is
compared here with the straightforward code it replaced, kept as the oracle: same value, or the
same error class, code and message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import checkpoint as checkpoint_module
from protocol.checkpoint import (
    Checkpoint,
    TlogProof,
    cosign,
    parse_checkpoint_text,
    parse_tlog_proof,
    sign_checkpoint,
    with_signatures,
)
from protocol.errors import LogMalformed, RogatoryError
from protocol.note import check_key_name, parse_note, std_b64decode, std_b64encode

NOW = 1_767_225_600
SEED = hashlib.sha256(b"rogatory/tests/tlog-fast-paths").digest()
ORIGIN = "rogatory/log/XB:MOJ"
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def _reference_name_refused(name: str) -> bool:
    return "+" in name or any(c.isspace() for c in name) or bool(_CONTROL.search(name))


def _reference_std_b64decode(text: Any, what: str = "value") -> bytes:
    if not isinstance(text, str) or not text.isascii() or _BASE64.fullmatch(text) is None:
        raise LogMalformed(f"{what} is not standard base64")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LogMalformed(f"{what} is not standard base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise LogMalformed(f"{what} is not canonical base64 (padding or spare bits)")
    return data


def _reference_check_size(index: int, note: Any) -> None:
    size = parse_checkpoint_text(parse_note(note).text).size
    if index >= size:
        raise LogMalformed(f"index {index} is not in a tree of size {size}")


def _outcome(func: Any, *args: Any) -> tuple[str, Any]:
    try:
        result = func(*args)
    except RogatoryError as exc:
        return "error", (type(exc), exc.code, exc.detail)
    return "value", result


def _note(size: int = 10, extensions: tuple[str, ...] = (), witnesses: int = 0) -> bytes:
    checkpoint = Checkpoint(ORIGIN, size, hashlib.sha256(b"root").digest(), extensions)
    note = sign_checkpoint(checkpoint, ORIGIN, SEED)
    cosignatures = [cosign(checkpoint, f"witness/{i}", SEED, NOW) for i in range(witnesses)]
    return with_signatures(note, cosignatures) if cosignatures else note


HASHES = tuple(hashlib.sha256(bytes([i])).digest() for i in range(4))


# --- key names --------------------------------------------------------------------------------


def test_key_name_check_matches_the_reference_on_every_code_point() -> None:
    for point in range(0x110000):
        char = chr(point)
        for name in (char, f"a{char}b"):
            refused = _outcome(check_key_name, name)[0] == "error"
            if 0xD800 <= point <= 0xDFFF:
                assert refused  # not encodable as UTF-8, refused either way
            else:
                assert refused == _reference_name_refused(name), hex(point)


@pytest.mark.parametrize("name", ["a b", "a+b", "a\u00a0b", "a\u2028b", "a\nb", "a\x1fb", "\ud800"])
def test_refused_key_names_keep_their_messages(name: str) -> None:
    kind, (error, code, detail) = _outcome(check_key_name, name)
    assert (kind, error, code) == ("error", LogMalformed, "log.malformed")
    if name == "\ud800":
        assert detail == f"key name {name!r} is not valid Unicode"
    else:
        assert detail == f"key name {name!r} contains a space, '+' or a control character"


@pytest.mark.parametrize("name", ["a\x7fb", "rogatory/log/XB:MOJ", "witness\u00e9", "\u200b"])
def test_accepted_key_names_stay_accepted(name: str) -> None:
    assert check_key_name(name) == name


# --- standard base64 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "QQ==", "QUI=", "QUJD", "QR==", "QUJ=", "QQ=", "QQ", "Q===", "QUJD=", "QUJDQQ==QQ==",
     "=QQ=", "QQ==\n", " QQ==", "QQ-_", "QUJ\u00e9", "a+/=", "++++", "////", "A", "AAAA" * 50,
     std_b64encode(HASHES[0]), std_b64encode(HASHES[0])[:-1] + "A"],
)
def test_std_b64decode_matches_the_reference(text: str) -> None:
    assert _outcome(std_b64decode, text, "a hash") == _outcome(
        _reference_std_b64decode, text, "a hash")


@pytest.mark.parametrize("value", [b"QQ==", None, 42, bytearray(b"QQ==")])
def test_std_b64decode_refuses_non_strings_as_before(value: Any) -> None:
    assert _outcome(std_b64decode, value) == _outcome(_reference_std_b64decode, value)


@settings(max_examples=500)
@given(st.text(alphabet="ABCDQRSTYZabcdgw0189+/=-_ \n", max_size=14)
       | st.binary(max_size=40).map(std_b64encode))
def test_std_b64decode_matches_the_reference_property(text: str) -> None:
    assert _outcome(std_b64decode, text) == _outcome(_reference_std_b64decode, text)


# --- TlogProof's remembered tree size ---------------------------------------------------------


def _bad_notes() -> list[Any]:
    good = _note()
    text, _, signatures = good.rpartition(b"\n\n")
    return [
        b"",
        b"not a note",
        good[:-1],
        good.replace(b"\n10\n", b"\n010\n"),
        good.replace(b"\n10\n", b"\nten\n"),
        text + b"\n\n" + signatures.replace("\u2014".encode(), b"-"),
        "a note as text",
        bytearray(good),
        memoryview(good),
        None,
    ]


@pytest.mark.parametrize("note", _bad_notes())
def test_an_invalid_checkpoint_fails_the_same_way_every_time(note: Any) -> None:
    expected = _outcome(_reference_check_size, 0, note)
    assert expected[0] == "error"
    for _ in range(3):
        assert _outcome(TlogProof, 0, HASHES, note) == expected


@pytest.mark.parametrize("size", [1, 10, 2**40])
def test_the_index_is_checked_against_the_remembered_size(size: int) -> None:
    note = _note(size)
    for _ in range(2):
        for index in (0, size - 1, size, size + 1, 2**63 - 1):
            expected = _outcome(_reference_check_size, index, note)
            got = _outcome(TlogProof, index, HASHES, note)
            assert got[0] == expected[0], index
            if expected[0] == "error":
                assert got == expected


def test_a_fresh_copy_of_the_same_bytes_gives_the_same_answer() -> None:
    note = _note(7, witnesses=2)
    first = TlogProof(3, HASHES, note)
    copy = bytes(bytearray(note))
    assert copy is not note
    assert TlogProof(3, HASHES, copy) == first
    with pytest.raises(LogMalformed, match="index 7 is not in a tree of size 7"):
        TlogProof(7, HASHES, copy)


class _Bytes(bytes):
    pass


def test_large_notes_and_bytes_subclasses_are_parsed_each_time() -> None:
    big = _note(5, extensions=("x" * (checkpoint_module._CACHED_NOTE_BYTES + 1),))
    assert len(big) > checkpoint_module._CACHED_NOTE_BYTES
    before = checkpoint_module._remembered_tree_size.cache_info()
    assert TlogProof(4, HASHES, big).checkpoint == big
    assert TlogProof(4, HASHES, _Bytes(_note(5))).index == 4
    assert checkpoint_module._remembered_tree_size.cache_info().misses == before.misses
    with pytest.raises(LogMalformed, match="not in a tree of size 5"):
        TlogProof(5, HASHES, big)


def test_parse_tlog_proof_round_trips_with_a_shared_checkpoint() -> None:
    note = _note(100, witnesses=3)
    for index in range(0, 100, 9):
        proof = TlogProof(index, HASHES, note)
        data = proof.encode()
        assert parse_tlog_proof(data) == proof
        assert parse_tlog_proof(data).encode() == data

"""Evidence attachments: the secretstream of chunks, its manifest, and safe file names.

Every refusal is asserted by its precise code: a modified, reordered, duplicated, deleted or
misplaced chunk is ``attachment.corrupt``; a stream that stops before its final chunk is
``attachment.truncated``; a stream that verifies but is not what the manifest says is
``attachment.mismatch``; a manifest that is not the one canonical encoding is
``attachment.malformed``; a hostile file name is ``attachment.name_unsafe``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.attachment import (
    ABYTES,
    CHUNK_SIZE,
    MAX_ATTACHMENT_SIZE,
    MAX_ATTACHMENTS,
    AttachmentSpec,
    Decryptor,
    Encryptor,
    chunk_ad,
    ciphertext_size,
    encode_manifest,
    encrypt_chunks,
    parse_manifest,
    safe_name,
)
from protocol.encoding import canonical_json
from protocol.errors import (
    AttachmentCorrupt,
    AttachmentError,
    AttachmentMismatch,
    AttachmentNameUnsafe,
    AttachmentTruncated,
    RogatoryError,
)

MID = "0123456789abcdef0123456789abcdef"
OTHER_MID = "fedcba9876543210fedcba9876543210"
WHOLE = CHUNK_SIZE + ABYTES  # one full chunk on the wire
FAST = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- helpers -----------------------------------------------------------------------------------


def encrypt(plaintext: bytes, *, index: int = 0, message_id: str = MID,
            pieces: Iterable[bytes] | None = None) -> tuple[AttachmentSpec, list[bytes]]:
    """A fresh key, the stream's chunks, and the manifest entry describing the plaintext."""
    key = os.urandom(32)
    header, chunks = encrypt_chunks(key, message_id, index,
                                    [plaintext] if pieces is None else pieces)
    spec = AttachmentSpec(index=index, name=f"evidence-{index}.bin",
                          media_type="application/octet-stream", size=len(plaintext),
                          sha256=hashlib.sha256(plaintext).hexdigest(), key=key, header=header)
    return spec, list(chunks)


def split(data: bytes, piece: int) -> list[bytes]:
    return [data[at:at + piece] for at in range(0, len(data), piece)] or [b""]


def decrypt(spec: AttachmentSpec, data: bytes | Iterable[bytes], *,
            message_id: str = MID) -> bytes:
    """Feed the ciphertext (bytes, or pieces of it) to a Decryptor and finish it."""
    decryptor = Decryptor(spec, message_id)
    out: list[bytes] = []
    for piece in [data] if isinstance(data, bytes) else data:
        out.extend(decryptor.feed(piece))
    out.extend(decryptor.finish())
    return b"".join(out)


def refused(call: Callable[[], object]) -> str:
    """Run a callable that must raise an attachment error; return its code."""
    with pytest.raises(AttachmentError) as caught:
        call()
    return caught.value.code


def decrypt_code(spec: AttachmentSpec, data: bytes, *, message_id: str = MID,
                 piece: int | None = None) -> str:
    pieces = [data] if piece is None else split(data, piece)
    return refused(lambda: decrypt(spec, pieces, message_id=message_id))


# --- round trips ---------------------------------------------------------------------------------


SIZES = [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE,
         3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size: int) -> None:
    plaintext = os.urandom(size)
    spec, chunks = encrypt(plaintext)
    data = b"".join(chunks)
    assert len(data) == ciphertext_size(size) == spec.ciphertext_size
    assert len(chunks) == max(1, -(-size // CHUNK_SIZE))
    assert all(len(chunk) == WHOLE for chunk in chunks[:-1])
    assert ABYTES < len(chunks[-1]) <= WHOLE or (size == 0 and len(chunks[-1]) == ABYTES)
    for piece in (1000, 4096, WHOLE, WHOLE + 1, len(data) or 1):
        assert decrypt(spec, split(data, piece)) == plaintext
    assert decrypt(spec, data) == plaintext


@pytest.mark.parametrize("size", [0, 5, CHUNK_SIZE + 3])
def test_round_trip_one_byte_at_a_time(size: int) -> None:
    plaintext = os.urandom(size)
    spec, chunks = encrypt(plaintext)
    assert decrypt(spec, split(b"".join(chunks), 1)) == plaintext


def test_ciphertext_size() -> None:
    assert ciphertext_size(0) == ABYTES  # an empty file is one empty final chunk
    assert ciphertext_size(1) == 1 + ABYTES
    assert ciphertext_size(CHUNK_SIZE) == WHOLE
    assert ciphertext_size(CHUNK_SIZE + 1) == CHUNK_SIZE + 1 + 2 * ABYTES
    assert ciphertext_size(10 * CHUNK_SIZE) == 10 * WHOLE
    assert ciphertext_size(MAX_ATTACHMENT_SIZE) == MAX_ATTACHMENT_SIZE + 2**28 * ABYTES


@FAST
@given(size=st.integers(0, 3 * CHUNK_SIZE + 100), data=st.data())
def test_round_trip_any_size_any_pieces(size: int, data: st.DataObject) -> None:
    plaintext = os.urandom(size)
    spec, chunks = encrypt(plaintext)
    stream = b"".join(chunks)
    assert len(stream) == ciphertext_size(size)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    pieces = [stream[a:b] for a, b in pairwise(bounds)]
    assert b"".join(pieces) == stream
    assert decrypt(spec, pieces) == plaintext


@FAST
@given(st.lists(st.integers(0, CHUNK_SIZE + 10), min_size=0, max_size=6))
def test_encrypt_recuts_plaintext_pieces(lengths: list[int]) -> None:
    """However the plaintext arrives, the stream is the same sequence of chunk sizes."""
    pieces = [os.urandom(n) for n in lengths]
    plaintext = b"".join(pieces)
    spec, chunks = encrypt(plaintext, pieces=iter(pieces))
    assert [len(c) for c in chunks[:-1]] == [WHOLE] * (len(chunks) - 1)
    assert len(b"".join(chunks)) == ciphertext_size(len(plaintext))
    assert decrypt(spec, b"".join(chunks)) == plaintext


def test_decryptor_streams_chunk_by_chunk() -> None:
    """Plaintext comes out as soon as each whole chunk is in, not only at the end."""
    plaintext = os.urandom(2 * CHUNK_SIZE + 5)
    spec, chunks = encrypt(plaintext)
    decryptor = Decryptor(spec, MID)
    assert list(decryptor.feed(chunks[0][:-1])) == []
    assert list(decryptor.feed(chunks[0][-1:])) == [plaintext[:CHUNK_SIZE]]
    assert list(decryptor.feed(chunks[1] + chunks[2])) == [plaintext[CHUNK_SIZE:2 * CHUNK_SIZE]]
    assert list(decryptor.finish()) == [plaintext[2 * CHUNK_SIZE:]]


def test_every_stream_is_fresh() -> None:
    """Same key, same plaintext: a new random header, so a new ciphertext."""
    key = os.urandom(32)
    first_header, first = encrypt_chunks(key, MID, 0, [b"same"])
    second_header, second = encrypt_chunks(key, MID, 0, [b"same"])
    assert first_header != second_header
    assert list(first) != list(second)


# --- truncation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, CHUNK_SIZE, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_nothing_at_all_is_truncated(size: int) -> None:
    spec, _ = encrypt(os.urandom(size))
    assert decrypt_code(spec, b"") == "attachment.truncated"


@pytest.mark.parametrize("size", [2 * CHUNK_SIZE, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_last_chunk_dropped(size: int) -> None:
    """Every chunk left authenticates, but none carries the final tag."""
    spec, chunks = encrypt(os.urandom(size))
    data = b"".join(chunks[:-1])
    assert len(data) % WHOLE == 0
    for piece in (None, 1000, WHOLE):
        assert decrypt_code(spec, data, piece=piece) == "attachment.truncated"


@pytest.mark.parametrize("size", [CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17])
def test_everything_after_the_first_chunk_dropped(size: int) -> None:
    spec, chunks = encrypt(os.urandom(size))
    with pytest.raises(AttachmentTruncated) as caught:
        decrypt(spec, chunks[0])
    assert caught.value.code == "attachment.truncated"


@pytest.mark.parametrize("keep", [1, 5, ABYTES - 1])
@pytest.mark.parametrize("size", [0, 100, CHUNK_SIZE, 2 * CHUNK_SIZE + 100])
def test_cut_leaving_less_than_a_tag(size: int, keep: int) -> None:
    """A last partial chunk too short to hold even an authentication tag."""
    spec, chunks = encrypt(os.urandom(size))
    data = b"".join(chunks[:-1]) + chunks[-1][:keep]
    assert decrypt_code(spec, data) == "attachment.truncated"


def test_truncated_is_raised_by_finish_not_feed() -> None:
    spec, chunks = encrypt(os.urandom(3 * CHUNK_SIZE))
    decryptor = Decryptor(spec, MID)
    assert len(list(decryptor.feed(b"".join(chunks[:2])))) == 2
    with pytest.raises(AttachmentTruncated):
        list(decryptor.finish())


@pytest.mark.parametrize("cut", ["mid_first", "mid_second", "mid_last"])
def test_cut_inside_a_chunk_is_truncated(cut: str) -> None:
    spec, chunks = encrypt(os.urandom(2 * CHUNK_SIZE + 1000))
    data = b"".join(chunks)
    at = {"mid_first": WHOLE // 2, "mid_second": WHOLE + 30_000,
          "mid_last": 2 * WHOLE + 500}[cut]
    assert decrypt_code(spec, data[:at]) == "attachment.truncated"


def test_cut_inside_a_chunk_is_refused_today() -> None:
    """Whatever the cut, a stream cut inside a chunk is never accepted."""
    spec, chunks = encrypt(os.urandom(2 * CHUNK_SIZE + 1000))
    data = b"".join(chunks)
    for at in (1, ABYTES, WHOLE // 2, WHOLE + 30_000, 2 * WHOLE + 500, len(data) - 1):
        assert decrypt_code(spec, data[:at]) in ("attachment.truncated", "attachment.corrupt")


# --- modified, reordered, duplicated, deleted ----------------------------------------------------


FOUR = 3 * CHUNK_SIZE + 100  # four chunks: three full, one short final


def test_two_chunks_swapped() -> None:
    spec, chunks = encrypt(os.urandom(FOUR))
    for a, b in ((0, 1), (1, 2), (0, 2)):
        swapped = list(chunks)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        assert decrypt_code(spec, b"".join(swapped)) == "attachment.corrupt"


def test_full_final_chunk_swapped_with_its_predecessor() -> None:
    spec, chunks = encrypt(os.urandom(2 * CHUNK_SIZE))
    assert decrypt_code(spec, chunks[1] + chunks[0]) == "attachment.corrupt"


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_chunk_duplicated(which: int) -> None:
    spec, chunks = encrypt(os.urandom(FOUR))
    doubled = [*chunks[:which + 1], chunks[which], *chunks[which + 1:]]
    assert decrypt_code(spec, b"".join(doubled)) == "attachment.corrupt"


@pytest.mark.parametrize("which", [0, 1, 2])
def test_middle_chunk_deleted(which: int) -> None:
    spec, chunks = encrypt(os.urandom(FOUR))
    assert decrypt_code(spec, b"".join(chunks[:which] + chunks[which + 1:])) == (
        "attachment.corrupt")


def test_chunk_from_another_stream_spliced_in() -> None:
    """Same key, same message, same slot, but another stream (another header)."""
    plaintext = os.urandom(FOUR)
    key = os.urandom(32)
    header, first = encrypt_chunks(key, MID, 0, [plaintext])
    _, second = encrypt_chunks(key, MID, 0, [plaintext])
    spec = AttachmentSpec(0, "a.bin", "application/octet-stream", FOUR,
                          hashlib.sha256(plaintext).hexdigest(), key, header)
    mixed = list(first)
    mixed[1] = list(second)[1]
    assert decrypt_code(spec, b"".join(mixed)) == "attachment.corrupt"


@settings(max_examples=60, deadline=None)
@given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7),
       size=st.sampled_from([0, 1, 300, CHUNK_SIZE, 2 * CHUNK_SIZE + 300]))
def test_any_flipped_bit_is_corrupt(position: float, bit: int, size: int) -> None:
    spec, chunks = encrypt(os.urandom(size))
    data = bytearray(b"".join(chunks))
    at = int(position * len(data))
    data[at] ^= 1 << bit
    assert decrypt_code(spec, bytes(data)) == "attachment.corrupt"


@pytest.mark.parametrize("size", [0, 100, CHUNK_SIZE, 2 * CHUNK_SIZE + 100])
@pytest.mark.parametrize("extra", [ABYTES, 100, WHOLE, WHOLE + 5])
def test_bytes_after_the_final_chunk(size: int, extra: int) -> None:
    spec, chunks = encrypt(os.urandom(size))
    data = b"".join(chunks) + os.urandom(extra)
    assert decrypt_code(spec, data) == "attachment.corrupt"
    assert decrypt_code(spec, data, piece=1000) == "attachment.corrupt"


def test_stream_appended_to_itself() -> None:
    spec, chunks = encrypt(os.urandom(CHUNK_SIZE))
    data = b"".join(chunks)
    assert decrypt_code(spec, data + data) == "attachment.corrupt"


@pytest.mark.parametrize("size", [0, 100, CHUNK_SIZE + 100])
@pytest.mark.parametrize("extra", [1, ABYTES - 1])
def test_few_bytes_after_a_short_final_chunk(size: int, extra: int) -> None:
    """The short final chunk and the extra bytes reach pull together: it fails to authenticate."""
    spec, chunks = encrypt(os.urandom(size))
    assert decrypt_code(spec, b"".join(chunks) + b"\x00" * extra) == "attachment.corrupt"


@pytest.mark.parametrize("size", [CHUNK_SIZE, 2 * CHUNK_SIZE])
@pytest.mark.parametrize("extra", [1, ABYTES - 1])
def test_few_bytes_after_a_full_final_chunk(size: int, extra: int) -> None:
    spec, chunks = encrypt(os.urandom(size))
    assert decrypt_code(spec, b"".join(chunks) + b"\x00" * extra) == "attachment.corrupt"


def test_short_non_final_chunk_is_corrupt() -> None:
    """A (hostile) sender tags a short chunk as an ordinary message chunk."""
    key = os.urandom(32)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    chunk = sodium.crypto_secretstream_xchacha20poly1305_push(
        state, b"short", chunk_ad(MID, 0),
        sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
    spec = AttachmentSpec(0, "a", "application/octet-stream", 5,
                          hashlib.sha256(b"short").hexdigest(), key, header)
    assert decrypt_code(spec, chunk) == "attachment.corrupt"


# --- additional data: bound to message and slot --------------------------------------------------


def test_chunk_ad_layout() -> None:
    assert chunk_ad(MID, 0) == b"rogatory/v1/attachment\x00" + MID.encode() + b"\x00\x00\x00\x00"
    assert chunk_ad(MID, 255)[-4:] == b"\x00\x00\x00\xff"
    for message_id, index in ((MID.upper(), 0), (MID[:-1], 0), (MID + "0", 0), ("", 0),
                              (MID, -1), (MID, MAX_ATTACHMENTS)):
        assert refused(partial(chunk_ad, message_id, index)) == "attachment.malformed"


@pytest.mark.parametrize("size", [0, 10, 2 * CHUNK_SIZE + 10])
def test_stream_of_another_message(size: int) -> None:
    spec, chunks = encrypt(os.urandom(size))
    data = b"".join(chunks)
    assert decrypt_code(spec, data, message_id=OTHER_MID) == "attachment.corrupt"


@pytest.mark.parametrize("size", [0, 10, 2 * CHUNK_SIZE + 10])
def test_stream_of_another_slot(size: int) -> None:
    """Attachment 0's stream presented as attachment 1 (key and header copied along)."""
    plaintext = os.urandom(size)
    spec, chunks = encrypt(plaintext, index=0)
    moved = replace(spec, index=1, name="evidence-1.bin")
    data = b"".join(chunks)
    assert decrypt_code(moved, data) == "attachment.corrupt"
    assert decrypt(spec, data) == plaintext  # in its own slot it is fine


def test_misplaced_stream_fails_at_the_first_chunk() -> None:
    spec, chunks = encrypt(os.urandom(3 * CHUNK_SIZE))
    decryptor = Decryptor(spec, OTHER_MID)
    with pytest.raises(AttachmentCorrupt) as caught:
        list(decryptor.feed(chunks[0]))
    assert caught.value.code == "attachment.corrupt"
    assert "at byte 0" in caught.value.detail


def test_decryptor_checks_the_message_id() -> None:
    spec, _ = encrypt(b"x")
    assert refused(lambda: Decryptor(spec, "not a message id")) == "attachment.malformed"


# --- the manifest entry against the stream ------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 7])
def test_manifest_size_wrong(size: int) -> None:
    spec, chunks = encrypt(os.urandom(size))
    data = b"".join(chunks)
    assert decrypt_code(replace(spec, size=size + 1), data) == "attachment.mismatch"
    if size:
        assert decrypt_code(replace(spec, size=size - 1), data) == "attachment.mismatch"
        assert decrypt_code(replace(spec, size=0), data) == "attachment.mismatch"


def test_larger_than_the_manifest_is_refused_early() -> None:
    """No need to wait for the end: the first chunk already exceeds the announced size."""
    spec, chunks = encrypt(os.urandom(3 * CHUNK_SIZE))
    decryptor = Decryptor(replace(spec, size=100), MID)
    with pytest.raises(AttachmentMismatch):
        list(decryptor.feed(chunks[0]))


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, 2 * CHUNK_SIZE + 7])
def test_manifest_sha256_wrong(size: int) -> None:
    plaintext = os.urandom(size)
    spec, chunks = encrypt(plaintext)
    other = hashlib.sha256(plaintext + b"!").hexdigest()
    assert decrypt_code(replace(spec, sha256=other), b"".join(chunks)) == "attachment.mismatch"
    with pytest.raises(AttachmentMismatch):
        decrypt(replace(spec, sha256="0" * 64), b"".join(chunks))


def test_wrong_key_is_corrupt() -> None:
    spec, chunks = encrypt(os.urandom(CHUNK_SIZE + 1))
    data = b"".join(chunks)
    assert decrypt_code(replace(spec, key=os.urandom(32)), data) == "attachment.corrupt"
    flipped = bytes([spec.key[0] ^ 1]) + spec.key[1:]
    assert decrypt_code(replace(spec, key=flipped), data) == "attachment.corrupt"


def test_wrong_header_is_corrupt() -> None:
    """A well-formed header of another stream: the first chunk fails to authenticate."""
    spec, chunks = encrypt(os.urandom(100))
    data = b"".join(chunks)
    assert decrypt_code(replace(spec, header=os.urandom(24)), data) == "attachment.corrupt"
    assert decrypt_code(replace(spec, header=bytes(24)), data) == "attachment.corrupt"


def test_malformed_header_or_key() -> None:
    spec, _ = encrypt(b"x")
    for header in (b"", bytes(23), bytes(25)):
        assert refused(partial(replace, spec, header=header)) == "attachment.malformed"
    for key in (b"", bytes(31), bytes(33)):
        assert refused(partial(replace, spec, key=key)) == "attachment.malformed"
    assert refused(partial(replace, spec, header="x" * 24)) == "attachment.malformed"
    # Defence in depth: a spec that slipped past its own checks is still refused by the stream.
    broken = replace(spec)
    object.__setattr__(broken, "header", bytes(23))
    assert refused(lambda: Decryptor(broken, MID)) == "attachment.malformed"


# --- the encryptor -------------------------------------------------------------------------------


def test_encryptor_refuses_wrong_chunk_sizes_and_pushes_after_final() -> None:
    key = os.urandom(32)
    encryptor = Encryptor(key, MID, 0)
    for size in (0, 1, CHUNK_SIZE - 1, CHUNK_SIZE + 1):
        assert refused(partial(encryptor.push, bytes(size), final=False)) == (
            "attachment.malformed")
    assert refused(lambda: encryptor.push(bytes(CHUNK_SIZE + 1), final=True)) == (
        "attachment.malformed")
    first = encryptor.push(bytes(CHUNK_SIZE), final=False)  # refusals did not advance the state
    last = encryptor.push(b"end", final=True)
    assert refused(lambda: encryptor.push(b"", final=True)) == "attachment.malformed"
    assert refused(lambda: encryptor.push(bytes(CHUNK_SIZE), final=False)) == (
        "attachment.malformed")
    plaintext = bytes(CHUNK_SIZE) + b"end"
    spec = AttachmentSpec(0, "a", "application/octet-stream", len(plaintext),
                          hashlib.sha256(plaintext).hexdigest(), key, encryptor.header)
    assert decrypt(spec, first + last) == plaintext


def test_encryptor_checks_key_and_slot() -> None:
    assert refused(lambda: Encryptor(os.urandom(32), MID, MAX_ATTACHMENTS)) == (
        "attachment.malformed")
    assert refused(lambda: Encryptor(os.urandom(32), "x", 0)) == "attachment.malformed"
    with pytest.raises((ValueError, TypeError, RogatoryError)):
        Encryptor(os.urandom(31), MID, 0)


# --- the manifest --------------------------------------------------------------------------------


def make_spec(index: int = 0, **changes: Any) -> AttachmentSpec:
    fields: dict[str, Any] = {
        "index": index, "name": f"exhibit {index}.pdf", "media_type": "application/pdf",
        "size": 1000 + index, "sha256": hashlib.sha256(b"%d" % index).hexdigest(),
        "key": hashlib.sha256(b"key %d" % index).digest(),
        "header": hashlib.sha256(b"header %d" % index).digest()[:24],
    }
    fields.update(changes)
    return AttachmentSpec(**fields)


def manifest_json(count: int = 2) -> dict[str, Any]:
    return {"attachments": [make_spec(i).to_json() for i in range(count)],
            "chunk_size": CHUNK_SIZE, "v": 1}


def malformed(value: Any) -> str:
    return refused(lambda: parse_manifest(canonical_json(value)))


def with_entry(**changes: Any) -> dict[str, Any]:
    value = manifest_json(1)
    value["attachments"][0].update(changes)
    return value


@pytest.mark.parametrize("count", [1, 2, 7])
def test_manifest_round_trip(count: int) -> None:
    specs = tuple(make_spec(i) for i in range(count))
    data = encode_manifest(specs)
    assert parse_manifest(data) == specs
    assert encode_manifest(parse_manifest(data)) == data
    assert data == canonical_json(manifest_json(count))
    assert data.startswith(b'{"attachments":[{"header":"')
    assert data.endswith(b'],"chunk_size":65536,"v":1}')


def test_manifest_round_trip_of_real_streams() -> None:
    specs = []
    for index in range(3):
        spec, _ = encrypt(os.urandom(10 * index), index=index)
        specs.append(replace(spec, name=f"Relevé bancaire 202{index}.pdf",
                             media_type="application/pdf"))
    data = encode_manifest(specs)
    assert parse_manifest(data) == tuple(specs)


def test_manifest_at_most_max_attachments() -> None:
    specs = [make_spec(i) for i in range(MAX_ATTACHMENTS)]
    assert len(parse_manifest(encode_manifest(specs))) == MAX_ATTACHMENTS
    value = manifest_json(1)
    entry = value["attachments"][0]
    value["attachments"] = [dict(entry, index=i) for i in range(MAX_ATTACHMENTS + 1)]
    assert malformed(value) == "attachment.malformed"


def test_describe_leaves_out_the_secrets() -> None:
    spec = make_spec(3)
    assert spec.describe() == {"index": 3, "name": "exhibit 3.pdf",
                               "media_type": "application/pdf", "size": 1003,
                               "sha256": spec.sha256}
    assert AttachmentSpec.from_json(spec.to_json()) == spec


def test_encode_manifest_refuses() -> None:
    assert refused(lambda: encode_manifest([])) == "attachment.malformed"
    assert refused(lambda: encode_manifest([make_spec(1)])) == "attachment.malformed"
    assert refused(lambda: encode_manifest([make_spec(1), make_spec(0)])) == (
        "attachment.malformed")
    assert refused(lambda: encode_manifest([make_spec(0), make_spec(0)])) == (
        "attachment.malformed")
    assert refused(lambda: encode_manifest([make_spec(0), make_spec(2)])) == (
        "attachment.malformed")


def test_manifest_structure_refused() -> None:
    good = manifest_json(2)
    cases: list[Any] = [
        [], "manifest", 1, None,
        {k: v for k, v in good.items() if k != "v"},
        {k: v for k, v in good.items() if k != "chunk_size"},
        {k: v for k, v in good.items() if k != "attachments"},
        dict(good, extra=1),
        dict(good, v=2), dict(good, v=0), dict(good, v="1"), dict(good, v=True),
        dict(good, chunk_size=65535), dict(good, chunk_size=2 * CHUNK_SIZE),
        dict(good, chunk_size="65536"), dict(good, chunk_size=0),
        dict(good, attachments=[]), dict(good, attachments={}),
        dict(good, attachments=[good["attachments"][1], good["attachments"][0]]),
        dict(good, attachments=[good["attachments"][1]]),
        dict(good, attachments=[good["attachments"][0], good["attachments"][0]]),
        dict(good, attachments=[good["attachments"][0], 1]),
        dict(good, attachments=[good["attachments"][0], None]),
        dict(good, attachments=[good["attachments"][0], []]),
    ]
    for value in cases:
        assert malformed(value) == "attachment.malformed", value


@pytest.mark.parametrize("field", ["header", "index", "key", "media_type", "name", "sha256",
                                   "size"])
def test_manifest_entry_missing_field(field: str) -> None:
    value = manifest_json(1)
    del value["attachments"][0][field]
    assert malformed(value) == "attachment.malformed"


def test_manifest_entry_unknown_field() -> None:
    assert malformed(with_entry(comment="x")) == "attachment.malformed"
    assert malformed(with_entry(Size=5)) == "attachment.malformed"


@pytest.mark.parametrize("changes", [
    {"index": -1}, {"index": True}, {"index": "0"}, {"index": MAX_ATTACHMENTS},
    {"size": -1}, {"size": True}, {"size": False}, {"size": "1000"},
    {"size": MAX_ATTACHMENT_SIZE + 1}, {"size": None},
    {"sha256": "0" * 63}, {"sha256": "0" * 65}, {"sha256": "g" * 64}, {"sha256": "A" * 64},
    {"sha256": hashlib.sha256(b"x").hexdigest().upper()}, {"sha256": " " + "0" * 63},
    {"sha256": 0},
    {"media_type": "text"}, {"media_type": "TEXT/PLAIN"}, {"media_type": "text/ plain"},
    {"media_type": "text /plain"}, {"media_type": "text/plain; charset=utf-8"},
    {"media_type": "/plain"}, {"media_type": "text/"}, {"media_type": ""},
    {"media_type": "text/plain/x"}, {"media_type": "a" * 128 + "/b"}, {"media_type": None},
], ids=repr)
def test_manifest_entry_bad_value(changes: dict[str, Any]) -> None:
    assert malformed(with_entry(**changes)) == "attachment.malformed"


def test_manifest_entry_edge_values_accepted() -> None:
    for changes in ({"size": 0}, {"size": MAX_ATTACHMENT_SIZE},
                    {"media_type": "application/vnd.ms-excel"}, {"media_type": "a/b"},
                    {"media_type": "image/svg+xml"}, {"media_type": "a" * 127 + "/" + "b" * 127}):
        spec = parse_manifest(canonical_json(with_entry(**changes)))[0]
        assert spec.to_json() == with_entry(**changes)["attachments"][0]


def test_manifest_entry_unsafe_name() -> None:
    for name in ("../etc/passwd", "", ".hidden", "a/b", "con"):
        assert malformed(with_entry(name=name)) == "attachment.name_unsafe"


def flip_spare_bits(text: str) -> str:
    """The same bytes, with the unused low bits of the last base64url character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(text[-1])
    assert last & 3 == 0  # canonical: the two spare bits are zero
    return text[:-1] + alphabet[last | 1]


def test_manifest_bad_base64() -> None:
    good = make_spec().to_json()
    key, header = good["key"], good["header"]
    assert len(key) == 43 and len(header) == 32
    bad_keys = [
        key + "=",  # padding
        key[:-1],  # too short
        key + "A",  # too long
        flip_spare_bits(key),  # non-canonical: same 32 bytes, other spelling
        key[:-1] + "+",  # standard alphabet
        key[:-1] + "/",
        "!" + key[1:],  # not base64 at all
        "é" + key[1:],  # not ASCII
        key[:20] + " " + key[21:],
        "=" * 43,
        43,
        None,
    ]
    for bad in bad_keys:
        assert malformed(with_entry(key=bad)) == "attachment.malformed", bad
    assert malformed(with_entry(key=flip_spare_bits(key))) == "attachment.malformed"
    standard = make_spec(key=b"\xfb\xff" * 16).to_json()["key"]
    assert "-" in standard or "_" in standard
    assert malformed(with_entry(key=standard.replace("-", "+").replace("_", "/"))) == (
        "attachment.malformed")
    assert parse_manifest(canonical_json(with_entry(key=standard)))[0].key == b"\xfb\xff" * 16
    for bad in (header + "==", header[:-1], header + "AAAA", "!" * 32, key):
        assert malformed(with_entry(header=bad)) == "attachment.malformed", bad


def test_manifest_not_canonical() -> None:
    data = encode_manifest([make_spec()])
    variants = [
        data.replace(b'"v":1', b'"v": 1'),
        b" " + data,
        data + b"\n",
        data.replace(b'"chunk_size":65536', b'"chunk_size":65536.0'),
        data.replace(b'"chunk_size":65536', b'"chunk_size":6.5536e4'),
        data.replace(b'{"attachments"', b'{"v":1,"attachments"').replace(b',"v":1}', b"}"),
        data.replace(b'"v":1}', b'"v":1,"v":1}'),
        data.replace(b"exhibit", b"\\u0065xhibit"),
        b"",
        b"null",
        b"\xff" + data,
        data[:-1],
    ]
    for variant in variants:
        assert variant != data
        assert refused(partial(parse_manifest, variant)) == "attachment.malformed", variant


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_manifest_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(AttachmentError):
        parse_manifest(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=10), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(["header", "index", "key", "media_type", "name", "sha256", "size",
                              "v", "chunk_size", "attachments", "entry", "manifest"]),
       value=JSON)
def test_parse_manifest_arbitrary_values(field: str, value: Any) -> None:
    """Any JSON value in any place: a manifest, or an attachment error; nothing else."""
    manifest = manifest_json(2)
    if field == "manifest":
        manifest = value
    elif field == "entry":
        manifest["attachments"][1] = value
    elif field in manifest:
        manifest[field] = value
    else:
        manifest["attachments"][0][field] = value
    try:
        data = canonical_json(manifest)
    except RogatoryError:
        return
    try:
        specs = parse_manifest(data)
    except AttachmentError:
        return
    assert encode_manifest(specs) == data


# --- safe names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "report.pdf", "Relevé bancaire 2024.pdf", "Ὀδυσσεύς.txt", "報告書.docx", "отчёт.xlsx",
    "a", "a b", "a.b.c", "#1 (copy).tar.gz", "console.log", "con2", "nul_", "x" * 255,
    "conclusions.pdf", "com10", "a..b", "😀.png", "-rf", "~backup",
])
def test_safe_names(name: str) -> None:
    assert safe_name(name) == name


@pytest.mark.parametrize("name", [
    "", ".", "..", "...", ".hidden", "../etc/passwd", "a/b", "/abs", "a\\b", "..\\x", "\\\\srv",
    "C:evil", "C:\\evil", "file:stream", "con", "CON", "Con.txt", "NUL.txt", "nul.tar.gz", "prn",
    "aux", "com1", "COM9.log", "lpt1", "LPT9", "name.", "name ", "name. ", "  ",
    "a\x00b", "a\nb", "a\rb", "a\tb", "\x7f", "a\x1bb", "invoice\u202efdp.exe", "a\u200bb",
    "a\u2028b", "a\u2029b", "a\ufeffb", "a\ud800b", "\x85", "x" * 256, "é" * 256,
])
def test_unsafe_names(name: str) -> None:
    assert refused(lambda: safe_name(name)) == "attachment.name_unsafe"


def test_unsafe_name_types() -> None:
    names: list[Any] = [None, b"report.pdf", 1, ["a"]]
    for name in names:
        assert refused(partial(safe_name, name)) == "attachment.name_unsafe"


def test_safe_name_normalises_to_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "Relevé bancaire 2024.pdf")
    assert nfd != "Relevé bancaire 2024.pdf"
    assert safe_name(nfd) == "Relevé bancaire 2024.pdf"
    assert safe_name("e\u0301" * 127) == "é" * 127  # 254 characters before, 254 bytes after
    assert refused(lambda: safe_name("e\u0301" * 128)) == "attachment.name_unsafe"


def test_safe_name_fits_a_file_system() -> None:
    with pytest.raises(AttachmentNameUnsafe):
        safe_name("é" * 255)


NAMES = st.text(max_size=40) | st.text(
    alphabet=st.sampled_from(["/", "\\", ".", "a", " ", ":", "é", "e", "\u0301", "\u202e", "\x00",
                              "c", "o", "n", "\u2215", "\uff0f"]), max_size=8)


@settings(max_examples=400, deadline=None)
@given(NAMES)
def test_accepted_names_stay_in_their_folder(name: str) -> None:
    try:
        safe = safe_name(name)
    except AttachmentNameUnsafe:
        return
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in (".", "..") and not safe.startswith(".")
    assert (Path("/x") / safe).parent == Path("/x")
    assert (Path("/x") / safe).name == safe
    assert unicodedata.is_normalized("NFC", safe)
    assert safe_name(safe) == safe
    assert 1 <= len(safe) <= 255

"""C2SP tlog-checkpoint, tlog-cosignature (cosignature/v1) and tlog-proof (protocol/checkpoint.py).

Formats are checked against the text of the specifications: the cosigned message is rebuilt
here from c2sp.org/tlog-cosignature's grammar and checked with PyNaCl directly, not through the
code under test. The specs' own examples (c2sp.org/tlog-checkpoint's checkpoint, the cosigned
checkpoint of c2sp.org/tlog-cosignature, the proof lines of c2sp.org/tlog-proof) are parsed for
their structure: their keys are not published, so their signatures cannot be checked.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from protocol.checkpoint import (
    MAX_INT63,
    MAX_PROOF_HASHES,
    Checkpoint,
    TlogProof,
    cosign,
    cosigned_message,
    open_checkpoint,
    parse_checkpoint_text,
    parse_tlog_proof,
    sign_checkpoint,
    verify_cosignature,
    with_signatures,
)
from protocol.errors import KeyMalformed, LogMalformed, RogatoryError
from protocol.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    key_hash,
    parse_note,
    sign_note,
)

MALFORMED = "log.malformed"
SIGNATURE_INVALID = "log.signature_invalid"
DASH = "\u2014"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

# --- c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature examples --------------------------

SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    f"{DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u"
    "5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n").encode()
SPEC_COSIGNATURE_LINE = (
    f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlr"
    "DJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n").encode()
SPEC_COSIGNATURE_TIME = 1679315147  # the "time" line of the spec's signed-message example

# --- c2sp.org/tlog-proof example (lines before the checkpoint) --------------------------------

SPEC_PROOF_LINES = (
    b"c2sp.org/tlog-proof@v1\n"
    b"extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
    b"index 73894\n"
    b"gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
    b"B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
    b"EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
    b"RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
    b"AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
)
SPEC_PROOF_CHECKPOINT = Checkpoint(
    "example.com/fancylog", 109482,
    base64.b64decode("sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08="))

# --- fixed keys ---------------------------------------------------------------------------------


def seed_of(label: str) -> bytes:
    return hashlib.sha256(f"rogatory/tests/checkpoint/{label}".encode()).digest()


def public_of(seed: bytes) -> bytes:
    return bytes(SigningKey(seed).verify_key)


LOG = "rogatory/log/XB:MOJ"
LOG_SEED = seed_of("log")
LOG_PUBLIC = public_of(LOG_SEED)
WITNESS = "rogatory/witness/XA:MOJ"
WITNESS_SEED = seed_of("witness")
WITNESS_PUBLIC = public_of(WITNESS_SEED)
OTHER_SEED = seed_of("other")
OTHER_PUBLIC = public_of(OTHER_SEED)
ROOT = hashlib.sha256(b"root").digest()
CHECKPOINT = Checkpoint(LOG, 7, ROOT)
SIGNED = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(RogatoryError) as caught:
        call()
    return caught.value.code


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- checkpoints ----------------------------------------------------------------------------


def test_the_spec_example_checkpoint_parses() -> None:
    note = parse_note(SPEC_CHECKPOINT)
    checkpoint = parse_checkpoint_text(note.text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert b64(checkpoint.root) == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    assert checkpoint.extensions == ()
    assert checkpoint.text() == note.text
    assert [s.name for s in note.signatures] == ["example.com/behind-the-sofa"]
    assert len(note.signatures[0].signature) == 64


def test_checkpoint_text_is_the_spec_layout() -> None:
    with_extension = Checkpoint(LOG, 0, ROOT, ("ext one", "two"))
    assert with_extension.text() == f"{LOG}\n0\n{b64(ROOT)}\next one\ntwo\n".encode()


origins = st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), min_size=1,
                  max_size=30)
checkpoints = st.builds(
    Checkpoint, origins, st.integers(0, MAX_INT63), st.binary(min_size=32, max_size=32),
    st.lists(origins, max_size=3).map(tuple))


@given(checkpoints)
def test_checkpoint_text_round_trips(checkpoint: Checkpoint) -> None:
    assert parse_checkpoint_text(checkpoint.text()) == checkpoint


URLSAFE_ROOT = base64.urlsafe_b64encode(b"\xfb" * 32).decode()  # has '-' and '_'


@pytest.mark.parametrize("size", ["0", "1", "10", str(MAX_INT63)])
def test_checkpoint_sizes_accepted(size: str) -> None:
    assert parse_checkpoint_text(f"o\n{size}\n{b64(ROOT)}\n".encode()).size == int(size)


@pytest.mark.parametrize("text", [
    b"",
    b"\n",
    f"o\n1\n{b64(ROOT)}".encode(),  # no final newline
    b"o\n1\n",  # no root line
    f"\n1\n{b64(ROOT)}\n".encode(),  # empty origin
    f"o\n01\n{b64(ROOT)}\n".encode(),  # leading zero
    f"o\n00\n{b64(ROOT)}\n".encode(),
    f"o\n+1\n{b64(ROOT)}\n".encode(),
    f"o\n-1\n{b64(ROOT)}\n".encode(),
    f"o\n 1\n{b64(ROOT)}\n".encode(),
    f"o\n1 \n{b64(ROOT)}\n".encode(),
    f"o\n1_0\n{b64(ROOT)}\n".encode(),
    f"o\n1e3\n{b64(ROOT)}\n".encode(),
    f"o\n0x1\n{b64(ROOT)}\n".encode(),
    f"o\n\u0661\n{b64(ROOT)}\n".encode(),  # ARABIC-INDIC DIGIT ONE
    f"o\n{MAX_INT63 + 1}\n{b64(ROOT)}\n".encode(),
    f"o\n{'9' * 5000}\n{b64(ROOT)}\n".encode(),
    f"o\n\n{b64(ROOT)}\n".encode(),
    f"o\n1\n{b64(ROOT[:31])}\n".encode(),
    f"o\n1\n{b64(ROOT + b'x')}\n".encode(),
    f"o\n1\n{b64(ROOT).rstrip('=')}\n".encode(),  # unpadded
    f"o\n1\n{URLSAFE_ROOT}\n".encode(),  # base64url
    f"o\n1\n{b64(ROOT)}\n\n".encode(),  # an empty extension line
    f"o\n1\n{b64(ROOT)}\next\n\n".encode(),
    f"o\r\n1\n{b64(ROOT)}\n".encode(),
    f"o\t\n1\n{b64(ROOT)}\n".encode(),
    f"\xff\n1\n{b64(ROOT)}\n".encode("latin-1"),
])
def test_checkpoint_text_refusals(text: bytes) -> None:
    assert code_of(lambda: parse_checkpoint_text(text)) == MALFORMED


@pytest.mark.parametrize("build", [
    lambda: Checkpoint("", 1, ROOT),
    lambda: Checkpoint("a\nb", 1, ROOT),
    lambda: Checkpoint(LOG, -1, ROOT),
    lambda: Checkpoint(LOG, MAX_INT63 + 1, ROOT),
    lambda: Checkpoint(LOG, True, ROOT),
    lambda: Checkpoint(LOG, 1, ROOT[:31]),
    lambda: Checkpoint(LOG, 1, ROOT, ("",)),
    lambda: Checkpoint(LOG, 1, ROOT, ("a\nb",)),
])
def test_malformed_checkpoints_cannot_be_built(build: Callable[[], object]) -> None:
    assert code_of(build) == MALFORMED


# --- the log's signature ------------------------------------------------------------------


def test_sign_and_open_round_trip() -> None:
    note = parse_note(SIGNED)
    assert note.text == CHECKPOINT.text()
    (signature,) = note.signatures
    assert signature.name == LOG
    assert signature.key_hash == key_hash(LOG, ALG_ED25519, LOG_PUBLIC)
    # Type 0x01: Ed25519 over the raw checkpoint text, checked with PyNaCl directly.
    VerifyKey(LOG_PUBLIC).verify(CHECKPOINT.text(), signature.signature)
    assert open_checkpoint(SIGNED, LOG, LOG_PUBLIC) == (CHECKPOINT, note)


def test_open_checkpoint_wrong_key() -> None:
    assert code_of(lambda: open_checkpoint(SIGNED, LOG, OTHER_PUBLIC)) == SIGNATURE_INVALID


def test_open_checkpoint_wrong_name() -> None:
    """The log's key name is its origin: a right key under another name proves nothing."""
    other_origin = sign_checkpoint(replace(CHECKPOINT, origin="rogatory/log/XC:PGO"), LOG,
                                   LOG_SEED)
    assert code_of(lambda: open_checkpoint(other_origin, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID
    assert code_of(lambda: open_checkpoint(SIGNED, "rogatory/log/XC:PGO", LOG_PUBLIC)) \
        == SIGNATURE_INVALID
    misnamed = sign_checkpoint(CHECKPOINT, "rogatory/log/XC:PGO", LOG_SEED)
    assert code_of(lambda: open_checkpoint(misnamed, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID


def test_open_checkpoint_every_flipped_signature_bit() -> None:
    (real,) = parse_note(SIGNED).signatures
    for bit in range(len(real.signature) * 8):
        flipped = bytearray(real.signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        data = Note(CHECKPOINT.text(), (replace(real, signature=bytes(flipped)),)).encode()
        assert code_of(lambda data=data: open_checkpoint(data, LOG, LOG_PUBLIC)) \
            == SIGNATURE_INVALID


@pytest.mark.parametrize("changed", [
    replace(CHECKPOINT, size=8),
    replace(CHECKPOINT, root=hashlib.sha256(b"other").digest()),
    replace(CHECKPOINT, extensions=("added",)),
])
def test_open_checkpoint_a_changed_checkpoint(changed: Checkpoint) -> None:
    (real,) = parse_note(SIGNED).signatures
    data = Note(changed.text(), (real,)).encode()
    assert code_of(lambda: open_checkpoint(data, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID


def test_open_checkpoint_ignores_unknown_signatures() -> None:
    noise = sign_note(CHECKPOINT.text(), "somebody.example/else", OTHER_SEED)
    data = with_signatures(SIGNED, [noise, cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)])
    assert open_checkpoint(data, LOG, LOG_PUBLIC)[0] == CHECKPOINT


def test_open_checkpoint_refuses_a_note_that_is_not_a_checkpoint() -> None:
    data = Note(b"hello\n", (sign_note(b"hello\n", LOG, LOG_SEED),)).encode()
    assert code_of(lambda: open_checkpoint(data, LOG, LOG_PUBLIC)) == MALFORMED
    assert code_of(lambda: open_checkpoint(b"garbage", LOG, LOG_PUBLIC)) == MALFORMED


def test_sign_checkpoint_with_a_bad_seed_is_a_key_error() -> None:
    with pytest.raises(KeyMalformed):
        sign_checkpoint(CHECKPOINT, LOG, b"short")


# --- cosignatures ------------------------------------------------------------------------


def test_the_spec_cosigned_checkpoint_parses() -> None:
    note = parse_note(SPEC_CHECKPOINT + SPEC_COSIGNATURE_LINE)
    log_line, witness_line = note.signatures
    assert log_line.name == "example.com/behind-the-sofa"
    assert witness_line.name == "witness.example.com/w1"
    assert len(witness_line.signature) == 8 + 64  # timestamped_signature
    assert int.from_bytes(witness_line.signature[:8], "big") == SPEC_COSIGNATURE_TIME
    assert note.encode() == SPEC_CHECKPOINT + SPEC_COSIGNATURE_LINE


def test_cosigned_message_is_the_spec_layout() -> None:
    spec_checkpoint = parse_checkpoint_text(parse_note(SPEC_CHECKPOINT).text)
    assert cosigned_message(spec_checkpoint, SPEC_COSIGNATURE_TIME) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def test_cosign_round_trip() -> None:
    signature = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert signature.name == WITNESS
    assert signature.key_hash == hashlib.sha256(
        WITNESS.encode() + b"\n\x04" + WITNESS_PUBLIC).digest()[:4]
    assert signature.signature[:8] == NOW.to_bytes(8, "big")
    # The signed message, rebuilt from the spec's grammar and checked with PyNaCl directly.
    message = f"cosignature/v1\ntime {NOW}\n".encode() + CHECKPOINT.text()
    VerifyKey(WITNESS_PUBLIC).verify(message, signature.signature[8:])
    assert verify_cosignature(CHECKPOINT, signature, WITNESS, WITNESS_PUBLIC) == NOW
    line = parse_note(with_signatures(SIGNED, [signature])).signatures[-1]
    assert verify_cosignature(CHECKPOINT, line, WITNESS, WITNESS_PUBLIC) == NOW


@pytest.mark.parametrize("timestamp", [0, 1, MAX_INT63])
def test_cosignature_timestamp_range(timestamp: int) -> None:
    signature = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, timestamp)
    assert verify_cosignature(CHECKPOINT, signature, WITNESS, WITNESS_PUBLIC) == timestamp


@pytest.mark.parametrize("timestamp", [-1, MAX_INT63 + 1, True])
def test_cosign_refuses_timestamps_out_of_range(timestamp: int) -> None:
    assert code_of(lambda: cosign(CHECKPOINT, WITNESS, WITNESS_SEED, timestamp)) == MALFORMED


def test_the_timestamp_is_bound_by_the_signature() -> None:
    signature = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    for moved in (NOW + 1, NOW - 1, 0):
        changed = replace(signature, signature=moved.to_bytes(8, "big") + signature.signature[8:])
        assert code_of(lambda changed=changed: verify_cosignature(
            CHECKPOINT, changed, WITNESS, WITNESS_PUBLIC)) == SIGNATURE_INVALID


def test_a_timestamp_beyond_2_63_is_refused_even_if_signed() -> None:
    """Built by hand: the spec forbids timestamps above 2^63 - 1, whatever is signed."""
    timestamp = MAX_INT63 + 1
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + CHECKPOINT.text()
    raw = timestamp.to_bytes(8, "big") + SigningKey(WITNESS_SEED).sign(message).signature
    signature = NoteSignature(WITNESS, key_hash(WITNESS, ALG_COSIGNATURE_V1, WITNESS_PUBLIC), raw)
    assert code_of(lambda: verify_cosignature(CHECKPOINT, signature, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


@pytest.mark.parametrize("changed", [
    replace(CHECKPOINT, size=8),
    replace(CHECKPOINT, root=hashlib.sha256(b"other").digest()),
    replace(CHECKPOINT, origin="rogatory/log/XC:PGO"),
    replace(CHECKPOINT, extensions=("extension lines are signed too",)),
])
def test_a_cosignature_is_bound_to_the_whole_checkpoint(changed: Checkpoint) -> None:
    signature = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert code_of(lambda: verify_cosignature(changed, signature, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


def test_cosignature_wrong_key_wrong_name_flipped_bit() -> None:
    signature = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert code_of(lambda: verify_cosignature(CHECKPOINT, signature, WITNESS, OTHER_PUBLIC)) \
        == SIGNATURE_INVALID
    renamed = replace(signature, name="rogatory/witness/XC:PGO")
    assert code_of(lambda: verify_cosignature(CHECKPOINT, renamed, "rogatory/witness/XC:PGO",
                                              WITNESS_PUBLIC)) == SIGNATURE_INVALID
    assert code_of(lambda: verify_cosignature(CHECKPOINT, signature, "rogatory/witness/XC:PGO",
                                              WITNESS_PUBLIC)) == SIGNATURE_INVALID
    for bit in range(64, len(signature.signature) * 8, 7):
        flipped = bytearray(signature.signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad = replace(signature, signature=bytes(flipped))
        assert code_of(lambda bad=bad: verify_cosignature(
            CHECKPOINT, bad, WITNESS, WITNESS_PUBLIC)) == SIGNATURE_INVALID
    truncated = replace(signature, signature=signature.signature[:-1])
    assert code_of(lambda: verify_cosignature(CHECKPOINT, truncated, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


def test_log_signatures_and_cosignatures_do_not_stand_in_for_each_other() -> None:
    """Same key, same name: the type byte in the key ID and the message prefix keep them apart."""
    (log_line,) = parse_note(SIGNED).signatures
    assert code_of(lambda: verify_cosignature(CHECKPOINT, log_line, LOG, LOG_PUBLIC)) \
        == SIGNATURE_INVALID
    as_log = cosign(CHECKPOINT, LOG, LOG_SEED, NOW)
    only_cosigned = Note(CHECKPOINT.text(), (as_log,)).encode()
    assert code_of(lambda: open_checkpoint(only_cosigned, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID


# --- adding signature lines ----------------------------------------------------------------


def test_with_signatures_adds_and_dedupes() -> None:
    first = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    later = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW + 60)
    other = cosign(CHECKPOINT, "rogatory/witness/XC:PGO", OTHER_SEED, NOW)
    once = with_signatures(SIGNED, [first])
    assert once == SIGNED + first.line().encode()
    assert with_signatures(once, [first]) == once
    assert with_signatures(SIGNED, [first, first]) == once
    twice = with_signatures(once, [later, other])
    note = parse_note(twice)
    assert [s.name for s in note.signatures] == [LOG, WITNESS, "rogatory/witness/XC:PGO"]
    assert verify_cosignature(CHECKPOINT, note.signatures[1], WITNESS, WITNESS_PUBLIC) \
        == NOW + 60  # one line per (name, key ID): the newer line replaces the older
    assert open_checkpoint(twice, LOG, LOG_PUBLIC)[0] == CHECKPOINT
    assert with_signatures(twice, parse_note(SIGNED).signatures) == twice
    same_name_other_key = cosign(CHECKPOINT, WITNESS, OTHER_SEED, NOW)
    assert len(parse_note(with_signatures(twice, [same_name_other_key])).signatures) == 4


def test_with_signatures_reduces_repeated_lines_on_the_note() -> None:
    (log_line,) = parse_note(SIGNED).signatures
    doubled = Note(CHECKPOINT.text(), (log_line, log_line)).encode()
    assert with_signatures(doubled, []) == SIGNED


def test_with_signatures_respects_the_signature_limit() -> None:
    lines = [cosign(CHECKPOINT, f"w{i}.example", WITNESS_SEED, NOW)
             for i in range(MAX_SIGNATURES - 1)]
    full = with_signatures(SIGNED, lines)
    assert len(parse_note(full).signatures) == MAX_SIGNATURES
    extra = cosign(CHECKPOINT, "one.too.many", WITNESS_SEED, NOW)
    assert code_of(lambda: with_signatures(full, [extra])) == MALFORMED


def test_with_signatures_refuses_a_malformed_note() -> None:
    signature = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert code_of(lambda: with_signatures(CHECKPOINT.text(), [signature])) == MALFORMED


# --- tlog-proof ----------------------------------------------------------------------------

HASHES = tuple(hashlib.sha256(bytes([i])).digest() for i in range(3))


def test_the_spec_proof_lines_round_trip_with_a_checkpoint() -> None:
    checkpoint = sign_checkpoint(SPEC_PROOF_CHECKPOINT, "example.com/fancylog", LOG_SEED)
    data = SPEC_PROOF_LINES + b"\n" + checkpoint
    proof = parse_tlog_proof(data)
    assert proof.index == 73894
    assert proof.extra == base64.b64decode(
        "YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ")
    assert [b64(h).encode() for h in proof.hashes] == SPEC_PROOF_LINES.split(b"\n")[3:8]
    assert proof.checkpoint == checkpoint
    assert proof.encode() == data
    assert open_checkpoint(proof.checkpoint, "example.com/fancylog", LOG_PUBLIC)[0] \
        == SPEC_PROOF_CHECKPOINT


def test_tlog_proof_layout_without_extra() -> None:
    proof = TlogProof(3, HASHES, SIGNED)
    expected = (b"c2sp.org/tlog-proof@v1\nindex 3\n"
                + b"".join(b64(h).encode() + b"\n" for h in HASHES) + b"\n" + SIGNED)
    assert proof.encode() == expected
    assert parse_tlog_proof(expected) == proof


def test_tlog_proof_with_no_hashes_and_a_cosigned_checkpoint() -> None:
    single = sign_checkpoint(replace(CHECKPOINT, size=1), LOG, LOG_SEED)
    cosigned = with_signatures(single, [cosign(replace(CHECKPOINT, size=1), WITNESS,
                                               WITNESS_SEED, NOW)])
    proof = TlogProof(0, (), cosigned)
    assert proof.encode() == b"c2sp.org/tlog-proof@v1\nindex 0\n\n" + cosigned
    assert parse_tlog_proof(proof.encode()) == proof


proofs = st.builds(
    TlogProof,
    st.integers(0, CHECKPOINT.size - 1),
    st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_HASHES).map(tuple),
    st.just(SIGNED),
    st.none() | st.binary(max_size=40),
)


@given(proofs)
def test_tlog_proof_round_trips(proof: TlogProof) -> None:
    assert parse_tlog_proof(proof.encode()) == proof


def _proof(*lines: str, checkpoint: bytes = SIGNED) -> bytes:
    return "".join(line + "\n" for line in lines).encode() + b"\n" + checkpoint


H = b64(HASHES[0])


@pytest.mark.parametrize("data", [
    b"",
    SIGNED,
    _proof("c2sp.org/tlog-proof@v2", "index 0"),
    _proof("C2SP.ORG/TLOG-PROOF@V1", "index 0"),
    _proof("c2sp.org/tlog-proof@v1"),
    _proof("c2sp.org/tlog-proof@v1", H),
    _proof("c2sp.org/tlog-proof@v1", "index"),
    _proof("c2sp.org/tlog-proof@v1", "index 01"),
    _proof("c2sp.org/tlog-proof@v1", "index -1"),
    _proof("c2sp.org/tlog-proof@v1", "index  0"),
    _proof("c2sp.org/tlog-proof@v1", "index 0 "),
    _proof("c2sp.org/tlog-proof@v1", "index 7"),  # not below the tree size
    _proof("c2sp.org/tlog-proof@v1", f"index {MAX_INT63 + 1}"),
    _proof("c2sp.org/tlog-proof@v1", "index 0", "extra AAAA"),  # extra after index
    _proof("c2sp.org/tlog-proof@v1", "extra !!", "index 0"),
    _proof("c2sp.org/tlog-proof@v1", "extra AA", "index 0"),  # unpadded
    _proof("c2sp.org/tlog-proof@v1", "extra AAAA", "extra AAAA", "index 0"),
    _proof("c2sp.org/tlog-proof@v1", "extra", "index 0"),
    _proof("c2sp.org/tlog-proof@v1", "index 0", b64(HASHES[0][:31])),
    _proof("c2sp.org/tlog-proof@v1", "index 0", H.rstrip("=")),
    _proof("c2sp.org/tlog-proof@v1", "index 0", H + " "),
    _proof("c2sp.org/tlog-proof@v1", "index 0", *[H] * (MAX_PROOF_HASHES + 1)),
    _proof("c2sp.org/tlog-proof@v1", "index 0", checkpoint=b""),
    _proof("c2sp.org/tlog-proof@v1", "index 0", checkpoint=CHECKPOINT.text()),  # unsigned
    _proof("c2sp.org/tlog-proof@v1", "index 0", checkpoint=Note(
        b"not a checkpoint\n", (sign_note(b"not a checkpoint\n", LOG, LOG_SEED),)).encode()),
    _proof("c2sp.org/tlog-proof@v1", "index 0", checkpoint=b"\n" + SIGNED),
    b"c2sp.org/tlog-proof@v1\r\nindex 0\r\n\r\n" + SIGNED,
    b"c2sp.org/tlog-proof@v1\nindex 0\n" + SIGNED,  # no blank line
    b"\nc2sp.org/tlog-proof@v1\nindex 0\n\n" + SIGNED,
    "c2sp.org/tlog-proof@v1\nindex \u0660\n\n".encode() + SIGNED,
])
def test_tlog_proof_refusals(data: bytes) -> None:
    assert code_of(lambda: parse_tlog_proof(data)) == MALFORMED


def test_tlog_proof_hash_count_limit() -> None:
    big = sign_checkpoint(replace(CHECKPOINT, size=MAX_INT63), LOG, LOG_SEED)
    proof = parse_tlog_proof(_proof("c2sp.org/tlog-proof@v1", "index 0",
                                    *[H] * MAX_PROOF_HASHES, checkpoint=big))
    assert len(proof.hashes) == MAX_PROOF_HASHES


def test_an_empty_extra_line_is_empty_extra_data() -> None:
    proof = parse_tlog_proof(_proof("c2sp.org/tlog-proof@v1", "extra ", "index 0"))
    assert proof.extra == b""
    assert proof.encode() == _proof("c2sp.org/tlog-proof@v1", "extra ", "index 0")


@pytest.mark.parametrize("build", [
    lambda: TlogProof(-1, (), SIGNED),
    lambda: TlogProof(7, (), SIGNED),
    lambda: TlogProof(0, (b"\x00" * 31,), SIGNED),
    lambda: TlogProof(0, (HASHES[0],) * (MAX_PROOF_HASHES + 1), SIGNED),
    lambda: TlogProof(0, (), CHECKPOINT.text()),
])
def test_malformed_tlog_proofs_cannot_be_built(build: Callable[[], object]) -> None:
    assert code_of(build) == MALFORMED


# --- fuzzing --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parsers_on_arbitrary_bytes_raise_only_log_malformed(data: bytes) -> None:
    for parse in (parse_checkpoint_text, parse_tlog_proof):
        try:
            parsed = parse(data)
        except RogatoryError as exc:
            assert exc.code == MALFORMED
            continue
        encoded = parsed.text() if isinstance(parsed, Checkpoint) else parsed.encode()
        assert encoded == data


checkpoint_pieces = st.lists(st.sampled_from([
    b"\n", b"o", b"0", b"1", b"9", b"-", b" ", b"=", b"\xff", b"\x00", b"+", b"/",
    b64(ROOT).encode(), LOG.encode(), b"ext",
]), max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(checkpoint_pieces)
def test_parse_checkpoint_text_on_checkpoint_like_bytes(data: bytes) -> None:
    try:
        checkpoint = parse_checkpoint_text(data)
    except LogMalformed:
        return
    assert checkpoint.text() == data


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_tlog_proofs_parse_identically_or_not_at_all(data: st.DataObject) -> None:
    cosigned = with_signatures(SIGNED, [cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)])
    original = bytearray(TlogProof(5, HASHES, cosigned, b"extra").encode())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(original) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            original[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete" and len(original) > 1:
            del original[position]
        else:
            original.insert(position, data.draw(st.integers(0, 255)))
    mutated = bytes(original)
    try:
        proof = parse_tlog_proof(mutated)
    except LogMalformed:
        return
    assert proof.encode() == mutated
    try:
        checkpoint, note = open_checkpoint(proof.checkpoint, LOG, LOG_PUBLIC)
    except RogatoryError as exc:
        assert exc.code == SIGNATURE_INVALID
        return
    assert checkpoint == CHECKPOINT  # a valid log signature pins the checkpoint down
    for line in note.signatures:
        if line.name == WITNESS:
            try:
                assert verify_cosignature(checkpoint, line, WITNESS, WITNESS_PUBLIC) == NOW
            except RogatoryError as exc:
                assert exc.code == SIGNATURE_INVALID

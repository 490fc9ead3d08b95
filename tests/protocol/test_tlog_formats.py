"""C2SP tlog-checkpoint, tlog-cosignature (cosignature/v1) and tlog-proof, and receipts' proofs.

Formats are checked against the text of the specifications (c2sp.org/tlog-checkpoint,
c2sp.org/tlog-cosignature, c2sp.org/tlog-proof): messages are rebuilt here byte by byte from the
spec's grammar and checked with PyNaCl directly, not through the code under test. The spec's own
cosigned checkpoint example is parsed for its structure (its keys are not published).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey, VerifyKey

from protocol import merkle
from protocol.checkpoint import (
    MAX_PROOF_HASHES,
    PROOF_HEADER,
    Checkpoint,
    TlogProof,
    cosign,
    open_checkpoint,
    parse_checkpoint_text,
    parse_tlog_proof,
    sign_checkpoint,
    verify_cosignature,
    with_signatures,
)
from protocol.errors import LogError, ReceiptError, RogatoryError
from protocol.log_entry import (
    EntryType,
    encode_entry,
    log_origin,
    received_entry,
    verify_receipt_proof,
)
from protocol.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Note,
    NoteSignature,
    key_hash,
    parse_note,
    verify_note,
)
from protocol.receipt import Receipt, ReceiptStatus, parse_receipt, sign_receipt

MALFORMED = "log.malformed"
SIGNATURE_INVALID = "log.signature_invalid"
PROOF_INVALID = "log.proof_invalid"
NOW = 1_767_225_600


def seed_of(label: str) -> bytes:
    return hashlib.sha256(f"rogatory/tests/tlog/{label}".encode()).digest()


def public_of(seed: bytes) -> bytes:
    return bytes(SigningKey(seed).verify_key)


LOG = log_origin("XB:MOJ")
LOG_SEED = seed_of("XB:MOJ")
LOG_PUBLIC = public_of(LOG_SEED)
WITNESS = "rogatory/witness/XA:MOJ"
WITNESS_SEED = seed_of("XA:MOJ")
WITNESS_PUBLIC = public_of(WITNESS_SEED)
OTHER_SEED = seed_of("XC:PGO")
OTHER_PUBLIC = public_of(OTHER_SEED)
ROOT = hashlib.sha256(b"a root").digest()
CHECKPOINT = Checkpoint(LOG, 20852163, ROOT)


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(LogError) as caught:
        call()
    return caught.value.code


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- checkpoints -------------------------------------------------------------------------


def test_checkpoint_text_is_the_spec_layout() -> None:
    assert CHECKPOINT.text() == f"{LOG}\n20852163\n{b64(ROOT)}\n".encode()
    with_extensions = replace(CHECKPOINT, extensions=("ext one", "\u00e9"))
    assert with_extensions.text() == CHECKPOINT.text() + "ext one\n\u00e9\n".encode()


@pytest.mark.parametrize("checkpoint", [
    CHECKPOINT,
    Checkpoint("example.com/behind-the-sofa", 0, merkle.EMPTY_ROOT),
    Checkpoint("o", 2**63 - 1, b"\xff" * 32),
    Checkpoint(LOG, 5, ROOT, ("one extension", "and another")),
], ids=["plain", "empty-tree", "largest-size", "extensions"])
def test_checkpoint_round_trip(checkpoint: Checkpoint) -> None:
    assert parse_checkpoint_text(checkpoint.text()) == checkpoint


def test_spec_example_checkpoint_parses() -> None:
    """The checkpoint of c2sp.org/tlog-checkpoint."""
    text = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = parse_checkpoint_text(text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == () and checkpoint.text() == text


@settings(max_examples=150, deadline=None)
@given(
    origin=st.text(st.characters(min_codepoint=0x20, codec="utf-8"), min_size=1,
                   max_size=40),
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(st.characters(min_codepoint=0x20, codec="utf-8"),
                                min_size=1, max_size=20), max_size=3),
)
def test_checkpoint_round_trip_property(origin: str, size: int, root: bytes,
                                        extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint_text(checkpoint.text()) == checkpoint


ROOT_LINE = b64(ROOT)


def text_of(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


@pytest.mark.parametrize("size", ["05", "00", "007", "+5", "-1", " 5", "5 ", "1e3", "0x5", "5.0",
                                  "", "\u0665", "\uff15", str(2**63), "9" * 21])
def test_checkpoint_size_must_be_plain_decimal(size: str) -> None:
    assert code_of(lambda: parse_checkpoint_text(text_of(LOG, size, ROOT_LINE))) == MALFORMED


@pytest.mark.parametrize("root", [
    b64(ROOT[:31]), b64(ROOT + b"\x00"), "", b64(b"\x00" * 64), ROOT.hex(),
], ids=["31-bytes", "33-bytes", "empty", "64-bytes", "hex"])
def test_checkpoint_root_must_be_32_bytes(root: str) -> None:
    assert code_of(lambda: parse_checkpoint_text(text_of(LOG, "5", root))) == MALFORMED


def _spare_bits(text: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = text.rstrip("=")
    return body[:-1] + alphabet[alphabet.index(body[-1]) | 1] + text[len(body):]


@pytest.mark.parametrize("text", [
    text_of(LOG, "5"),  # no root
    text_of(LOG, "5", ROOT_LINE).rstrip(b"\n"),  # no final newline
    text_of(LOG, "5", ROOT_LINE) + b"\n",  # an empty line after the root
    text_of(LOG, "5", ROOT_LINE, "ext", ""),  # an empty extension line
    text_of("", "5", ROOT_LINE),  # empty origin
    text_of(LOG, "", "5", ROOT_LINE),
    f"{LOG}\r\n5\r\n{ROOT_LINE}\r\n".encode(),  # CRLF
    text_of(LOG, "5", ROOT_LINE + " "),  # trailing space
    text_of(LOG, "5", " " + ROOT_LINE),
    text_of(LOG, "5", ROOT_LINE.rstrip("=")),  # unpadded root
    text_of(LOG, "5", _spare_bits(ROOT_LINE)),  # non-zero spare bits
    text_of(LOG, "5", ROOT_LINE.replace("+", "-").replace("/", "_") + "\n"),
    b"\n" + text_of(LOG, "5", ROOT_LINE),  # leading empty line
    b"\xff" + text_of(LOG, "5", ROOT_LINE),  # not UTF-8
    b"",
], ids=["no-root", "no-final-newline", "empty-line", "empty-extension", "empty-origin",
        "empty-size-line", "crlf", "root-trailing-space", "root-leading-space",
        "root-unpadded", "root-spare-bits", "root-url-alphabet", "leading-empty-line",
        "not-utf8", "empty"])
def test_non_canonical_checkpoint_text_is_malformed(text: bytes) -> None:
    assert base64.b64decode(_spare_bits(ROOT_LINE)) == ROOT  # lenient decoders would accept it
    assert code_of(lambda: parse_checkpoint_text(text)) == MALFORMED


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_parse_checkpoint_text_on_arbitrary_bytes_raises_only_rogatory_errors(data: bytes) -> None:
    try:
        checkpoint = parse_checkpoint_text(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert checkpoint.text() == data


checkpoint_pieces = st.lists(st.sampled_from([
    b"\n", LOG.encode(), b"0", b"1", b"05", b"12345", ROOT_LINE.encode(), b"=", b" ", b"+",
    b"\xff", b"ext",
]), max_size=10).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(checkpoint_pieces)
def test_parse_checkpoint_text_on_checkpoint_like_bytes(data: bytes) -> None:
    try:
        checkpoint = parse_checkpoint_text(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert checkpoint.text() == data


# --- signed checkpoints ------------------------------------------------------------------


def test_sign_and_open_checkpoint() -> None:
    data = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)
    checkpoint, note = open_checkpoint(data, LOG, LOG_PUBLIC)
    assert checkpoint == CHECKPOINT and note.text == CHECKPOINT.text()
    (line,) = note.signatures
    assert line.name == LOG and line.key_hash == key_hash(LOG, ALG_ED25519, LOG_PUBLIC)
    VerifyKey(LOG_PUBLIC).verify(CHECKPOINT.text(), line.signature)  # plain Ed25519 of the text
    assert data == CHECKPOINT.text() + b"\n" + line.line().encode()


def test_open_checkpoint_refuses_an_origin_other_than_the_key_name() -> None:
    other = replace(CHECKPOINT, origin=log_origin("XC:PGO"))
    data = sign_checkpoint(other, LOG, LOG_SEED)  # genuinely signed by LOG's key and name
    verify_note(parse_note(data), LOG, LOG_PUBLIC)
    assert code_of(lambda: open_checkpoint(data, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID
    own = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)
    assert code_of(lambda: open_checkpoint(own, log_origin("XC:PGO"), LOG_PUBLIC)) \
        == SIGNATURE_INVALID


def test_open_checkpoint_refuses_wrong_key_wrong_name_and_tampering() -> None:
    data = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)
    assert code_of(lambda: open_checkpoint(data, LOG, OTHER_PUBLIC)) == SIGNATURE_INVALID
    by_other = sign_checkpoint(CHECKPOINT, LOG, OTHER_SEED)
    assert code_of(lambda: open_checkpoint(by_other, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID
    grown = data.replace(b"\n20852163\n", b"\n20852164\n")
    assert code_of(lambda: open_checkpoint(grown, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID
    witness_only = Note(CHECKPOINT.text(), (cosign(CHECKPOINT, LOG, LOG_SEED, NOW),)).encode()
    assert code_of(lambda: open_checkpoint(witness_only, LOG, LOG_PUBLIC)) == SIGNATURE_INVALID


def test_open_checkpoint_refuses_malformed_notes_and_texts() -> None:
    data = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)
    assert code_of(lambda: open_checkpoint(data[:-1], LOG, LOG_PUBLIC)) == MALFORMED
    bad_text = b"not\na\ncheckpoint\n"
    forged = Note(bad_text, (NoteSignature(LOG, b"\x00" * 4, b"\x00" * 64),)).encode()
    assert code_of(lambda: open_checkpoint(forged, LOG, LOG_PUBLIC)) == MALFORMED


# --- cosignatures ------------------------------------------------------------------------


def cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """c2sp.org/tlog-cosignature: two header lines, then the whole checkpoint note text."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + checkpoint.text()


def test_cosignature_round_trip_and_spec_message() -> None:
    line = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert verify_cosignature(CHECKPOINT, line, WITNESS, WITNESS_PUBLIC) == NOW
    assert line.name == WITNESS and len(line.signature) == 72
    assert line.signature[:8] == NOW.to_bytes(8, "big")
    VerifyKey(WITNESS_PUBLIC).verify(cosigned_message(CHECKPOINT, NOW), line.signature[8:])
    assert cosigned_message(CHECKPOINT, 1679315147).startswith(
        b"cosignature/v1\ntime 1679315147\nrogatory/log/XB:MOJ\n20852163\n")
    with_extensions = replace(CHECKPOINT, extensions=("ext",))
    extended = cosign(with_extensions, WITNESS, WITNESS_SEED, NOW)
    VerifyKey(WITNESS_PUBLIC).verify(cosigned_message(with_extensions, NOW), extended.signature[8:])
    assert code_of(lambda: verify_cosignature(CHECKPOINT, extended, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID  # extension lines are part of the cosigned message


def test_cosignature_key_id_uses_algorithm_0x04() -> None:
    line = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    expected = hashlib.sha256(WITNESS.encode() + b"\n\x04" + WITNESS_PUBLIC).digest()[:4]
    assert ALG_COSIGNATURE_V1 == 0x04
    assert line.key_hash == expected == key_hash(WITNESS, ALG_COSIGNATURE_V1, WITNESS_PUBLIC)
    assert line.key_hash != key_hash(WITNESS, ALG_ED25519, WITNESS_PUBLIC)
    # A cosignature is not a plain note signature by the same key, nor the other way round.
    note = parse_note(Note(CHECKPOINT.text(), (line,)).encode())
    assert code_of(lambda: verify_note(note, WITNESS, WITNESS_PUBLIC)) == SIGNATURE_INVALID
    (plain,) = parse_note(sign_checkpoint(CHECKPOINT, WITNESS, WITNESS_SEED)).signatures
    assert code_of(lambda: verify_cosignature(CHECKPOINT, plain, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


@pytest.mark.parametrize("timestamp", [NOW - 1, NOW + 1, 0, NOW ^ (1 << 40)])
def test_changing_the_timestamp_breaks_the_cosignature(timestamp: int) -> None:
    line = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    moved = replace(line, signature=timestamp.to_bytes(8, "big") + line.signature[8:])
    assert code_of(lambda: verify_cosignature(CHECKPOINT, moved, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


@pytest.mark.parametrize("other", [
    replace(CHECKPOINT, size=CHECKPOINT.size + 1),
    replace(CHECKPOINT, root=hashlib.sha256(b"another root").digest()),
    replace(CHECKPOINT, origin=log_origin("XC:PGO")),
    replace(CHECKPOINT, extensions=("ext",)),
], ids=["size", "root", "origin", "extension"])
def test_changing_the_checkpoint_breaks_the_cosignature(other: Checkpoint) -> None:
    line = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert code_of(lambda: verify_cosignature(other, line, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


def test_cosignature_refuses_wrong_name_key_and_shape() -> None:
    line = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    assert code_of(lambda: verify_cosignature(CHECKPOINT, line, "rogatory/witness/XC:PGO",
                                              WITNESS_PUBLIC)) == SIGNATURE_INVALID
    assert code_of(lambda: verify_cosignature(CHECKPOINT, line, WITNESS, OTHER_PUBLIC)) \
        == SIGNATURE_INVALID
    by_other = cosign(CHECKPOINT, WITNESS, OTHER_SEED, NOW)  # right name, another key
    assert code_of(lambda: verify_cosignature(CHECKPOINT, by_other, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID
    for signature in (line.signature[:-1], line.signature + b"\x00", line.signature[8:]):
        bad = replace(line, signature=signature)
        assert code_of(lambda bad=bad: verify_cosignature(CHECKPOINT, bad, WITNESS,
                                                          WITNESS_PUBLIC)) == SIGNATURE_INVALID
    flipped = replace(line, signature=line.signature[:-1] + bytes([line.signature[-1] ^ 1]))
    assert code_of(lambda: verify_cosignature(CHECKPOINT, flipped, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


def test_cosignature_timestamp_is_at_most_2_63_minus_1() -> None:
    last = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, 2**63 - 1)
    assert verify_cosignature(CHECKPOINT, last, WITNESS, WITNESS_PUBLIC) == 2**63 - 1
    assert code_of(lambda: cosign(CHECKPOINT, WITNESS, WITNESS_SEED, 2**63)) == MALFORMED
    assert code_of(lambda: cosign(CHECKPOINT, WITNESS, WITNESS_SEED, -1)) == MALFORMED
    # A witness that signs a time beyond the spec's range is refused by the verifier too.
    too_late = 2**63
    signature = SigningKey(WITNESS_SEED).sign(cosigned_message(CHECKPOINT, too_late)).signature
    forged = replace(last, signature=too_late.to_bytes(8, "big") + signature)
    assert code_of(lambda: verify_cosignature(CHECKPOINT, forged, WITNESS, WITNESS_PUBLIC)) \
        == SIGNATURE_INVALID


def test_spec_example_cosigned_checkpoint_parses() -> None:
    """c2sp.org/tlog-cosignature's example: its witness line carries time 1679315147."""
    data = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN"
        "7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
        "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
        "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
    ).encode()
    note = parse_note(data)
    log_line, witness_line = note.signatures
    assert len(log_line.signature) == 64 and len(witness_line.signature) == 72
    assert int.from_bytes(witness_line.signature[:8], "big") == 1679315147
    assert parse_checkpoint_text(note.text).size == 20852163
    assert note.encode() == data


def test_with_signatures_adds_and_dedupes() -> None:
    data = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)
    first = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW)
    later = cosign(CHECKPOINT, WITNESS, WITNESS_SEED, NOW + 60)
    other = cosign(CHECKPOINT, "rogatory/witness/XC:PGO", OTHER_SEED, NOW)
    once = with_signatures(data, [first])
    assert once == data + first.line().encode()
    assert with_signatures(once, [first]) == once  # the same line twice is one line
    twice = with_signatures(once, [later, other])
    note = parse_note(twice)
    assert [s.name for s in note.signatures] == [LOG, WITNESS, "rogatory/witness/XC:PGO"]
    assert verify_cosignature(CHECKPOINT, note.signatures[1], WITNESS, WITNESS_PUBLIC) \
        == NOW + 60  # the newest line of a (name, key id) is kept, in place
    assert open_checkpoint(twice, LOG, LOG_PUBLIC)[0] == CHECKPOINT
    same_name_other_key = cosign(CHECKPOINT, WITNESS, OTHER_SEED, NOW)
    assert len(parse_note(with_signatures(twice, [same_name_other_key])).signatures) == 4
    resigned = with_signatures(twice, parse_note(data).signatures)
    assert parse_note(resigned).signatures == note.signatures
    assert with_signatures(data, []) == data
    assert code_of(lambda: with_signatures(data[:-1], [first])) == MALFORMED


# --- tlog-proof --------------------------------------------------------------------------

SIGNED = sign_checkpoint(CHECKPOINT, LOG, LOG_SEED)
HASHES = tuple(hashlib.sha256(bytes([i])).digest() for i in range(3))


@pytest.mark.parametrize("proof", [
    TlogProof(73894, HASHES, SIGNED),
    TlogProof(0, (), SIGNED),
    TlogProof(5, HASHES[:1], SIGNED, extra=b"age-v1.2.1-darwin-arm64.tar.gz"),
    TlogProof(5, HASHES, SIGNED, extra=b""),
    TlogProof(7, tuple([ROOT] * MAX_PROOF_HASHES), SIGNED),
], ids=["plain", "no-hashes", "extra", "empty-extra", "most-hashes"])
def test_tlog_proof_round_trip(proof: TlogProof) -> None:
    data = proof.encode()
    assert parse_tlog_proof(data) == proof
    assert parse_tlog_proof(data).encode() == data


def test_tlog_proof_layout_is_the_specs() -> None:
    data = TlogProof(73894, HASHES, SIGNED, extra=b"xyz").encode()
    expected = ["c2sp.org/tlog-proof@v1", "extra eHl6", "index 73894",
                *(b64(h) for h in HASHES), ""]
    assert data == "\n".join(expected).encode() + b"\n" + SIGNED
    assert PROOF_HEADER == "c2sp.org/tlog-proof@v1"


def proof_text(*lines: str, checkpoint: bytes = SIGNED) -> bytes:
    return "\n".join(lines).encode() + b"\n\n" + checkpoint


H = b64(HASHES[0])


@pytest.mark.parametrize("data", [
    proof_text("c2sp.org/tlog-proof@v2", "index 1", H),
    proof_text("c2sp.org/tlog-proof@v1 ", "index 1", H),
    proof_text("index 1", H),
    proof_text("c2sp.org/tlog-proof@v1", H),  # no index line
    proof_text("c2sp.org/tlog-proof@v1", "index 01", H),
    proof_text("c2sp.org/tlog-proof@v1", "index -1", H),
    proof_text("c2sp.org/tlog-proof@v1", "index +1", H),
    proof_text("c2sp.org/tlog-proof@v1", "index ", H),
    proof_text("c2sp.org/tlog-proof@v1", "index  1", H),
    proof_text("c2sp.org/tlog-proof@v1", "Index 1", H),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", "extra eHl6", H),  # extra after index
    proof_text("c2sp.org/tlog-proof@v1", "extra eHl", "index 1", H),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", H.rstrip("=")),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", _spare_bits(H)),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", b64(HASHES[0][:31])),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", b64(HASHES[0] + b"\x00")),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", H + " "),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", *[H] * (MAX_PROOF_HASHES + 1)),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", H, checkpoint=b""),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", H, checkpoint=CHECKPOINT.text()),
    proof_text("c2sp.org/tlog-proof@v1", "index 1", H, checkpoint=b"\n" + SIGNED),
    b"c2sp.org/tlog-proof@v1\nindex 1\n" + SIGNED,  # no blank line
    proof_text("c2sp.org/tlog-proof@v1", "index 1", "h\u00e9"),
    b"",
], ids=["version", "header-space", "no-header", "no-index", "leading-zero", "negative", "plus",
        "empty-index", "two-spaces", "capital", "extra-after-index", "extra-not-base64",
        "hash-unpadded", "hash-spare-bits", "hash-31-bytes", "hash-33-bytes",
        "hash-trailing-space", "too-many-hashes", "no-checkpoint", "checkpoint-unsigned",
        "checkpoint-after-two-blank-lines", "no-blank-line", "non-ascii", "empty"])
def test_malformed_tlog_proofs(data: bytes) -> None:
    assert code_of(lambda: parse_tlog_proof(data)) == MALFORMED


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_tlog_proof_on_arbitrary_bytes_raises_only_rogatory_errors(data: bytes) -> None:
    try:
        proof = parse_tlog_proof(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert proof.encode() == data


proof_pieces = st.lists(st.sampled_from([
    b"c2sp.org/tlog-proof@v1", b"\n", b"\n\n", b"index ", b"extra ", b"0", b"7", b"01",
    H.encode(), b"eHl6", b" ", b"\xff", SIGNED, CHECKPOINT.text(),
]), max_size=10).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(proof_pieces)
def test_parse_tlog_proof_on_proof_like_bytes(data: bytes) -> None:
    try:
        proof = parse_tlog_proof(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert proof.encode() == data


# --- receipts carrying a proof of their log entry ----------------------------------------

ENVELOPE = hashlib.sha256(b"an envelope").hexdigest()
MESSAGE = "0123456789abcdef0123456789abcdef"


def receipt_at(index: int, **changes: Any) -> Receipt:
    args: dict[str, Any] = {
        "status": ReceiptStatus.ACCEPTED, "envelope_hash": ENVELOPE, "message_id": MESSAGE,
        "sender": "XA:MOJ", "receiver": "XB:MOJ", "receiver_key": "0" * 24, "received": NOW,
        "receiver_seed": LOG_SEED, "log_index": index,
    }
    args.update(changes)
    return sign_receipt(**args)


def earlier_entries() -> list[bytes]:
    return [
        encode_entry(EntryType.KEYS_ROTATED, {"identity": "0" * 24, "prekeys": [], "at": NOW}),
        encode_entry(EntryType.DIRECTORY_ADOPTED,
                     {"serial": 1, "digest": hashlib.sha256(b"d").hexdigest(), "at": NOW}),
        encode_entry(EntryType.ENVELOPE_SENT, {
            "envelope": hashlib.sha256(b"sent").hexdigest(), "id": "f" * 32, "from": "XB:MOJ",
            "to": "XC:PGO", "kind": "request", "created": NOW, "expires": NOW + 60, "at": NOW}),
    ]


class Log:
    """A log built with protocol.merkle alone: stored perfect subtrees, as a node keeps them."""

    def __init__(self, entries: Sequence[bytes] = ()) -> None:
        self.nodes: dict[merkle.Key, bytes] = {}
        self.size = 0
        for entry in entries:
            self.append(entry)

    def append(self, entry: bytes) -> int:
        index = self.size
        wanted = {key: self.nodes[key] for key in merkle.append_keys(index)}
        self.nodes.update(merkle.appended_nodes(index, merkle.leaf_hash(entry), wanted))
        self.size += 1
        return index

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = self.size if size is None else size
        return Checkpoint(LOG, size, merkle.root_from(size, self.nodes))

    def proof(self, index: int, size: int | None = None, seed: bytes = LOG_SEED) -> TlogProof:
        checkpoint = self.checkpoint(size)
        hashes = merkle.inclusion_proof(index, checkpoint.size, self.nodes)
        return TlogProof(index, tuple(hashes), sign_checkpoint(checkpoint, LOG, seed))


def accepted_with_proof(prior: int = 3, later: int = 0) -> tuple[Receipt, Log]:
    """The receiver's steps of PROTOCOL.md §12.3 over a log of ``prior`` earlier entries."""
    log = Log((earlier_entries() * 3)[:prior])
    receipt = receipt_at(log.size)
    assert log.append(received_entry(receipt)) == receipt.log_index
    proof = log.proof(receipt.log_index)
    for n in range(later):
        log.append(encode_entry(EntryType.DIRECTORY_ADOPTED, {
            "serial": n + 2, "digest": hashlib.sha256(b"%d" % n).hexdigest(), "at": NOW}))
    return receipt.with_proof(proof.encode()), log


def test_with_proof_round_trip() -> None:
    receipt = receipt_at(3)
    proof = TlogProof(3, HASHES, SIGNED).encode()
    proved = receipt.with_proof(proof)
    assert proved.proof == proof and proved.log_index == 3
    assert proved.signed == receipt.signed == receipt.data  # the proof is outside the signature
    assert proved.digest == receipt.digest
    assert proved.data == receipt.data + len(proof).to_bytes(4, "big") + proof
    again = parse_receipt(proved.data).verify(LOG_PUBLIC)
    assert again == proved and again.to_json() == receipt.to_json()
    assert parse_tlog_proof(again.proof) == TlogProof(3, HASHES, SIGNED)
    assert proved.with_proof(proof) == proved  # replacing the proof keeps the signed part


def test_with_proof_needs_a_log_index() -> None:
    receipt = receipt_at(3)
    without = sign_receipt(**{**_receipt_args(receipt), "log_index": None})
    with pytest.raises(ReceiptError) as caught:
        without.with_proof(b"proof")
    assert caught.value.code == "receipt.malformed"


def _receipt_args(receipt: Receipt) -> dict[str, Any]:
    return {"status": receipt.status, "envelope_hash": receipt.envelope_hash,
            "message_id": receipt.message_id, "sender": receipt.sender,
            "receiver": receipt.receiver, "receiver_key": receipt.receiver_key,
            "received": receipt.received, "receiver_seed": LOG_SEED,
            "log_index": receipt.log_index}


@pytest.mark.parametrize(("prior", "later"), [(0, 0), (1, 0), (3, 0), (4, 2), (6, 9)])
def test_verify_receipt_proof_happy_path(prior: int, later: int) -> None:
    receipt, log = accepted_with_proof(prior, later)
    receipt = parse_receipt(receipt.data).verify(LOG_PUBLIC)
    checkpoint = verify_receipt_proof(receipt, LOG_PUBLIC)
    assert checkpoint == log.checkpoint(prior + 1)
    assert receipt.log_index == prior
    leaf = hashlib.sha256(b"\x00" + received_entry(receipt)).digest()
    assert leaf == merkle.leaf_hash(received_entry(receipt))
    everything = [merkle.leaf_hash(e) for e in (earlier_entries() * 3)[:prior]] + [leaf]
    assert checkpoint.root == merkle.root_of(everything)
    assert b'"type":"envelope-received"' in received_entry(receipt)


def test_verify_receipt_proof_refusals() -> None:
    receipt, log = accepted_with_proof(3)
    index = receipt.log_index
    assert index == 3

    def refused(proof: TlogProof | bytes, target: Receipt = receipt) -> str:
        data = proof.encode() if isinstance(proof, TlogProof) else proof
        return code_of(lambda: verify_receipt_proof(target.with_proof(data), LOG_PUBLIC))

    other = log.proof(2, 4)  # a genuine proof of another entry
    assert refused(other) == PROOF_INVALID
    assert refused(replace(other, index=index)) == PROOF_INVALID
    genuine = parse_tlog_proof(receipt.proof)
    assert refused(replace(genuine, index=2)) == PROOF_INVALID
    tampered = (bytes([genuine.hashes[0][0] ^ 1]) + genuine.hashes[0][1:], *genuine.hashes[1:])
    assert refused(replace(genuine, hashes=tampered)) == PROOF_INVALID
    assert refused(replace(genuine, hashes=genuine.hashes[:-1])) == PROOF_INVALID
    assert refused(log.proof(index, seed=OTHER_SEED)) == SIGNATURE_INVALID
    assert code_of(lambda: verify_receipt_proof(receipt, OTHER_PUBLIC)) == SIGNATURE_INVALID
    foreign = Checkpoint(log_origin("XC:PGO"), 4, log.checkpoint(4).root)
    assert refused(replace(genuine, checkpoint=sign_checkpoint(foreign, LOG, LOG_SEED))) \
        == SIGNATURE_INVALID
    assert refused(b"not a proof") == MALFORMED
    # The entry rebuilt from the receipt must be the one the log holds.
    later = receipt_at(3, received=NOW + 1)
    assert refused(genuine, later) == PROOF_INVALID
    no_proof = receipt_at(3)
    assert code_of(lambda: verify_receipt_proof(no_proof, LOG_PUBLIC)) == PROOF_INVALID


def test_verify_receipt_proof_checks_each_distinct_checkpoint_once_per_batch() -> None:
    """The receipts of a batch share one checkpoint: with ``opened`` it is verified once, and
    a checkpoint that differs in any byte, or a different key, is verified again."""
    receipt, log = accepted_with_proof(3)
    opened: dict[tuple[bytes, str, bytes], Checkpoint] = {}
    assert verify_receipt_proof(receipt, LOG_PUBLIC, opened=opened) == log.checkpoint(4)
    assert len(opened) == 1
    assert verify_receipt_proof(receipt, LOG_PUBLIC, opened=opened) == log.checkpoint(4)
    assert len(opened) == 1
    genuine = parse_tlog_proof(receipt.proof)
    forged = receipt.with_proof(log.proof(3, seed=OTHER_SEED).encode())
    assert code_of(lambda: verify_receipt_proof(forged, LOG_PUBLIC, opened=opened)) \
        == SIGNATURE_INVALID
    assert code_of(lambda: verify_receipt_proof(receipt, OTHER_PUBLIC, opened=opened)) \
        == SIGNATURE_INVALID
    assert len(opened) == 1 and next(iter(opened))[0] == genuine.checkpoint

"""Check every file in tests/vectors/ against the implementation, and rebuild what can be rebuilt.

Each vector file holds one case with a ``type`` and a ``description``. The envelope vectors are
opened with ``open_envelope`` by a receiver built only from the file (its private prekeys, its
directory of identity keys, ``now`` and the pairs it has seen); a second implementation can run
the same files the same way. The generator, ``scripts/make_vectors.py``, is imported to rebuild
every vector: all but the HPKE-random envelope bytes must come out byte for byte the same.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nacl.signing import VerifyKey

from protocol import merkle
from protocol.case_message import encode_case_message, parse_case_message
from protocol.checkpoint import open_checkpoint, parse_tlog_proof, verify_cosignature
from protocol.encoding import (
    Reader,
    b64decode,
    b64encode,
    canonical_json,
    frame,
    pae,
    parse_canonical_json,
)
from protocol.envelope import ReceiverPrekey, open_envelope, parse_envelope
from protocol.errors import (
    EncodingError,
    EnvelopeError,
    EnvelopeKeyRevoked,
    EnvelopeUnknownSender,
    LogError,
    ReceiptError,
    RogatoryError,
)
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind
from protocol.log_entry import (
    EntryType,
    encode_entry,
    log_origin,
    parse_entry,
    received_entry,
    verify_receipt_proof,
)
from protocol.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    key_hash,
    parse_note,
    verifier_key,
)
from protocol.receipt import parse_receipt
from protocol.signing import LABELS, public_key_of, sign, verify
from protocol.suites import Suite, key_id, public_from_private

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FILES = sorted(HERE.glob("*.json"))
TYPES = {"envelope", "receipt", "canonical-json", "base64url", "frame", "pae", "signature",
         "key-id", "header", "log-entry", "merkle", "checkpoint", "cosigned-checkpoint",
         "tlog-proof", "receipt-proof", "case-message"}


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "make_vectors.py"
    spec = importlib.util.spec_from_file_location("make_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_vectors"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


def load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return vector


def of_type(kind: str) -> list[Path]:
    return [path for path in FILES if load(path)["type"] == kind]


def ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


# --- the set of files ----------------------------------------------------------------------


def test_files_are_exactly_the_generators_cases() -> None:
    assert {path.stem for path in FILES} == set(GENERATOR.CASES)


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_every_file_is_one_described_case(path: Path) -> None:
    vector = load(path)
    assert isinstance(vector["description"], str) and len(vector["description"]) > 20
    assert vector["type"] in TYPES
    assert path.read_text(encoding="utf-8").isascii()


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_rebuilding_gives_the_same_vector(path: Path) -> None:
    """Deterministic vectors are rebuilt byte for byte; envelope files all but the HPKE bytes."""
    case = GENERATOR.CASES[path.stem]
    stored = load(path)
    fresh = case.build()
    if case.random:
        assert GENERATOR.comparable(stored) == GENERATOR.comparable(fresh)
    else:
        assert path.read_text(encoding="utf-8") == GENERATOR.render(fresh)


def test_generator_does_not_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "envelope-accepted-hybrid.json"
    target.write_text("keep me\n", encoding="utf-8")
    assert GENERATOR.main(["--out", str(tmp_path)]) == 0
    assert target.read_text(encoding="utf-8") == "keep me\n"
    assert len(list(tmp_path.glob("*.json"))) == len(GENERATOR.CASES)
    assert GENERATOR.main(["--out", str(tmp_path), "--check"]) == 1  # the kept file differs
    assert GENERATOR.main(["--out", str(tmp_path), "--force"]) == 0
    assert GENERATOR.main(["--out", str(tmp_path), "--check"]) == 0
    fresh = load(target)
    assert fresh["envelope_b64"] != load(HERE / target.name)["envelope_b64"]  # HPKE is random


def test_stored_vectors_pass_the_generators_check() -> None:
    assert GENERATOR.main(["--check"]) == 0


# --- envelopes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorDirectory:
    """``SenderKeys`` from a vector's "directory": unknown pairs and revoked keys are refused."""

    entries: list[dict[str, Any]]

    def sender_key(self, authority_id: str, key_id: str, *, now: int, created: int) -> bytes:
        for entry in self.entries:
            if (entry["authority"], entry["key_id"]) == (authority_id, key_id):
                if entry["revoked"]:
                    raise EnvelopeKeyRevoked(f"{authority_id} {key_id}")
                return b64decode(entry["public_b64"])
        raise EnvelopeUnknownSender(f"{authority_id} {key_id}")


def open_vector(vector: dict[str, Any]) -> Any:
    state = vector["receiver"]
    prekeys = {
        p["id"]: ReceiverPrekey(p["id"], Suite.from_name(p["suite"]), b64decode(p["private_b64"]),
                                p["not_before"], p["not_after"])
        for p in state["prekeys"]
    }
    seen = {(pair["sender"], pair["id"]) for pair in state["seen"]}
    return open_envelope(
        b64decode(vector["envelope_b64"]),
        me=state["me"],
        now=state["now"],
        senders=VectorDirectory(vector["directory"]),
        prekey=prekeys.get,
        strongest_suite=Suite.from_name(state["strongest_suite"]),
        already_used=lambda sender, message_id: (sender, message_id) in seen,
        max_skew=state["max_skew"],
    )


ENVELOPES = of_type("envelope")


@pytest.mark.parametrize("path", ENVELOPES, ids=ids(ENVELOPES))
def test_envelope_vector(path: Path) -> None:
    vector = load(path)
    expected = vector["expected"]
    if expected["outcome"] == "accepted":
        opened = open_vector(vector)
        data = b64decode(vector["envelope_b64"])
        assert opened.hash == expected["envelope_hash"] == hashlib.sha256(data).hexdigest()
        assert opened.package.content_type == expected["content_type"]
        assert opened.package.payload == b64decode(expected["payload_b64"])
        assert opened.header.id == expected["message_id"]
        assert opened.header.sender == expected["sender"]
    else:
        assert expected["outcome"] == "rejected"
        with pytest.raises(EnvelopeError) as caught:
            open_vector(vector)
        assert caught.value.code == expected["code"]


@pytest.mark.parametrize("path", ENVELOPES, ids=ids(ENVELOPES))
def test_envelope_vector_keys_rederive_from_seeds(path: Path) -> None:
    vector = load(path)
    for entry in vector["directory"]:
        assert key_id(b64decode(entry["public_b64"])) == entry["key_id"]
    for signer in vector["signers"]:
        seed = bytes.fromhex(signer["seed_hex"])
        assert seed == GENERATOR.derive(signer["seed_label"])
        listed = [e for e in vector["directory"] if e["authority"] == signer["authority"]]
        for entry in listed:
            assert b64decode(entry["public_b64"]) == public_key_of(seed)
    for prekey in vector["receiver"]["prekeys"]:
        suite = Suite.from_name(prekey["suite"])
        assert key_id(public_from_private(suite, b64decode(prekey["private_b64"]))) == prekey["id"]


@pytest.mark.parametrize("path", ENVELOPES, ids=ids(ENVELOPES))
def test_envelope_outer_signature_rederives(path: Path) -> None:
    """Where the envelope parses, its outer signature is exactly Ed25519 by the named signer."""
    vector = load(path)
    data = b64decode(vector["envelope_b64"])
    try:
        envelope = parse_envelope(data)
    except EnvelopeError:
        assert vector["expected"]["code"] in {
            "envelope.malformed", "envelope.version_unsupported", "envelope.kind_unknown",
            "envelope.suite_unsupported",
        }
        return
    body = hashlib.sha256(envelope.sealed).digest() + envelope.header_bytes
    seeds = {s["authority"]: bytes.fromhex(s["seed_hex"]) for s in vector["signers"]}
    recomputed = sign(seeds[envelope.header.sender], LABELS["envelope"], body)
    if vector["expected"].get("code") == "envelope.signature_invalid":
        assert recomputed != envelope.signature
    else:
        assert recomputed == envelope.signature


# --- receipts --------------------------------------------------------------------------------

RECEIPTS = of_type("receipt")


@pytest.mark.parametrize("path", RECEIPTS, ids=ids(RECEIPTS))
def test_receipt_vector(path: Path) -> None:
    vector = load(path)
    signer = vector["signer"]
    seed = bytes.fromhex(signer["seed_hex"])
    public = b64decode(signer["public_b64"])
    assert seed == GENERATOR.derive(signer["seed_label"])
    assert public_key_of(seed) == public
    assert key_id(public) == signer["key_id"]
    data = b64decode(vector["receipt_b64"])
    expected = vector["expected"]
    if expected["outcome"] == "verified":
        receipt = parse_receipt(data).verify(public)
        assert receipt.to_json() == expected["body"]
        assert receipt.receiver_key == signer["key_id"]
        assert data[9:-64] == canonical_json(expected["body"])
        assert data[-64:] == sign(seed, LABELS["receipt"], data[9:-64])
    else:
        with pytest.raises(ReceiptError) as caught:
            parse_receipt(data).verify(public)
        assert caught.value.code == expected["code"]


# --- encodings -------------------------------------------------------------------------------

CANONICAL = of_type("canonical-json")


@pytest.mark.parametrize("path", CANONICAL, ids=ids(CANONICAL))
def test_canonical_json_vector(path: Path) -> None:
    vector = load(path)
    if vector["expected"]["outcome"] == "accepted":
        data = bytes.fromhex(vector["canonical_hex"])
        assert data.decode("utf-8") == vector["canonical_text"]
        assert canonical_json(vector["value"]) == data
        assert parse_canonical_json(data) == vector["value"]
    else:
        data = bytes.fromhex(vector["input_hex"])
        with pytest.raises(EncodingError) as caught:
            parse_canonical_json(data)
        assert caught.value.code == vector["expected"]["code"]


BASE64 = of_type("base64url")


@pytest.mark.parametrize("path", BASE64, ids=ids(BASE64))
def test_base64url_vector(path: Path) -> None:
    vector = load(path)
    if vector["expected"]["outcome"] == "accepted":
        data = bytes.fromhex(vector["expected"]["bytes_hex"])
        assert b64decode(vector["text"]) == data
        assert b64encode(data) == vector["text"]
    else:
        with pytest.raises(EncodingError) as caught:
            b64decode(vector["text"])
        assert caught.value.code == vector["expected"]["code"]


@pytest.mark.parametrize("path", of_type("frame"), ids=ids(of_type("frame")))
def test_frame_vector(path: Path) -> None:
    vector = load(path)
    parts = [bytes.fromhex(part) for part in vector["parts_hex"]]
    framed = bytes.fromhex(vector["framed_hex"])
    assert frame(*parts) == framed
    reader = Reader(framed)
    assert [reader.framed() for _ in parts] == parts
    reader.end()


@pytest.mark.parametrize("path", of_type("pae"), ids=ids(of_type("pae")))
def test_pae_vector(path: Path) -> None:
    vector = load(path)
    label, body = vector["label"], bytes.fromhex(vector["body_hex"])
    expected = bytes.fromhex(vector["pae_hex"])
    assert pae(label, body) == expected
    encoded_label = label.encode("utf-8")
    assert expected == b"DSSEv1 %d %s %d %s" % (len(encoded_label), encoded_label, len(body), body)


SIGNATURES = of_type("signature")


def test_one_signature_vector_per_label() -> None:
    assert sorted(load(path)["label"] for path in SIGNATURES) == sorted(LABELS.values())


@pytest.mark.parametrize("path", SIGNATURES, ids=ids(SIGNATURES))
def test_signature_vector(path: Path) -> None:
    vector = load(path)
    seed = bytes.fromhex(vector["seed_hex"])
    public = b64decode(vector["public_b64"])
    body = bytes.fromhex(vector["body_hex"])
    signature = b64decode(vector["signature_b64"])
    assert seed == GENERATOR.derive(vector["seed_label"])
    assert public_key_of(seed) == public
    assert bytes.fromhex(vector["signed_hex"]) == pae(vector["label"], body)
    assert sign(seed, vector["label"], body) == signature
    assert verify(public, vector["label"], body, signature)
    assert set(vector["invalid_under"]) == set(LABELS.values()) - {vector["label"]}
    for other in vector["invalid_under"]:
        assert not verify(public, other, body, signature)


KEY_IDS = of_type("key-id")


@pytest.mark.parametrize("path", KEY_IDS, ids=ids(KEY_IDS))
def test_key_id_vector(path: Path) -> None:
    vector = load(path)
    private = b64decode(vector["private_b64"])
    public = b64decode(vector["public_b64"])
    if vector["key_type"] == "ed25519":
        assert private == GENERATOR.derive(vector["seed_label"])
        assert public_key_of(private) == public
    else:
        assert public_from_private(Suite.from_name(vector["key_type"]), private) == public
    assert key_id(public) == vector["key_id"] == hashlib.sha256(public).hexdigest()[:24]


@pytest.mark.parametrize("path", of_type("header"), ids=ids(of_type("header")))
def test_header_vector(path: Path) -> None:
    vector = load(path)
    data = b64decode(vector["header_b64"])
    header = EnvelopeHeader.decode(data)
    assert header.to_json() == vector["fields"]
    assert header.encode() == data == canonical_json(vector["fields"])
    assert hashlib.sha256(data).hexdigest() == vector["sha256_hex"]
    info = bytes.fromhex(vector["hpke_info_hex"])
    assert info == b"rogatory/v1/envelope-hpke\x00" + hashlib.sha256(data).digest()


# --- audit log -------------------------------------------------------------------------------
#
# The Merkle maths below is a literal transcription of RFC 9162 section 2.1 (MTH, PATH, PROOF),
# and signed-note, checkpoint and cosignature bytes are rebuilt from the C2SP text, so that these
# checks do not lean on the code they check.


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*audit_path(m, leaves[:k]), mth(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    if m == len(leaves):
        return [] if complete else [mth(leaves)]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def check_signer(signer: dict[str, Any], alg: int) -> bytes:
    """The signer's seed rederives its public key, key id and (for type 0x01) vkey."""
    seed = bytes.fromhex(signer["seed_hex"])
    public = b64decode(signer["public_b64"])
    assert seed == GENERATOR.derive(signer["seed_label"])
    assert public_key_of(seed) == public
    name = signer["name"]
    note_id = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]
    assert signer["note_key_id_hex"] == note_id.hex() == key_hash(name, alg, public).hex()
    if alg == ALG_ED25519:
        expected = f"{name}+{note_id.hex()}+" + base64.b64encode(b"\x01" + public).decode()
        assert signer["vkey"] == expected == verifier_key(name, public)
    return public


def checkpoint_text(expected: dict[str, Any]) -> bytes:
    root = base64.b64encode(bytes.fromhex(expected["root_hex"])).decode()
    return f"{expected['origin']}\n{expected['size']}\n{root}\n".encode()


def signature_lines(note: bytes) -> dict[str, bytes]:
    """Key name -> key id || signature, read straight off the note's signature lines."""
    _, _, block = note.rpartition(b"\n\n")
    lines = block.decode("utf-8").splitlines()
    assert all(line.startswith("\u2014 ") for line in lines)
    return {name: base64.b64decode(blob, validate=True)
            for name, blob in (line[2:].split(" ") for line in lines)}


LOG_ENTRIES = of_type("log-entry")


def test_one_log_entry_vector_per_entry_type() -> None:
    assert sorted(load(path)["entry_type"] for path in LOG_ENTRIES) \
        == sorted(t.value for t in EntryType)


@pytest.mark.parametrize("path", LOG_ENTRIES, ids=ids(LOG_ENTRIES))
def test_log_entry_vector(path: Path) -> None:
    vector = load(path)
    data = bytes.fromhex(vector["entry_hex"])
    entry_type = EntryType(vector["entry_type"])
    assert data.decode("utf-8") == vector["entry_text"]
    assert data == canonical_json({"v": 1, "type": entry_type.value, **vector["fields"]})
    assert encode_entry(entry_type, vector["fields"]) == data
    assert parse_entry(data) == (entry_type, vector["fields"])
    assert bytes.fromhex(vector["leaf_hash_hex"]) == leaf(data) == merkle.leaf_hash(data)


@pytest.mark.parametrize("path", of_type("merkle"), ids=ids(of_type("merkle")))
def test_merkle_vector(path: Path) -> None:
    vector = load(path)
    entries = [bytes.fromhex(e) for e in vector["entries_hex"]]
    leaves = [leaf(e) for e in entries]
    assert [bytes.fromhex(h) for h in vector["leaf_hashes_hex"]] == leaves
    assert [bytes.fromhex(h) for h in vector["roots_hex"]] \
        == [mth(leaves[:n]) for n in range(len(leaves) + 1)]
    root = bytes.fromhex(vector["root_hex"])
    assert root == mth(leaves) == merkle.root_of(leaves)
    for entry in entries:
        parse_entry(entry)
    inclusion = vector["inclusion"]
    index, size = inclusion["index"], inclusion["size"]
    proof = [bytes.fromhex(h) for h in inclusion["proof_hex"]]
    assert proof == audit_path(index, leaves[:size])
    merkle.verify_inclusion(leaves[index], index, size, proof, mth(leaves[:size]))
    consistency = vector["consistency"]
    old, new = consistency["old_size"], consistency["new_size"]
    old_root, new_root = (bytes.fromhex(consistency[k]) for k in ("old_root_hex", "new_root_hex"))
    assert (old_root, new_root) == (mth(leaves[:old]), mth(leaves[:new]))
    proof = [bytes.fromhex(h) for h in consistency["proof_hex"]]
    assert proof == subproof(old, leaves[:new], True)
    merkle.verify_consistency(old, new, old_root, new_root, proof)


@pytest.mark.parametrize("path", of_type("checkpoint"), ids=ids(of_type("checkpoint")))
def test_checkpoint_vector(path: Path) -> None:
    vector = load(path)
    signer = vector["signer"]
    public = check_signer(signer, ALG_ED25519)
    note = vector["note_text"].encode("utf-8")
    expected = vector["expected"]
    assert expected["outcome"] == "verified"
    assert signer["name"] == expected["origin"] == log_origin(signer["authority"])
    assert note.startswith(checkpoint_text(expected) + b"\n")
    blob = signature_lines(note)[signer["name"]]
    assert blob[:4].hex() == signer["note_key_id_hex"]
    VerifyKey(public).verify(checkpoint_text(expected), blob[4:])
    checkpoint, _ = open_checkpoint(note, signer["name"], public)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root.hex()) \
        == (expected["origin"], expected["size"], expected["root_hex"])


COSIGNED = of_type("cosigned-checkpoint")


@pytest.mark.parametrize("path", COSIGNED, ids=ids(COSIGNED))
def test_cosigned_checkpoint_vector(path: Path) -> None:
    vector = load(path)
    note = vector["note_text"].encode("utf-8")
    expected = vector["expected"]
    log_public = check_signer(vector["log"], ALG_ED25519)
    checkpoint, parsed = open_checkpoint(note, vector["log"]["name"], log_public)
    assert checkpoint.text() == checkpoint_text(expected)
    lines = signature_lines(note)
    assert len(lines) == 1 + len(vector["witnesses"])
    for witness in vector["witnesses"]:
        public = check_signer(witness, ALG_COSIGNATURE_V1)
        assert witness["name"] == f"rogatory/witness/{witness['authority']}"
        message = witness["cosigned_message_text"].encode()
        assert message == b"cosignature/v1\ntime %d\n" % witness["timestamp"] \
            + checkpoint_text(expected)
        blob = lines[witness["name"]]
        assert blob[:4].hex() == witness["note_key_id_hex"]
        assert int.from_bytes(blob[4:12], "big") == witness["timestamp"]
        VerifyKey(public).verify(message, blob[12:])
        (line,) = [s for s in parsed.signatures if s.name == witness["name"]]
        assert verify_cosignature(checkpoint, line, witness["name"], public) \
            == witness["timestamp"]


@pytest.mark.parametrize("path", of_type("tlog-proof"), ids=ids(of_type("tlog-proof")))
def test_tlog_proof_vector(path: Path) -> None:
    vector = load(path)
    data = vector["proof_text"].encode("utf-8")
    expected = vector["expected"]
    hashes = [bytes.fromhex(h) for h in expected["hashes_hex"]]
    header = ["c2sp.org/tlog-proof@v1", f"index {expected['index']}",
              *(base64.b64encode(h).decode() for h in hashes)]
    assert data.startswith("\n".join(header).encode() + b"\n\n")
    proof = parse_tlog_proof(data)
    assert (proof.index, list(proof.hashes), proof.extra) == (expected["index"], hashes, None)
    assert proof.encode() == data
    public = check_signer(vector["log"], ALG_ED25519)
    checkpoint, _ = open_checkpoint(proof.checkpoint, vector["log"]["name"], public)
    assert checkpoint.text() == checkpoint_text(expected)
    entry = bytes.fromhex(vector["entry_hex"])
    parse_entry(entry)
    merkle.verify_inclusion(leaf(entry), proof.index, checkpoint.size, hashes, checkpoint.root)


RECEIPT_PROOFS = of_type("receipt-proof")


@pytest.mark.parametrize("path", RECEIPT_PROOFS, ids=ids(RECEIPT_PROOFS))
def test_receipt_proof_vector(path: Path) -> None:
    vector = load(path)
    receiver = vector["receiver"]
    public = check_signer(receiver, ALG_ED25519)
    assert key_id(public) == receiver["key_id"]
    assert receiver["name"] == log_origin(receiver["authority"])
    data = b64decode(vector["receipt_b64"])
    receipt = parse_receipt(data).verify(public)  # the proof is outside the signature
    assert receipt.receiver == receiver["authority"] and receipt.receiver_key == receiver["key_id"]
    assert data == receipt.signed + frame(receipt.proof)
    entry = bytes.fromhex(vector["entry_hex"])
    assert received_entry(receipt) == entry == canonical_json({
        "v": 1, "type": "envelope-received", "envelope": receipt.envelope_hash,
        "id": receipt.message_id, "from": receipt.sender, "to": receipt.receiver,
        "received": receipt.received})
    expected = vector["expected"]
    if expected["outcome"] == "verified":
        checkpoint = verify_receipt_proof(receipt, public)
        assert receipt.log_index == expected["log_index"]
        assert checkpoint.text() == checkpoint_text(expected)
        proof = parse_tlog_proof(receipt.proof)
        assert proof.index == receipt.log_index
        merkle.verify_inclusion(leaf(entry), proof.index, checkpoint.size, proof.hashes,
                                checkpoint.root)
    else:
        with pytest.raises(LogError) as caught:
            verify_receipt_proof(receipt, public)
        assert caught.value.code == expected["code"]


def test_receipt_proof_rejections_differ_from_the_acceptance_only_in_their_flaw() -> None:
    """Each rejected case carries the same signed receipt; only the proof after it differs."""
    accepted = parse_receipt(b64decode(load(HERE / "receipt-proof-accepted.json")["receipt_b64"]))
    for path in RECEIPT_PROOFS:
        receipt = parse_receipt(b64decode(load(path)["receipt_b64"]))
        assert receipt.signed == accepted.signed
        if path.stem != "receipt-proof-accepted":
            assert receipt.proof != accepted.proof
            parse_note(parse_tlog_proof(receipt.proof).checkpoint)


CASE_MESSAGES = of_type("case-message")


@pytest.mark.parametrize("path", CASE_MESSAGES, ids=ids(CASE_MESSAGES))
def test_case_message_vector(path: Path) -> None:
    vector = load(path)
    data = bytes.fromhex(vector["body_hex"])
    assert data.decode("utf-8") == vector["body_text"]
    kind = Kind.from_name(vector["envelope_kind"])
    if vector["expected"]["outcome"] == "accepted":
        message = parse_case_message(data, kind=kind)
        assert encode_case_message(message) == data
    else:
        with pytest.raises(RogatoryError) as caught:
            parse_case_message(data, kind=kind)
        assert caught.value.code == vector["expected"]["code"]

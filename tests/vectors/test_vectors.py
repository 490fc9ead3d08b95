"""Check every file in tests/vectors/ against the implementation, and rebuild what can be rebuilt.

Each vector file holds one case with a ``type`` and a ``description``. The envelope vectors are
opened with ``open_envelope`` by a receiver built only from the file (its private prekeys, its
directory of identity keys, ``now`` and the pairs it has seen); a second implementation can run
the same files the same way. The generator, ``scripts/make_vectors.py``, is imported to rebuild
every vector: all but the HPKE-random envelope bytes must come out byte for byte the same.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

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
    ReceiptError,
)
from protocol.header import EnvelopeHeader
from protocol.receipt import parse_receipt
from protocol.signing import LABELS, public_key_of, sign, verify
from protocol.suites import Suite, key_id, public_from_private

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FILES = sorted(HERE.glob("*.json"))
TYPES = {"envelope", "receipt", "canonical-json", "base64url", "frame", "pae", "signature",
         "key-id", "header"}


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

"""C2SP tlog-checkpoint, tlog-cosignature (cosignature/v1) and tlog-proof, for the audit log.

A checkpoint is the log's signed statement of its size and root; a cosignature is a witness's
timestamped statement that this is the largest consistent tree it has seen of that log; a
tlog-proof bundles an entry's index, its inclusion proof and a checkpoint, and is what a
Rogatory receipt carries after its signature.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from protocol.errors import LogMalformed, LogSignatureInvalid
from protocol.note import (
    ALG_COSIGNATURE_V1,
    Note,
    NoteSignature,
    _b64,
    _unb64,
    key_hash,
    parse_note,
    sign_note,
    verify_note,
)

__all__ = [
    "Checkpoint",
    "TlogProof",
    "cosign",
    "open_checkpoint",
    "parse_checkpoint_text",
    "parse_tlog_proof",
    "sign_checkpoint",
    "verify_cosignature",
    "with_signatures",
]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 64
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> bytes:
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def parse_checkpoint_text(text: bytes) -> Checkpoint:
    try:
        lines = text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise LogMalformed("checkpoint is not UTF-8") from None
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise LogMalformed("a checkpoint is origin, size and root lines, each ending in \\n")
    origin, size, root, *extensions = lines[:-1]
    if _DECIMAL.fullmatch(size) is None or int(size) >= 2**63:
        raise LogMalformed(f"checkpoint size {size!r} is not a decimal without leading zeros")
    root_hash = _unb64(root, "checkpoint root")
    if len(root_hash) != 32:
        raise LogMalformed("checkpoint root is not 32 bytes")
    checkpoint = Checkpoint(origin, int(size), root_hash, tuple(extensions))
    if checkpoint.text() != text:
        raise LogMalformed("checkpoint text is not in canonical form")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, name: str, seed: bytes) -> bytes:
    text = checkpoint.text()
    return Note(text, (sign_note(text, name, seed),)).encode()


def open_checkpoint(data: bytes, name: str, public_raw: bytes) -> tuple[Checkpoint, Note]:
    """Verify the log's own signature; the log's key name must be the checkpoint's origin."""
    note = parse_note(data)
    checkpoint = parse_checkpoint_text(note.text)
    if checkpoint.origin != name:
        raise LogSignatureInvalid(f"checkpoint of {checkpoint.origin!r}, expected {name!r}")
    verify_note(note, name, public_raw)
    return checkpoint, note


def _cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint.text()


def cosign(checkpoint: Checkpoint, name: str, seed: bytes, timestamp: int) -> NoteSignature:
    if not 0 <= timestamp < 2**63:
        raise LogMalformed("cosignature timestamp out of range")
    key = SigningKey(seed)
    signature = key.sign(_cosigned_message(checkpoint, timestamp)).signature
    return NoteSignature(name, key_hash(name, ALG_COSIGNATURE_V1, bytes(key.verify_key)),
                         timestamp.to_bytes(8, "big") + signature)


def verify_cosignature(checkpoint: Checkpoint, signature: NoteSignature, name: str,
                       public_raw: bytes) -> int:
    """Check a witness's cosignature and return the time it states."""
    if signature.name != name or signature.key_hash != key_hash(name, ALG_COSIGNATURE_V1,
                                                                 public_raw):
        raise LogSignatureInvalid(f"not a cosignature by {name}")
    if len(signature.signature) != 72:
        raise LogSignatureInvalid("a cosignature is an 8-byte time and a 64-byte signature")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    try:
        VerifyKey(public_raw).verify(_cosigned_message(checkpoint, timestamp),
                                     signature.signature[8:])
    except BadSignatureError:
        raise LogSignatureInvalid(f"cosignature by {name} does not verify") from None
    return timestamp


def with_signatures(data: bytes, extra: Iterable[NoteSignature]) -> bytes:
    """The note with more signature lines; one line per (name, key id), newest kept."""
    note = parse_note(data)
    merged = {(s.name, s.key_hash): s for s in note.signatures}
    for signature in extra:
        merged[(signature.name, signature.key_hash)] = signature
    return Note(note.text, tuple(merged.values())).encode()


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def encode(self) -> bytes:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_b64(h) for h in self.hashes)
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint


def parse_tlog_proof(data: bytes) -> TlogProof:
    split = data.find(b"\n\n")
    if split < 0:
        raise LogMalformed("a tlog-proof has a blank line before its checkpoint")
    try:
        lines = data[:split].decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise LogMalformed("tlog-proof header is not ASCII") from None
    if lines[0] != PROOF_HEADER:
        raise LogMalformed(f"first line must be {PROOF_HEADER}")
    position = 1
    extra = None
    if position < len(lines) and lines[position].startswith("extra "):
        extra = _unb64(lines[position][6:], "extra data")
        position += 1
    if position >= len(lines) or not lines[position].startswith("index "):
        raise LogMalformed("tlog-proof needs an index line")
    index_text = lines[position][6:]
    if _DECIMAL.fullmatch(index_text) is None:
        raise LogMalformed(f"index {index_text!r} is not a decimal without leading zeros")
    hashes = tuple(_unb64(line, "proof hash") for line in lines[position + 1:])
    if len(hashes) > MAX_PROOF_HASHES or any(len(h) != 32 for h in hashes):
        raise LogMalformed("proof hashes are up to 64 SHA-256 values")
    checkpoint = data[split + 2:]
    parse_note(checkpoint)
    return TlogProof(int(index_text), hashes, checkpoint, extra)

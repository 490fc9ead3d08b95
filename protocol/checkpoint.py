"""C2SP tlog-checkpoint, tlog-cosignature (cosignature/v1) and tlog-proof, for the audit log.

A *checkpoint* (c2sp.org/tlog-checkpoint) is a signed note whose text is the log's origin, its
tree size and its RFC 6962 root hash, one per line, then optional extension lines. The log signs
it with an Ed25519 note signature under a key named after the origin.

A *cosignature* (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``, signature type 0x04) is
a witness's note signature on that checkpoint: an 8-byte big-endian POSIX timestamp followed by
an Ed25519 signature over ``"cosignature/v1\\ntime <timestamp>\\n"`` and the checkpoint text. It
states that, at that time, this was the largest consistent tree the witness had seen of the log.

A *tlog-proof* (c2sp.org/tlog-proof@v1) bundles an entry's index, its inclusion proof and the
(co)signed checkpoint; it is what a Rogatory acceptance receipt carries after its signature:

    c2sp.org/tlog-proof@v1
    extra <base64>              (optional)
    index <decimal>
    <base64 SHA-256 hash>       (zero or more, leaf's sibling first)
    <blank line>
    <signed checkpoint note, verbatim>
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.errors import LogMalformed, LogSignatureInvalid
from protocol.note import (
    ALG_COSIGNATURE_V1,
    MAX_NOTE_BYTES,
    Note,
    NoteSignature,
    ed25519_valid,
    key_hash,
    parse_note,
    sign_note,
    signing_key,
    std_b64decode,
    std_b64encode,
    verify_note,
)

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_INT63",
    "MAX_PROOF_HASHES",
    "PROOF_HEADER",
    "Checkpoint",
    "TlogProof",
    "cosign",
    "cosigned_message",
    "open_checkpoint",
    "parse_checkpoint_text",
    "parse_tlog_proof",
    "sign_checkpoint",
    "verify_cosignature",
    "with_signatures",
]

HASH_LENGTH = 32
MAX_INT63 = 2**63 - 1  # tree sizes, indexes and cosignature timestamps
# An inclusion proof in a tree of at most 2^63 - 1 leaves has at most 63 hashes.
MAX_PROOF_HASHES = 63
MAX_EXTRA_BYTES = 64 * 1024
MAX_PROOF_BYTES = MAX_NOTE_BYTES + 128 * 1024
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
COSIGNATURE_HEADER = "cosignature/v1"
COSIGNATURE_LENGTH = 8 + 64
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")  # ASCII digits, no leading zeros, < 10^19
_CONTROL = re.compile(r"[\x00-\x1f]")  # no control characters (nor newlines) inside a line


def _decimal(text: str, what: str) -> int:
    if _DECIMAL.fullmatch(text) is None or int(text) > MAX_INT63:
        raise LogMalformed(f"{what} {text[:24]!r} is not a decimal from 0 to 2^63-1 "
                           "without leading zeros")
    return int(text)


def _in_range(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT63:
        raise LogMalformed(f"{what} must be an integer from 0 to 2^63-1")
    return value


def _check_line(line: object, what: str) -> None:
    if not isinstance(line, str) or not line or _CONTROL.search(line):
        raise LogMalformed(f"{what} must be a non-empty line without control characters")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise LogMalformed(f"{what} is not valid Unicode") from None


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and opaque extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "the checkpoint origin")
        _in_range(self.size, "the tree size")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_LENGTH:
            raise LogMalformed(f"the root hash is {HASH_LENGTH} bytes")
        if not isinstance(self.extensions, tuple):
            raise LogMalformed("checkpoint extensions are a tuple of lines")
        for extension in self.extensions:
            _check_line(extension, "a checkpoint extension")

    def text(self) -> bytes:
        """The note text: origin, size and base64 root lines, then extension lines."""
        lines = [self.origin, str(self.size), std_b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")


def parse_checkpoint_text(text: bytes) -> Checkpoint:
    """Parse a checkpoint's note text; only the canonical spelling of each line is accepted."""
    if not isinstance(text, bytes):
        raise LogMalformed("checkpoint text is bytes")
    if len(text) > MAX_NOTE_BYTES:
        raise LogMalformed(f"checkpoint text is at most {MAX_NOTE_BYTES} bytes")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise LogMalformed("checkpoint text is not UTF-8") from None
    if not decoded.endswith("\n"):
        raise LogMalformed("checkpoint text ends in a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) < 3:
        raise LogMalformed("a checkpoint has origin, tree size and root hash lines")
    origin, size, root, *extensions = lines
    _check_line(origin, "the checkpoint origin")
    root_hash = std_b64decode(root, "the root hash")
    if len(root_hash) != HASH_LENGTH:
        raise LogMalformed(f"the root hash is {HASH_LENGTH} bytes")
    checkpoint = Checkpoint(origin, _decimal(size, "tree size"), root_hash, tuple(extensions))
    if checkpoint.text() != text:  # every part is canonical, so this is a safety net
        raise LogMalformed("checkpoint text is not in canonical form")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, name: str, seed: bytes) -> bytes:
    """The signed note: the checkpoint text with the log's Ed25519 signature under ``name``.

    The log's key name should be its origin (``open_checkpoint`` insists on it); this function
    does not, so that tests can build the mismatch.
    """
    text = checkpoint.text()
    return Note(text, (sign_note(text, name, seed),)).encode()


def open_checkpoint(data: bytes, name: str, public_raw: bytes) -> tuple[Checkpoint, Note]:
    """Parse a signed checkpoint and verify the log's signature: origin and key name is ``name``.

    Signatures by other keys (witness cosignatures, rotated log keys) are ignored here.
    """
    note = parse_note(data)
    checkpoint = parse_checkpoint_text(note.text)
    if checkpoint.origin != name:
        raise LogSignatureInvalid(f"a checkpoint of {checkpoint.origin!r}, not of {name!r}")
    verify_note(note, name, public_raw)
    return checkpoint, note


def cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """What a cosignature/v1 Ed25519 signature covers: header, time line, checkpoint text."""
    _in_range(timestamp, "a cosignature timestamp")
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n".encode("ascii") + checkpoint.text()


def cosign(checkpoint: Checkpoint, name: str, seed: bytes, timestamp: int) -> NoteSignature:
    """A witness's cosignature/v1 (type 0x04) on the checkpoint at ``timestamp`` (POSIX s)."""
    message = cosigned_message(checkpoint, timestamp)
    key = signing_key(seed)
    return NoteSignature(
        name,
        key_hash(name, ALG_COSIGNATURE_V1, bytes(key.verify_key)),
        timestamp.to_bytes(8, "big") + key.sign(message).signature,
    )


def verify_cosignature(
    checkpoint: Checkpoint, signature: NoteSignature, name: str, public_raw: bytes
) -> int:
    """Check a cosignature/v1 by (name, key) on the checkpoint; return the time it states.

    Whether that time is acceptable (not in the future, fresh enough) is the caller's call.
    """
    try:
        wanted = key_hash(name, ALG_COSIGNATURE_V1, public_raw)
    except LogMalformed as exc:
        raise LogSignatureInvalid(f"no cosignature can be by {name!r}: {exc.detail}") from None
    if signature.name != name or signature.key_hash != wanted:
        raise LogSignatureInvalid(f"not a cosignature by {name}+{wanted.hex()}")
    if len(signature.signature) != COSIGNATURE_LENGTH:
        raise LogSignatureInvalid("a cosignature is an 8-byte time and a 64-byte signature")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > MAX_INT63:
        raise LogSignatureInvalid("a cosignature timestamp exceeds 2^63-1")
    message = cosigned_message(checkpoint, timestamp)
    if not ed25519_valid(public_raw, message, signature.signature[8:]):
        raise LogSignatureInvalid(f"the cosignature by {name}+{wanted.hex()} does not verify")
    return timestamp


def with_signatures(data: bytes, extra: Iterable[NoteSignature]) -> bytes:
    """The signed note with more signature lines, one line per (name, key ID).

    A line from ``extra`` takes the place of an existing line of the same key (a witness's
    newer cosignature replaces its older one where it stood); lines of new keys are appended in
    the order given. Repeated lines of one key already on the note are reduced to the first.
    """
    note = parse_note(data)
    merged: dict[tuple[str, bytes], NoteSignature] = {}
    for signature in note.signatures:
        merged.setdefault((signature.name, signature.key_hash), signature)
    for signature in extra:
        if not isinstance(signature, NoteSignature):
            raise LogMalformed("signature lines to add must be NoteSignature values")
        merged[(signature.name, signature.key_hash)] = signature
    return Note(note.text, tuple(merged.values())).encode()


_CACHED_NOTE_BYTES = 16 * 1024


def _tree_size(note: bytes) -> int:
    return parse_checkpoint_text(parse_note(note).text).size


# The tree size of the signed checkpoints seen last. The receipts of one batch all carry the
# same checkpoint bytes, and every ``TlogProof`` built or parsed must know its tree size.
# Parsing is a pure function of the bytes; a note that fails raises and is not remembered, so
# it fails the same way every time.
_remembered_tree_size = functools.lru_cache(maxsize=64)(_tree_size)


@dataclass(frozen=True)
class TlogProof:
    """An entry's index, its inclusion proof hashes and the signed checkpoint they lead to.

    ``checkpoint`` is the signed note, verbatim, cosignatures included; ``extra`` is opaque,
    unauthenticated data (``None`` when the line is absent).
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        index = _in_range(self.index, "the entry index")
        if not isinstance(self.hashes, tuple) or len(self.hashes) > MAX_PROOF_HASHES:
            raise LogMalformed(f"an inclusion proof is a tuple of at most "
                               f"{MAX_PROOF_HASHES} hashes")
        if not all(isinstance(h, bytes) and len(h) == HASH_LENGTH for h in self.hashes):
            raise LogMalformed(f"each proof hash is {HASH_LENGTH} bytes")
        if self.extra is not None and (
            not isinstance(self.extra, bytes) or len(self.extra) > MAX_EXTRA_BYTES
        ):
            raise LogMalformed(f"extra data is at most {MAX_EXTRA_BYTES} bytes")
        note = self.checkpoint
        if type(note) is bytes and len(note) <= _CACHED_NOTE_BYTES:
            size = _remembered_tree_size(note)
        else:
            size = _tree_size(note)
        if index >= size:
            raise LogMalformed(f"index {index} is not in a tree of size {size}")

    def encode(self) -> bytes:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {std_b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(std_b64encode(h) for h in self.hashes)
        return "".join(line + "\n" for line in lines).encode("ascii") + b"\n" + self.checkpoint


def parse_tlog_proof(data: bytes) -> TlogProof:
    """Parse a c2sp.org/tlog-proof@v1 proof strictly; nothing in it is verified yet."""
    if not isinstance(data, bytes):
        raise LogMalformed("a tlog-proof is bytes")
    if len(data) > MAX_PROOF_BYTES:
        raise LogMalformed(f"a tlog-proof is at most {MAX_PROOF_BYTES} bytes")
    split = data.find(b"\n\n")
    if split < 0:
        raise LogMalformed("a tlog-proof has a blank line before its checkpoint")
    try:
        lines = data[:split].decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise LogMalformed("the lines before a tlog-proof's checkpoint are ASCII") from None
    if lines[0] != PROOF_HEADER:
        raise LogMalformed(f"a tlog-proof starts with the line {PROOF_HEADER}")
    position = 1
    extra = None
    if position < len(lines) and lines[position].startswith("extra "):
        extra = std_b64decode(lines[position][len("extra ") :], "extra data")
        position += 1
    if position >= len(lines) or not lines[position].startswith("index "):
        raise LogMalformed("a tlog-proof has an index line after its header")
    index = _decimal(lines[position][len("index ") :], "index")
    hash_lines = lines[position + 1 :]
    if len(hash_lines) > MAX_PROOF_HASHES:
        raise LogMalformed(f"an inclusion proof has at most {MAX_PROOF_HASHES} hashes")
    hashes = []
    for line in hash_lines:
        value = std_b64decode(line, "a proof hash")
        if len(value) != HASH_LENGTH:
            raise LogMalformed(f"each proof hash is {HASH_LENGTH} bytes")
        hashes.append(value)
    return TlogProof(index, tuple(hashes), data[split + 2 :], extra)

"""C2SP signed notes: text that carries its own Ed25519 signatures, one line per signer.

Used for log checkpoints and witness cosignatures so that the tools of the transparency-log
ecosystem can read and check a Rogatory log. A note is text ending in a newline, a blank
line, then lines ``— <key name> <base64(key id || signature)>``. Verifiers ignore signatures
by keys they do not know, so witnesses can add cosignature lines to a log's note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from protocol.errors import LogMalformed, LogSignatureInvalid

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "Note",
    "NoteSignature",
    "key_hash",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_note",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_NOTE = 1024 * 1024
MAX_SIGNATURES = 100
_DASH = "\u2014 "


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LogMalformed(f"{what} is not base64") from None
    if _b64(data) != text:
        raise LogMalformed(f"{what} is not canonical base64")
    return data


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise LogMalformed(f"key name {name!r} must be non-empty, without spaces or '+'")


def key_hash(name: str, alg: int, public_raw: bytes) -> bytes:
    """The 4-byte key id that starts each signature: SHA-256(name \\n alg key)[:4]."""
    _check_name(name)
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_raw).digest()[:4]


def verifier_key(name: str, public_raw: bytes) -> str:
    """The vkey string an operator can pin: ``name+hex key id+base64(alg || key)``."""
    return f"{name}+{key_hash(name, ALG_ED25519, public_raw).hex()}+" \
           f"{_b64(bytes([ALG_ED25519]) + public_raw)}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    parts = text.split("+")
    if len(parts) != 3:
        raise LogMalformed("a verifier key is name+keyid+key")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    key = _unb64(key_b64, "verifier key")
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise LogMalformed("only Ed25519 verifier keys are supported")
    if key_hash(name, ALG_ED25519, key[1:]).hex() != hash_hex:
        raise LogMalformed("verifier key id does not match the key")
    return name, key[1:]


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {_b64(self.key_hash + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    text: bytes
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return self.text + b"\n" + "".join(s.line() for s in self.signatures).encode()


def _check_text(text: bytes) -> None:
    if not text.endswith(b"\n") or b"\n\n" in text or text.startswith(b"\n"):
        raise LogMalformed("note text must be non-empty lines, each ending in a newline")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise LogMalformed("note text is not UTF-8") from None
    if any(not c.isprintable() and c != "\n" for c in decoded):
        raise LogMalformed("note text holds control characters")


def parse_note(data: bytes) -> Note:
    if len(data) > MAX_NOTE:
        raise LogMalformed(f"note larger than {MAX_NOTE} bytes")
    split = data.rfind(b"\n\n")
    if split < 0:
        raise LogMalformed("a signed note has a blank line before its signatures")
    text, block = data[:split + 1], data[split + 2:]
    _check_text(text)
    try:
        lines = block.decode("utf-8")
    except UnicodeDecodeError:
        raise LogMalformed("signature lines are not UTF-8") from None
    if not lines.endswith("\n"):
        raise LogMalformed("signature lines must end in a newline")
    signatures = []
    for line in lines[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise LogMalformed("a signature line starts with an em dash and a space")
        fields = line[len(_DASH):].split(" ")
        if len(fields) != 2:
            raise LogMalformed("a signature line is '— name signature'")
        name, blob = fields
        _check_name(name)
        raw = _unb64(blob, "signature")
        if len(raw) < 5:
            raise LogMalformed("signature too short")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise LogMalformed(f"a note carries 1 to {MAX_SIGNATURES} signatures")
    return Note(text, tuple(signatures))


def sign_note(text: bytes, name: str, seed: bytes) -> NoteSignature:
    _check_text(text)
    key = SigningKey(seed)
    return NoteSignature(name, key_hash(name, ALG_ED25519, bytes(key.verify_key)),
                         key.sign(text).signature)


def verify_note(note: Note, name: str, public_raw: bytes) -> None:
    """A valid Ed25519 signature by (name, key) must be on the note; others are ignored."""
    wanted = key_hash(name, ALG_ED25519, public_raw)
    verifier = VerifyKey(public_raw)
    for signature in note.signatures:
        if signature.name == name and signature.key_hash == wanted \
                and len(signature.signature) == 64:
            try:
                verifier.verify(note.text, signature.signature)
                return
            except BadSignatureError:
                continue
    raise LogSignatureInvalid(f"no valid signature by {name}")

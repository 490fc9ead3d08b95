"""C2SP signed notes (c2sp.org/signed-note): text that carries its own signatures.

Rogatory's audit-log checkpoints and its witnesses' cosignatures are signed notes, so that the
tools of the transparency-log ecosystem can read and check a Rogatory log. A signed note is

    <text, ending in a newline>
    <blank line>
    — <key name> <base64(4-byte key ID || signature)>      (one or more lines)

all of it valid UTF-8 without ASCII control characters other than the newline. The text may
itself contain blank lines; the *last* blank line of the note separates it from the signatures.
Base64 is the standard alphabet with padding (RFC 4648 §4); this module accepts only the one
canonical spelling of every value, so whatever it parses re-encodes to the same bytes.

Signatures of type 0x01 are Ed25519 (RFC 8032) over the raw note text; Rogatory's other
signatures go over a PAE encoding instead (``protocol.signing``), but this format is fixed by
the specification. A key ID is ``SHA-256(name || 0x0A || type byte || public key)[:4]``, so the
same name and key give different IDs under different signature types. Verifiers ignore
signatures whose (name, key ID) they do not know, which is what lets witnesses add cosignature
lines (type 0x04, ``protocol.checkpoint``) to a log's note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.exceptions import CryptoError as NaclCryptoError
from nacl.signing import SigningKey, VerifyKey

from protocol.errors import KeyMalformed, LogMalformed, LogSignatureInvalid

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "KEY_HASH_LENGTH",
    "MAX_NOTE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "check_key_name",
    "ed25519_valid",
    "key_hash",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
    "signing_key",
    "std_b64decode",
    "std_b64encode",
    "verifier_key",
    "verify_note",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
KEY_HASH_LENGTH = 4
PUBLIC_KEY_LENGTH = 32
SEED_LENGTH = 32
ED25519_SIGNATURE_LENGTH = 64
# The specification asks verifiers to bound a note and to accept at least 16 signatures: at most
# 100 signatures, as Go's golang.org/x/mod/sumdb/note, and (our own bound) 1 MiB in all.
MAX_NOTE_BYTES = 1024 * 1024
MAX_SIGNATURES = 100
MAX_NOTE = MAX_NOTE_BYTES  # the name this bound had before

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than the newline
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_KEY_HASH_HEX = re.compile(r"[0-9a-f]{8}")
# Unicode ``\s`` in ``re`` is ``str.isspace``, character for character (the test checks every
# code point); one search replaces a generator over the name.
_NAME_REFUSED = re.compile(r"[\s+\x00-\x1f]")


def std_b64encode(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4), the spelling every C2SP format uses."""
    return base64.b64encode(data).decode("ascii")


def std_b64decode(text: str, what: str = "value") -> bytes:
    """Decode standard padded base64, refusing other alphabets, bad padding and spare bits."""
    if not isinstance(text, str) or not text.isascii() or _BASE64.fullmatch(text) is None:
        raise LogMalformed(f"{what} is not standard base64")
    try:
        # What base64.b64decode(validate=True) does once the alphabet is checked, less its
        # second regex match and wrappers: this runs for every hash of every proof.
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise LogMalformed(f"{what} is not standard base64") from None
    if binascii.b2a_base64(data, newline=False) != text.encode("ascii"):
        raise LogMalformed(f"{what} is not canonical base64 (padding or spare bits)")
    return data


def check_key_name(name: object) -> str:
    """A key name is non-empty UTF-8 without Unicode spaces, '+' or control characters."""
    if not isinstance(name, str) or not name:
        raise LogMalformed("a key name must be a non-empty string")
    if _NAME_REFUSED.search(name):
        raise LogMalformed(f"key name {name!r} contains a space, '+' or a control character")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise LogMalformed(f"key name {name!r} is not valid Unicode") from None
    return name


def key_hash(name: str, alg: int, public_raw: bytes) -> bytes:
    """The 4-byte key ID: ``SHA-256(name || "\\n" || alg || public key)[:4]``."""
    check_key_name(name)
    if isinstance(alg, bool) or not isinstance(alg, int) or not 0 <= alg <= 0xFF:
        raise LogMalformed(f"signature type {alg!r} is not a byte")
    if not isinstance(public_raw, bytes):
        raise LogMalformed("a public key is bytes")
    material = name.encode("utf-8") + b"\n" + bytes([alg]) + public_raw
    return hashlib.sha256(material).digest()[:KEY_HASH_LENGTH]


def verifier_key(name: str, public_raw: bytes) -> str:
    """The verifier key an operator pins: ``<name>+<hex key ID>+<base64(0x01 || key)>``."""
    if not isinstance(public_raw, bytes) or len(public_raw) != PUBLIC_KEY_LENGTH:
        raise LogMalformed(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes")
    hash_hex = key_hash(name, ALG_ED25519, public_raw).hex()
    return f"{name}+{hash_hex}+{std_b64encode(bytes([ALG_ED25519]) + public_raw)}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """Parse an Ed25519 (type 0x01) verifier key; returns its name and 32-byte public key."""
    if not isinstance(text, str):
        raise LogMalformed("a verifier key is text")
    # The name holds no '+', and the key ID is hex, so the first two '+' are the separators;
    # the base64 key may itself contain '+'.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise LogMalformed("a verifier key is <name>+<key ID>+<key>")
    name, hash_hex, key_b64 = parts
    check_key_name(name)
    if _KEY_HASH_HEX.fullmatch(hash_hex) is None:
        raise LogMalformed("a verifier key ID is 8 lowercase hex digits")
    key = std_b64decode(key_b64, "verifier key")
    if len(key) != 1 + PUBLIC_KEY_LENGTH or key[0] != ALG_ED25519:
        raise LogMalformed("only Ed25519 (type 0x01, 32-byte) verifier keys are supported")
    if key_hash(name, ALG_ED25519, key[1:]).hex() != hash_hex:
        raise LogMalformed("the verifier key ID does not match its name and key")
    return name, key[1:]


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: who (name and 4-byte key ID) and the signature bytes after the ID.

    ``signature`` is 64 bytes for type 0x01 and, for a type 0x04 cosignature, an 8-byte
    big-endian timestamp followed by 64 bytes. Other lengths are kept, so that signatures of
    unknown types survive a parse and re-encode.
    """

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.key_hash, bytes) or len(self.key_hash) != KEY_HASH_LENGTH:
            raise LogMalformed(f"a key ID is {KEY_HASH_LENGTH} bytes")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise LogMalformed("a signature is at least one byte")

    def line(self) -> str:
        """The signature line, newline included."""
        blob = std_b64encode(self.key_hash + self.signature)
        return f"{_SIGNATURE_PREFIX}{self.name} {blob}\n"


def _check_text(text: object) -> None:
    if not isinstance(text, bytes) or not text.endswith(b"\n"):
        raise LogMalformed("note text must be bytes ending in a newline")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise LogMalformed("note text is not UTF-8") from None
    if _CONTROL.search(decoded):
        raise LogMalformed("note text contains an ASCII control character")


@dataclass(frozen=True)
class Note:
    """A note's text (final newline included, separating blank line not) and its signatures."""

    text: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not 1 <= len(self.signatures) <= MAX_SIGNATURES:
            raise LogMalformed(f"a signed note carries 1 to {MAX_SIGNATURES} signatures")
        if not all(isinstance(s, NoteSignature) for s in self.signatures):
            raise LogMalformed("note signatures must be NoteSignature values")
        if len(self.encode()) > MAX_NOTE_BYTES:
            raise LogMalformed(f"a signed note is at most {MAX_NOTE_BYTES} bytes")

    def encode(self) -> bytes:
        lines = "".join(signature.line() for signature in self.signatures)
        return self.text + b"\n" + lines.encode("utf-8")


def parse_note(data: bytes) -> Note:
    """Parse a signed note strictly; signatures are not checked (see ``verify_note``)."""
    if not isinstance(data, bytes):
        raise LogMalformed("a signed note is bytes")
    if len(data) > MAX_NOTE_BYTES:
        raise LogMalformed(f"a signed note is at most {MAX_NOTE_BYTES} bytes")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LogMalformed("a signed note is not UTF-8") from None
    if _CONTROL.search(decoded):
        raise LogMalformed("a signed note contains an ASCII control character")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise LogMalformed("a signed note has a blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise LogMalformed("a signed note ends with signature lines, each ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise LogMalformed(f"a signed note carries at most {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise LogMalformed("a signature line starts with an em dash (U+2014) and a space")
        name, space, blob = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not space:
            raise LogMalformed("a signature line is '— <key name> <base64 signature>'")
        check_key_name(name)
        raw = std_b64decode(blob, "signature")
        if len(raw) <= KEY_HASH_LENGTH:
            raise LogMalformed("a signature is a 4-byte key ID and at least one more byte")
        signatures.append(NoteSignature(name, raw[:KEY_HASH_LENGTH], raw[KEY_HASH_LENGTH:]))
    return Note(text.encode("utf-8"), tuple(signatures))


def signing_key(seed: bytes) -> SigningKey:
    """The Ed25519 key for a 32-byte seed; a wrong seed is a ``key.malformed`` error."""
    if not isinstance(seed, bytes) or len(seed) != SEED_LENGTH:
        raise KeyMalformed(f"an Ed25519 seed is {SEED_LENGTH} bytes")
    return SigningKey(seed)


def ed25519_valid(public_raw: bytes, message: bytes, signature: bytes) -> bool:
    """True only for a valid Ed25519 signature by ``public_raw`` over ``message`` itself."""
    if (not isinstance(public_raw, bytes) or len(public_raw) != PUBLIC_KEY_LENGTH
            or len(signature) != ED25519_SIGNATURE_LENGTH):
        return False
    try:
        VerifyKey(public_raw).verify(message, signature)
    except (BadSignatureError, NaclCryptoError, ValueError, TypeError):
        return False
    return True


def sign_note(text: bytes, name: str, seed: bytes) -> NoteSignature:
    """An Ed25519 (type 0x01) signature over the note text by the key with this seed."""
    _check_text(text)
    check_key_name(name)
    key = signing_key(seed)
    return NoteSignature(
        name, key_hash(name, ALG_ED25519, bytes(key.verify_key)), key.sign(text).signature
    )


def verify_note(note: Note, name: str, public_raw: bytes) -> None:
    """Require a valid Ed25519 signature by (name, key) on the note.

    Lines whose (name, key ID) is not this key's are ignored, as the specification requires.
    Every line that does carry this key's name and ID must verify: one that does not rejects
    the whole note (the specification's recommendation) rather than being skipped.
    """
    if not isinstance(public_raw, bytes) or len(public_raw) != PUBLIC_KEY_LENGTH:
        raise LogSignatureInvalid(f"an Ed25519 public key is {PUBLIC_KEY_LENGTH} bytes")
    try:
        wanted = key_hash(name, ALG_ED25519, public_raw)
    except LogMalformed as exc:
        raise LogSignatureInvalid(f"no signature can be by {name!r}: {exc.detail}") from None
    known = [s for s in note.signatures if s.name == name and s.key_hash == wanted]
    if not known:
        raise LogSignatureInvalid(f"no signature by {name}+{wanted.hex()}")
    for signature in known:
        if not ed25519_valid(public_raw, note.text, signature.signature):
            raise LogSignatureInvalid(f"the signature by {name}+{wanted.hex()} does not verify")

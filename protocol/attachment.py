"""Evidence attachments: streamed through libsodium secretstream, described in a signed manifest.

An attachment can be many gigabytes, so it never travels inside the envelope. Each is encrypted
on its own with a fresh key as a secretstream (XChaCha20-Poly1305) of fixed-size chunks; the
key, the stream header, the name, media type, size and SHA-256 of the plaintext are listed in a
manifest that travels inside the sealed, signed package. The ciphertext can therefore be moved
in any number of HTTP requests, resumed at any byte, stored at rest as it arrived, and still
proves nothing until the envelope that names it is opened.

What secretstream gives, and what this module adds:

- every chunk is authenticated and carries its position implicitly (the state ratchets), so a
  modified, reordered, duplicated or dropped chunk fails to decrypt (``attachment.corrupt``);
- the last chunk carries ``TAG_FINAL``; a stream that ends without it is truncated
  (``attachment.truncated``) and bytes after it are refused (``attachment.corrupt``);
- each chunk's additional data binds the message id and the attachment's index, so a stream
  cannot be moved to another message or another slot of the same one;
- the size and SHA-256 in the manifest are checked after the final chunk
  (``attachment.mismatch``), so even a sender's own inconsistent manifest is caught.

Everything here is pure: chunks in, chunks out. Files and sockets belong to ``node``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import nacl.bindings as sodium
from nacl.exceptions import CryptoError

from protocol.encoding import canonical_json, parse_canonical_json
from protocol.errors import (
    AttachmentCorrupt,
    AttachmentMalformed,
    AttachmentMismatch,
    AttachmentNameUnsafe,
    AttachmentTruncated,
    EncodingError,
)

__all__ = [
    "ABYTES",
    "CHUNK_SIZE",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_SIZE",
    "AttachmentSpec",
    "Decryptor",
    "Encryptor",
    "chunk_ad",
    "ciphertext_size",
    "encode_manifest",
    "parse_manifest",
    "safe_name",
]

CHUNK_SIZE: Final = 64 * 1024
ABYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
KEY_BYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
HEADER_BYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
MAX_ATTACHMENTS: Final = 256
MAX_ATTACHMENT_SIZE: Final = 2**44  # 16 TiB: far beyond any disk, well inside JSON integers
MAX_NAME: Final = 255
MAX_MEDIA_TYPE: Final = 255
MANIFEST_VERSION: Final = 1
AD_LABEL: Final = b"rogatory/v1/attachment\x00"

_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)


def ciphertext_size(size: int) -> int:
    """Bytes of the encrypted stream for ``size`` bytes of plaintext (an empty file: one chunk)."""
    chunks = max(1, -(-size // CHUNK_SIZE))
    return size + chunks * ABYTES


def chunk_ad(message_id: str, index: int) -> bytes:
    """Additional data of every chunk: the stream belongs to this message, in this slot."""
    if not _HEX32.fullmatch(message_id) or not 0 <= index < MAX_ATTACHMENTS:
        raise AttachmentMalformed(f"no attachment {index} of message {message_id!r}")
    return AD_LABEL + message_id.encode("ascii") + index.to_bytes(4, "big")


# --- names -------------------------------------------------------------------------------------


def safe_name(name: str) -> str:
    """A file name that can be written in a folder and nowhere else, or ``attachment.name_unsafe``.

    The sender chooses the name, so it is hostile until shown otherwise: no directory part, no
    '.' or '..', no control or format characters, no Windows device names, no trailing dot or
    space, at most 255 bytes of UTF-8 after Unicode NFC normalisation (what file systems take).
    """
    if not isinstance(name, str):
        raise AttachmentNameUnsafe("a file name is text")
    normal = unicodedata.normalize("NFC", name)
    problem = ""
    if not normal or len(normal.encode("utf-8", "surrogatepass")) > MAX_NAME:
        problem = f"must be 1 to {MAX_NAME} bytes in UTF-8"
    elif "/" in normal or "\\" in normal:
        problem = "contains a path separator"
    elif normal in (".", "..") or normal.startswith("."):
        problem = "starts with a dot"
    elif any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in normal):
        problem = "contains a control or format character"
    elif _WINDOWS_RESERVED.fullmatch(normal) or normal[-1] in ". " or ":" in normal:
        problem = "is reserved or ambiguous on some systems"
    if problem:
        raise AttachmentNameUnsafe(f"{name!r} {problem}")
    return normal


# --- the manifest --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: object, size: int, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != -(-size * 4 // 3):
        raise AttachmentMalformed(f"{what} must be {size} bytes in base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AttachmentMalformed(f"{what} is not base64url") from None
    if len(data) != size or _b64(data) != text:
        raise AttachmentMalformed(f"{what} is not the canonical base64url of {size} bytes")
    return data


@dataclass(frozen=True)
class AttachmentSpec:
    """One attachment as the manifest lists it: what it is, and how to read its stream."""

    index: int
    name: str
    media_type: str
    size: int
    sha256: str
    key: bytes
    header: bytes

    def __post_init__(self) -> None:
        if type(self.index) is not int or not 0 <= self.index < MAX_ATTACHMENTS:
            raise AttachmentMalformed(f"index must be 0..{MAX_ATTACHMENTS - 1}")
        if safe_name(self.name) != self.name:
            raise AttachmentMalformed(f"name {self.name!r} is not in Unicode NFC")
        if not isinstance(self.media_type, str) or not _MEDIA_TYPE.fullmatch(self.media_type):
            raise AttachmentMalformed(f"media type {self.media_type!r} is not type/subtype")
        if type(self.size) is not int or not 0 <= self.size <= MAX_ATTACHMENT_SIZE:
            raise AttachmentMalformed(f"size must be 0..{MAX_ATTACHMENT_SIZE}")
        if not isinstance(self.sha256, str) or not _HEX64.fullmatch(self.sha256):
            raise AttachmentMalformed("sha256 must be 64 lowercase hex digits")
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            raise AttachmentMalformed(f"key must be {KEY_BYTES} bytes")
        if not isinstance(self.header, bytes) or len(self.header) != HEADER_BYTES:
            raise AttachmentMalformed(f"stream header must be {HEADER_BYTES} bytes")

    @property
    def ciphertext_size(self) -> int:
        return ciphertext_size(self.size)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "media_type": self.media_type,
                "size": self.size, "sha256": self.sha256, "key": _b64(self.key),
                "header": _b64(self.header)}

    def describe(self) -> dict[str, Any]:
        """What a user may see: everything but the key and the stream header."""
        return {"index": self.index, "name": self.name, "media_type": self.media_type,
                "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, value: object) -> AttachmentSpec:
        fields = ("header", "index", "key", "media_type", "name", "sha256", "size")
        if not isinstance(value, dict) or sorted(value) != list(fields):
            raise AttachmentMalformed(f"an attachment is an object with {', '.join(fields)}")
        return cls(index=value["index"], name=value["name"], media_type=value["media_type"],
                   size=value["size"], sha256=value["sha256"],
                   key=_unb64(value["key"], KEY_BYTES, "key"),
                   header=_unb64(value["header"], HEADER_BYTES, "header"))


def encode_manifest(specs: Iterable[AttachmentSpec]) -> bytes:
    """Canonical JSON: ``{"attachments": [...], "chunk_size": 65536, "v": 1}``, in index order."""
    items = list(specs)
    if [s.index for s in items] != list(range(len(items))) or not items:
        raise AttachmentMalformed("attachments must be numbered 0, 1, 2... in order")
    _distinct_names(items)
    if len(items) > MAX_ATTACHMENTS:
        raise AttachmentMalformed(f"at most {MAX_ATTACHMENTS} attachments")
    return canonical_json({"attachments": [s.to_json() for s in items],
                           "chunk_size": CHUNK_SIZE, "v": MANIFEST_VERSION})


def parse_manifest(data: bytes) -> tuple[AttachmentSpec, ...]:
    try:
        value = parse_canonical_json(data)
    except EncodingError as exc:
        raise AttachmentMalformed(f"manifest: {exc.detail or exc.message}") from exc
    if not isinstance(value, dict) or sorted(value) != ["attachments", "chunk_size", "v"]:
        raise AttachmentMalformed("a manifest has exactly attachments, chunk_size and v")
    if type(value["v"]) is not int or value["v"] != MANIFEST_VERSION:
        raise AttachmentMalformed(f"manifest version {value['v']!r}")
    if type(value["chunk_size"]) is not int or value["chunk_size"] != CHUNK_SIZE:
        raise AttachmentMalformed(f"chunk size must be {CHUNK_SIZE}")
    items = value["attachments"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ATTACHMENTS:
        raise AttachmentMalformed(f"a manifest lists 1 to {MAX_ATTACHMENTS} attachments")
    specs = tuple(AttachmentSpec.from_json(item) for item in items)
    if [s.index for s in specs] != list(range(len(specs))):
        raise AttachmentMalformed("attachments must be numbered 0, 1, 2... in order")
    _distinct_names(specs)
    return specs


def _distinct_names(specs: Iterable[AttachmentSpec]) -> None:
    """Names saved into one folder must differ, also to a file system that ignores case."""
    seen = [spec.name.casefold() for spec in specs]
    if len(set(seen)) != len(seen):
        raise AttachmentMalformed("two attachments have the same name")


# --- the stream ----------------------------------------------------------------------------------


class Encryptor:
    """Encrypts one attachment chunk by chunk; the caller hashes and counts the plaintext."""

    def __init__(self, key: bytes, message_id: str, index: int) -> None:
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self.header: bytes = sodium.crypto_secretstream_xchacha20poly1305_init_push(
            self._state, key)
        self._ad = chunk_ad(message_id, index)
        self._done = False

    def push(self, chunk: bytes, *, final: bool) -> bytes:
        if self._done:
            raise AttachmentMalformed("the stream is already final")
        if len(chunk) > CHUNK_SIZE or (not final and len(chunk) != CHUNK_SIZE):
            raise AttachmentMalformed(f"every chunk but the last holds exactly {CHUNK_SIZE} bytes")
        self._done = final
        return bytes(sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, chunk, self._ad, _TAG_FINAL if final else _TAG_MESSAGE))


def encrypt_chunks(key: bytes, message_id: str, index: int,
                   plaintext: Iterable[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The stream header, and the ciphertext chunks of ``plaintext`` re-cut to CHUNK_SIZE."""
    encryptor = Encryptor(key, message_id, index)

    def chunks() -> Iterator[bytes]:
        pending = b""
        for piece in plaintext:
            pending += piece
            while len(pending) > CHUNK_SIZE:
                yield encryptor.push(pending[:CHUNK_SIZE], final=False)
                pending = pending[CHUNK_SIZE:]
        yield encryptor.push(pending, final=True)

    return encryptor.header, chunks()


class Decryptor:
    """Decrypts and checks one attachment's stream against its manifest entry.

    Feed it ciphertext in pieces of any size with ``feed`` (it yields plaintext chunk by chunk);
    ``finish`` raises unless the final tag arrived and the size and SHA-256 match.
    """

    def __init__(self, spec: AttachmentSpec, message_id: str) -> None:
        self.spec = spec
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(
                self._state, spec.header, spec.key)
        except (CryptoError, ValueError) as exc:
            raise AttachmentMalformed(f"attachment {spec.index}: bad stream header") from exc
        self._ad = chunk_ad(message_id, spec.index)
        self._buffer = b""
        self._final = False
        self._size = 0
        self._consumed = 0
        self._hash = hashlib.sha256()

    def _open(self, chunk: bytes) -> bytes:
        if self._final:
            raise AttachmentCorrupt(f"attachment {self.spec.index}: data after the final chunk")
        try:
            plaintext, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, chunk, self._ad)
        except (CryptoError, ValueError, RuntimeError):
            raise AttachmentCorrupt(
                f"attachment {self.spec.index}: chunk at byte {self._size} fails "
                "authentication (modified, reordered, duplicated or misplaced)") from None
        self._final = tag == _TAG_FINAL
        if not self._final and len(plaintext) != CHUNK_SIZE:
            raise AttachmentCorrupt(f"attachment {self.spec.index}: a short chunk before the end")
        if self._final and not plaintext and self._size:
            raise AttachmentCorrupt(f"attachment {self.spec.index}: an empty final chunk after "
                                    "data (not the one encoding of this stream)")
        self._consumed += len(chunk)
        self._size += len(plaintext)
        if self._size > self.spec.size:
            raise AttachmentMismatch(f"attachment {self.spec.index}: larger than the manifest says")
        self._hash.update(plaintext)
        return bytes(plaintext)

    def feed(self, data: bytes) -> Iterator[bytes]:
        whole = CHUNK_SIZE + ABYTES
        view = memoryview(self._buffer + data if self._buffer else data)
        start = 0
        while len(view) - start >= whole:
            yield self._open(bytes(view[start:start + whole]))
            start += whole
        self._buffer = bytes(view[start:])

    def finish(self) -> Iterator[bytes]:
        """The last chunk, then the end-of-stream checks; iterate it (``yield from``)."""
        if self._buffer:
            chunk, self._buffer = self._buffer, b""
            if self._final:
                raise AttachmentCorrupt(
                    f"attachment {self.spec.index}: data after the final chunk")
            try:
                yield self._open(chunk)
            except AttachmentCorrupt:
                # Short of the expected length, and not the length the final chunk has: the
                # stream was cut inside a chunk. A whole final chunk out of place is corrupt.
                whole = CHUNK_SIZE + ABYTES
                last = (self.spec.ciphertext_size - 1) % whole + 1
                if (self._consumed + len(chunk) < self.spec.ciphertext_size
                        and len(chunk) != last):
                    raise AttachmentTruncated(
                        f"attachment {self.spec.index}: the stream stops inside a chunk, "
                        f"{self.spec.ciphertext_size - self._consumed - len(chunk)} bytes "
                        "short") from None
                raise
        if not self._final:
            raise AttachmentTruncated(
                f"attachment {self.spec.index}: the stream ends before its final chunk")
        if self._size != self.spec.size:
            raise AttachmentMismatch(
                f"attachment {self.spec.index}: {self._size} bytes, the manifest says "
                f"{self.spec.size}")
        if self._hash.hexdigest() != self.spec.sha256:
            raise AttachmentMismatch(
                f"attachment {self.spec.index}: SHA-256 differs from the manifest")

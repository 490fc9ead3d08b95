"""The authority's long-term Ed25519 identity key, and the typed strings that name public keys.

The identity key signs the authority's directory record, its prekeys, envelopes and receipts.
Public keys shown to people or written in configuration carry their purpose in the text
(``rogatory-sign-…``, ``rogatory-secretariat-…``) so that an operator cannot paste a node's
signing key where a secretariat key is pinned, or the other way round, without being refused.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field

from protocol.encoding import b64decode, b64encode
from protocol.errors import EncodingError, KeyMalformed
from protocol.signing import public_key_of, sign
from protocol.suites import key_id

__all__ = [
    "KEY_KINDS",
    "SEED_LENGTH",
    "IdentityKey",
    "decode_public",
    "encode_public",
]

SEED_LENGTH = 32

KEY_KINDS: dict[str, int] = {
    "sign": 32,
    "secretariat": 32,
}
"""Each kind of typed key string and the raw length its key must have."""

_PREFIX = "rogatory-"
_TYPED = re.compile(r"^rogatory-([a-z0-9]+)-([A-Za-z0-9_-]+)$")


@dataclass(frozen=True)
class IdentityKey:
    """An Ed25519 seed; frozen so a key handed to a component cannot be swapped under it."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_LENGTH:
            raise KeyMalformed(f"an identity seed is {SEED_LENGTH} bytes")

    @classmethod
    def generate(cls) -> IdentityKey:
        return cls(os.urandom(SEED_LENGTH))

    @functools.cached_property
    def public_raw(self) -> bytes:
        return public_key_of(self.seed)

    @functools.cached_property
    def key_id(self) -> str:
        """Named in every receipt the node signs; the seed never changes, so worked out once."""
        return key_id(self.public_raw)

    def sign(self, label: str, body: bytes) -> bytes:
        """Sign under a structure label, so the signature cannot be replayed as another type."""
        return sign(self.seed, label, body)

    def __repr__(self) -> str:
        # Logs and tracebacks print reprs; the seed must never reach them.
        return f"IdentityKey(key_id={self.key_id!r})"


def _kind_length(kind: str) -> int:
    try:
        return KEY_KINDS[kind]
    except KeyError:
        raise KeyMalformed(f"unknown key kind {kind!r}") from None


def encode_public(kind: str, raw: bytes) -> str:
    """Spell a public key with its purpose, so it cannot be mistaken for a key of another kind."""
    length = _kind_length(kind)
    if len(raw) != length:
        raise KeyMalformed(f"a {kind} key is {length} bytes, not {len(raw)}")
    return f"{_PREFIX}{kind}-{b64encode(raw)}"


def decode_public(kind: str, text: str) -> bytes:
    """Read a typed key string, refusing one made for another purpose or of the wrong size."""
    length = _kind_length(kind)
    match = _TYPED.match(text) if isinstance(text, str) else None
    if match is None:
        raise KeyMalformed("not a rogatory-<kind>-<base64url> key string")
    if match.group(1) != kind:
        raise KeyMalformed(f"expected a {kind} key, got a {match.group(1)} key")
    try:
        raw = b64decode(match.group(2))
    except EncodingError as exc:
        raise KeyMalformed(f"key string is not base64url: {exc.detail}") from exc
    if len(raw) != length:
        raise KeyMalformed(f"a {kind} key is {length} bytes, not {len(raw)}")
    return raw

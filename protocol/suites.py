"""The HPKE suites an envelope may be sealed with, and the raw key formats for each.

Two suites exist in protocol version 1. The hybrid suite (ML-KEM-768 + X25519) is the default,
because case files stay sensitive for decades and traffic recorded today must not open when a
quantum computer arrives. The X25519 suite exists only for recipients whose directory record
offers nothing else; a receiver that offers the hybrid suite refuses X25519 envelopes
(``envelope.suite_downgrade``).

Raw key formats (what the directory and the key store carry):

- hybrid public:  ML-KEM-768 encapsulation key (1184 bytes) || X25519 public key (32 bytes)
- hybrid private: ML-KEM-768 seed (64 bytes) || X25519 private key (32 bytes)
- x25519 public / private: the 32-byte RFC 7748 keys

HPKE randomness (the encapsulation) comes from the ``cryptography`` library's own generator; no
other randomness is drawn in ``protocol/``.
"""

from __future__ import annotations

import enum
import functools
import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from protocol.errors import EnvelopeDecryptFailed, EnvelopeSuiteUnsupported, KeyMalformed

__all__ = [
    "Suite",
    "hpke_open",
    "hpke_seal",
    "key_id",
    "public_from_private",
    "validate_public",
]

MLKEM768_PUBLIC = 1184
MLKEM768_SEED = 64
X25519_LEN = 32


class Suite(enum.Enum):
    """An HPKE suite, by its wire name; ``strength`` orders them for downgrade checks."""

    HYBRID = "mlkem768x25519-hkdfsha256-chacha20poly1305"
    X25519 = "x25519-hkdfsha256-chacha20poly1305"

    @classmethod
    def from_name(cls, name: str) -> Suite:
        found = _SUITES.get(name) if type(name) is str else None
        if found is not None:
            return found
        for suite in cls:
            if suite.value == name:
                return suite
        raise EnvelopeSuiteUnsupported(f"unknown suite {name!r}")

    @property
    def strength(self) -> int:
        return 2 if self is Suite.HYBRID else 1

    @property
    def public_length(self) -> int:
        return MLKEM768_PUBLIC + X25519_LEN if self is Suite.HYBRID else X25519_LEN

    @property
    def private_length(self) -> int:
        return MLKEM768_SEED + X25519_LEN if self is Suite.HYBRID else X25519_LEN

    @property
    def _hpke(self) -> hpke.Suite:
        kem = hpke.KEM.MLKEM768_X25519 if self is Suite.HYBRID else hpke.KEM.X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


# Looked up for every envelope header; see protocol.kinds for why not by iterating the Enum.
_SUITES: dict[str, Suite] = {suite.value: suite for suite in Suite}


@functools.lru_cache(maxsize=256)
def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 12 bytes of its SHA-256, in hex.

    Cached: every seal names the two keys it uses and every receipt check the receiver's,
    and a node meets few distinct keys.
    """
    return hashlib.sha256(public_raw).hexdigest()[:24]


@functools.lru_cache(maxsize=64)
def _public_key(
    suite: Suite, raw: bytes
) -> hpke.MLKEM768X25519PublicKey | x25519.X25519PublicKey:
    if len(raw) != suite.public_length:
        raise KeyMalformed(f"{suite.value} public key must be {suite.public_length} bytes")
    try:
        if suite is Suite.HYBRID:
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC]),
                x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC:]),
            )
        return x25519.X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise KeyMalformed(f"{suite.value} public key rejected: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _private_key(
    suite: Suite, raw: bytes
) -> hpke.MLKEM768X25519PrivateKey | x25519.X25519PrivateKey:
    if len(raw) != suite.private_length:
        raise KeyMalformed(f"{suite.value} private key must be {suite.private_length} bytes")
    try:
        if suite is Suite.HYBRID:
            return hpke.MLKEM768X25519PrivateKey(
                mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:MLKEM768_SEED]),
                x25519.X25519PrivateKey.from_private_bytes(raw[MLKEM768_SEED:]),
            )
        return x25519.X25519PrivateKey.from_private_bytes(raw)
    except ValueError as exc:
        raise KeyMalformed(f"{suite.value} private key rejected: {exc}") from exc


def validate_public(suite: Suite, raw: bytes) -> None:
    """Refuse a public key that is not a valid key of the suite (length and encoding)."""
    _public_key(suite, raw)


def public_from_private(suite: Suite, private_raw: bytes) -> bytes:
    """The raw public key belonging to a raw private key of the suite."""
    _private_key(suite, private_raw)  # wrong length or encoding: KeyMalformed, not ValueError
    if suite is Suite.HYBRID:
        mlkem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(private_raw[:MLKEM768_SEED])
        x_key = x25519.X25519PrivateKey.from_private_bytes(private_raw[MLKEM768_SEED:])
        return mlkem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()
    return x25519.X25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()


def hpke_seal(suite: Suite, public_raw: bytes, info: bytes, plaintext: bytes) -> bytes:
    """HPKE base-mode single-shot seal (RFC 9180 §6.1); returns enc || ciphertext."""
    return suite._hpke.encrypt(plaintext, _public_key(suite, public_raw), info=info)


def hpke_open(suite: Suite, private_raw: bytes, info: bytes, sealed: bytes) -> bytes:
    """HPKE base-mode single-shot open; any failure is ``envelope.decrypt_failed``."""
    try:
        return suite._hpke.decrypt(sealed, _private_key(suite, private_raw), info=info)
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeDecryptFailed(str(exc) or "authentication tag mismatch") from exc

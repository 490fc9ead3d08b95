"""Ed25519 signatures over pre-authentication-encoded bytes, one label per structure.

Every signature in Rogatory is ``Ed25519(PAE(label, body))`` where ``label`` names the structure
and its version (``rogatory/v1/envelope``, ``rogatory/v1/receipt``, …). The labels are listed in
``LABELS``; a test checks that no two structures share one.
"""

from __future__ import annotations

import functools

from nacl.exceptions import BadSignatureError
from nacl.exceptions import CryptoError as NaclCryptoError
from nacl.signing import SigningKey, VerifyKey

from protocol.encoding import pae
from protocol.errors import KeyMalformed

__all__ = [
    "LABELS",
    "SIGNATURE_LENGTH",
    "public_key_of",
    "sign",
    "verify",
]

SIGNATURE_LENGTH = 64
SEED_LENGTH = 32
PUBLIC_LENGTH = 32

LABELS = {
    "envelope": "rogatory/v1/envelope",
    "envelope-inner": "rogatory/v1/envelope-inner",
    "receipt": "rogatory/v1/receipt",
    "prekey": "rogatory/v1/prekey",
    "authority-record": "rogatory/v1/authority-record",
    "directory": "rogatory/v1/directory",
}


def _signing_key(seed: bytes) -> SigningKey:
    if len(seed) != SEED_LENGTH:
        raise KeyMalformed(f"an Ed25519 seed is {SEED_LENGTH} bytes, not {len(seed)}")
    return _expanded(bytes(seed))


@functools.lru_cache(maxsize=8)
def _expanded(seed: bytes) -> SigningKey:
    """A node signs thousands of times a second with one key; deriving the key pair from the
    seed each time (a scalar multiplication) cost as much as the signature itself."""
    return SigningKey(seed)


def public_key_of(seed: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key for a 32-byte seed."""
    return bytes(_signing_key(seed).verify_key)


def sign(seed: bytes, label: str, body: bytes) -> bytes:
    """Sign ``PAE(label, body)``; returns the 64-byte signature alone."""
    return _signing_key(seed).sign(pae(label, body)).signature


def verify(public_raw: bytes, label: str, body: bytes, signature: bytes) -> bool:
    """True only for a valid signature by ``public_raw`` over ``PAE(label, body)``."""
    if len(public_raw) != PUBLIC_LENGTH or len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        VerifyKey(public_raw).verify(pae(label, body), signature)
    except (BadSignatureError, NaclCryptoError, ValueError, TypeError):
        return False
    return True

"""The node's archive encryption: received packages re-sealed under the node's storage key.

Prekeys are destroyed after their grace period so that captured traffic stops being
decryptable (forward secrecy); the node's own copy must stay readable, so it keeps the signed
package re-encrypted under a long-term storage key held in the key store. The envelope hash is
the associated data, so an archived package cannot be swapped to another row unnoticed.
"""

from __future__ import annotations

import os

from nacl import bindings
from nacl.exceptions import CryptoError

from protocol.errors import StoreError

__all__ = ["ArchiveKey"]

NONCE_LENGTH = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
KEY_LENGTH = bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES


class ArchiveCorrupt(StoreError):
    """An archived package does not decrypt under the storage key."""

    code = "store.archive_corrupt"


class ArchiveKey:
    """XChaCha20-Poly1305 with a random nonce per package, bound to the envelope hash."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LENGTH:
            raise ValueError("storage key must be 32 bytes")
        self._key = key

    def seal(self, envelope_hash: str, package: bytes) -> bytes:
        nonce = os.urandom(NONCE_LENGTH)
        return nonce + bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            package, envelope_hash.encode("ascii"), nonce, self._key
        )

    def open(self, envelope_hash: str, sealed: bytes) -> bytes:
        try:
            return bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[NONCE_LENGTH:], envelope_hash.encode("ascii"),
                sealed[:NONCE_LENGTH], self._key,
            )
        except CryptoError as exc:
            raise ArchiveCorrupt(envelope_hash) from exc

    def __repr__(self) -> str:
        return "ArchiveKey(<secret>)"

"""HPKE as PROTOCOL.md states it, rebuilt from primitives: RFC 9180 base mode, and the
MLKEM768-X25519 (X-Wing) KEM. If these open what ``protocol.suites`` seals, the suite ids, the
combiner, the key schedule and the ``enc || ciphertext`` layout in the spec are the real ones.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from protocol_kit import World

from protocol.suites import Suite, hpke_seal

KDF_HKDF_SHA256 = 0x0001
AEAD_CHACHA20_POLY1305 = 0x0003
KEM_X25519 = 0x0020
KEM_MLKEM768_X25519 = 0x647A
XWING_LABEL = b"\\.//^\\"


def i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return expand(prk, i2osp(length, 2) + b"HPKE-v1" + suite_id + label + info, length)


def dhkem_x25519_decap(enc: bytes, private: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    dh = key.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    kem_context = enc + key.public_key().public_bytes_raw()
    suite_id = b"KEM" + i2osp(KEM_X25519, 2)
    prk = labeled_extract(suite_id, b"", b"eae_prk", dh)
    return labeled_expand(suite_id, prk, b"shared_secret", kem_context, 32)


def xwing_decap(enc: bytes, private: bytes) -> bytes:
    ct_m, ct_x = enc[:1088], enc[1088:]
    mlkem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:64])
    x_key = x25519.X25519PrivateKey.from_private_bytes(private[64:])
    ss_m = mlkem_key.decapsulate(ct_m)
    ss_x = x_key.exchange(x25519.X25519PublicKey.from_public_bytes(ct_x))
    pk_x = x_key.public_key().public_bytes_raw()
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def hpke_base_open(kem_id: int, shared_secret: bytes, info: bytes, ciphertext: bytes) -> bytes:
    suite_id = b"HPKE" + i2osp(kem_id, 2) + i2osp(KDF_HKDF_SHA256, 2) + i2osp(
        AEAD_CHACHA20_POLY1305, 2)
    psk_id_hash = labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    key = labeled_expand(suite_id, secret, b"key", context, 32)
    nonce = labeled_expand(suite_id, secret, b"base_nonce", context, 12)
    return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, b"")


@pytest.mark.parametrize("suite", list(Suite))
def test_rebuilt_hpke_opens_what_the_suite_seals(world: World, suite: Suite) -> None:
    prekey = world.bob.prekey(suite)
    info = b"rogatory/v1/envelope-hpke\x00" + hashlib.sha256(b"header").digest()
    sealed = hpke_seal(suite, prekey.public, info, b"package bytes")
    if suite is Suite.HYBRID:
        enc, ciphertext = sealed[:1120], sealed[1120:]
        shared = xwing_decap(enc, prekey.private)
        kem_id = KEM_MLKEM768_X25519
    else:
        enc, ciphertext = sealed[:32], sealed[32:]
        shared = dhkem_x25519_decap(enc, prekey.private)
        kem_id = KEM_X25519
    assert hpke_base_open(kem_id, shared, info, ciphertext) == b"package bytes"

"""HPKE suites, raw key formats and key ids."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from protocol_kit import World

from protocol.errors import (
    EnvelopeDecryptFailed,
    EnvelopeSuiteUnsupported,
    KeyMalformed,
)
from protocol.suites import (
    Suite,
    hpke_open,
    hpke_seal,
    key_id,
    public_from_private,
    validate_public,
)


def test_suite_names_and_strength() -> None:
    assert Suite.from_name("mlkem768x25519-hkdfsha256-chacha20poly1305") is Suite.HYBRID
    assert Suite.from_name("x25519-hkdfsha256-chacha20poly1305") is Suite.X25519
    assert Suite.HYBRID.strength > Suite.X25519.strength
    with pytest.raises(EnvelopeSuiteUnsupported) as caught:
        Suite.from_name("X25519-HKDFSHA256-CHACHA20POLY1305")
    assert caught.value.code == "envelope.suite_unsupported"


def test_key_lengths() -> None:
    assert (Suite.HYBRID.public_length, Suite.HYBRID.private_length) == (1216, 96)
    assert (Suite.X25519.public_length, Suite.X25519.private_length) == (32, 32)


def test_key_id_is_truncated_sha256_hex() -> None:
    assert key_id(b"") == "e3b0c44298fc1c149afbf4c8"
    raw = bytes(range(32))
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:24]
    assert len(key_id(raw)) == 24


def test_hybrid_key_layout(world: World) -> None:
    private = world.bob.hybrid.private
    public = public_from_private(Suite.HYBRID, private)
    mlkem_public = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:64]).public_key()
    x_public = x25519.X25519PrivateKey.from_private_bytes(private[64:]).public_key()
    assert public == mlkem_public.public_bytes_raw() + x_public.public_bytes_raw()
    validate_public(Suite.HYBRID, public)


def test_x25519_key_layout(world: World) -> None:
    private = world.bob.x25519.private
    public = public_from_private(Suite.X25519, private)
    assert public == x25519.X25519PrivateKey.from_private_bytes(private).public_key(
    ).public_bytes_raw()
    validate_public(Suite.X25519, public)


@pytest.mark.parametrize("suite", list(Suite))
def test_seal_open(world: World, suite: Suite) -> None:
    prekey = world.bob.prekey(suite)
    sealed = hpke_seal(suite, prekey.public, b"info", b"plaintext")
    enc = 1120 if suite is Suite.HYBRID else 32
    assert len(sealed) == enc + len(b"plaintext") + 16
    assert hpke_open(suite, prekey.private, b"info", sealed) == b"plaintext"
    for wrong_info, wrong_key, wrong_data in (
        (b"other", prekey.private, sealed),
        (b"info", world.carol.prekey(suite).private, sealed),
        (b"info", prekey.private, sealed[:-1] + bytes([sealed[-1] ^ 1])),
        (b"info", prekey.private, sealed[:10]),
        (b"info", prekey.private, b""),
    ):
        with pytest.raises(EnvelopeDecryptFailed) as caught:
            hpke_open(suite, wrong_key, wrong_info, wrong_data)
        assert caught.value.code == "envelope.decrypt_failed"


@pytest.mark.parametrize("suite", list(Suite))
def test_wrong_key_lengths(suite: Suite) -> None:
    with pytest.raises(KeyMalformed) as public_error:
        validate_public(suite, b"\x01" * (suite.public_length - 1))
    assert public_error.value.code == "key.malformed"
    with pytest.raises(KeyMalformed) as seal_error:
        hpke_seal(suite, b"\x01" * (suite.public_length + 1), b"", b"")
    assert seal_error.value.code == "key.malformed"
    with pytest.raises(KeyMalformed) as open_error:
        hpke_open(suite, b"\x01" * (suite.private_length - 1), b"", b"\x00" * 2000)
    assert open_error.value.code == "key.malformed"


@pytest.mark.parametrize("suite", list(Suite))
@pytest.mark.parametrize("delta", [-1, 1])
def test_public_from_private_refuses_wrong_lengths(suite: Suite, delta: int) -> None:
    with pytest.raises(KeyMalformed) as caught:
        public_from_private(suite, b"\x01" * (suite.private_length + delta))
    assert caught.value.code == "key.malformed"

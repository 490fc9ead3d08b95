"""Ed25519 over PAE(label, body): one label per structure, no cross-structure replay."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from protocol.encoding import pae
from protocol.errors import KeyMalformed
from protocol.signing import LABELS, SIGNATURE_LENGTH, public_key_of, sign, verify

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))


def test_labels_are_distinct_and_versioned() -> None:
    assert len(set(LABELS.values())) == len(LABELS)
    for label in LABELS.values():
        assert label.startswith("rogatory/v1/")
        assert label.isascii()
    assert LABELS == {
        "envelope": "rogatory/v1/envelope",
        "envelope-inner": "rogatory/v1/envelope-inner",
        "receipt": "rogatory/v1/receipt",
        "prekey": "rogatory/v1/prekey",
        "authority-record": "rogatory/v1/authority-record",
        "directory": "rogatory/v1/directory",
    }


@pytest.mark.parametrize(("first", "second"), list(permutations(LABELS.values(), 2)))
def test_a_signature_under_one_label_fails_under_another(first: str, second: str) -> None:
    public = public_key_of(SEED)
    body = b'{"same":"bytes"}'
    signature = sign(SEED, first, body)
    assert verify(public, first, body, signature)
    assert not verify(public, second, body, signature)


def test_signature_is_ed25519_over_pae() -> None:
    body = b"body bytes"
    signature = sign(SEED, LABELS["receipt"], body)
    assert len(signature) == SIGNATURE_LENGTH
    expected = SigningKey(SEED).sign(pae("rogatory/v1/receipt", body)).signature
    assert signature == expected
    assert public_key_of(SEED) == bytes(SigningKey(SEED).verify_key)


def test_signatures_are_deterministic() -> None:
    assert sign(SEED, "rogatory/v1/envelope", b"x") == sign(SEED, "rogatory/v1/envelope", b"x")
    assert sign(SEED, "rogatory/v1/envelope", b"x") != sign(OTHER_SEED, "rogatory/v1/envelope",
                                                           b"x")


def test_label_and_body_boundary_cannot_shift() -> None:
    """PAE length-prefixes both parts, so moving bytes from label to body breaks the signature."""
    public = public_key_of(SEED)
    signature = sign(SEED, "rogatory/v1/receipt", b"x")
    assert not verify(public, "rogatory/v1/receip", b"tx", signature)
    assert not verify(public, "rogatory/v1/receiptx", b"", signature)


@given(st.sampled_from(sorted(LABELS.values())), st.binary(max_size=200),
       st.binary(min_size=1, max_size=200))
def test_verify_only_the_signed_body(label: str, body: bytes, other: bytes) -> None:
    public = public_key_of(SEED)
    signature = sign(SEED, label, body)
    assert verify(public, label, body, signature)
    if other != body:
        assert not verify(public, label, other, signature)
    assert not verify(public_key_of(OTHER_SEED), label, body, signature)


@pytest.mark.parametrize(
    ("public", "signature"),
    [
        (b"\x00" * 31, b"\x00" * 64),  # key too short
        (public_key_of(SEED), b"\x00" * 63),  # signature too short
        (public_key_of(SEED), b"\x00" * 65),
        (b"\xff" * 32, b"\x00" * 64),  # not a curve point
        (public_key_of(SEED), b"\xff" * 64),  # S not reduced
    ],
)
def test_verify_returns_false_never_raises(public: bytes, signature: bytes) -> None:
    assert verify(public, "rogatory/v1/receipt", b"", signature) is False


def test_non_canonical_s_is_refused() -> None:
    """S + L is the same scalar mod L; Ed25519 verification here must refuse it (malleability)."""
    order = 2**252 + 27742317777372353535851937790883648493
    signature = sign(SEED, "rogatory/v1/receipt", b"m")
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + order).to_bytes(32, "little")
    assert verify(public_key_of(SEED), "rogatory/v1/receipt", b"m", signature)
    assert not verify(public_key_of(SEED), "rogatory/v1/receipt", b"m", malleated)


@pytest.mark.parametrize("seed", [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 64])
def test_seed_length_checked(seed: bytes) -> None:
    with pytest.raises(KeyMalformed) as caught:
        sign(seed, "rogatory/v1/receipt", b"")
    assert caught.value.code == "key.malformed"
    with pytest.raises(KeyMalformed):
        public_key_of(seed)

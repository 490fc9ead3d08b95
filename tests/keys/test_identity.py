"""Identity keys: real Ed25519, and typed key strings that refuse to be used for another purpose."""

from __future__ import annotations

import pytest

from keys.identity import IdentityKey, decode_public, encode_public
from protocol.encoding import b64encode
from protocol.errors import KeyMalformed
from protocol.signing import LABELS, verify
from protocol.suites import key_id


def test_generate_gives_distinct_keys() -> None:
    assert IdentityKey.generate().seed != IdentityKey.generate().seed


def test_sign_verifies_under_label_only() -> None:
    identity = IdentityKey.generate()
    signature = identity.sign(LABELS["receipt"], b"body")
    assert len(signature) == 64
    assert verify(identity.public_raw, LABELS["receipt"], b"body", signature)
    assert not verify(identity.public_raw, LABELS["envelope"], b"body", signature)
    assert not verify(identity.public_raw, LABELS["receipt"], b"bodY", signature)


def test_key_id_is_that_of_public_key() -> None:
    identity = IdentityKey(bytes(range(32)))
    assert identity.key_id == key_id(identity.public_raw)
    assert len(identity.public_raw) == 32


def test_seed_length_checked() -> None:
    with pytest.raises(KeyMalformed):
        IdentityKey(b"\x00" * 31)


def test_repr_hides_seed() -> None:
    identity = IdentityKey(bytes(range(32)))
    text = repr(identity)
    assert identity.key_id in text
    assert bytes(range(32)).hex() not in text
    assert b64encode(bytes(range(32))) not in text
    assert "seed" not in text


@pytest.mark.parametrize("kind", ["sign", "secretariat"])
def test_typed_string_round_trip(kind: str) -> None:
    raw = IdentityKey.generate().public_raw
    text = encode_public(kind, raw)
    assert text.startswith(f"rogatory-{kind}-")
    assert decode_public(kind, text) == raw


def test_typed_string_kind_confusion_refused() -> None:
    raw = IdentityKey.generate().public_raw
    with pytest.raises(KeyMalformed, match="secretariat"):
        decode_public("secretariat", encode_public("sign", raw))
    with pytest.raises(KeyMalformed):
        decode_public("sign", encode_public("secretariat", raw))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "rogatory-sign-",
        "rogatory-sign-" + b64encode(b"\x01" * 31),
        "rogatory-sign-" + b64encode(b"\x01" * 33),
        "rogatory-sign-" + b64encode(b"\x01" * 32) + "=",
        "rogatory-sign-" + b64encode(b"\x01" * 32).replace("A", "+"),
        "rogatory-sign-" + b64encode(b"\x01" * 32) + " ",
        "rogatory-sign-" + b64encode(b"\x01" * 32)[:-1] + "B",
        "sign-" + b64encode(b"\x01" * 32),
    ],
)
def test_malformed_typed_strings_refused(text: str) -> None:
    with pytest.raises(KeyMalformed):
        decode_public("sign", text)


def test_unknown_kind_and_wrong_length_refused_on_encode() -> None:
    with pytest.raises(KeyMalformed):
        encode_public("bogus", b"\x00" * 32)
    with pytest.raises(KeyMalformed):
        encode_public("sign", b"\x00" * 31)

"""The encrypted key store: round trips, every refusal by its code, atomic 0600 writes, rotation."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.pwhash
import pytest

from keys.identity import IdentityKey, decode_public
from keys.keystore import KeyStore, SecretariatKey, passphrase_from_environment
from keys.prekeys import DAY, DEFAULT_GRACE, DEFAULT_LIFETIME
from protocol.encoding import b64decode, b64encode, canonical_json
from protocol.envelope import open_envelope, seal
from protocol.errors import EnvelopeKeyRevoked, RogatoryError
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind
from protocol.suites import Suite

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
PASS = b"correct horse battery staple"
OPS_MIN: int = nacl.pwhash.argon2id.OPSLIMIT_MIN
MEM_MIN: int = nacl.pwhash.argon2id.MEMLIMIT_MIN
FAST = {"opslimit": OPS_MIN, "memlimit": MEM_MIN}


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(RogatoryError) as info:
        call()
    return info.value.code


def make_store(path: Path, authority: str = "XB:MOJ", **kwargs: Any) -> KeyStore:
    return KeyStore.create(
        path, PASS, authority, NOW, opslimit=OPS_MIN, memlimit=MEM_MIN, **kwargs
    )


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    obj = json.loads(path.read_bytes())
    change(obj)
    path.write_bytes(canonical_json(obj))


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return make_store(tmp_path / "keystore.json")


def test_create_then_open_gives_the_same_secrets(store: KeyStore) -> None:
    opened = KeyStore.open(store.path, PASS)
    assert opened == store
    assert opened.identity.seed == store.identity.seed
    assert opened.storage_key == store.storage_key and len(opened.storage_key) == 32
    assert [p.private_raw for p in opened.prekeys] == [p.private_raw for p in store.prekeys]
    (prekey,) = store.prekeys
    assert prekey.prekey.suite is Suite.HYBRID
    assert prekey.prekey.not_before == NOW
    assert prekey.prekey.not_after == NOW + DEFAULT_LIFETIME
    prekey.signed.verify(store.identity.public_raw)


def test_two_stores_have_independent_keys(tmp_path: Path) -> None:
    one, two = make_store(tmp_path / "a"), make_store(tmp_path / "b")
    assert one.identity.seed != two.identity.seed
    assert one.storage_key != two.storage_key
    assert one.prekeys.prekeys[0].id != two.prekeys.prekeys[0].id


def test_x25519_suite_on_request(tmp_path: Path) -> None:
    store = make_store(tmp_path / "ks", suite=Suite.X25519)
    assert [p.prekey.suite for p in KeyStore.open(store.path, PASS).prekeys] == [Suite.X25519]


def test_file_holds_no_secret_in_clear(store: KeyStore) -> None:
    data = store.path.read_bytes()
    obj = json.loads(data)
    assert set(obj) == {"v", "kind", "kdf", "box"}
    assert obj["kind"] == "authority" and obj["v"] == 1
    assert obj["kdf"]["alg"] == "argon2id"
    assert obj["kdf"]["opslimit"] == FAST["opslimit"]
    assert obj["kdf"]["memlimit"] == FAST["memlimit"]
    for secret in (store.identity.seed, store.storage_key, store.prekeys.prekeys[0].private_raw):
        assert b64encode(secret).encode() not in data
        assert secret.hex().encode() not in data
    assert store.authority.encode() not in data


def test_default_kdf_limits_are_interactive(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "ks", PASS, "XB:MOJ", NOW)
    kdf = json.loads(store.path.read_bytes())["kdf"]
    assert kdf["opslimit"] == nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    assert kdf["memlimit"] == nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def test_wrong_passphrase(store: KeyStore) -> None:
    assert code_of(lambda: KeyStore.open(store.path, b"wrong")) == "keystore.passphrase_wrong"


def test_empty_passphrase_refused(tmp_path: Path, store: KeyStore) -> None:
    assert code_of(lambda: KeyStore.open(store.path, b"")) == "keystore.passphrase_missing"
    assert (
        code_of(lambda: KeyStore.create(tmp_path / "new", b"", "XB:MOJ", NOW, opslimit=OPS_MIN))
        == "keystore.passphrase_missing"
    )
    assert not (tmp_path / "new").exists()


def test_missing_file(tmp_path: Path) -> None:
    assert code_of(lambda: KeyStore.open(tmp_path / "absent", PASS)) == "keystore.missing"
    assert code_of(lambda: SecretariatKey.open(tmp_path / "absent", PASS)) == "keystore.missing"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v":1}',
        b'{"box":"AA","kdf":{},"kind":"authority","v":1}',
        b'{"box": "AA", "kdf": {}, "kind": "authority", "v": 1}',
    ],
)
def test_garbage_file_is_corrupt(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "ks"
    path.write_bytes(data)
    assert code_of(lambda: KeyStore.open(path, PASS)) == "keystore.corrupt"


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o.update(v=2),
        lambda o: o.update(kind="node"),
        lambda o: o.update(extra=1),
        lambda o: o.pop("box"),
        lambda o: o["kdf"].update(alg="scrypt"),
        lambda o: o["kdf"].update(extra=1),
        lambda o: o["kdf"].update(salt=b64encode(b"short")),
        lambda o: o["kdf"].update(opslimit="2"),
        lambda o: o["kdf"].update(opslimit=True),
        lambda o: o["kdf"].update(memlimit=2**40),  # refused before any memory is spent
        lambda o: o.update(box=o["box"][:20]),
        lambda o: o.update(box=o["box"] + "="),
    ],
)
def test_structurally_bad_file_is_corrupt(
    store: KeyStore, change: Callable[[dict[str, Any]], None]
) -> None:
    rewrite(store.path, change)
    assert code_of(lambda: KeyStore.open(store.path, PASS)) == "keystore.corrupt"


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o["kdf"].update(opslimit=o["kdf"]["opslimit"] + 1),
        lambda o: o["kdf"].update(memlimit=o["kdf"]["memlimit"] * 2),
        lambda o: o["kdf"].update(salt=b64encode(bytes(16))),
    ],
)
def test_tampered_kdf_parameters_detected(
    store: KeyStore, change: Callable[[dict[str, Any]], None]
) -> None:
    rewrite(store.path, change)
    assert code_of(lambda: KeyStore.open(store.path, PASS)) == "keystore.passphrase_wrong"


def test_tampered_ciphertext_detected(store: KeyStore) -> None:
    def flip(obj: dict[str, Any]) -> None:
        box = bytearray(b64decode(obj["box"]))
        box[-1] ^= 1
        obj["box"] = b64encode(bytes(box))

    rewrite(store.path, flip)
    assert code_of(lambda: KeyStore.open(store.path, PASS)) == "keystore.passphrase_wrong"


def test_clear_kind_is_bound_to_the_sealed_copy(store: KeyStore) -> None:
    # Same passphrase and KDF, so the box decrypts: only the sealed header can catch this.
    rewrite(store.path, lambda o: o.update(kind="secretariat"))
    with pytest.raises(RogatoryError) as info:
        SecretariatKey.open(store.path, PASS)
    assert info.value.code == "keystore.corrupt"
    assert "altered" in str(info.value)


def test_header_swapped_between_files_detected(tmp_path: Path) -> None:
    one, two = make_store(tmp_path / "a"), make_store(tmp_path / "b")
    kdf_two = json.loads(two.path.read_bytes())["kdf"]
    rewrite(one.path, lambda o: o.update(kdf=kdf_two))
    assert code_of(lambda: KeyStore.open(one.path, PASS)) == "keystore.passphrase_wrong"


def test_kind_confusion_refused_both_ways(tmp_path: Path, store: KeyStore) -> None:
    secretariat = SecretariatKey.create(tmp_path / "sec", PASS, **FAST)
    with pytest.raises(RogatoryError) as info:
        SecretariatKey.open(store.path, PASS)
    assert info.value.code == "keystore.corrupt"
    assert "authority keys, not secretariat keys" in str(info.value)
    with pytest.raises(RogatoryError) as info:
        KeyStore.open(secretariat.path, PASS)
    assert info.value.code == "keystore.corrupt"
    assert "secretariat keys, not authority keys" in str(info.value)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_writes_leave_no_temporary(tmp_path: Path) -> None:
    store = make_store(tmp_path / "ks")
    assert mode_of(store.path) == 0o600
    store.path.chmod(0o644)
    store.save()
    assert mode_of(store.path) == 0o600
    rotated = store.rotate_prekeys(NOW + DAY)
    assert mode_of(rotated.path) == 0o600
    secretariat = SecretariatKey.create(tmp_path / "sec", PASS, **FAST)
    assert mode_of(secretariat.path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ks", "sec"]


def test_create_never_overwrites(tmp_path: Path, store: KeyStore) -> None:
    before = store.path.read_bytes()
    assert code_of(lambda: make_store(store.path)) == "keystore.exists"
    assert (
        code_of(lambda: SecretariatKey.create(store.path, PASS, **FAST)) == "keystore.exists"
    )
    assert store.path.read_bytes() == before
    assert KeyStore.open(store.path, PASS) == store
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]


def test_create_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "ks"
    link.symlink_to(tmp_path / "elsewhere")
    assert code_of(lambda: make_store(link)) == "keystore.exists"
    assert not (tmp_path / "elsewhere").exists()


def test_invalid_authority_id_refused(tmp_path: Path) -> None:
    call = lambda: make_store(tmp_path / "ks", "xb:moj")  # noqa: E731
    assert code_of(call) == "directory.authority_id_invalid"
    assert not (tmp_path / "ks").exists()


def test_out_of_range_kdf_limits_refused_on_create(tmp_path: Path) -> None:
    call = lambda: KeyStore.create(tmp_path / "ks", PASS, "XB:MOJ", NOW, opslimit=0)  # noqa: E731
    assert code_of(call) == "key.invalid"


def test_save_reseals_under_a_fresh_nonce(store: KeyStore) -> None:
    first = store.path.read_bytes()
    store.save()
    second = store.path.read_bytes()
    assert first != second
    assert json.loads(first)["kdf"] == json.loads(second)["kdf"]
    assert KeyStore.open(store.path, PASS) == store


def test_rotation_keeps_prekeys_in_grace_and_destroys_later_ones(store: KeyStore) -> None:
    (first,) = store.prekeys
    end = first.prekey.not_after
    rotated = store.rotate_prekeys(end - DAY)
    assert [p.id for p in rotated.prekeys][:1] == [first.id] and len(rotated.prekeys) == 2
    in_grace = rotated.rotate_prekeys(end + DEFAULT_GRACE - 1)
    assert first.id in [p.id for p in in_grace.prekeys]
    assert len(in_grace.prekeys) == 3
    past_grace = in_grace.rotate_prekeys(end + DEFAULT_GRACE)
    ids = [p.id for p in past_grace.prekeys]
    assert first.id not in ids and len(ids) == 3
    assert past_grace.receiver_prekey(first.id) is None
    # Each step was saved: the file holds exactly the latest ring.
    reopened = KeyStore.open(store.path, PASS)
    assert [p.id for p in reopened.prekeys] == ids
    assert reopened.identity == store.identity and reopened.storage_key == store.storage_key


def test_rotation_honours_suite_lifetime_and_grace(store: KeyStore) -> None:
    (first,) = store.prekeys
    rotated = store.rotate_prekeys(
        first.prekey.not_after + 10, suite=Suite.X25519, lifetime=DAY, grace=5
    )
    (fresh,) = rotated.prekeys
    assert fresh.prekey.suite is Suite.X25519
    assert fresh.prekey.not_after - fresh.prekey.not_before == DAY


def test_destroy_expired_is_saved(store: KeyStore) -> None:
    (first,) = store.prekeys
    kept = store.destroy_expired(first.prekey.not_after, grace=1)
    assert [p.id for p in kept.prekeys] == [first.id]
    gone = store.destroy_expired(first.prekey.not_after + 1, grace=1)
    assert len(gone.prekeys) == 0
    assert len(KeyStore.open(store.path, PASS).prekeys) == 0
    assert store.prekeys.prekeys[0].id == first.id  # the old value object is untouched


def test_repr_hides_every_secret(store: KeyStore) -> None:
    text = repr(store)
    for secret in (store.identity.seed, store.storage_key, store.prekeys.prekeys[0].private_raw):
        assert secret.hex() not in text
        assert b64encode(secret) not in text
        assert repr(secret) not in text
    assert "_sealer" not in text and "storage_key" not in text
    assert store.identity.key_id in text


class OneSender:
    """``SenderKeys`` for a single known identity."""

    def __init__(self, authority: str, identity: IdentityKey) -> None:
        self.authority = authority
        self.identity = identity

    def sender_key(self, authority_id: str, key_id: str, *, now: int, created: int) -> bytes:
        if (authority_id, key_id) != (self.authority, self.identity.key_id):
            raise EnvelopeKeyRevoked(key_id)
        return self.identity.public_raw


def test_receiver_prekey_opens_sealed_envelopes(tmp_path: Path, store: KeyStore) -> None:
    rotated = store.rotate_prekeys(NOW + DAY, suite=Suite.HYBRID)
    sender = IdentityKey.generate()
    for held in rotated.prekeys:
        prekey = held.prekey
        header = EnvelopeHeader(
            id=prekey.id.ljust(32, "0"),
            kind=Kind.REQUEST,
            sender="XA:MOJ",
            recipient=rotated.authority,
            sender_key=sender.key_id,
            recipient_prekey=prekey.id,
            suite=prekey.suite,
            created=NOW + DAY,
            expires=NOW + 2 * DAY,
        )
        sealed = seal(
            header, "text/plain", b"hello", sender_seed=sender.seed,
            recipient_public=prekey.public_raw,
        )
        reopened = KeyStore.open(rotated.path, PASS)
        opened = open_envelope(
            sealed.data,
            me=reopened.authority,
            now=NOW + DAY,
            senders=OneSender("XA:MOJ", sender),
            prekey=reopened.receiver_prekey,
            strongest_suite=Suite.HYBRID,
            already_used=lambda _sender, _mid: False,
        )
        assert opened.package.payload == b"hello"
    held_prekey = rotated.receiver_prekey(rotated.prekeys.prekeys[0].id)
    assert held_prekey is not None
    assert held_prekey.private_raw == rotated.prekeys.prekeys[0].private_raw
    assert held_prekey.not_after == NOW + DEFAULT_LIFETIME
    assert rotated.receiver_prekey("0" * 24) is None


def test_secretariat_key_round_trip(tmp_path: Path) -> None:
    key = SecretariatKey.create(tmp_path / "sec", PASS, **FAST)
    opened = SecretariatKey.open(tmp_path / "sec", PASS)
    assert opened.identity.seed == key.identity.seed
    assert opened == key
    assert key.public_text.startswith("rogatory-secretariat-")
    assert decode_public("secretariat", key.public_text) == key.identity.public_raw
    assert key.identity.seed.hex() not in repr(key)
    assert code_of(lambda: SecretariatKey.open(key.path, b"nope")) == "keystore.passphrase_wrong"


def test_passphrase_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROGATORY_TEST_PASS", "s3cret pass")
    assert passphrase_from_environment("ROGATORY_TEST_PASS") == b"s3cret pass"
    monkeypatch.delenv("ROGATORY_TEST_PASS")
    with pytest.raises(RogatoryError) as info:
        passphrase_from_environment("ROGATORY_TEST_PASS")
    assert info.value.code == "keystore.passphrase_missing"
    assert "ROGATORY_TEST_PASS" in str(info.value)
    monkeypatch.setenv("ROGATORY_TEST_PASS", "")
    assert code_of(lambda: passphrase_from_environment("ROGATORY_TEST_PASS")) == (
        "keystore.passphrase_missing"
    )

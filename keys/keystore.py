"""The node's secrets at rest: one file, sealed under a passphrase-derived key.

A node's identity seed, private prekeys and archive storage key are worth more than any single
message, so they never touch the disk in clear. The file is::

    {"v":1, "kind":"authority"|"secretariat",
     "kdf":{"alg":"argon2id","salt":b64,"opslimit":int,"memlimit":int},
     "box":b64(nonce || XSalsa20-Poly1305 ciphertext)}

The sealed plaintext is canonical JSON ``{"header": <the v/kind/kdf fields>, "secrets": {...}}``.
Secretbox has no associated data, so the outer fields are repeated inside and compared after
decryption: an attacker who edits ``kind`` or the KDF parameters in the clear part is caught
(editing the KDF parameters already changes the derived key; repeating them also catches a
header swapped between two files sealed under the same passphrase).

Every write goes to a 0600 temporary file in the same folder, is fsynced, renamed over the
target and the folder fsynced, so a crash leaves either the old store or the new one, never a
torn file and never the node without its keys.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from keys.identity import IdentityKey, encode_public
from keys.prekeys import (
    DEFAULT_GRACE,
    DEFAULT_LIFETIME,
    PrekeyRing,
    PrivatePrekey,
    SignedPrekey,
    generate_prekey,
)
from protocol.encoding import (
    b64decode,
    b64encode,
    canonical_json,
    parse_canonical_json,
    require_fields,
)
from protocol.envelope import ReceiverPrekey
from protocol.errors import (
    DirectoryAuthorityIdInvalid,
    EncodingError,
    KeyMaterialError,
    KeystoreCorrupt,
    KeystoreExists,
    KeystoreMissing,
    KeystorePassphraseMissing,
    KeystorePassphraseWrong,
)
from protocol.header import is_authority_id
from protocol.suites import Suite

__all__ = [
    "DEFAULT_MEMLIMIT",
    "DEFAULT_OPSLIMIT",
    "MAX_MEMLIMIT",
    "MAX_OPSLIMIT",
    "STORAGE_KEY_LENGTH",
    "KeyStore",
    "SecretariatKey",
    "passphrase_from_environment",
]

FORMAT_VERSION = 1
STORAGE_KEY_LENGTH = 32
KDF_ALG = "argon2id"
_argon2id = nacl.pwhash.argon2id
SALT_LENGTH: int = _argon2id.SALTBYTES
DEFAULT_OPSLIMIT: int = _argon2id.OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT: int = _argon2id.MEMLIMIT_INTERACTIVE
MIN_OPSLIMIT: int = _argon2id.OPSLIMIT_MIN
MIN_MEMLIMIT: int = _argon2id.MEMLIMIT_MIN
# A file is untrusted until it decrypts: without a ceiling, an edited header could make the
# node spend hours or all its memory deriving a key before the passphrase check can fail.
MAX_OPSLIMIT: int = 4 * _argon2id.OPSLIMIT_SENSITIVE
MAX_MEMLIMIT: int = _argon2id.MEMLIMIT_SENSITIVE
MAX_FILE_BYTES = 16 * 1024 * 1024

_FILE_FIELDS = ("v", "kind", "kdf", "box")
_KDF_FIELDS = ("alg", "salt", "opslimit", "memlimit")
_PLAINTEXT_FIELDS = ("header", "secrets")
_AUTHORITY_FIELDS = ("authority", "identity", "storage_key", "prekeys")
_SECRETARIAT_FIELDS = ("identity",)
_PREKEY_FIELDS = ("signed", "private")

Kind = Literal["authority", "secretariat"]
_KINDS: tuple[Kind, ...] = ("authority", "secretariat")


def passphrase_from_environment(var: str) -> bytes:
    """Read the passphrase from the environment, so unattended nodes can start without a TTY."""
    value = os.environ.get(var, "")
    if not value:
        raise KeystorePassphraseMissing(f"environment variable {var} is unset or empty")
    # fsencode undoes the surrogate escapes Python used to decode the environment, so the
    # passphrase is the exact bytes the operator set.
    return os.fsencode(value)


# --- the sealing key -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sealer:
    """The derived key and the KDF parameters it came from; re-sealing needs no passphrase."""

    key: bytes = field(repr=False)
    salt: bytes = field(repr=False)
    opslimit: int
    memlimit: int

    @classmethod
    def derive(cls, passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> _Sealer:
        key = _argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
        )
        return cls(key, salt, opslimit, memlimit)

    @classmethod
    def fresh(cls, passphrase: bytes, opslimit: int, memlimit: int) -> _Sealer:
        if not isinstance(passphrase, bytes) or not passphrase:
            raise KeystorePassphraseMissing("an empty passphrase cannot protect a key store")
        _check_limits(opslimit, memlimit, KeyMaterialError)
        return cls.derive(passphrase, nacl.utils.random(SALT_LENGTH), opslimit, memlimit)

    def header(self, kind: Kind) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "kind": kind,
            "kdf": {
                "alg": KDF_ALG,
                "salt": b64encode(self.salt),
                "opslimit": self.opslimit,
                "memlimit": self.memlimit,
            },
        }

    def seal(self, kind: Kind, secrets_obj: Mapping[str, Any]) -> bytes:
        header = self.header(kind)
        plaintext = canonical_json({"header": header, "secrets": dict(secrets_obj)})
        box = nacl.secret.SecretBox(self.key).encrypt(plaintext)
        return canonical_json({**header, "box": b64encode(bytes(box))})


def _check_limits(opslimit: int, memlimit: int, error: type[KeyMaterialError]) -> None:
    for name, value, low, high in (
        ("opslimit", opslimit, MIN_OPSLIMIT, MAX_OPSLIMIT),
        ("memlimit", memlimit, MIN_MEMLIMIT, MAX_MEMLIMIT),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise error(f"argon2id {name} must be an integer in [{low}, {high}], not {value!r}")


# --- the file ----------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    # Without this the rename itself may be lost on power failure. Some platforms cannot open
    # a directory for fsync; there the rename's durability is the filesystem's best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Replace (or with ``overwrite=False`` create) ``path``; readers see all or nothing."""
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow the mode, but be explicit
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() refuses an existing target atomically, unlike an exists()-then-rename.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeystoreExists(str(path)) from None
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _create_file(path: Path, data: bytes) -> None:
    if path.exists() or path.is_symlink():
        raise KeystoreExists(str(path))
    _write_atomic(path, data, overwrite=False)


def _read_file(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeystoreMissing(str(path)) from None
    except OSError as exc:
        raise KeystoreCorrupt(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise KeystoreCorrupt(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KeystoreCorrupt(f"{what} is not a JSON object")
    return value


def _bytes(obj: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    value = obj[name]
    try:
        raw = b64decode(value) if isinstance(value, str) else None
    except EncodingError:
        raw = None
    if raw is None or (length is not None and len(raw) != length):
        size = f" of {length} bytes" if length is not None else ""
        raise KeystoreCorrupt(f"field {name!r} is not base64url{size}")
    return raw


def _unseal(path: Path, passphrase: bytes, kind: Kind) -> tuple[_Sealer, dict[str, Any]]:
    """Open a key store file of the expected kind; returns the sealer and the secrets object."""
    data = _read_file(path)
    try:
        outer = _object(parse_canonical_json(data), "key store file")
    except EncodingError as exc:
        raise KeystoreCorrupt(f"{path}: {exc.message}") from exc
    require_fields(outer, _FILE_FIELDS, KeystoreCorrupt)
    if outer["v"] != FORMAT_VERSION:
        raise KeystoreCorrupt(f"unknown key store version {outer['v']!r}")
    found = outer["kind"]
    if found not in _KINDS:
        raise KeystoreCorrupt(f"unknown key store kind {found!r}")
    if found != kind:
        raise KeystoreCorrupt(f"{path} holds {found} keys, not {kind} keys")
    kdf = _object(outer["kdf"], "kdf")
    require_fields(kdf, _KDF_FIELDS, KeystoreCorrupt)
    if kdf["alg"] != KDF_ALG:
        raise KeystoreCorrupt(f"unknown key derivation {kdf['alg']!r}")
    salt = _bytes(kdf, "salt", SALT_LENGTH)
    _check_limits(kdf["opslimit"], kdf["memlimit"], KeystoreCorrupt)
    box = _bytes(outer, "box")
    if len(box) < nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES:
        raise KeystoreCorrupt("sealed box is truncated")
    if not isinstance(passphrase, bytes) or not passphrase:
        raise KeystorePassphraseMissing("an empty passphrase cannot open a key store")
    sealer = _Sealer.derive(passphrase, salt, kdf["opslimit"], kdf["memlimit"])
    try:
        plaintext = nacl.secret.SecretBox(sealer.key).decrypt(box)
    except nacl.exceptions.CryptoError as exc:
        raise KeystorePassphraseWrong(str(path)) from exc
    try:
        inner = _object(parse_canonical_json(plaintext), "sealed content")
    except EncodingError as exc:
        raise KeystoreCorrupt(f"sealed content: {exc.message}") from exc
    require_fields(inner, _PLAINTEXT_FIELDS, KeystoreCorrupt)
    if inner["header"] != sealer.header(kind):
        raise KeystoreCorrupt("the clear header was altered: it differs from the sealed copy")
    return sealer, _object(inner["secrets"], "secrets")


def _identity(secrets_obj: Mapping[str, Any]) -> IdentityKey:
    return IdentityKey(_bytes(secrets_obj, "identity", 32))


def _prekey_to_json(prekey: PrivatePrekey) -> dict[str, Any]:
    return {"signed": prekey.signed.to_json(), "private": b64encode(prekey.private_raw)}


def _prekey_from_json(value: object, identity: IdentityKey) -> PrivatePrekey:
    obj = _object(value, "prekey entry")
    require_fields(obj, _PREKEY_FIELDS, KeystoreCorrupt)
    try:
        signed = SignedPrekey.from_json(obj["signed"])
        # A prekey not signed by our own identity would be refused by every sender.
        signed.verify(identity.public_raw)
        return PrivatePrekey(signed, _bytes(obj, "private"))
    except KeyMaterialError as exc:
        if isinstance(exc, KeystoreCorrupt):
            raise
        raise KeystoreCorrupt(f"prekey entry: {exc.message}") from exc


# --- the stores ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyStore:
    """An authority node's secrets; every change returns a new, already saved store."""

    path: Path
    authority: str
    identity: IdentityKey
    prekeys: PrekeyRing
    storage_key: bytes = field(repr=False)
    _sealer: _Sealer = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_authority_id(self.authority):
            raise DirectoryAuthorityIdInvalid(repr(self.authority))
        if not isinstance(self.storage_key, bytes) or len(self.storage_key) != STORAGE_KEY_LENGTH:
            raise KeyMaterialError(f"the storage key is {STORAGE_KEY_LENGTH} bytes")

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: bytes,
        authority: str,
        now: int,
        *,
        suite: Suite = Suite.HYBRID,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> KeyStore:
        """Generate a new node's keys and save them; refuses to replace an existing store."""
        path = Path(path)
        if path.exists() or path.is_symlink():
            # Checked before the slow key derivation, and again atomically when writing.
            raise KeystoreExists(str(path))
        identity = IdentityKey.generate()
        store = cls(
            path=path,
            authority=authority,
            identity=identity,
            prekeys=PrekeyRing.of([generate_prekey(identity, suite, now)]),
            storage_key=os.urandom(STORAGE_KEY_LENGTH),
            _sealer=_Sealer.fresh(passphrase, opslimit, memlimit),
        )
        _create_file(path, store._encode())
        return store

    @classmethod
    def open(cls, path: Path, passphrase: bytes) -> KeyStore:
        path = Path(path)
        sealer, secrets_obj = _unseal(path, passphrase, "authority")
        require_fields(secrets_obj, _AUTHORITY_FIELDS, KeystoreCorrupt)
        identity = _identity(secrets_obj)
        entries = secrets_obj["prekeys"]
        if not isinstance(entries, list):
            raise KeystoreCorrupt("prekeys is not a list")
        authority = secrets_obj["authority"]
        if not is_authority_id(authority):
            raise KeystoreCorrupt(f"authority id {authority!r} is invalid")
        try:
            ring = PrekeyRing.of(_prekey_from_json(entry, identity) for entry in entries)
        except KeystoreCorrupt:
            raise
        except KeyMaterialError as exc:
            raise KeystoreCorrupt(exc.message) from exc
        return cls(
            path=path,
            authority=authority,
            identity=identity,
            prekeys=ring,
            storage_key=_bytes(secrets_obj, "storage_key", STORAGE_KEY_LENGTH),
            _sealer=sealer,
        )

    def _encode(self) -> bytes:
        return self._sealer.seal(
            "authority",
            {
                "authority": self.authority,
                "identity": b64encode(self.identity.seed),
                "storage_key": b64encode(self.storage_key),
                "prekeys": [_prekey_to_json(p) for p in self.prekeys],
            },
        )

    def save(self) -> None:
        """Write this store over the file, atomically, under a fresh nonce."""
        _write_atomic(self.path, self._encode(), overwrite=True)

    def rotate_prekeys(
        self,
        now: int,
        *,
        suite: Suite = Suite.HYBRID,
        lifetime: int = DEFAULT_LIFETIME,
        grace: int = DEFAULT_GRACE,
    ) -> KeyStore:
        """Add a prekey valid from ``now`` and destroy private prekeys past their grace."""
        rotated = replace(
            self, prekeys=self.prekeys.rotate(self.identity, now, suite, lifetime, grace)
        )
        rotated.save()
        return rotated

    def destroy_expired(self, now: int, grace: int = DEFAULT_GRACE) -> KeyStore:
        """Forget private prekeys past their grace: what makes recorded traffic unopenable."""
        pruned = replace(self, prekeys=self.prekeys.destroy_expired(now, grace))
        pruned.save()
        return pruned

    def receiver_prekey(self, prekey_id: str) -> ReceiverPrekey | None:
        """Look a private prekey up by id, shaped for ``protocol.envelope.open_envelope``."""
        held = self.prekeys.get(prekey_id)
        if held is None:
            return None
        prekey = held.prekey
        return ReceiverPrekey(
            id=prekey.id,
            suite=prekey.suite,
            private_raw=held.private_raw,
            not_before=prekey.not_before,
            not_after=prekey.not_after,
        )


@dataclass(frozen=True)
class SecretariatKey:
    """One federation secretariat signing key, kept apart from any node's store.

    A different ``kind`` in the file means a secretariat key can never be opened as a node's
    store (or the reverse) by a mistyped path, which would otherwise mix two trust roles.
    """

    path: Path
    identity: IdentityKey
    _sealer: _Sealer = field(repr=False, compare=False)

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: bytes,
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> SecretariatKey:
        path = Path(path)
        if path.exists() or path.is_symlink():
            raise KeystoreExists(str(path))
        key = cls(path, IdentityKey.generate(), _Sealer.fresh(passphrase, opslimit, memlimit))
        _create_file(path, key._sealer.seal("secretariat", key._secrets()))
        return key

    @classmethod
    def open(cls, path: Path, passphrase: bytes) -> SecretariatKey:
        path = Path(path)
        sealer, secrets_obj = _unseal(path, passphrase, "secretariat")
        require_fields(secrets_obj, _SECRETARIAT_FIELDS, KeystoreCorrupt)
        return cls(path, _identity(secrets_obj), sealer)

    def _secrets(self) -> dict[str, Any]:
        return {"identity": b64encode(self.identity.seed)}

    @property
    def public_raw(self) -> bytes:
        return self.identity.public_raw

    @property
    def public_text(self) -> str:
        """The typed key string that federation members pin in their configuration."""
        return encode_public("secretariat", self.identity.public_raw)

"""Medium-term encryption prekeys: signed by the identity key, rotated, destroyed after a grace.

Prekeys give forward secrecy at the granularity of a rotation period: once a private prekey is
destroyed, traffic sealed to it and recorded on the wire can no longer be opened, even by someone
who later seizes the node. The grace period exists because senders work from a directory that may
be a little stale; a prekey keeps decrypting for ``grace`` seconds after it stops being published.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from keys.identity import IdentityKey
from protocol.encoding import b64decode, b64encode, canonical_json, require_fields
from protocol.errors import (
    EncodingError,
    EnvelopeSuiteUnsupported,
    KeyMalformed,
    PrekeySignatureInvalid,
)
from protocol.signing import LABELS, SIGNATURE_LENGTH, verify
from protocol.suites import MLKEM768_SEED, X25519_LEN, Suite, key_id, public_from_private
from protocol.suites import validate_public as validate_suite_public

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_LIFETIME",
    "Prekey",
    "PrekeyRing",
    "PrivatePrekey",
    "SignedPrekey",
    "generate_prekey",
    "sign_prekey",
]

DAY = 24 * 60 * 60
DEFAULT_LIFETIME = 30 * DAY
DEFAULT_GRACE = 7 * DAY

_PREKEY_FIELDS = ("id", "suite", "public", "not_before", "not_after")
_SIGNED_FIELDS = ("prekey", "sig")


def _int_field(obj: Mapping[str, Any], name: str) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeyMalformed(f"prekey field {name!r} must be an integer")
    return value


def _str_field(obj: Mapping[str, Any], name: str) -> str:
    value = obj[name]
    if not isinstance(value, str):
        raise KeyMalformed(f"prekey field {name!r} must be a string")
    return value


def _bytes_field(obj: Mapping[str, Any], name: str) -> bytes:
    try:
        return b64decode(_str_field(obj, name))
    except EncodingError as exc:
        raise KeyMalformed(f"prekey field {name!r}: {exc.detail}") from exc


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise KeyMalformed(f"{what} must be a JSON object")
    return value


@dataclass(frozen=True)
class Prekey:
    """The public half of a prekey, as published in the directory record."""

    id: str
    suite: Suite
    public_raw: bytes = field(repr=False)
    not_before: int
    not_after: int

    def __post_init__(self) -> None:
        # Checked on every construction so that no code path can hold an inconsistent prekey.
        if self.id != key_id(self.public_raw):
            raise KeyMalformed("prekey id is not the key id of its public key")
        if self.not_after <= self.not_before:
            raise KeyMalformed("prekey validity window is empty")
        validate_suite_public(self.suite, self.public_raw)

    def valid_at(self, now: int) -> bool:
        return self.not_before <= now < self.not_after

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "suite": self.suite.value,
            "public": b64encode(self.public_raw),
            "not_before": self.not_before,
            "not_after": self.not_after,
        }

    @classmethod
    def from_json(cls, obj: object) -> Prekey:
        data = _mapping(obj, "prekey")
        require_fields(data, _PREKEY_FIELDS, KeyMalformed)
        try:
            suite = Suite.from_name(_str_field(data, "suite"))
        except EnvelopeSuiteUnsupported as exc:
            raise KeyMalformed(exc.detail) from exc
        return cls(
            id=_str_field(data, "id"),
            suite=suite,
            public_raw=_bytes_field(data, "public"),
            not_before=_int_field(data, "not_before"),
            not_after=_int_field(data, "not_after"),
        )


@dataclass(frozen=True)
class SignedPrekey:
    """A prekey with the identity key's signature, so a directory relay cannot substitute one."""

    prekey: Prekey
    signature: bytes = field(repr=False)

    @property
    def signed_bytes(self) -> bytes:
        return canonical_json(self.prekey.to_json())

    def verify(self, identity_public_raw: bytes) -> None:
        if not verify(identity_public_raw, LABELS["prekey"], self.signed_bytes, self.signature):
            raise PrekeySignatureInvalid(f"prekey {self.prekey.id}")

    def to_json(self) -> dict[str, Any]:
        return {"prekey": self.prekey.to_json(), "sig": b64encode(self.signature)}

    @classmethod
    def from_json(cls, obj: object) -> SignedPrekey:
        data = _mapping(obj, "signed prekey")
        require_fields(data, _SIGNED_FIELDS, KeyMalformed)
        signature = _bytes_field(data, "sig")
        if len(signature) != SIGNATURE_LENGTH:
            raise KeyMalformed(f"a prekey signature is {SIGNATURE_LENGTH} bytes")
        return cls(Prekey.from_json(data["prekey"]), signature)


def sign_prekey(prekey: Prekey, identity: IdentityKey) -> SignedPrekey:
    return SignedPrekey(prekey, identity.sign(LABELS["prekey"], canonical_json(prekey.to_json())))


@dataclass(frozen=True)
class PrivatePrekey:
    """A prekey this node can decrypt with; lives only in the encrypted key store."""

    signed: SignedPrekey
    private_raw: bytes = field(repr=False)

    def __post_init__(self) -> None:
        # A key store whose private half does not match the published half would accept
        # traffic it can never open; refuse it at load time instead.
        suite = self.prekey.suite
        if len(self.private_raw) != suite.private_length:
            raise KeyMalformed(f"{suite.value} private key must be {suite.private_length} bytes")
        try:
            public = public_from_private(suite, self.private_raw)
        except ValueError as exc:
            raise KeyMalformed(f"private prekey rejected: {exc}") from exc
        if public != self.prekey.public_raw:
            raise KeyMalformed(f"private prekey does not match public prekey {self.prekey.id}")

    @property
    def prekey(self) -> Prekey:
        return self.signed.prekey

    @property
    def id(self) -> str:
        return self.signed.prekey.id


def generate_prekey(
    identity: IdentityKey, suite: Suite, not_before: int, lifetime: int = DEFAULT_LIFETIME
) -> PrivatePrekey:
    if lifetime <= 0:
        raise KeyMalformed("prekey lifetime must be positive")
    if suite is Suite.HYBRID:
        private_raw = os.urandom(MLKEM768_SEED) + os.urandom(X25519_LEN)
    else:
        private_raw = os.urandom(X25519_LEN)
    public_raw = public_from_private(suite, private_raw)
    prekey = Prekey(key_id(public_raw), suite, public_raw, not_before, not_before + lifetime)
    return PrivatePrekey(sign_prekey(prekey, identity), private_raw)


@dataclass(frozen=True)
class PrekeyRing:
    """The node's private prekeys; every change returns a new ring so saves are all-or-nothing."""

    prekeys: tuple[PrivatePrekey, ...] = ()

    def __post_init__(self) -> None:
        ids = [p.id for p in self.prekeys]
        if len(set(ids)) != len(ids):
            raise KeyMalformed("duplicate prekey id in ring")

    @classmethod
    def of(cls, prekeys: Iterable[PrivatePrekey]) -> PrekeyRing:
        return cls(tuple(prekeys))

    def __iter__(self) -> Iterator[PrivatePrekey]:
        return iter(self.prekeys)

    def __len__(self) -> int:
        return len(self.prekeys)

    def add(self, prekey: PrivatePrekey) -> PrekeyRing:
        return PrekeyRing((*self.prekeys, prekey))

    def destroy_expired(self, now: int, grace: int = DEFAULT_GRACE) -> PrekeyRing:
        """Drop private keys past their grace: the step that actually delivers forward secrecy."""
        return PrekeyRing(tuple(p for p in self.prekeys if p.prekey.not_after + grace > now))

    def rotate(
        self,
        identity: IdentityKey,
        now: int,
        suite: Suite = Suite.HYBRID,
        lifetime: int = DEFAULT_LIFETIME,
        grace: int = DEFAULT_GRACE,
    ) -> PrekeyRing:
        fresh = generate_prekey(identity, suite, now, lifetime)
        return self.destroy_expired(now, grace).add(fresh)

    def get(self, prekey_id: str) -> PrivatePrekey | None:
        for prekey in self.prekeys:
            if prekey.id == prekey_id:
                return prekey
        return None

    def current(self, now: int) -> list[Prekey]:
        return [p.prekey for p in self.prekeys if p.prekey.valid_at(now)]

    def published(self, now: int) -> list[SignedPrekey]:
        """What the directory record should carry: every prekey a sender may still seal to."""
        return [p.signed for p in self.prekeys if now < p.prekey.not_after]

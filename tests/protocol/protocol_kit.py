"""Shared helpers for the protocol tests: three authorities with fixed keys, and a directory stub.

Nothing here reads a clock or draws randomness except HPKE's own encapsulation, so every test
sees the same identities, prekeys and times. The crafting helpers build envelopes straight from
the PROTOCOL.md grammar (not through ``seal``) so that attacks ``seal`` refuses to produce, such
as a re-sealed forwarded package, can be put on the wire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from protocol.encoding import frame
from protocol.envelope import (
    OpenedEnvelope,
    ReceiverPrekey,
    SealedEnvelope,
    open_envelope,
    seal,
)
from protocol.errors import EnvelopeKeyRevoked, EnvelopeUnknownSender
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind, Priority
from protocol.signing import LABELS, public_key_of, sign
from protocol.suites import Suite, hpke_seal, key_id, public_from_private

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
MAGIC = b"RGTE\x01"
HPKE_INFO_PREFIX = b"rogatory/v1/envelope-hpke\x00"


def derive(label: str, size: int = 32) -> bytes:
    """Fixed test key material: SHA-256 (or SHA-512 for 64 bytes) of a label."""
    digest = hashlib.sha512 if size == 64 else hashlib.sha256
    data = digest(f"rogatory/tests/{label}".encode()).digest()
    assert len(data) == size
    return data


def message_id(name: str) -> str:
    return hashlib.sha256(f"rogatory/tests/message/{name}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Prekey:
    suite: Suite
    private: bytes
    not_before: int = NOW - 10 * DAY
    not_after: int = NOW + 20 * DAY

    @property
    def public(self) -> bytes:
        return public_from_private(self.suite, self.private)

    @property
    def id(self) -> str:
        return key_id(self.public)

    def held(self, **changes: int) -> ReceiverPrekey:
        return replace(
            ReceiverPrekey(self.id, self.suite, self.private, self.not_before, self.not_after),
            **changes,
        )


@dataclass(frozen=True)
class Party:
    authority: str
    seed: bytes
    hybrid: Prekey
    x25519: Prekey

    @property
    def public(self) -> bytes:
        return public_key_of(self.seed)

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def prekey(self, suite: Suite) -> Prekey:
        return self.hybrid if suite is Suite.HYBRID else self.x25519


def make_party(authority: str) -> Party:
    return Party(
        authority=authority,
        seed=derive(f"identity/{authority}"),
        hybrid=Prekey(
            Suite.HYBRID,
            derive(f"prekey-mlkem/{authority}", 64) + derive(f"prekey-hybrid-x/{authority}"),
        ),
        x25519=Prekey(Suite.X25519, derive(f"prekey-x25519/{authority}")),
    )


@dataclass
class Directory:
    """A ``SenderKeys`` stub: identity keys by (authority, key id), some marked revoked."""

    keys: dict[tuple[str, str], bytes] = field(default_factory=dict)
    revoked: set[tuple[str, str]] = field(default_factory=set)
    calls: list[tuple[str, str, int, int]] = field(default_factory=list)

    def add(self, party: Party) -> Directory:
        self.keys[(party.authority, party.key_id)] = party.public
        return self

    def sender_key(self, authority_id: str, key_id: str, *, now: int, created: int) -> bytes:
        self.calls.append((authority_id, key_id, now, created))
        if (authority_id, key_id) in self.revoked:
            raise EnvelopeKeyRevoked(f"{authority_id} {key_id}")
        try:
            return self.keys[(authority_id, key_id)]
        except KeyError:
            raise EnvelopeUnknownSender(f"{authority_id} {key_id}") from None


@dataclass(frozen=True)
class World:
    alice: Party  # XA:MOJ, usually the sender
    bob: Party  # XB:MOJ, usually the receiver
    carol: Party  # XC:PGO, a third authority

    def directory(self) -> Directory:
        return Directory().add(self.alice).add(self.bob).add(self.carol)

    def header(
        self,
        sender: Party,
        recipient: Party,
        *,
        suite: Suite = Suite.HYBRID,
        name: str = "m1",
        created: int = NOW - 60,
        lifetime: int = 7 * DAY,
        **changes: object,
    ) -> EnvelopeHeader:
        base = EnvelopeHeader(
            id=message_id(name),
            kind=Kind.REQUEST,
            sender=sender.authority,
            recipient=recipient.authority,
            sender_key=sender.key_id,
            recipient_prekey=recipient.prekey(suite).id,
            suite=suite,
            created=created,
            expires=created + lifetime,
            in_reply_to="",
            case="XA/2026/0001",
            priority=Priority.URGENT,
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def seal(
        self,
        header: EnvelopeHeader,
        sender: Party,
        recipient: Party,
        payload: bytes = b'{"request":"hearing of a witness"}',
        content_type: str = "application/json",
    ) -> SealedEnvelope:
        return seal(
            header,
            content_type,
            payload,
            sender_seed=sender.seed,
            recipient_public=recipient.prekey(header.suite).public,
        )

    def open(
        self,
        data: bytes,
        receiver: Party,
        *,
        now: int = NOW,
        directory: Directory | None = None,
        prekeys: dict[str, ReceiverPrekey] | None = None,
        strongest: Suite = Suite.HYBRID,
        seen: frozenset[tuple[str, str]] = frozenset(),
        max_skew: int = 300,
    ) -> OpenedEnvelope:
        if prekeys is None:
            prekeys = {p.id: p.held() for p in (receiver.hybrid, receiver.x25519)}
        held = prekeys
        used: Callable[[str, str], bool] = lambda sender, mid: (sender, mid) in seen  # noqa: E731
        return open_envelope(
            data,
            me=receiver.authority,
            now=now,
            senders=directory if directory is not None else self.directory(),
            prekey=held.get,
            strongest_suite=strongest,
            already_used=used,
            max_skew=max_skew,
        )


def craft_package(header_bytes: bytes, content_type: str, payload: bytes, seed: bytes) -> bytes:
    """package = frame(header) frame(content-type) frame(payload) inner-sig (PROTOCOL.md)."""
    body = frame(header_bytes, content_type.encode("ascii"), payload)
    return body + sign(seed, LABELS["envelope-inner"], body)


def craft_envelope(
    header_bytes: bytes,
    package: bytes,
    *,
    suite: Suite,
    recipient_public: bytes,
    signer_seed: bytes,
    sealed: bytes | None = None,
    info: bytes | None = None,
) -> bytes:
    """envelope = "RGTE" 0x01 frame(header) frame(sealed) outer-sig, built from the spec."""
    if info is None:
        info = HPKE_INFO_PREFIX + hashlib.sha256(header_bytes).digest()
    if sealed is None:
        sealed = hpke_seal(suite, recipient_public, info, package)
    outer = sign(signer_seed, LABELS["envelope"], hashlib.sha256(sealed).digest() + header_bytes)
    return MAGIC + frame(header_bytes, sealed) + outer

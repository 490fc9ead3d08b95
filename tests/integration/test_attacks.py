"""What a running node does with hostile or broken envelopes sent to it over real HTTPS.

Every refusal must come back as a receipt signed by the receiving node (checked against the
key the directory lists for it), carrying the refusal's own stable code and HTTP status, and
the receiving node's store must be exactly as it was: a refused envelope leaves no trace.
Envelopes are built with the real protocol code and real keys; where an attack needs an
envelope that ``seal`` would refuse to make, it is assembled by hand following the layout in
``protocol/envelope.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import ssl
import time
from base64 import b64decode
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from keys.directory import Directory
from keys.identity import IdentityKey
from keys.keystore import KeyStore
from keys.prekeys import generate_prekey
from node.federation import Federation, passphrase_for
from node.node import Node
from node.outbound import Draft, compose
from node.store import OutboundRecord
from protocol.encoding import canonical_json, frame
from protocol.envelope import (
    HPKE_INFO_LABEL,
    MAGIC,
    envelope_hash,
    parse_envelope,
    seal,
    verify_package,
)
from protocol.errors import DirectoryRollback
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind
from protocol.receipt import Receipt, ReceiptStatus
from protocol.signing import LABELS, sign
from protocol.suites import Suite, hpke_seal
from tests.integration.kit import (
    BR,
    DELIVERY,
    FR,
    KE,
    MEMBERS,
    outbound_state,
    post_raw,
    revoke_identity,
    snapshot,
    start_federation,
    start_node,
    stop_node,
)

# --- building envelopes --------------------------------------------------------------------


def envelope_from(fed: Federation, sender: str, recipient: str, payload: bytes = b"case file",
                  case: str = "") -> OutboundRecord:
    """A genuine envelope, sealed by ``sender``'s node code, but not queued for delivery."""
    node = fed.nodes[sender]
    return compose(Draft(recipient, Kind.REQUEST, "text/plain", payload, case=case),
                   authority=sender, keystore=node.keystore, directory=node.directory,
                   archive=node.archive, now=int(time.time()))


def header(*, sender: str, sender_key: str, recipient: str, prekey: str, suite: Suite,
           created: int, expires: int) -> EnvelopeHeader:
    return EnvelopeHeader(
        id=os.urandom(16).hex(), kind=Kind.REQUEST, sender=sender,
        recipient=recipient, sender_key=sender_key, recipient_prekey=prekey, suite=suite,
        created=created, expires=expires,
    )


def assemble(header_bytes: bytes, package: bytes, *, suite: Suite, seal_to: bytes,
             sender_seed: bytes) -> bytes:
    """An envelope laid out as ``protocol.envelope.seal`` does, from parts seal would refuse.

    envelope = "RGTE" 0x01 frame(header) frame(sealed) Ed25519(envelope label, SHA-256(sealed)
    || header), sealed = HPKE(seal_to, "rogatory/v1/envelope-hpke" 0x00 SHA-256(header), package)
    """
    info = HPKE_INFO_LABEL + hashlib.sha256(header_bytes).digest()
    sealed = hpke_seal(suite, seal_to, info, package)
    outer = sign(sender_seed, LABELS["envelope"], hashlib.sha256(sealed).digest() + header_bytes)
    return MAGIC + b"\x01" + frame(header_bytes, sealed) + outer


def sealed_span(data: bytes) -> range:
    """Where the HPKE ciphertext lies inside an envelope's bytes."""
    header_length = int.from_bytes(data[5:9], "big")
    start = 9 + header_length + 4
    return range(start, start + int.from_bytes(data[start - 4:start], "big"))


# --- the check every refusal must pass -----------------------------------------------------


def a_peers_directory(fed: Federation, target: str) -> Directory:
    """The signed directory as another member holds it: what a sender checks receipts with."""
    return next(node.directory for authority, node in fed.nodes.items() if authority != target)


async def refused(fed: Federation, target: str, data: bytes, code: str, http: int, *,
                  names_envelope: bool = True) -> Receipt:
    """Post ``data`` to ``target``; demand a signed refusal with ``code`` and no new rows."""
    node = fed.nodes[target]
    before = await snapshot(node)
    status, receipt = await post_raw(a_peers_directory(fed, target), target, data)
    assert (status, receipt.code) == (http, code), receipt.detail
    assert receipt.status is ReceiptStatus.REJECTED
    assert not receipt.accepted
    assert receipt.receiver_key == node.keystore.identity.key_id
    assert receipt.envelope_hash == (envelope_hash(data) if names_envelope else "")
    assert await snapshot(node) == before
    return receipt


async def accepted(fed: Federation, target: str, data: bytes) -> Receipt:
    status, receipt = await post_raw(a_peers_directory(fed, target), target, data)
    assert (status, receipt.status, receipt.code) == (200, ReceiptStatus.ACCEPTED, "")
    assert receipt.envelope_hash == envelope_hash(data)
    return receipt


# --- forgeries and misdirection ------------------------------------------------------------


async def test_tampered_header_byte(federation: Federation) -> None:
    record = envelope_from(federation, FR, BR, case="PNF-AAAA")
    assert record.envelope.count(b"PNF-AAAA") == 1
    tampered = record.envelope.replace(b"PNF-AAAA", b"PNF-AAAB")
    assert parse_envelope(tampered).header.case == "PNF-AAAB"  # still a well-formed header

    receipt = await refused(federation, BR, tampered, "envelope.signature_invalid", 403)
    assert (receipt.message_id, receipt.sender) == (record.message_id, FR)
    # The genuine envelope still goes through: the forgery left nothing behind.
    await accepted(federation, BR, record.envelope)


async def test_tampered_ciphertext_byte(federation: Federation) -> None:
    record = envelope_from(federation, FR, BR)
    position = len(record.envelope) - 100
    assert position in sealed_span(record.envelope)
    tampered = bytearray(record.envelope)
    tampered[position] ^= 0x01

    await refused(federation, BR, bytes(tampered), "envelope.signature_invalid", 403)
    await accepted(federation, BR, record.envelope)


async def test_wrong_recipient(federation: Federation) -> None:
    record = envelope_from(federation, FR, KE)
    receipt = await refused(federation, BR, record.envelope, "envelope.wrong_recipient", 422)
    assert (receipt.message_id, receipt.sender) == (record.message_id, FR)
    await accepted(federation, KE, record.envelope)


async def test_surreptitious_forwarding(federation: Federation) -> None:
    """BR re-seals FR's signed package to KE under its own outer signature and header."""
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    sent = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"for Brazil's eyes only"))
    await outbound_state(fr, sent.message_id, lambda r: r.state == "delivered")
    package = b64decode((await br.read_message(sent.message_id))["package_b64"])
    signed = verify_package(package, fr.directory.record(FR).identity_key)
    assert (signed.header.sender, signed.header.recipient) == (FR, BR)

    now = int(time.time())
    prekey = br.directory.prekey_for(KE, now)
    outer = header(sender=BR, sender_key=br.keystore.identity.key_id, recipient=KE,
                   prekey=prekey.id, suite=prekey.suite, created=now, expires=now + 3600)
    forwarded = assemble(outer.encode(), package, suite=prekey.suite, seal_to=prekey.public_raw,
                         sender_seed=br.keystore.identity.seed)

    receipt = await refused(federation, KE, forwarded, "envelope.forwarded", 403)
    assert (receipt.message_id, receipt.sender) == (outer.id, BR)
    assert await ke.call(ke.store.count_inbound) == 0


async def test_replay(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"original"))
    sent = await outbound_state(fr, queued.message_id, lambda r: r.state == "delivered")
    original = (await br.call(br.store.inbound_by_id, sent.message_id)).receipt
    assert sent.receipt == original

    # The exact bytes again: the receipt already issued, byte for byte, and nothing new.
    before = await snapshot(br)
    status, again = await post_raw(fr.directory, BR, sent.envelope)
    assert (status, again.data) == (200, original)
    assert await snapshot(br) == before

    # The same sender and message id in different bytes: a replay, refused.
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    reused = dataclasses.replace(parse_envelope(sent.envelope).header, created=now,
                                 expires=now + 600)
    other = seal(reused, "text/plain", b"substituted", sender_seed=fr.keystore.identity.seed,
                 recipient_public=prekey.public_raw).data
    receipt = await refused(federation, BR, other, "envelope.replayed", 409)
    assert (receipt.message_id, receipt.sender) == (sent.message_id, FR)
    message = await br.read_message(sent.message_id)
    assert b64decode(message["payload_b64"]) == b"original"


async def test_reflection(federation: Federation) -> None:
    """An envelope from BR to BR, genuinely signed by BR's own identity key."""
    br = federation.nodes[BR]
    now = int(time.time())
    prekey = br.directory.prekey_for(BR, now)
    own = header(sender=BR, sender_key=br.keystore.identity.key_id, recipient=BR,
                 prekey=prekey.id, suite=prekey.suite, created=now, expires=now + 600)
    data = seal(own, "text/plain", b"echo", sender_seed=br.keystore.identity.seed,
                recipient_public=prekey.public_raw).data
    await refused(federation, BR, data, "envelope.reflected", 403)


async def test_expired(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    # Created inside the prekey's window (less max_skew), expired before now.
    created = prekey.not_before - br.config.max_skew + 10
    old = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
                 prekey=prekey.id, suite=prekey.suite, created=created, expires=created + 20)
    assert old.expires <= now
    data = seal(old, "text/plain", b"too late", sender_seed=fr.keystore.identity.seed,
                recipient_public=prekey.public_raw).data
    await refused(federation, BR, data, "envelope.expired", 422)


@pytest.mark.parametrize("claimed", ["ZZ:NOBODY", FR], ids=["unlisted-authority", "impostor"])
async def test_unknown_sender(federation: Federation, claimed: str) -> None:
    """A fresh key speaking for an authority the directory does not list, or not with it."""
    br = federation.nodes[BR]
    stranger = IdentityKey.generate()
    now = int(time.time())
    prekey = br.directory.prekey_for(BR, now)
    forged = header(sender=claimed, sender_key=stranger.key_id, recipient=BR, prekey=prekey.id,
                    suite=prekey.suite, created=now, expires=now + 600)
    data = seal(forged, "text/plain", b"trust me", sender_seed=stranger.seed,
                recipient_public=prekey.public_raw).data
    receipt = await refused(federation, BR, data, "envelope.unknown_sender", 403)
    assert receipt.sender == claimed


async def test_revoked_key(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    before_revocation = envelope_from(federation, FR, BR, payload=b"first")
    after_revocation = envelope_from(federation, FR, BR, payload=b"second")
    await accepted(federation, BR, before_revocation.envelope)

    # FR reports its identity key compromised: a new key, the old one revoked as of now - 1.
    file = revoke_identity(federation, FR, fr.keystore.identity, int(time.time()))
    adopted = await br.adopt_directory(file)
    assert adopted.serial == br.directory.serial == 2

    await refused(federation, BR, after_revocation.envelope, "envelope.key_revoked", 403)


async def test_suite_downgrade_against_hybrid_prekey(federation: Federation) -> None:
    """An X25519-suite header naming the receiver's hybrid prekey (the only kind it has)."""
    fr, br = federation.nodes[FR], federation.nodes[BR]
    now = int(time.time())
    hybrid = fr.directory.prekey_for(BR, now)
    assert hybrid.suite is Suite.HYBRID
    weak = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
                  prekey=hybrid.id, suite=Suite.X25519, created=now, expires=now + 600)
    # Honestly sealed with X25519 HPKE (to a throwaway key: no check gets that far).
    throwaway = generate_prekey(IdentityKey.generate(), Suite.X25519, now).prekey.public_raw
    body = frame(weak.encode(), b"text/plain", b"weakly sealed")
    package = body + sign(fr.keystore.identity.seed, LABELS["envelope-inner"], body)
    data = assemble(weak.encode(), package, suite=Suite.X25519, seal_to=throwaway,
                    sender_seed=fr.keystore.identity.seed)
    receipt = await refused(federation, BR, data, "envelope.suite_downgrade", 422)
    assert receipt.message_id == weak.id
    assert br.keystore.prekeys.current(now)[0].suite is Suite.HYBRID


async def test_suite_downgrade_to_a_weaker_prekey_held(federation: Federation) -> None:
    """The receiver also holds an X25519 prekey; it still refuses X25519 while it offers hybrid."""
    await stop_node(federation, BR)
    home = federation.home(BR)
    now = int(time.time())
    store = KeyStore.open(home / "keystore.json", passphrase_for(BR))
    rotated = store.rotate_prekeys(now, suite=Suite.X25519)
    weak_prekey = next(p.prekey for p in rotated.prekeys if p.prekey.suite is Suite.X25519)
    br = await start_node(federation, BR)
    assert br.keystore.receiver_prekey(weak_prekey.id) is not None

    fr = federation.nodes[FR]
    weak = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
                  prekey=weak_prekey.id, suite=Suite.X25519, created=now, expires=now + 600)
    data = seal(weak, "text/plain", b"x25519 only", sender_seed=fr.keystore.identity.seed,
                recipient_public=weak_prekey.public_raw).data
    receipt = await refused(federation, BR, data, "envelope.suite_downgrade", 422)
    assert "offers" in receipt.detail
    # The same node still takes a hybrid envelope.
    await accepted(federation, BR, envelope_from(federation, FR, BR).envelope)


async def test_package_signed_by_another_key(federation: Federation) -> None:
    """Outer signature genuine, inner signature by someone else's key."""
    fr = federation.nodes[FR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    h = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
               prekey=prekey.id, suite=prekey.suite, created=now, expires=now + 600)
    body = frame(h.encode(), b"text/plain", b"words put in FR's mouth")
    package = body + sign(IdentityKey.generate().seed, LABELS["envelope-inner"], body)
    data = assemble(h.encode(), package, suite=prekey.suite, seal_to=prekey.public_raw,
                    sender_seed=fr.keystore.identity.seed)
    await refused(federation, BR, data, "envelope.inner_signature_invalid", 403)


async def test_package_header_differs_from_outer_header(federation: Federation) -> None:
    """Same parties inside and out, but another header sealed inside: envelope.header_mismatch."""
    fr = federation.nodes[FR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    outer, inner = (header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
                           prekey=prekey.id, suite=prekey.suite, created=now,
                           expires=now + 600) for _ in range(2))
    assert outer.id != inner.id
    package = seal(inner, "text/plain", b"inner", sender_seed=fr.keystore.identity.seed,
                   recipient_public=prekey.public_raw).package
    data = assemble(outer.encode(), package, suite=prekey.suite, seal_to=prekey.public_raw,
                    sender_seed=fr.keystore.identity.seed)
    await refused(federation, BR, data, "envelope.header_mismatch", 403)


async def test_sealed_to_another_key_under_the_receivers_prekey_id(
        federation: Federation) -> None:
    fr = federation.nodes[FR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    h = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
               prekey=prekey.id, suite=prekey.suite, created=now, expires=now + 600)
    other = generate_prekey(IdentityKey.generate(), Suite.HYBRID, now).prekey.public_raw
    body = frame(h.encode(), b"text/plain", b"unreadable")
    package = body + sign(fr.keystore.identity.seed, LABELS["envelope-inner"], body)
    data = assemble(h.encode(), package, suite=Suite.HYBRID, seal_to=other,
                    sender_seed=fr.keystore.identity.seed)
    await refused(federation, BR, data, "envelope.decrypt_failed", 422)


async def test_unknown_prekey(federation: Federation) -> None:
    fr = federation.nodes[FR]
    now = int(time.time())
    stale = generate_prekey(IdentityKey.generate(), Suite.HYBRID, now).prekey
    h = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
               prekey=stale.id, suite=stale.suite, created=now, expires=now + 600)
    data = seal(h, "text/plain", b"to a key BR never had", sender_seed=fr.keystore.identity.seed,
                recipient_public=stale.public_raw).data
    await refused(federation, BR, data, "envelope.prekey_unknown", 422)


async def test_created_too_far_in_the_future(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    created = now + br.config.max_skew + 60
    h = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
               prekey=prekey.id, suite=prekey.suite, created=created, expires=created + 600)
    data = seal(h, "text/plain", b"from the future", sender_seed=fr.keystore.identity.seed,
                recipient_public=prekey.public_raw).data
    await refused(federation, BR, data, "envelope.clock_skew", 422)


# --- races -----------------------------------------------------------------------------------


async def test_concurrent_redeliveries_get_one_receipt(federation: Federation) -> None:
    br = federation.nodes[BR]
    record = envelope_from(federation, FR, BR)
    results = await asyncio.gather(*(post_raw(br.directory, BR, record.envelope)
                                     for _ in range(8)))
    assert {status for status, _ in results} == {200}
    assert len({receipt.data for _, receipt in results}) == 1
    assert all(receipt.accepted for _, receipt in results)
    counts = await snapshot(br)
    assert (counts["messages_in"], counts["seen"], counts["receipts"]) == (1, 1, 1)


async def test_concurrent_replays_only_one_is_accepted(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    h = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
               prekey=prekey.id, suite=prekey.suite, created=now, expires=now + 600)
    variants = [seal(h, "text/plain", f"version {n}".encode(),
                     sender_seed=fr.keystore.identity.seed,
                     recipient_public=prekey.public_raw).data for n in range(6)]
    results = await asyncio.gather(*(post_raw(br.directory, BR, v) for v in variants))
    outcomes = sorted((status, receipt.code) for status, receipt in results)
    assert outcomes == [(200, "")] + [(409, "envelope.replayed")] * 5
    counts = await snapshot(br)
    assert (counts["messages_in"], counts["seen"], counts["receipts"]) == (1, 1, 1)
    winner = next(v for v, (status, _) in zip(variants, results, strict=True) if status == 200)
    stored = await br.call(br.store.inbound_by_id, h.id)
    assert stored.envelope_hash == envelope_hash(winner)


# --- bodies that are too big or not envelopes ----------------------------------------------


async def test_oversize_body_with_content_length(federation: Federation) -> None:
    br = federation.nodes[BR]
    body = os.urandom(br.config.max_body + 1)
    receipt = await refused(federation, BR, body, "transport.body_too_large", 413,
                            names_envelope=False)
    assert (receipt.message_id, receipt.sender) == ("", "")


async def test_oversize_body_chunked(federation: Federation) -> None:
    br = federation.nodes[BR]
    chunk = 1024 * 1024
    total = br.config.max_body + 1
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < total:
            piece = os.urandom(min(chunk, total - sent))
            sent += len(piece)
            yield piece

    before = await snapshot(br)
    status, receipt = await post_raw(a_peers_directory(federation, BR), BR, stream())
    assert (status, receipt.code, receipt.envelope_hash) == (413, "transport.body_too_large", "")
    assert receipt.status is ReceiptStatus.REJECTED
    assert receipt.receiver_key == br.keystore.identity.key_id
    assert sent > br.config.max_body  # the whole oversize stream was offered
    assert await snapshot(br) == before


def _random(envelope: bytes) -> bytes:
    return os.urandom(len(envelope))


def _truncated(envelope: bytes) -> bytes:
    return envelope[: len(envelope) // 2]


def _trailing_byte(envelope: bytes) -> bytes:
    return envelope + b"\x00"


def _version_two(envelope: bytes) -> bytes:
    return envelope[:4] + b"\x02" + envelope[5:]


def _empty(envelope: bytes) -> bytes:
    return b""


MALFORMED: list[tuple[str, Callable[[bytes], bytes], str, int]] = [
    ("random-bytes", _random, "envelope.malformed", 400),
    ("truncated", _truncated, "envelope.malformed", 400),
    ("trailing-byte", _trailing_byte, "envelope.malformed", 400),
    ("empty", _empty, "envelope.malformed", 400),
    ("wire-version-2", _version_two, "envelope.version_unsupported", 400),
]


@pytest.mark.parametrize(("mangle", "code", "http"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
async def test_malformed_body(federation: Federation, mangle: Callable[[bytes], bytes],
                              code: str, http: int) -> None:
    record = envelope_from(federation, FR, BR)
    receipt = await refused(federation, BR, mangle(record.envelope), code, http)
    assert (receipt.message_id, receipt.sender) == ("", "")
    await accepted(federation, BR, record.envelope)


async def test_header_with_unknown_kind(federation: Federation) -> None:
    """A signed envelope whose header names no kind of protocol v1."""
    fr = federation.nodes[FR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    fields = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
                    prekey=prekey.id, suite=prekey.suite, created=now,
                    expires=now + 600).to_json()
    header_bytes = canonical_json({**fields, "kind": "subpoena"})
    data = assemble(header_bytes, b"not a package", suite=prekey.suite,
                    seal_to=prekey.public_raw, sender_seed=fr.keystore.identity.seed)
    await refused(federation, BR, data, "envelope.kind_unknown", 400)


async def test_non_canonical_header(federation: Federation) -> None:
    fr = federation.nodes[FR]
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    canonical = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
                       prekey=prekey.id, suite=prekey.suite, created=now,
                       expires=now + 600).encode()
    spaced = canonical.replace(b'","', b'", "', 1)
    data = assemble(spaced, b"not a package", suite=prekey.suite, seal_to=prekey.public_raw,
                    sender_seed=fr.keystore.identity.seed)
    await refused(federation, BR, data, "envelope.malformed", 400)


# --- directory rollback --------------------------------------------------------------------


async def test_adopting_an_older_directory_is_refused(federation: Federation) -> None:
    br = federation.nodes[BR]
    older = br.config.directory_path.read_bytes()
    assert br.directory.serial == 1
    newer = federation.directory_file(int(time.time()))
    assert (await br.adopt_directory(newer)).serial == 2

    with pytest.raises(DirectoryRollback) as caught:
        await br.adopt_directory(older)
    assert caught.value.code == "directory.rollback"
    assert br.directory.serial == 2
    assert (await br.status())["directory_serial"] == 2


async def test_restart_with_an_older_directory_file_is_refused(federation: Federation) -> None:
    older = federation.nodes[BR].config.directory_path.read_bytes()
    await stop_node(federation, BR)
    federation.publish(int(time.time()))  # serial 2 into every home
    br = await start_node(federation, BR)
    assert br.directory.serial == 2
    await stop_node(federation, BR)

    br.config.directory_path.write_bytes(older)
    with pytest.raises(DirectoryRollback) as caught:
        Node.from_home(federation.home(BR), passphrase_for(BR))
    assert caught.value.code == "directory.rollback"


async def test_key_compromise_impersonation(federation: Federation) -> None:
    """KCI: KE steals BR's private prekey and tries to pass itself off to BR as FR.

    Holding the recipient's decryption key lets KE seal to BR, but every signature BR checks is
    FR's, which KE does not have: the envelope is refused before BR decrypts it.
    """
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    now = int(time.time())
    prekey = fr.directory.prekey_for(BR, now)
    stolen = br.keystore.receiver_prekey(prekey.id)
    assert stolen is not None and stolen.private_raw  # the attacker holds BR's private prekey
    h = header(sender=FR, sender_key=fr.keystore.identity.key_id, recipient=BR,
               prekey=prekey.id, suite=prekey.suite, created=now, expires=now + 600)
    body = frame(h.encode(), b"text/plain", b"FR asks for the freeze to be lifted")
    package = body + sign(ke.keystore.identity.seed, LABELS["envelope-inner"], body)
    data = assemble(h.encode(), package, suite=prekey.suite, seal_to=prekey.public_raw,
                    sender_seed=ke.keystore.identity.seed)
    await refused(federation, BR, data, "envelope.signature_invalid", 403)


async def test_a_body_trickled_in_slowly_is_cut_off(tmp_path: Path) -> None:
    """Slowloris: a client that sends its body a byte at a time is refused once the body
    timeout passes, with a signed receipt, and nothing is stored."""
    fed = await start_federation(tmp_path, MEMBERS, delivery={**DELIVERY, "body_timeout": 1.0})
    try:
        br = fed.nodes[BR]
        genuine = envelope_from(fed, FR, BR).envelope
        before = await snapshot(br)

        async def trickle() -> AsyncIterator[bytes]:
            for byte in genuine[:40]:
                yield bytes([byte])
                await asyncio.sleep(0.1)

        started = time.monotonic()
        status, receipt = await post_raw(fed.nodes[FR].directory, BR, trickle())
        assert (status, receipt.code) == (408, "transport.body_too_slow")
        assert time.monotonic() - started < 3.5
        assert await snapshot(br) == before
        await accepted(fed, BR, genuine)  # a sender at a normal pace still gets through
    finally:
        await fed.stop()


async def test_slow_or_absent_request_heads_are_cut_off(tmp_path: Path) -> None:
    """Slowloris on the head: a connection that dribbles its request line and headers, or
    completes TLS and sends nothing, is closed once the header timeout passes, and the node
    goes on serving."""
    fed = await start_federation(tmp_path, MEMBERS, delivery={**DELIVERY, "header_timeout": 1.0})
    try:
        br = fed.nodes[BR]
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # an attacker's

        async def held_for(head: bytes) -> float:
            """Seconds until the node closes a connection that sends ``head`` a byte every
            0.1 s and never finishes it."""
            reader, writer = await asyncio.open_connection("127.0.0.1", br.peer_port,
                                                          ssl=context)
            started = time.monotonic()
            try:
                for byte in head:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    if await _closed(reader, 0.1):
                        break
                else:
                    assert await _closed(reader, 10), "the node held the connection open"
            except ConnectionError:
                pass  # closed under our write: as good
            finally:
                writer.close()
            return time.monotonic() - started

        before = await snapshot(br)
        dribbled = await asyncio.gather(*(held_for(
            b"POST /v1/envelopes HTTP/1.1\r\nHost: node\r\n" + b"X-Pad: a\r\n" * 40)
            for _ in range(3)))
        silent = await held_for(b"")
        assert all(0.9 < held < 3.5 for held in [*dribbled, silent]), (dribbled, silent)
        assert await snapshot(br) == before
        await accepted(fed, BR, envelope_from(fed, FR, BR).envelope)
    finally:
        await fed.stop()


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the other side closes the connection within ``within`` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1024), within) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True

"""Batches on running nodes (PROTOCOL.md §10 "Batches"): many envelopes in one request.

The receiving side: ``POST /v1/envelopes/batch`` with framed envelopes is answered with one
framed, signed receipt per envelope, in order, each exactly what a single POST would have got;
the acceptances of a batch are committed together and proved against one checkpoint; a body
that is not 1 to 64 frames is refused whole as one malformed envelope. The sending side: due
envelopes to one peer go out in batches of at most 64, exactly once, and a peer without the
batch route is served one envelope per request. Submits that arrive together share one
transaction, yet each fails alone and a failed one leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import node.node as node_module
import node.outbound as outbound_module
from keys.directory import Directory
from node.federation import Federation
from node.node import Journalled, Node
from node.outbound import (
    BATCH_MEDIA_TYPE,
    MAX_BATCH,
    RECEIPT_MEDIA_TYPE,
    RECEIPTS_MEDIA_TYPE,
    Draft,
    compose,
)
from node.peer_api import peer_application
from node.store import OutboundRecord
from node.tls import client_pin
from protocol.checkpoint import Checkpoint
from protocol.encoding import Reader, frame
from protocol.envelope import envelope_hash, parse_envelope, seal
from protocol.errors import CaseTransitionInvalid
from protocol.kinds import Kind
from protocol.log_entry import parse_entry, verify_receipt_proof
from protocol.receipt import Receipt, ReceiptStatus, parse_receipt
from tests.integration.kit import (
    BR,
    FR,
    KE,
    eventually,
    post_raw,
    snapshot,
    start_node,
    stop_node,
)

BATCH_PATH = "/v1/envelopes/batch"

# --- building envelopes and posting them raw -----------------------------------------------


def sealed(fed: Federation, sender: str, recipient: str, payload: bytes = b"case file",
           ) -> OutboundRecord:
    """A genuine envelope sealed by ``sender``'s node code, not queued for delivery."""
    node = fed.nodes[sender]
    return compose(Draft(recipient, Kind.REQUEST, "text/plain", payload),
                   authority=sender, keystore=node.keystore, directory=node.directory,
                   archive=node.archive, now=int(time.time()))


def replay_of(fed: Federation, sender: str, original: bytes) -> bytes:
    """Other bytes under the same sender and message id: a replay."""
    node = fed.nodes[sender]
    now = int(time.time())
    old = parse_envelope(original).header
    prekey = node.directory.prekey_for(old.recipient, now)
    header = dataclasses.replace(old, created=now, expires=now + 600)
    data = seal(header, "text/plain", b"substituted", sender_seed=node.keystore.identity.seed,
                recipient_public=prekey.public_raw).data
    assert data != original and parse_envelope(data).header.id == old.id
    return data


def flipped(data: bytes) -> bytes:
    """One byte of the ciphertext flipped: the outer signature no longer holds."""
    tampered = bytearray(data)
    tampered[len(data) - 100] ^= 0x01
    return bytes(tampered)


async def post_to(directory: Directory, target: str, path: str,
                  body: bytes | AsyncIterator[bytes]) -> tuple[int, str, bytes]:
    """POST to a node's peer endpoint over pinned TLS; HTTP status, media type and body."""
    record = directory.record(target)
    data: bytes | io.BytesIO | AsyncIterator[bytes] = body
    if isinstance(body, bytes) and len(body) > 1024 * 1024:
        data = io.BytesIO(body)  # sized, so sent with a Content-Length
    async with aiohttp.ClientSession() as session, session.post(
        record.endpoint + path, data=data, ssl=client_pin(record.tls_fingerprint),
        headers={"Content-Type": BATCH_MEDIA_TYPE, "Accept": RECEIPTS_MEDIA_TYPE},
    ) as response:
        return response.status, response.content_type, await response.read()


def signed_by(directory: Directory, target: str, data: bytes) -> Receipt:
    receipt = parse_receipt(data)
    assert receipt.receiver == target
    receipt.verify(directory.receiver_key(target, receipt.receiver_key))
    return receipt


async def post_batch(fed: Federation, target: str, envelopes: list[bytes],
                     sender: str = FR) -> list[Receipt]:
    """A well-framed batch: 200, one verified receipt per envelope, framed exactly."""
    directory = fed.nodes[sender].directory
    status, media, body = await post_to(directory, target, BATCH_PATH, frame(*envelopes))
    assert (status, media) == (200, RECEIPTS_MEDIA_TYPE)
    reader = Reader(body)
    parts = [reader.framed() for _ in envelopes]
    reader.end()
    return [signed_by(directory, target, part) for part in parts]


async def refused_whole(fed: Federation, target: str, body: bytes, code: str, http: int,
                        ) -> Receipt:
    """A batch body refused as one envelope: a single signed receipt, and nothing stored."""
    node = fed.nodes[target]
    before = await snapshot(node), await node.call(node.store.audit.size)
    directory = fed.nodes[FR].directory
    status, media, answer = await post_to(directory, target, BATCH_PATH, body)
    assert (status, media) == (http, RECEIPT_MEDIA_TYPE), answer[:200]
    receipt = signed_by(directory, target, answer)
    assert (receipt.status, receipt.code) == (ReceiptStatus.REJECTED, code), receipt.detail
    assert await snapshot(node) == before[0]
    assert await node.call(node.store.audit.size) == before[1]
    return receipt


def proven(fed: Federation, receipt: Receipt, target: str = BR) -> Checkpoint:
    """An acceptance whose inclusion proof verifies against the receiver's key."""
    assert (receipt.status, receipt.code) == (ReceiptStatus.ACCEPTED, "")
    key = fed.nodes[FR].directory.receiver_key(target, receipt.receiver_key)
    return verify_receipt_proof(receipt, key)


async def log_types(node: Node) -> dict[str, int]:
    return dict(await node.call(node.store.audit.counts))


async def stored_ids(node: Node) -> set[str]:
    def ids() -> set[str]:
        rows = node.store.db.execute("SELECT message_id FROM messages_in").fetchall()
        return {str(row[0]) for row in rows}

    return await node.call(ids)


# --- the receiving side --------------------------------------------------------------------


@pytest.fixture(params=["one hop", "crypto threads"])
def receiving_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A small batch is opened on the store thread in one hop, a large one on the crypto
    threads: the receiving-side tests below run both ways."""
    monkeypatch.setattr(node_module, "ONE_HOP_BATCH", 64 if request.param == "one hop" else 0)
    return str(request.param)


async def test_each_path_opens_where_it_says(federation: Federation, receiving_path: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    br = federation.nodes[BR]
    threads: list[str] = []
    real = br.inbound.open

    def noted(data: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(br.inbound, "open", noted)
    records = [sealed(federation, FR, BR, f"where {i}".encode()) for i in range(3)]
    receipts = await post_batch(federation, BR, [r.envelope for r in records])
    assert all(r.accepted for r in receipts)
    prefix = "store" if receiving_path == "one hop" else "crypto"
    assert len(threads) == 3 and all(name.startswith(prefix) for name in threads)


@pytest.mark.usefixtures("receiving_path")
async def test_a_batch_is_accepted_in_order_under_one_checkpoint(federation: Federation,
                                                                 ) -> None:
    br = federation.nodes[BR]
    records = [sealed(federation, FR, BR, f"letter {i}".encode()) for i in range(5)]

    receipts = await post_batch(federation, BR, [r.envelope for r in records])

    assert len(receipts) == 5
    checkpoints = []
    for record, receipt in zip(records, receipts, strict=True):
        receipt.check_names(envelope_hash=record.envelope_hash, message_id=record.message_id,
                            sender=FR, receiver=BR)
        checkpoints.append(proven(federation, receipt))
    assert [r.log_index for r in receipts] == sorted({r.log_index for r in receipts})
    # One checkpoint for the whole batch: every proof leads to the same tree head.
    assert len({(c.size, c.root) for c in checkpoints}) == 1
    assert await stored_ids(br) == {r.message_id for r in records}
    counts = await log_types(br)
    assert (counts["envelope-received"], counts["receipt-issued"]) == (5, 5)
    # Each receipt is the one stored, byte for byte, and a redelivery gets it back.
    for record, receipt in zip(records, receipts, strict=True):
        assert (await br.call(br.store.inbound_by_id, record.message_id)).receipt == receipt.data
    again = await post_batch(federation, BR, [r.envelope for r in records])
    assert [r.data for r in again] == [r.data for r in receipts]
    assert await log_types(br) == counts


@pytest.mark.usefixtures("receiving_path")
async def test_a_mixed_batch_answers_each_envelope_as_alone(federation: Federation) -> None:
    br = federation.nodes[BR]
    earlier = sealed(federation, FR, BR, b"earlier")
    status, original = await post_raw(federation.nodes[FR].directory, BR, earlier.envelope)
    assert (status, original.status) == (200, ReceiptStatus.ACCEPTED)
    first, second = sealed(federation, FR, BR, b"first"), sealed(federation, FR, BR, b"second")
    tampered = sealed(federation, FR, BR, b"tampered")
    elsewhere = sealed(federation, FR, KE, b"for Kenya")
    batch = [
        first.envelope,
        flipped(tampered.envelope),
        earlier.envelope,
        replay_of(federation, FR, earlier.envelope),
        second.envelope,
        elsewhere.envelope,
    ]

    receipts = await post_batch(federation, BR, batch)

    assert [(r.status, r.code) for r in receipts] == [
        (ReceiptStatus.ACCEPTED, ""),
        (ReceiptStatus.REJECTED, "envelope.signature_invalid"),
        (ReceiptStatus.ACCEPTED, ""),
        (ReceiptStatus.REJECTED, "envelope.replayed"),
        (ReceiptStatus.ACCEPTED, ""),
        (ReceiptStatus.REJECTED, "envelope.wrong_recipient"),
    ]
    assert receipts[2].data == original.data  # the original receipt, not a second acceptance
    for data, receipt in zip(batch, receipts, strict=True):
        assert receipt.envelope_hash == envelope_hash(data)
    assert (receipts[1].message_id, receipts[1].sender) == (tampered.message_id, FR)
    assert (receipts[3].message_id, receipts[3].sender) == (earlier.message_id, FR)
    assert (receipts[5].message_id, receipts[5].sender) == (elsewhere.message_id, FR)
    proven(federation, receipts[0])
    proven(federation, receipts[4])
    assert await stored_ids(br) == {earlier.message_id, first.message_id, second.message_id}
    assert (await snapshot(br))["messages_in"] == 3
    counts = await log_types(br)
    assert (counts["envelope-received"], counts["receipt-issued"]) == (3, 3)
    # The earlier message is untouched by its replay.
    assert (await br.call(br.store.inbound_by_id, earlier.message_id)).receipt == original.data


@pytest.mark.usefixtures("receiving_path")
async def test_a_redelivery_gets_its_receipt_without_being_opened_again(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """The receipt already issued answers exact redeliveries before any cryptography, in a
    batch and alone: opened again, an envelope since expired (or sealed to a retired prekey)
    would be refused although it was accepted."""
    br = federation.nodes[BR]
    old = sealed(federation, FR, BR, b"first time")
    [first] = await post_batch(federation, BR, [old.envelope])
    before = await snapshot(br)
    opened: list[bytes] = []
    real = br.inbound.open

    def counted(data: bytes) -> Any:
        opened.append(data)
        return real(data)

    monkeypatch.setattr(br.inbound, "open", counted)
    new = sealed(federation, FR, BR, b"new")
    again, fresh = await post_batch(federation, BR, [old.envelope, new.envelope])
    assert again.data == first.data
    assert fresh.accepted and fresh.data != first.data
    status, alone = await post_raw(br.directory, BR, old.envelope)
    assert (status, alone.data) == (200, first.data)
    assert opened == [new.envelope]
    after = await snapshot(br)
    assert after["messages_in"] == before["messages_in"] + 1


@pytest.mark.usefixtures("receiving_path")
async def test_the_same_envelope_twice_in_a_batch_is_taken_once(federation: Federation) -> None:
    br = federation.nodes[BR]
    record = sealed(federation, FR, BR)
    other = sealed(federation, FR, BR, b"other")

    receipts = await post_batch(federation, BR, [record.envelope, other.envelope,
                                                 record.envelope])

    first, _, second = receipts
    proven(federation, first)
    proven(federation, receipts[1])
    assert first.envelope_hash == second.envelope_hash == record.envelope_hash
    # Never a second, different acceptance: the same receipt again, or a replay refusal.
    # (The code answers envelope.replayed: the copy is refused within the batch's transaction.)
    assert second.data == first.data or (
        second.status is ReceiptStatus.REJECTED and second.code == "envelope.replayed")
    stored = await br.call(br.store.inbound_by_id, record.message_id)
    assert stored.receipt == first.data
    assert (await snapshot(br))["messages_in"] == 2
    assert (await log_types(br))["envelope-received"] == 2

    # Once stored, the pair in one batch gets the original receipt for both.
    again = await post_batch(federation, BR, [record.envelope, record.envelope])
    assert [r.data for r in again] == [first.data, first.data]
    assert (await snapshot(br))["messages_in"] == 2


@pytest.mark.usefixtures("receiving_path")
async def test_two_versions_of_one_message_id_in_a_batch(federation: Federation) -> None:
    """Same sender and id, different bytes, in one batch: the first wins, the second is a replay."""
    br = federation.nodes[BR]
    record = sealed(federation, FR, BR, b"genuine")
    replay = replay_of(federation, FR, record.envelope)

    receipts = await post_batch(federation, BR, [record.envelope, replay])

    proven(federation, receipts[0])
    assert (receipts[1].status, receipts[1].code) == (ReceiptStatus.REJECTED,
                                                      "envelope.replayed")
    assert receipts[1].envelope_hash == envelope_hash(replay)
    assert (await br.call(br.store.inbound_by_id, record.message_id)).envelope_hash == \
        record.envelope_hash
    assert (await snapshot(br))["messages_in"] == 1


async def test_an_empty_frame_is_one_malformed_envelope_of_the_batch(federation: Federation,
                                                                      ) -> None:
    record = sealed(federation, FR, BR)
    receipts = await post_batch(federation, BR, [record.envelope, b""])
    proven(federation, receipts[0])
    assert (receipts[1].status, receipts[1].code) == (ReceiptStatus.REJECTED,
                                                      "envelope.malformed")
    assert (await snapshot(federation.nodes[BR]))["messages_in"] == 1


@pytest.mark.parametrize("name", ["empty", "truncated-frame", "short-trailing-garbage",
                                  "long-trailing-garbage", "oversized-length-prefix"])
async def test_a_badly_framed_batch_is_refused_whole(federation: Federation, name: str) -> None:
    good = sealed(federation, FR, BR).envelope
    body = {
        "empty": b"",
        "truncated-frame": frame(good)[:-10],
        "short-trailing-garbage": frame(good) + b"\x00\x01",
        "long-trailing-garbage": frame(good) + b"junk and more junk",
        "oversized-length-prefix": (len(good) + 1).to_bytes(4, "big") + good,
    }[name]
    receipt = await refused_whole(federation, BR, body, "envelope.malformed", 400)
    assert receipt.envelope_hash == envelope_hash(body)
    assert (receipt.message_id, receipt.sender) == ("", "")


async def test_sixty_five_envelopes_are_refused_sixty_four_accepted(federation: Federation,
                                                                     ) -> None:
    br = federation.nodes[BR]
    records = [sealed(federation, FR, BR, f"n{i}".encode()) for i in range(MAX_BATCH + 1)]

    await refused_whole(federation, BR, frame(*(r.envelope for r in records)),
                        "envelope.malformed", 400)

    receipts = await post_batch(federation, BR, [r.envelope for r in records[:MAX_BATCH]])
    assert len(receipts) == MAX_BATCH
    sizes = {proven(federation, r).size for r in receipts}
    assert len(sizes) == 1
    assert (await snapshot(br))["messages_in"] == MAX_BATCH


async def test_a_bare_envelope_on_the_batch_route_is_malformed(federation: Federation) -> None:
    record = sealed(federation, FR, BR)
    await refused_whole(federation, BR, record.envelope, "envelope.malformed", 400)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_batch_over_the_body_limit(federation: Federation, chunked: bool) -> None:
    """Two frames each under the limit, together over it: the limit is the request's."""
    br = federation.nodes[BR]
    half = br.config.max_body // 2 + 16
    body = frame(os.urandom(half), os.urandom(half))
    assert len(body) > br.config.max_body

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024 * 1024):
            yield body[start:start + 1024 * 1024]

    before = await snapshot(br)
    directory = federation.nodes[FR].directory
    status, media, answer = await post_to(directory, BR, BATCH_PATH,
                                          stream() if chunked else body)
    assert (status, media) == (413, RECEIPT_MEDIA_TYPE)
    receipt = signed_by(directory, BR, answer)
    assert (receipt.status, receipt.code) == (ReceiptStatus.REJECTED, "transport.body_too_large")
    assert (receipt.envelope_hash, receipt.message_id, receipt.sender) == ("", "", "")
    assert await snapshot(br) == before


@pytest.mark.usefixtures("receiving_path")
async def test_a_failed_group_commit_falls_back_to_one_by_one(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's transaction is undone; every envelope is then committed on its own."""
    br = federation.nodes[BR]
    real = br.store.accept_inbound_many
    calls = 0

    def failing_once(records: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.IntegrityError("injected")
        real(records)

    monkeypatch.setattr(br.store, "accept_inbound_many", failing_once)
    size_before = await br.call(br.store.audit.size)
    records = [sealed(federation, FR, BR, f"m{i}".encode()) for i in range(4)]

    receipts = await post_batch(federation, BR, [r.envelope for r in records])

    sizes = [proven(federation, r).size for r in receipts]
    assert len(set(sizes)) == 4  # one checkpoint each: committed one by one
    assert await stored_ids(br) == {r.message_id for r in records}
    counts = await log_types(br)
    assert (counts["envelope-received"], counts["receipt-issued"]) == (4, 4)
    # Nothing of the undone attempt remains in the log (entries or checkpoint).
    assert await br.call(br.store.audit.size) == size_before + 8
    assert sorted(sizes) == [size_before + 1, size_before + 3, size_before + 5, size_before + 7]
    assert await br.call(br.store.audit.checkpoint_at, size_before + 4) is None
    for record, receipt in zip(records, receipts, strict=True):
        assert (await br.call(br.store.inbound_by_id, record.message_id)).receipt == receipt.data


# --- the sending side ----------------------------------------------------------------------


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: object, name: str,
                calls: list[list[str]], gate: asyncio.Event | None = None) -> None:
    """Wrap ``post`` or ``post_batch`` of a worker to note the message ids of each request;
    with a ``gate``, hold each request until it is set (to the worker it is out and
    unanswered meanwhile)."""
    real: Callable[..., Awaitable[Any]] = getattr(obj, name)

    async def counted(first: OutboundRecord | list[OutboundRecord], *args: Any,
                      **kwargs: Any) -> Any:
        records = first if isinstance(first, list) else [first]
        calls.append([r.message_id for r in records])
        if gate is not None:
            await gate.wait()
        return await real(first, *args, **kwargs)

    monkeypatch.setattr(obj, name, counted)


async def outbound_states(node: Node) -> dict[str, int]:
    return dict(await node.call(node.store.outbound_states))


async def test_a_backlog_goes_out_in_batches_exactly_once(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    total = 150
    batches: list[list[str]] = []
    singles: list[list[str]] = []
    count_calls(monkeypatch, fr.worker, "post_batch", batches)
    count_calls(monkeypatch, fr.worker, "post", singles)

    await fr.worker.stop()  # a backlog builds while FR does not send
    queued = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"backlog {i}".encode()))
        for i in range(total)))
    assert await outbound_states(fr) == {"queued": total}
    await fr.worker.start()

    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": total},
                     timeout=20.0, what="the backlog delivered")

    assert sorted(map(len, batches), reverse=True) == [64, 64, 22]
    assert singles == []
    assert await stored_ids(br) == {r.message_id for r in queued}
    counts = await log_types(br)
    assert (counts["envelope-received"], counts["receipt-issued"]) == (total, total)
    assert await fr.call(fr.store.pending_count) == 0

    held = await fr.call(fr.store.outbound, total + 10)
    assert len(held) == total
    sizes = set()
    for record in held:
        assert record.receipt is not None and record.attempts == 1
        receipt = signed_by(fr.directory, BR, record.receipt)
        receipt.check_names(envelope_hash=record.envelope_hash, message_id=record.message_id,
                            sender=FR, receiver=BR)
        sizes.add(proven(federation, receipt).size)
        assert (await br.call(br.store.inbound_by_id, record.message_id)).receipt == \
            record.receipt
    assert len(sizes) == math.ceil(total / MAX_BATCH)  # one checkpoint per batch request
    assert (await log_types(fr))["receipt-received"] == total


async def test_the_expired_envelopes_of_a_batch_fail_and_the_others_arrive(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    skew = [0.0]
    await stop_node(federation, FR)
    fr = await start_node(federation, FR, clock=lambda: time.time() + skew[0])
    batches: list[list[str]] = []
    count_calls(monkeypatch, fr.worker, "post_batch", batches)
    await fr.worker.stop()
    lasting = [await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"lasting {i}".encode()))
               for i in range(3)]
    brief = [await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"brief {i}".encode(),
                                   lifetime=60)) for i in range(2)]
    skew[0] = 61.0  # past the brief ones' expiry, well within the others'
    await fr.worker.start()

    await eventually(lambda: outbound_states(fr),
                     lambda s: s == {"delivered": 3, "failed": 2}, what="the batch settled")
    assert [sorted(ids) for ids in batches] == [sorted(r.message_id for r in lasting)]
    for record in brief:
        failed = await fr.call(fr.store.outbound_by_id, record.message_id)
        assert (failed.state, failed.last_error, failed.receipt) == \
            ("failed", "envelope.expired", None)
    assert await stored_ids(federation.nodes[BR]) == {r.message_id for r in lasting}


async def test_a_backlog_for_a_peer_that_was_down_arrives_exactly_once(
        federation: Federation) -> None:
    """BR is down while FR queues; FR's batches fail and back off; BR returns; all arrive once."""
    fr = federation.nodes[FR]
    total = 150
    await stop_node(federation, BR)
    queued = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"while down {i}".encode()))
        for i in range(total)))

    def tried() -> int:
        return int(fr.store.db.execute(
            "SELECT count(*) FROM messages_out WHERE state = 'retrying' "
            "AND last_error = 'transport.unreachable'").fetchone()[0])

    await eventually(lambda: fr.call(tried), lambda n: n == total, what="every envelope tried")
    br = await start_node(federation, BR)
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": total},
                     timeout=20.0, what="the backlog delivered")

    assert await stored_ids(br) == {r.message_id for r in queued}
    counts = await log_types(br)
    assert (counts["envelope-received"], counts["receipt-issued"]) == (total, total)
    held = await fr.call(fr.store.outbound, total + 10)
    sizes = set()
    for record in held:
        assert record.receipt is not None
        receipt = signed_by(fr.directory, BR, record.receipt)
        receipt.check_names(envelope_hash=record.envelope_hash, message_id=record.message_id,
                            sender=FR, receiver=BR)
        sizes.add(proven(federation, receipt).size)
    assert len(sizes) < total // 2  # batched: far fewer commits than envelopes


async def test_a_peer_without_the_batch_route_is_served_one_by_one(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """BR restarted without the batch route: a real 404, then one envelope per request."""

    def without_batches(**options: Any) -> Any:
        return peer_application(**{**options, "accept_batch": None})

    await stop_node(federation, BR)
    monkeypatch.setattr(node_module, "peer_application", without_batches)
    br = await start_node(federation, BR)
    fr = federation.nodes[FR]
    batches: list[list[str]] = []
    singles: list[list[str]] = []
    count_calls(monkeypatch, fr.worker, "post_batch", batches)
    count_calls(monkeypatch, fr.worker, "post", singles)

    await fr.worker.stop()
    first = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"one {i}".encode())) for i in range(5)))
    await fr.worker.start()
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 5},
                     what="delivered one by one")

    # Concurrent submits are journalled in the order their sealing ends, not the list's.
    assert [sorted(b) for b in batches] == [sorted(r.message_id for r in first)]
    assert sorted(map(tuple, singles)) == sorted((r.message_id,) for r in first)
    assert BR in fr.worker._no_batch
    for queued in first:
        record = await fr.call(fr.store.outbound_by_id, queued.message_id)
        assert record.attempts == 2  # the refused batch, then its own request
        assert record.receipt is not None
        proven(federation, signed_by(fr.directory, BR, record.receipt))

    # The peer is remembered: later backlogs never try the batch route again.
    await fr.worker.stop()
    await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"two {i}".encode())) for i in range(3)))
    await fr.worker.start()
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 8},
                     what="second backlog delivered")
    assert len(batches) == 1
    assert len(singles) == 8 and all(len(c) == 1 for c in singles)
    assert (await snapshot(br))["messages_in"] == 8
    assert (await log_types(br))["envelope-received"] == 8


async def first_held(monkeypatch: pytest.MonkeyPatch, node: Node, to: str,
                     calls: list[list[str]]) -> tuple[asyncio.Event, OutboundRecord]:
    """One envelope submitted and sent alone, its request (and every later single-envelope
    request) held unanswered until the returned event is set."""
    gate = asyncio.Event()
    count_calls(monkeypatch, node.worker, "post", calls, gate)
    first = await node.submit(Draft(to, Kind.REQUEST, "text/plain", b"first"))
    await eventually(lambda: asyncio.sleep(0, len(calls)), lambda n: n == 1,
                     what="the first envelope sent at once, alone")
    return gate, first


async def test_what_is_submitted_while_a_request_is_unanswered_leaves_in_one_batch(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a steady load each envelope would otherwise pay a request, a commit and a
    checkpoint: a batch short of 64 waits until the peer has answered the last request."""
    fr, br = federation.nodes[FR], federation.nodes[BR]
    singles: list[list[str]] = []
    batches: list[list[str]] = []
    count_calls(monkeypatch, fr.worker, "post_batch", batches)
    gate, first = await first_held(monkeypatch, fr, BR, singles)
    rest = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"meanwhile {i}".encode()))
        for i in range(10)))
    await asyncio.sleep(0.3)
    assert batches == [] and len(singles) == 1  # held while the first is unanswered
    assert await outbound_states(fr) == {"queued": 11}

    gate.set()
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 11},
                     what="all delivered")
    assert singles == [[first.message_id]]
    assert [sorted(b) for b in batches] == [sorted(r.message_id for r in rest)]
    assert await stored_ids(br) == {r.message_id for r in [first, *rest]}
    assert (await log_types(br))["envelope-received"] == 11


async def test_a_submit_leaves_without_a_poll_of_the_outbox(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """A journalled envelope is handed to the worker in memory; the outbox is polled for
    retries and backlogs only (at most once a second when there are none)."""
    fr = federation.nodes[FR]
    polls: list[float] = []
    real = fr.store.due

    def due(*args: Any, **kwargs: Any) -> list[OutboundRecord]:
        polls.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(fr.store, "due", due)
    started = time.monotonic()
    for i in range(20):
        await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"one at a time {i}".encode()))
        await eventually(lambda: outbound_states(fr), lambda s, n=i + 1: s == {"delivered": n},
                         what=f"envelope {i} delivered")
    elapsed = time.monotonic() - started
    assert len(polls) <= 1 + math.ceil(elapsed), (len(polls), elapsed)


async def test_envelopes_waiting_in_memory_stay_queued_when_the_worker_stops(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    gate, first = await first_held(monkeypatch, fr, BR, [])
    waiting = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"waiting {i}".encode()))
        for i in range(5)))
    assert sum(map(len, fr.worker._ready.values())) == 5

    await fr.worker.stop(grace=0.1)  # the held request is cancelled, the waiting dropped
    assert fr.worker._ready == {} and fr.worker._in_flight == set()
    assert await outbound_states(fr) == {"queued": 6}
    assert await stored_ids(br) == set()

    gate.set()
    await fr.worker.start()
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 6},
                     what="all delivered after the restart")
    assert await stored_ids(br) == {r.message_id for r in [first, *waiting]}
    assert (await log_types(br))["envelope-received"] == 6


async def test_memory_holds_a_bounded_share_of_what_waits_the_outbox_the_rest(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most READY_BYTES wait in memory; the rest waits in the outbox, and once it has,
    later envelopes go there too until the poll catches up, so none overtakes them."""
    fr, br = federation.nodes[FR], federation.nodes[BR]
    monkeypatch.setattr(outbound_module, "READY_BYTES", 10_000)
    requests: list[list[str]] = []  # single and batch requests, in the order they went
    batch_gate = asyncio.Event()
    count_calls(monkeypatch, fr.worker, "post_batch", requests, batch_gate)
    gate, first = await first_held(monkeypatch, fr, BR, requests)
    size = len(first.envelope)
    rest = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"queued {i:02}".encode()))
        for i in range(20)))
    assert 0 < fr.worker._ready_bytes < 10_000 + size
    assert sum(map(len, fr.worker._ready.values())) < 20  # the rest only in the outbox
    assert fr.worker._backlog  # from now on offers go to the outbox too, behind the rest

    gate.set()  # the first is answered; what memory held goes, and is held in turn
    await eventually(lambda: asyncio.sleep(0, len(requests)), lambda n: n == 2,
                     what="the next batch sent")
    await eventually(lambda: asyncio.sleep(0, fr.worker._ready_bytes), lambda n: n > 0,
                     what="memory refilled from the outbox")
    refilled = sum(map(len, fr.worker._ready.values()))
    late = [await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"late {i}".encode()))
            for i in range(5)]
    assert sum(map(len, fr.worker._ready.values())) == refilled  # into the outbox, behind

    batch_gate.set()
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 26},
                     what="all delivered")
    sent = [m for r in requests[1:] for m in r]
    assert sorted(sent) == sorted(r.message_id for r in [*rest, *late])
    assert all(len(r) * size <= 10_000 + 2 * size for r in requests)
    assert max(sent.index(r.message_id) for r in rest) < min(
        sent.index(r.message_id) for r in late)
    assert await stored_ids(br) == {r.message_id for r in [first, *rest, *late]}
    assert (await log_types(br))["envelope-received"] == 26
    await eventually(lambda: asyncio.sleep(0, fr.worker._backlog), lambda b: not b,
                     what="the poll caught up")


async def test_an_envelope_with_attachments_is_never_batched(
        federation: Federation, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    evidence = tmp_path / "evidence.bin"
    evidence.write_bytes(os.urandom(100_000))
    batches: list[list[str]] = []
    singles: list[list[str]] = []
    count_calls(monkeypatch, fr.worker, "post_batch", batches)
    count_calls(monkeypatch, fr.worker, "post", singles)

    await fr.worker.stop()
    plain = await asyncio.gather(*(
        fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"plain {i}".encode()))
        for i in range(4)))
    attached = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"see attached",
                                     attachments=(evidence,)))
    await fr.worker.start()
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 5},
                     what="plain and attached delivered")

    assert [sorted(b) for b in batches] == [sorted(r.message_id for r in plain)]
    assert singles and all(c == [attached.message_id] for c in singles)
    assert await stored_ids(br) == {r.message_id for r in [*plain, attached]}
    _, chunks = await br.attachment(attached.message_id, 0)
    assert b"".join([chunk async for chunk in chunks]) == evidence.read_bytes()


async def test_a_raw_batch_takes_an_envelope_with_attachments_the_single_way(
        federation: Federation, tmp_path: Path) -> None:
    """Inside a batch, an envelope whose attachments have not arrived is answered as alone:
    a signed, transient attachment.incomplete, and nothing of it stored."""
    fr, br = federation.nodes[FR], federation.nodes[BR]
    evidence = tmp_path / "evidence.bin"
    evidence.write_bytes(os.urandom(10_000))
    await fr.worker.stop()  # FR seals and journals it, but does not send it
    attached = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"see attached",
                                     attachments=(evidence,)))
    plain = sealed(federation, FR, BR, b"plain")

    receipts = await post_batch(federation, BR, [plain.envelope, attached.envelope])

    proven(federation, receipts[0])
    assert (receipts[1].status, receipts[1].code) == (ReceiptStatus.REJECTED,
                                                      "attachment.incomplete")
    assert receipts[1].envelope_hash == attached.envelope_hash
    assert await stored_ids(br) == {plain.message_id}
    assert await br.call(br.store.receipt_for_inbound, attached.envelope_hash) is None


# --- group commit of submits ---------------------------------------------------------------


async def test_concurrent_submits_share_a_commit_but_fail_alone(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    case = "FR-2025-0777"
    request = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"the request", case=case))
    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 1},
                     what="the request delivered")
    before = await snapshot(fr)
    log_before = await log_types(fr)

    groups: list[tuple[int, int]] = []  # (items, failures) per shared transaction
    real = fr._queue_many

    def observed(items: list[Any]) -> list[BaseException | None]:
        results = real(items)
        groups.append((len(items), sum(r is not None for r in results)))
        return results

    monkeypatch.setattr(fr, "_queue_many", observed)

    def valid(i: int) -> Awaitable[OutboundRecord]:
        return fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"burst {i}".encode()))

    def invalid(i: int) -> Awaitable[OutboundRecord]:
        # FR asked; only the requested side (BR) may send an outcome, and nothing was
        # acknowledged yet: the case refuses this step.
        return fr.submit(Draft(BR, Kind.OUTCOME, "text/plain;charset=utf-8",
                               f"premature outcome {i}".encode(), case=case))

    burst = [valid(i) for i in range(50)]
    for position, i in ((0, 0), (26, 1), (52, 2)):
        burst.insert(position, invalid(i))
    results = await asyncio.gather(*burst, return_exceptions=True)

    failed = [r for r in results if isinstance(r, BaseException)]
    sent = [r for r in results if isinstance(r, OutboundRecord)]
    assert [type(r) for r in failed] == [CaseTransitionInvalid] * 3
    assert {r.code for r in failed if isinstance(r, CaseTransitionInvalid)} == {
        "case.transition_invalid"}
    assert [isinstance(results[p], BaseException) for p in (0, 26, 52)] == [True] * 3
    assert len(sent) == 50
    # They did share transactions: some commit held both refused and accepted submits.
    assert sum(n for n, _ in groups) == 53 and len(groups) < 53
    assert any(0 < bad < n for n, bad in groups)

    # No trace of the refused three: only the fifty were journalled, logged and tracked.
    after = await snapshot(fr)
    assert after["messages_out"] == before["messages_out"] + 50
    assert after["outbox"] - before["outbox"] <= 50
    log_after = await log_types(fr)
    assert log_after["envelope-sent"] == log_before["envelope-sent"] + 50

    def sent_kinds() -> list[str]:
        return [str(parse_entry(e)[1]["kind"]) for e in fr.store.audit.entries()
                if parse_entry(e)[1].get("kind") is not None]

    assert "outcome" not in await fr.call(sent_kinds)

    def outcome_rows() -> tuple[int, int]:
        db = fr.store.db
        return (int(db.execute("SELECT count(*) FROM messages_out WHERE kind = 'outcome'")
                    .fetchone()[0]),
                int(db.execute("SELECT count(*) FROM case_events WHERE kind = 'outcome'")
                    .fetchone()[0]))

    assert await fr.call(outcome_rows) == (0, 0)
    timeline = (await fr.case(case, BR))["timeline"]
    assert [e["kind"] for e in timeline] == ["request", "delivered"]
    assert timeline[0]["message_id"] == request.message_id

    await eventually(lambda: outbound_states(fr), lambda s: s == {"delivered": 51},
                     timeout=15.0, what="the fifty delivered")
    assert await stored_ids(br) == {request.message_id} | {r.message_id for r in sent}


async def test_submits_that_wait_for_a_busy_store_share_the_next_commit(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """One group is committed at a time: submits that arrive while the store thread is busy
    (here, held on purpose) join the next group instead of queueing one commit each."""
    fr, br = federation.nodes[FR], federation.nodes[BR]
    groups: list[int] = []
    real = fr._queue_many

    def observed(items: list[Any]) -> list[BaseException | None]:
        groups.append(len(items))
        return real(items)

    monkeypatch.setattr(fr, "_queue_many", observed)
    held = threading.Event()
    blocker = asyncio.ensure_future(fr.call(held.wait, 10.0))
    submits = []
    for i in range(5):
        submits.append(asyncio.ensure_future(
            fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"arriving {i}".encode()))))
        await asyncio.sleep(0.02)
    assert groups == [] and not any(s.done() for s in submits)
    held.set()
    await blocker
    queued = await asyncio.gather(*submits)
    assert groups == [1, 4]  # the first waited alone for the store; the rest joined the next
    await eventually(lambda: outbound_states(fr), lambda s: s.get("delivered") == 5,
                     what="all delivered")
    assert {r.message_id for r in queued} <= await stored_ids(br)


async def test_a_group_journal_refused_in_bulk_falls_back_to_one_by_one(
        federation: Federation) -> None:
    """A row the bulk write refuses (here a message id already journalled) undoes the group's
    transaction; each submit is then journalled alone and only the bad one fails."""
    fr = federation.nodes[FR]
    first = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"first"))

    def record(text: bytes) -> OutboundRecord:
        return compose(Draft(BR, Kind.REQUEST, "text/plain", text), authority=FR,
                       keystore=fr.keystore, directory=fr.directory, archive=fr.archive,
                       now=int(time.time()))

    good, other = record(b"good"), record(b"other")
    clash = dataclasses.replace(record(b"clash"), message_id=first.message_id)
    log_before = await log_types(fr)
    results = await fr.call(fr._queue_many, [Journalled(good, None), Journalled(clash, None),
                                             Journalled(other, None)])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.IntegrityError)
    hashes = {r.envelope_hash for r in await fr.call(fr.store.outbound, 1000)}
    assert {good.envelope_hash, other.envelope_hash} <= hashes
    assert clash.envelope_hash not in hashes
    assert (await log_types(fr))["envelope-sent"] == log_before["envelope-sent"] + 2


@pytest.mark.usefixtures("receiving_path")
async def test_a_batch_of_nothing_but_replays_stores_nothing_not_even_a_checkpoint(
        federation: Federation) -> None:
    """Every envelope refused in the group commit: no entry, no row, and no checkpoint signed
    (the bulk commit asks for proofs of nothing and must not sign a tree head for it)."""
    br = federation.nodes[BR]
    originals = [sealed(federation, FR, BR, f"original {i}".encode()) for i in range(3)]
    await post_batch(federation, BR, [r.envelope for r in originals])

    def checkpoints() -> int:
        return int(br.store.db.execute("SELECT count(*) FROM log_checkpoints").fetchone()[0])

    before = (await snapshot(br), await log_types(br), await br.call(checkpoints))
    replays = [replay_of(federation, FR, r.envelope) for r in originals]
    answers = await post_batch(federation, BR, replays)
    assert {(a.status, a.code) for a in answers} == {(ReceiptStatus.REJECTED, "envelope.replayed")}
    assert (await snapshot(br), await log_types(br), await br.call(checkpoints)) == before

"""Envelopes travelling between running nodes: delivery, retries, expiry, pinning, refusals.

The sender's outbox entry is the thing under test: it must end "delivered" only with a receipt
that verifies against the receiver's key in the signed directory, keep retrying through
transient failures (with the reason recorded), and reach a final state for the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from base64 import b64decode
from collections.abc import Callable

import pytest

from keys.directory import sign_record
from node.federation import Federation
from node.outbound import Draft
from node.store import OutboundRecord
from protocol.envelope import envelope_hash, parse_envelope, verify_package
from protocol.kinds import Kind, Priority
from protocol.receipt import ReceiptStatus, parse_receipt
from tests.integration.kit import (
    BR,
    FR,
    KE,
    outbound_state,
    revoke_identity,
    start_node,
    stop_node,
)


def delivered(record: OutboundRecord) -> bool:
    return record.state == "delivered"


def retrying_with(code: str) -> Callable[[OutboundRecord], bool]:
    def check(record: OutboundRecord) -> bool:
        return record.state == "retrying" and record.attempts > 0 and record.last_error == code
    return check


async def test_request_is_delivered_with_a_verified_receipt(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    payload = json.dumps({"measures": ["bank records"], "ref": "PNF 24-117"}).encode()
    started = int(time.time())
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "application/json", payload,
                                   case="PNF 24-117", priority=Priority.URGENT))
    assert queued.state == "queued"

    record = await outbound_state(fr, queued.message_id, delivered)
    assert (record.attempts, record.last_error) == (1, "")
    assert record.envelope == queued.envelope
    assert record.delivered_at is not None and record.delivered_at >= started
    assert await fr.call(fr.store.pending_count) == 0

    # The stored receipt proves delivery to anyone holding the directory.
    assert record.receipt is not None
    receipt = parse_receipt(record.receipt)
    receipt.verify(fr.directory.receiver_key(BR, receipt.receiver_key))
    receipt.check_names(envelope_hash=envelope_hash(record.envelope),
                        message_id=queued.message_id, sender=FR, receiver=BR)
    assert receipt.status is ReceiptStatus.ACCEPTED
    assert receipt.receiver_key == br.keystore.identity.key_id
    assert started <= receipt.received <= int(time.time())

    # The receiver kept the same receipt and a package that opens to the exact payload.
    inbound = await br.call(br.store.inbound_by_id, queued.message_id)
    assert inbound.receipt == record.receipt
    assert (inbound.sender, inbound.kind, inbound.case_ref, inbound.priority) == (
        FR, "request", "PNF 24-117", "urgent")
    assert inbound.opened_at is None
    message = await br.read_message(queued.message_id)
    assert b64decode(message["payload_b64"]) == payload
    assert message["content_type"] == "application/json"
    package = verify_package(b64decode(message["package_b64"]), fr.keystore.identity.public_raw)
    assert package.header_bytes == parse_envelope(record.envelope).header_bytes
    first_opening = (await br.call(br.store.inbound_by_id, queued.message_id)).opened_at
    assert first_opening is not None
    await br.read_message(queued.message_id)
    assert (await br.call(br.store.inbound_by_id, queued.message_id)).opened_at == first_opening

    # The sender's own archived copy opens too.
    mine = await fr.read_message(queued.message_id)
    assert (b64decode(mine["payload_b64"]), mine["state"]) == (payload, "delivered")


async def test_small_messages_are_sealed_on_the_loop_and_large_ones_on_a_thread(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealing a small message on the event loop saves a thread hand-off per submit; a large
    one must not stall the loop. Both arrive intact."""
    import threading

    import node.node as node_module

    fr, br = federation.nodes[FR], federation.nodes[BR]
    threads: dict[bytes, str] = {}
    from node.outbound import compose as real

    def watched(draft: Draft, **kwargs: object) -> OutboundRecord:
        threads[draft.payload] = threading.current_thread().name
        return real(draft, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(node_module, "compose", watched)
    small = b"s" * node_module.INLINE_SEAL_BYTES
    large = b"L" * (node_module.INLINE_SEAL_BYTES + 1)
    for payload in (small, large):
        queued = await fr.submit(Draft(BR, Kind.REQUEST, "application/octet-stream", payload))
        await outbound_state(fr, queued.message_id, delivered)
        message = await br.read_message(queued.message_id)
        assert b64decode(message["payload_b64"]) == payload
    assert threads[small] == threading.main_thread().name
    assert threads[large].startswith("crypto")


async def test_delivery_retries_until_the_receiver_is_back(federation: Federation) -> None:
    await stop_node(federation, BR)
    fr = federation.nodes[FR]
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"are you there?"))

    waiting = await outbound_state(fr, queued.message_id, retrying_with("transport.unreachable"))
    assert waiting.receipt is None
    assert await fr.call(fr.store.pending_count) == 1
    # It keeps trying (retry_base 0.05 s) rather than giving up.
    again = await outbound_state(fr, queued.message_id, lambda r: r.attempts > waiting.attempts)
    assert again.state == "retrying"

    br = await start_node(federation, BR)  # same home, same port
    record = await outbound_state(fr, queued.message_id, delivered)
    assert record.last_error == ""
    assert record.attempts > again.attempts
    assert record.envelope == queued.envelope  # every attempt sent the same bytes
    inbound = await br.call(br.store.inbound_by_id, queued.message_id)
    assert inbound.receipt == record.receipt
    assert await fr.call(fr.store.pending_count) == 0


async def test_envelope_expiring_while_the_receiver_is_down_fails(
        federation: Federation) -> None:
    skew = [0.0]

    def clock() -> float:
        return time.time() + skew[0]

    await stop_node(federation, FR)
    fr = await start_node(federation, FR, clock=clock)
    await stop_node(federation, BR)
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"urgent", lifetime=60))
    assert queued.expires == queued.created + 60
    await outbound_state(fr, queued.message_id, retrying_with("transport.unreachable"))

    skew[0] = 61.0  # the sender's clock passes the envelope's expiry
    record = await outbound_state(fr, queued.message_id, lambda r: r.state == "failed")
    assert record.last_error == "envelope.expired"
    assert record.receipt is None
    assert await fr.call(fr.store.pending_count) == 0
    assert await fr.call(fr.store.due, clock() + 3600, 10) == []

    # Once failed it stays failed: the receiver coming back changes nothing.
    br = await start_node(federation, BR)
    later = await fr.call(fr.store.outbound_by_id, queued.message_id)
    assert (later.state, later.attempts) == ("failed", record.attempts)
    assert await br.call(br.store.count_inbound) == 0


async def test_a_clock_skew_refusal_is_retried(federation: Federation) -> None:
    """The receiver's envelope.clock_skew is the one refusal a sender may overcome by retrying."""
    await stop_node(federation, FR)
    fr = await start_node(federation, FR, clock=lambda: time.time() + 3600)
    br = federation.nodes[BR]
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"from an hour ahead"))
    first = await outbound_state(fr, queued.message_id, retrying_with("envelope.clock_skew"))
    later = await outbound_state(fr, queued.message_id, lambda r: r.attempts > first.attempts)
    assert (later.state, later.last_error, later.receipt) == (
        "retrying", "envelope.clock_skew", None)
    assert await fr.call(fr.store.pending_count) == 1
    assert await br.call(br.store.count_inbound) == 0


async def test_tls_pin_mismatch_is_retried_not_delivered(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    # One delivery first, so a pooled connection to BR exists if the worker keeps any.
    first = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"first"))
    await outbound_state(fr, first.message_id, delivered)

    genuine = federation.records[BR]
    wrong = dataclasses.replace(genuine.record, tls_fingerprint="ab" * 32)
    federation.records[BR] = sign_record(wrong, br.keystore.identity)
    await fr.adopt_directory(federation.directory_file(int(time.time())))
    assert fr.directory.record(BR).tls_fingerprint == "ab" * 32

    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"second"))
    await outbound_state(fr, queued.message_id, retrying_with("transport.tls_pin_mismatch"))
    assert await br.call(br.store.count_inbound) == 1

    # The secretariat publishes the right pin again; the same envelope then goes through.
    federation.records[BR] = genuine
    await fr.adopt_directory(federation.directory_file(int(time.time())))
    record = await outbound_state(fr, queued.message_id, delivered)
    assert record.envelope == queued.envelope
    assert await br.call(br.store.count_inbound) == 2


async def test_final_refusal_closes_the_entry_with_the_signed_refusal(
        federation: Federation) -> None:
    """KE has been told FR's key is revoked; FR (not yet aware) sends anyway."""
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    await ke.adopt_directory(revoke_identity(federation, FR, fr.keystore.identity,
                                             int(time.time())))
    queued = await fr.submit(Draft(KE, Kind.REQUEST, "text/plain", b"from a revoked key"))

    record = await outbound_state(fr, queued.message_id, lambda r: r.state != "queued"
                                  and r.state != "retrying")
    assert (record.state, record.last_error, record.attempts) == (
        "refused", "envelope.key_revoked", 1)
    assert record.receipt is not None
    receipt = parse_receipt(record.receipt)
    receipt.verify(fr.directory.receiver_key(KE, receipt.receiver_key))
    receipt.check_names(envelope_hash=queued.envelope_hash, message_id=queued.message_id,
                        sender=FR, receiver=KE)
    assert (receipt.status, receipt.code) == (ReceiptStatus.REJECTED, "envelope.key_revoked")
    assert await fr.call(fr.store.pending_count) == 0
    assert await ke.call(ke.store.count_inbound) == 0


def delivery_attempts() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "") == "DeliveryWorker._attempt"]


async def test_stopping_a_node_ends_its_delivery_attempts(federation: Federation) -> None:
    """An attempt stuck on a silent peer must not outlive Node.stop() (and then write to a
    closed store); its entry simply stays in the outbox for the next start."""
    br = await stop_node(federation, BR)
    loop = asyncio.get_running_loop()
    # Something on BR's port that takes the connection and never answers the TLS handshake.
    with socket.socket() as silent:
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", br.config.peer_port))
        silent.listen()
        silent.setblocking(False)
        fr = federation.nodes[FR]
        queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"into the void"))
        connection, _ = await asyncio.wait_for(loop.sock_accept(silent), timeout=5)
        await stop_node(federation, FR)
        leftover = delivery_attempts()
        try:
            assert leftover == []
        finally:
            connection.close()
            await asyncio.gather(*leftover, return_exceptions=True)

    # Nothing was lost: both nodes back, the journalled envelope is delivered.
    fr = await start_node(federation, FR)
    assert await fr.call(fr.store.pending_count) == 1
    await start_node(federation, BR)
    record = await outbound_state(fr, queued.message_id, delivered)
    assert record.envelope == queued.envelope

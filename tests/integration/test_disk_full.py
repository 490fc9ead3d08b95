"""A node whose database cannot grow (a full disk or quota), on real nodes over TLS.

The database is capped with SQLite's ``max_page_count`` on the running node's own connection,
so every write meets SQLite's real ``SQLITE_FULL`` error in the middle of a transaction, the
way a full disk does; lifting the cap is freeing space. A receiver that cannot store answers
each envelope with a signed, transient ``store.disk_full`` refusal, stores nothing, and takes
every envelope exactly once when space returns. A sender that cannot journal refuses the
submit with the same code and queues nothing, through the local API too.
"""

from __future__ import annotations

import sqlite3

import aiohttp

from node.audit_bundle import verify_bundle
from node.federation import Federation
from node.node import Node
from node.outbound import Draft
from node.store import OutboundRecord
from protocol.errors import StoreDiskFull
from protocol.kinds import Kind
from protocol.receipt import parse_receipt
from tests.integration.kit import BR, FR, outbound_state, snapshot

UNCAPPED = 1_073_741_823


async def cap(node: Node) -> None:
    """No room left: the file may not grow, and its free pages are taken by a filler table."""
    def run() -> None:
        conn = node.store.db.conn
        conn.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
        conn.commit()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        for size in (4000, 500, 50):
            try:
                while True:
                    conn.execute("INSERT INTO filler VALUES (zeroblob(?))", [size])
                    conn.commit()
            except sqlite3.OperationalError:
                conn.rollback()
    await node.call(run)


async def uncap(node: Node) -> None:
    def run() -> None:
        conn = node.store.db.conn
        conn.execute(f"PRAGMA max_page_count = {UNCAPPED}")
        conn.execute("DROP TABLE filler")
        conn.commit()
    await node.call(run)


def draft(i: int) -> Draft:
    return Draft(BR, Kind.REQUEST, "text/plain", f"request {i} ".encode() * 4000,
                 case=f"FULL-{i}")


async def test_a_receiver_with_a_full_disk_refuses_transiently_and_takes_all_later(
        federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await cap(br)
    before = await snapshot(br)
    queued = [await fr.submit(draft(i)) for i in range(12)]

    def refused(record: OutboundRecord) -> bool:
        return record.last_error == "store.disk_full" and record.attempts >= 2

    for record in queued:
        waiting = await outbound_state(fr, record.message_id, refused)
        assert waiting.state == "retrying" and waiting.receipt is None
    assert await snapshot(br) == before  # nothing stored, nothing logged

    await uncap(br)
    for record in queued:
        done = await outbound_state(fr, record.message_id, lambda r: r.state == "delivered")
        receipt = parse_receipt(done.receipt or b"")
        receipt.verify(fr.directory.record(BR).identity_key)
        assert receipt.accepted
    received = [await br.call(br.store.inbound_by_id, r.message_id) for r in queued]
    assert len({r.envelope_hash for r in received}) == len(queued)
    assert (await snapshot(br))["messages_in"] == before["messages_in"] + len(queued)
    config = br.config
    report = verify_bundle(await br.export_bundle(), config.secretariat_keys, config.threshold)
    assert report.ok, report.problems


async def test_a_sender_with_a_full_disk_refuses_the_submit_and_queues_nothing(
        federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    before = await snapshot(fr)
    await cap(fr)
    for i in range(3):
        try:
            await fr.submit(draft(i))
        except StoreDiskFull as exc:
            assert exc.code == "store.disk_full"
        else:
            raise AssertionError("a submit on a full disk was queued")
    token = fr._api_token
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{fr.api_port}/api/v1/messages",
            json={"to": BR, "kind": "request", "payload": "over the local API " * 2000},
            headers={"Authorization": f"Bearer {token}"}) as response:
        answer = await response.json()
    assert answer["error"]["code"] == "store.disk_full"
    assert response.status == 507
    assert await snapshot(fr) == before

    await uncap(fr)
    record = await fr.submit(draft(99))
    done = await outbound_state(fr, record.message_id, lambda r: r.state == "delivered")
    assert done.receipt is not None
    assert (await br.call(br.store.inbound_by_id, record.message_id)).sender == FR

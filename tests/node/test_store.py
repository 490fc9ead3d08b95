"""The node's SQLite store on a real file: durability settings, atomic acceptance, uniqueness,
and the outbox lifecycle a delivery worker drives."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.archive import ArchiveKey
from node.outbound import Override
from node.store import InboundRecord, OutboundRecord, Store
from protocol.envelope import envelope_hash
from protocol.errors import StoreNotFound

TABLES = ("messages_in", "seen", "receipts", "messages_out", "outbox")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "node.db")
    yield opened
    opened.close()


def counts(store: Store) -> dict[str, int]:
    return {t: int(store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}


ARCHIVE = ArchiveKey(os.urandom(32))


def inbound(sender: str = "FR:MJ", message_id: str | None = None) -> InboundRecord:
    envelope = os.urandom(200)
    digest = envelope_hash(envelope)
    return InboundRecord(
        envelope_hash=digest, message_id=message_id or os.urandom(16).hex(), sender=sender,
        kind="request", case_ref="C-1", in_reply_to="", priority="normal", created=1000,
        expires=2000, received_at=1001, content_type="text/plain",
        archive=ARCHIVE.seal(digest, b"package"), receipt=b"RGTR receipt " + os.urandom(8),
        opened_at=None,
    )


def outbound(recipient: str = "BR:MJSP", message_id: str | None = None) -> OutboundRecord:
    envelope = os.urandom(300)
    digest = envelope_hash(envelope)
    return OutboundRecord(
        envelope_hash=digest, message_id=message_id or os.urandom(16).hex(),
        recipient=recipient, kind="request", case_ref="", in_reply_to="", priority="urgent",
        created=1000, expires=5000, envelope=envelope, archive=ARCHIVE.seal(digest, b"pkg"),
        state="queued", attempts=0, last_error="", receipt=None, delivered_at=None,
    )


def test_durability_settings(store: Store) -> None:
    pragma = store.db.execute
    assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert pragma("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert pragma("PRAGMA foreign_keys").fetchone()[0] == 1
    assert (store.path.parent / "node.db-wal").exists()


def test_accepted_envelope_round_trips_and_survives_reopening(tmp_path: Path) -> None:
    record = inbound()
    first = Store(tmp_path / "node.db")
    first.accept_inbound(record)
    first.close()

    again = Store(tmp_path / "node.db")
    try:
        assert again.inbound_by_id(record.message_id) == record
        assert again.receipt_for_inbound(record.envelope_hash) == record.receipt
        assert again.is_seen(record.sender, record.message_id)
        assert not again.is_seen("KE:ODPP", record.message_id)
        assert ARCHIVE.open(record.envelope_hash, again.inbound(10)[0].archive) == b"package"
        assert again.mark_opened(record.envelope_hash, 1500) is True
        assert again.mark_opened(record.envelope_hash, 1600) is False
        assert again.inbound_by_id(record.message_id).opened_at == 1500
    finally:
        again.close()


def test_accept_inbound_is_all_or_nothing_when_the_seen_insert_fails(store: Store) -> None:
    record = inbound()
    # A seen pair with no message behind it: the second of the three inserts will collide.
    store.db["seen"].insert({"sender": record.sender, "message_id": record.message_id,
                             "envelope_hash": "f" * 64, "expires": 0})
    before = counts(store)
    with pytest.raises(sqlite3.IntegrityError):
        store.accept_inbound(record)
    assert counts(store) == before
    assert store.receipt_for_inbound(record.envelope_hash) is None
    with pytest.raises(StoreNotFound):
        store.inbound_by_id(record.message_id)


def test_accept_inbound_is_all_or_nothing_when_the_receipt_insert_fails(store: Store) -> None:
    record = inbound()
    # An issued receipt already filed under this hash: the last of the three inserts collides.
    store.db["receipts"].insert({"envelope_hash": record.envelope_hash, "direction": "issued",
                                 "status": "accepted", "code": "", "receipt": b"old",
                                 "stored_at": 0})
    before = counts(store)
    with pytest.raises(sqlite3.IntegrityError):
        store.accept_inbound(record)
    assert counts(store) == before
    assert not store.is_seen(record.sender, record.message_id)
    assert store.count_inbound() == 0


def test_inbound_duplicates_are_integrity_errors(store: Store) -> None:
    record = inbound()
    store.accept_inbound(record)
    before = counts(store)
    with pytest.raises(sqlite3.IntegrityError):
        store.accept_inbound(record)  # the same envelope
    with pytest.raises(sqlite3.IntegrityError):
        store.accept_inbound(inbound(record.sender, record.message_id))  # same id, new bytes
    assert counts(store) == before
    # The same message id from another sender is another message.
    store.accept_inbound(inbound("KE:ODPP", record.message_id))
    assert store.count_inbound() == 2


def test_outbound_duplicates_are_integrity_errors(store: Store) -> None:
    record = outbound()
    store.queue_outbound(record, 10.0)
    before = counts(store)
    with pytest.raises(sqlite3.IntegrityError):
        store.queue_outbound(record, 10.0)
    with pytest.raises(sqlite3.IntegrityError):
        store.queue_outbound(outbound(message_id=record.message_id), 10.0)
    assert counts(store) == before


def test_next_due_after_a_moment_skips_what_is_due_by_then(store: Store) -> None:
    """The delivery worker holds what is due now; it sleeps until the next retry after it."""
    first, second = outbound(), outbound()
    store.queue_outbound(first, 100.0)
    store.queue_outbound(second, 160.0)
    assert store.next_due() == 100.0
    assert store.next_due(after=99.0) == 100.0
    assert store.next_due(after=100.0) == 160.0
    assert store.next_due(after=160.0) is None


def test_outbox_lifecycle_retry_then_delivery(store: Store) -> None:
    record = outbound()
    store.queue_outbound(record, 100.0)
    assert store.pending_count() == 1
    assert store.next_due() == 100.0
    assert store.due(99.0, 10) == []
    assert store.due(100.0, 10) == [record]

    store.record_retry(record.envelope_hash, "transport.unreachable", 160.0)
    retrying = store.outbound_by_id(record.message_id)
    assert (retrying.state, retrying.attempts, retrying.last_error) == (
        "retrying", 1, "transport.unreachable")
    assert store.due(150.0, 10) == []
    assert store.next_due() == 160.0
    store.record_retry(record.envelope_hash, "transport.tls_pin_mismatch", 200.0)
    assert store.outbound_by_id(record.message_id).attempts == 2

    store.record_delivery(record.envelope_hash, b"signed receipt", "accepted", "", 210)
    done = store.outbound_by_id(record.message_id)
    assert (done.state, done.attempts, done.last_error, done.delivered_at, done.receipt) == (
        "delivered", 3, "", 210, b"signed receipt")
    assert done.envelope == record.envelope
    assert store.pending_count() == 0
    assert store.next_due() is None
    assert store.due(10_000.0, 10) == []
    assert store.outbound_states() == {"delivered": 1}
    # A delivered envelope's receipt is filed as received, never as issued by us.
    assert store.receipt_for_inbound(record.envelope_hash) is None


def test_a_retry_scheduled_beyond_the_horizon_is_due_after_the_clock_steps_back(
        store: Store) -> None:
    """Found by the clock-skew fault run: retries kept waiting out a clock stepped back."""
    late, soon = outbound(), outbound("KE:ODPP")
    store.queue_outbound(late, 100.0)
    store.queue_outbound(soon, 100.0)
    store.record_retry(late.envelope_hash, "transport.unreachable", 700.0)  # clock was ahead
    store.record_retry(soon.envelope_hash, "transport.unreachable", 110.0)
    assert store.due(100.0, 10) == []  # without a horizon, both wait
    # No retry is scheduled more than 300 s ahead, so 700 at 100 means the clock went back.
    assert [r.message_id for r in store.due(100.0, 10, horizon=300.0)] == [late.message_id]
    assert store.due(100.0, 10, horizon=600.0) == []
    assert {r.message_id for r in store.due(110.0, 10, horizon=300.0)} == {
        late.message_id, soon.message_id}


def test_due_skips_what_is_in_flight_and_keeps_the_limit_and_byte_bound(store: Store) -> None:
    records = [outbound() for _ in range(6)]
    for n, record in enumerate(records):
        store.queue_outbound(record, 10.0 + n)
    hashes = [r.envelope_hash for r in records]
    assert store.due(20.0, 10, skip=frozenset(hashes[:2])) == records[2:]
    assert store.due(20.0, 2, skip=frozenset(hashes[1:3])) == [records[0], records[3]]
    assert store.due(20.0, 10, skip=frozenset(hashes)) == []
    # About max_bytes: the envelope that reaches the bound is the last one taken.
    size = len(records[0].envelope)
    assert store.due(20.0, 10, max_bytes=2 * size, skip={hashes[0]}) == records[1:3]
    assert store.due(12.0, 10, skip={hashes[0]}) == records[1:3]  # only what is due


def test_outbox_lifecycle_refusal_and_failure(store: Store) -> None:
    refused, failed = outbound(), outbound("KE:ODPP")
    store.queue_outbound(refused, 1.0)
    store.queue_outbound(failed, 2.0)
    assert [r.message_id for r in store.due(5.0, 10)] == [refused.message_id, failed.message_id]
    assert [r.message_id for r in store.due(5.0, 1)] == [refused.message_id]

    store.record_delivery(refused.envelope_hash, b"signed refusal", "rejected",
                          "envelope.key_revoked", 3)
    closed = store.outbound_by_id(refused.message_id)
    assert (closed.state, closed.last_error, closed.receipt) == (
        "refused", "envelope.key_revoked", b"signed refusal")

    store.record_retry(failed.envelope_hash, "transport.unreachable", 4.0)
    store.record_failure(failed.envelope_hash, "envelope.expired")
    gone = store.outbound_by_id(failed.message_id)
    assert (gone.state, gone.last_error, gone.attempts, gone.receipt) == (
        "failed", "envelope.expired", 1, None)
    assert store.pending_count() == 0
    assert store.outbound_states() == {"refused": 1, "failed": 1}
    assert [r.message_id for r in store.outbound()] == [refused.message_id, failed.message_id]


def test_outbox_rows_need_their_message(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.db["outbox"].insert({"envelope_hash": "a" * 64, "recipient": "BR:MJSP",
                                   "next_attempt": 0.0})


def test_unknown_ids_are_not_found(store: Store) -> None:
    with pytest.raises(StoreNotFound) as inbound_error:
        store.inbound_by_id("0" * 32)
    with pytest.raises(StoreNotFound) as outbound_error:
        store.outbound_by_id("0" * 32)
    assert inbound_error.value.code == outbound_error.value.code == "store.not_found"


def test_directory_serials(store: Store) -> None:
    assert store.latest_directory() is None
    store.adopt_directory(1, "a" * 64, b"one", 10)
    store.adopt_directory(3, "c" * 64, b"three", 30)
    store.adopt_directory(2, "b" * 64, b"two", 40)
    assert store.latest_directory() == (3, "c" * 64, b"three")
    with pytest.raises(sqlite3.IntegrityError):
        store.adopt_directory(3, "d" * 64, b"other three", 50)


def test_log_node_lookups_use_the_primary_key(tmp_path: Path) -> None:
    """Proofs must stay O(log n) reads: the lookup may never scan the whole node table."""
    from protocol.log_entry import EntryType, encode_entry

    store = Store(tmp_path / "node.db")
    with store.transaction():
        for n in range(64):
            store.audit.append(EntryType.DIRECTORY_ADOPTED.value, encode_entry(
                EntryType.DIRECTORY_ADOPTED, {"serial": n + 1, "digest": "ab" * 32, "at": n}), n)
    plans: list[str] = []
    store.db.conn.set_trace_callback(None)
    original = store.db.execute

    def explain(sql: str, params: object = None) -> object:
        if "log_nodes" in sql and sql.lstrip().upper().startswith("SELECT"):
            rows = original("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            plans.extend(str(row[-1]) for row in rows)
        return original(sql, params)

    store.db.execute = explain  # type: ignore[method-assign]
    assert len(store.audit.inclusion(17, 64)) == 6
    assert len(store.audit.consistency(13, 64)) > 1
    assert plans and not any(p.startswith("SCAN n") or p == "SCAN log_nodes" for p in plans), plans
    store.close()


def log_rows(store: Store) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    return (store.db.execute("SELECT idx, type, entry, leaf, at FROM log_entries "
                             "ORDER BY idx").fetchall(),
            store.db.execute("SELECT level, idx, hash FROM log_nodes "
                             "ORDER BY level, idx").fetchall())


@pytest.mark.parametrize("before", [0, 1, 3, 7, 8, 13])
@pytest.mark.parametrize("count", [1, 2, 5, 16, 33])
def test_append_many_writes_what_appends_one_by_one_write(tmp_path: Path, before: int,
                                                          count: int) -> None:
    from protocol.log_entry import EntryType, encode_entry

    def entry(n: int) -> tuple[str, bytes, int]:
        return (EntryType.DIRECTORY_ADOPTED.value, encode_entry(
            EntryType.DIRECTORY_ADOPTED, {"serial": n + 1, "digest": "cd" * 32, "at": n}), n)

    one, bulk = Store(tmp_path / "one.db"), Store(tmp_path / "bulk.db")
    for store in (one, bulk):
        with store.transaction():
            for n in range(before):
                store.audit.append(*entry(n))
    with one.transaction():
        indices = [one.audit.append(*entry(before + n)) for n in range(count)]
    with bulk.transaction():
        assert bulk.audit.append_many([entry(before + n) for n in range(count)]) == indices
    assert log_rows(bulk) == log_rows(one)
    assert bulk.audit.root() == one.audit.root()
    one.close()
    bulk.close()


def test_queue_outbound_many_stores_what_queue_outbound_stores(tmp_path: Path) -> None:
    from protocol.log_entry import EntryType, encode_entry

    def sent(record: OutboundRecord) -> tuple[tuple[str, bytes], ...]:
        """Its envelope-sent entry, and for every other record an override entry after it."""
        entry = EntryType.ENVELOPE_SENT.value, encode_entry(EntryType.ENVELOPE_SENT, {
            "envelope": record.envelope_hash, "id": record.message_id, "from": "FR:MJ",
            "to": record.recipient, "kind": record.kind, "created": record.created,
            "expires": record.expires, "at": 1000})
        if records.index(record) % 2:
            return entry, Override("the court sits tomorrow", 2, True, "user:ana").entry(
                record, 1000)
        return (entry,)

    records = [outbound() for _ in range(5)]
    one, bulk = Store(tmp_path / "one.db"), Store(tmp_path / "bulk.db")
    with one.transaction():
        for n, record in enumerate(records):
            one.queue_outbound(record, 10.0 + n, *sent(record))
    bulk.queue_outbound_many([(r, 10.0 + n, sent(r)) for n, r in enumerate(records)])
    assert bulk.audit.size() == 7
    for table in ("messages_out", "outbox"):
        query = f"SELECT * FROM {table} ORDER BY rowid"
        assert bulk.db.execute(query).fetchall() == one.db.execute(query).fetchall()
    assert log_rows(bulk) == log_rows(one)
    # A duplicate anywhere in the group: an integrity error and nothing of the group stored.
    before, log_before = counts(bulk), log_rows(bulk)
    fresh = outbound()
    records.append(fresh)
    with pytest.raises(sqlite3.IntegrityError):
        bulk.queue_outbound_many([(fresh, 1.0, sent(fresh)), (records[2], 1.0, sent(records[2]))])
    assert counts(bulk) == before and log_rows(bulk) == log_before
    one.close()
    bulk.close()


def test_record_deliveries_stores_what_record_delivery_stores(tmp_path: Path) -> None:
    from protocol.log_entry import EntryType, encode_entry

    def received(record: OutboundRecord, status: str) -> tuple[str, bytes]:
        return EntryType.RECEIPT_RECEIVED.value, encode_entry(EntryType.RECEIPT_RECEIVED, {
            "envelope": record.envelope_hash, "id": record.message_id, "from": "FR:MJ",
            "to": record.recipient, "receipt": "ef" * 32, "status": status, "code": "",
            "at": 1500})

    records = [outbound() for _ in range(6)]
    one, bulk = Store(tmp_path / "one.db"), Store(tmp_path / "bulk.db")
    closing = [(r.envelope_hash, b"RGTR receipt " + bytes([n]), status, code, 1500 + n,
                received(r, status))
               for n, (r, status, code) in enumerate(
                   (r, "accepted", "") if n % 3 else (r, "rejected", "envelope.expired")
                   for n, r in enumerate(records))]
    for store in (one, bulk):
        for record in records:
            store.queue_outbound(record, 10.0)
        store.record_retry(records[1].envelope_hash, "transport.unreachable", 20.0)
    with one.transaction():
        for delivery in closing:
            one.record_delivery(*delivery)
    bulk.record_deliveries(closing)
    for table in ("messages_out", "outbox", "receipts"):
        query = f"SELECT * FROM {table} ORDER BY rowid"
        assert bulk.db.execute(query).fetchall() == one.db.execute(query).fetchall()
    assert log_rows(bulk) == log_rows(one)
    assert bulk.outbound_states() == {"delivered": 4, "refused": 2}
    one.close()
    bulk.close()


@pytest.mark.parametrize("size", [1, 2, 5, 8, 13, 64])
def test_proofs_are_the_proofs_one_by_one(tmp_path: Path, size: int) -> None:
    from protocol.checkpoint import TlogProof, open_checkpoint
    from protocol.log_entry import EntryType, encode_entry
    from protocol.merkle import leaf_hash, verify_inclusion
    from protocol.signing import public_key_of

    seed, origin = os.urandom(32), "rogatory/log/FR:MJ"
    store = Store(tmp_path / "log.db")
    entries = [encode_entry(EntryType.DIRECTORY_ADOPTED,
                            {"serial": n + 1, "digest": "cd" * 32, "at": n}) for n in range(size)]
    with store.transaction():
        store.audit.append_many([(EntryType.DIRECTORY_ADOPTED.value, e, 7) for e in entries])
        indices = sorted({0, size // 2, size - 1})
        bulk = store.audit.proofs(indices, origin, seed, 7)
        assert bulk == [TlogProof(index=i, hashes=tuple(store.audit.inclusion(i, size)),
                                  checkpoint=store.audit.sign(origin, seed, 7)) for i in indices]
    checkpoint, _ = open_checkpoint(bulk[0].checkpoint, origin, public_key_of(seed))
    assert checkpoint.size == size
    for index, proof in zip(indices, bulk, strict=True):
        verify_inclusion(leaf_hash(entries[index]), index, size, proof.hashes, checkpoint.root)
    store.close()


def test_accept_inbound_many_stores_what_accept_inbound_stores(tmp_path: Path) -> None:
    records = [inbound() for _ in range(5)]
    one, bulk = Store(tmp_path / "one.db"), Store(tmp_path / "bulk.db")
    with one.transaction():
        for record in records:
            one.accept_inbound(record)
    bulk.accept_inbound_many(records)
    for table in ("messages_in", "seen", "receipts"):
        query = f"SELECT * FROM {table} ORDER BY rowid"
        assert bulk.db.execute(query).fetchall() == one.db.execute(query).fetchall()
    hashes = [r.envelope_hash for r in records]
    assert bulk.receipts_for_inbound([*hashes[:2], "00" * 32]) == {
        r.envelope_hash: r.receipt for r in records[:2]}
    assert bulk.receipts_for_inbound([]) == {}
    pairs = [(r.sender, r.message_id) for r in records[3:]]
    assert bulk.seen_among([*pairs, ("FR:MJ", "never-sent"), ("DE:BMJ", records[0].message_id)]
                           ) == set(pairs)
    assert bulk.seen_among([]) == set()
    # A repeat anywhere in the batch: an integrity error and nothing of the batch stored.
    before = counts(bulk)
    with pytest.raises(sqlite3.IntegrityError):
        bulk.accept_inbound_many([inbound(), records[1]])
    assert counts(bulk) == before
    one.close()
    bulk.close()

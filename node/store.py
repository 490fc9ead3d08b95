"""The node's SQLite store: what came in, what goes out, every receipt, and the seen pairs.

One SQLite file in WAL mode with ``synchronous=FULL``: a transaction that returns has reached
the disk, so a receipt sent after ``accept_inbound`` returns can never name an envelope a crash
would lose. Each state change that matters is one transaction (message + seen pair + receipt
together), so a node killed at any instant restarts with either all of it or none of it.

This class is the narrow seam a PostgreSQL backend would implement; nothing above it writes
SQL.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils

from node.audit_log import AuditLog
from node.cases import CaseBook
from node.spontaneous import SpontaneousBook
from node.statements import insert, insert_many
from node.users import UserBook
from protocol.errors import StoreDiskFull, StoreNotFound

__all__ = ["InboundRecord", "LogEntry", "MessageLine", "OutboundRecord", "Store",
           "full_disk_as_store_error"]

LogEntry = tuple[str, bytes]
"""An audit log entry to append in the same transaction: (entry type, canonical bytes)."""


class MessageLine(NamedTuple):
    """One message as a list shows it: who, what, which case, when, and how far it got."""

    message_id: str
    counterpart: str  # the sender of a message received, the recipient of one sent
    kind: str
    case_ref: str
    priority: str
    at: int  # received, or queued
    delivery: str  # the outbound state; "" for a message received
    opened_at: int | None  # when a message received was first read


SCHEMA_VERSION = 1



@contextlib.contextmanager
def full_disk_as_store_error() -> Iterator[None]:
    """SQLite's full disk (or quota), wherever it is met, as ``store.disk_full``."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
                "database or disk is full" in str(exc):
            raise StoreDiskFull(f"the node's database cannot grow: {exc}") from exc
        raise


@dataclass(frozen=True)
class InboundRecord:
    envelope_hash: str
    message_id: str
    sender: str
    kind: str
    case_ref: str
    in_reply_to: str
    priority: str
    created: int
    expires: int
    received_at: int
    content_type: str
    archive: bytes
    receipt: bytes
    opened_at: int | None


@dataclass(frozen=True)
class OutboundRecord:
    envelope_hash: str
    message_id: str
    recipient: str
    kind: str
    case_ref: str
    in_reply_to: str
    priority: str
    created: int
    expires: int
    envelope: bytes
    archive: bytes
    state: str
    attempts: int
    last_error: str
    receipt: bytes | None
    delivered_at: int | None


class Store:
    """All durable state of one node."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._savepoints = itertools.count()
        conn = sqlite3.connect(str(path), check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.db.enable_wal()
        for pragma in ("synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
            self.db.execute(f"PRAGMA {pragma}")
        self._create_schema()
        self.audit = AuditLog(self.db)
        self.cases = CaseBook(self.db)
        self.spontaneous = SpontaneousBook(self.db)
        self.users = UserBook(self.db)

    def close(self) -> None:
        self.db.conn.close()

    def _create_schema(self) -> None:
        db = self.db
        with self._transaction():
            db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db.table("messages_in").create(
                {
                    "envelope_hash": str,
                    "message_id": str,
                    "sender": str,
                    "kind": str,
                    "case_ref": str,
                    "in_reply_to": str,
                    "priority": str,
                    "created": int,
                    "expires": int,
                    "received_at": int,
                    "content_type": str,
                    "archive": bytes,
                    "opened_at": int,
                },
                pk="envelope_hash",
                not_null={"message_id", "sender", "kind", "archive", "received_at"},
                if_not_exists=True,
            )
            db.table("seen").create(
                {"sender": str, "message_id": str, "envelope_hash": str, "expires": int},
                pk=("sender", "message_id"),
                not_null={"envelope_hash"},
                if_not_exists=True,
            )
            db.table("messages_out").create(
                {
                    "envelope_hash": str,
                    "message_id": str,
                    "recipient": str,
                    "kind": str,
                    "case_ref": str,
                    "in_reply_to": str,
                    "priority": str,
                    "created": int,
                    "expires": int,
                    "envelope": bytes,
                    "archive": bytes,
                    "state": str,
                    "attempts": int,
                    "last_error": str,
                    "delivered_at": int,
                },
                pk="envelope_hash",
                not_null={"message_id", "recipient", "envelope", "state"},
                if_not_exists=True,
            )
            db.table("outbox").create(
                {"envelope_hash": str, "recipient": str, "next_attempt": float},
                pk="envelope_hash",
                foreign_keys=[("envelope_hash", "messages_out", "envelope_hash")],
                if_not_exists=True,
            )
            db.table("receipts").create(
                {
                    "envelope_hash": str,
                    "direction": str,
                    "status": str,
                    "code": str,
                    "receipt": bytes,
                    "stored_at": int,
                },
                pk=("envelope_hash", "direction"),
                not_null={"receipt"},
                if_not_exists=True,
            )
            db.table("submit_keys").create(
                {"key": str, "message_id": str, "digest": str, "at": int},
                pk="key",
                not_null={"message_id", "digest"},
                if_not_exists=True,
            )
            db.table("directories").create(
                {"serial": int, "hash": str, "adopted_at": int, "file": bytes},
                pk="serial",
                not_null={"hash", "file"},
                if_not_exists=True,
            )
            db.table("messages_in").create_index(["sender", "message_id"], unique=True,
                                           if_not_exists=True)
            db.table("messages_out").create_index(["message_id"], unique=True, if_not_exists=True)
            db.table("messages_in").create_index(["in_reply_to"], if_not_exists=True)
            db.table("outbox").create_index(["next_attempt"], if_not_exists=True)
            db.table("meta").upsert({"key": "schema", "value": str(SCHEMA_VERSION)}, pk="key")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite_utils.Database]:
        """All of it or none of it: BEGIN … COMMIT, or ROLLBACK on any exception.

        Nested use becomes a savepoint, so a caller can wrap several store calls and the log
        appends that record them in one commit. SQLite rolls a transaction back by itself when
        the disk is full; the rollback here then has nothing left to undo, and the caller gets
        ``store.disk_full`` rather than an error about the rollback.
        """
        conn = self.db.conn
        if conn.in_transaction:
            name = f"sp{next(self._savepoints)}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                raise
            else:
                if not conn.in_transaction:
                    raise StoreDiskFull("the database rolled the transaction back")
                conn.execute(f"RELEASE {name}")
            return
        with full_disk_as_store_error():
            conn.execute("BEGIN")
            try:
                yield self.db
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if not conn.in_transaction:
                raise StoreDiskFull("the database rolled the transaction back")
            conn.execute("COMMIT")

    transaction = _transaction

    def _log(self, entries: Iterator[LogEntry] | tuple[LogEntry, ...], at: int) -> None:
        for entry_type, entry in entries:
            self.audit.append(entry_type, entry, at)

    # --- inbound --------------------------------------------------------------------------

    def receipt_for_inbound(self, envelope_hash: str) -> bytes | None:
        """The receipt already issued for exactly these bytes, for idempotent redelivery."""
        row = self.db.execute(
            "SELECT receipt FROM receipts WHERE envelope_hash = ? AND direction = 'issued'",
            [envelope_hash],
        ).fetchone()
        return bytes(row[0]) if row else None

    def is_seen(self, sender: str, message_id: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM seen WHERE sender = ? AND message_id = ?", [sender, message_id]
        ).fetchone()
        return row is not None

    def receipts_for_inbound(self, envelope_hashes: list[str]) -> dict[str, bytes]:
        """``receipt_for_inbound`` for a batch, in one query: envelope hash -> receipt."""
        if not envelope_hashes:
            return {}
        marks = ",".join("?" * len(envelope_hashes))
        rows = self.db.execute(
            f"SELECT envelope_hash, receipt FROM receipts WHERE direction = 'issued' "
            f"AND envelope_hash IN ({marks})", envelope_hashes).fetchall()
        return {str(h): bytes(r) for h, r in rows}

    def seen_among(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (sender, message id) pairs were accepted before, in one query."""
        if not pairs:
            return set()
        values = ",".join("(?,?)" for _ in pairs)
        rows = self.db.execute(
            f"SELECT s.sender, s.message_id FROM (VALUES {values}) AS k "
            "JOIN seen AS s ON s.sender = k.column1 AND s.message_id = k.column2",
            [v for pair in pairs for v in pair]).fetchall()
        return {(str(sender), str(message_id)) for sender, message_id in rows}

    def accept_inbound(self, record: InboundRecord) -> None:
        """Make an accepted envelope durable: message, seen pair and receipt in one commit."""
        self.accept_inbound_many([record])

    def accept_inbound_many(self, records: list[InboundRecord]) -> None:
        """``accept_inbound`` for a batch: the same rows, one statement per table."""
        with self._transaction():
            insert_many(self.db, "messages_in",
                        [{k: v for k, v in r.__dict__.items() if k != "receipt"}
                         for r in records])
            insert_many(self.db, "seen", [
                {"sender": r.sender, "message_id": r.message_id,
                 "envelope_hash": r.envelope_hash, "expires": r.expires} for r in records])
            insert_many(self.db, "receipts", [
                {"envelope_hash": r.envelope_hash, "direction": "issued", "status": "accepted",
                 "code": "", "receipt": r.receipt, "stored_at": r.received_at}
                for r in records])

    def inbound(self, limit: int = 100, offset: int = 0) -> list[InboundRecord]:
        rows = self.db.execute(
            "SELECT m.*, r.receipt FROM messages_in m JOIN receipts r "
            "ON r.envelope_hash = m.envelope_hash AND r.direction = 'issued' "
            "ORDER BY m.received_at, m.rowid LIMIT ? OFFSET ?",
            [limit, offset],
        )
        return [self._inbound_row(row, rows.description) for row in rows.fetchall()]

    def message_index(self, direction: str) -> Iterator[MessageLine]:
        """Every message of one direction, newest first, in the few columns a list shows.

        Read lazily from one cursor, so a caller that keeps one page of a long history holds
        one page in memory, never the envelopes. Run it to the end on the store thread.
        """
        query = (
            "SELECT message_id, sender, kind, case_ref, priority, received_at, '', opened_at "
            "FROM messages_in ORDER BY received_at DESC, rowid DESC" if direction == "in" else
            "SELECT message_id, recipient, kind, case_ref, priority, created, state, NULL "
            "FROM messages_out ORDER BY created DESC, rowid DESC")
        for row in self.db.execute(query):
            yield MessageLine(*row)

    def count_inbound(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM messages_in").fetchone()[0])

    def inbound_by_id(self, message_id: str) -> InboundRecord:
        rows = self.db.execute(
            "SELECT m.*, r.receipt FROM messages_in m JOIN receipts r "
            "ON r.envelope_hash = m.envelope_hash AND r.direction = 'issued' "
            "WHERE m.message_id = ?",
            [message_id],
        )
        row = rows.fetchone()
        if row is None:
            raise StoreNotFound(f"no inbound message {message_id}")
        return self._inbound_row(row, rows.description)

    def mark_opened(self, envelope_hash: str, at: int) -> bool:
        """Record the first opening; True only the first time (retrieval evidence is once)."""
        with self._transaction():
            cursor = self.db.execute(
                "UPDATE messages_in SET opened_at = ? WHERE envelope_hash = ? "
                "AND opened_at IS NULL",
                [at, envelope_hash],
            )
            return cursor.rowcount == 1

    def retrieved_at(self, sender: str, message_id: str) -> int | None:
        """When the recipient's retrieval receipt for one of our messages reached us."""
        row = self.db.execute(
            "SELECT min(received_at) FROM messages_in WHERE sender = ? AND kind = 'retrieval' "
            "AND in_reply_to = ?", [sender, message_id]).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    @staticmethod
    def _inbound_row(row: tuple[Any, ...], description: Any) -> InboundRecord:
        data = dict(zip([d[0] for d in description], row, strict=True))
        data["archive"] = bytes(data["archive"])
        data["receipt"] = bytes(data["receipt"])
        return InboundRecord(**data)

    # --- outbound -------------------------------------------------------------------------

    def queue_outbound(self, record: OutboundRecord, next_attempt: float,
                       *log: LogEntry) -> None:
        """Journal first, deliver after: the envelope is durable before any attempt is made."""
        with self._transaction():
            self._log(log, record.created)
            insert(self.db, "messages_out",
                   {k: v for k, v in record.__dict__.items() if k != "receipt"})
            insert(self.db, "outbox",
                {
                    "envelope_hash": record.envelope_hash,
                    "recipient": record.recipient,
                    "next_attempt": next_attempt,
                }
            )

    def queue_outbound_many(
            self, queued: Sequence[tuple[OutboundRecord, float, Sequence[LogEntry]]]) -> None:
        """``queue_outbound`` for several envelopes (each with its log entries), in bulk:
        the same rows and log entries in the same order, one statement per table."""
        with self._transaction():
            self.audit.append_many([(entry[0], entry[1], record.created)
                                    for record, _, entries in queued for entry in entries])
            insert_many(self.db, "messages_out",
                        [{k: v for k, v in record.__dict__.items() if k != "receipt"}
                         for record, _, _ in queued])
            insert_many(self.db, "outbox", [
                {"envelope_hash": record.envelope_hash, "recipient": record.recipient,
                 "next_attempt": next_attempt} for record, next_attempt, _ in queued])

    def record_submit_keys(self, keys: Sequence[tuple[str, str, str, int]]) -> None:
        """Remember the callers' idempotency keys (key, message id, draft digest, time) of
        messages being journalled, in the caller's transaction: a key is durable exactly when
        its message is. A key used before raises ``sqlite3.IntegrityError``."""
        self.db.conn.executemany(
            "INSERT INTO submit_keys (key, message_id, digest, at) VALUES (?, ?, ?, ?)", keys)

    def submitted(self, key: str) -> tuple[str, str] | None:
        """The message id and draft digest an idempotency key was first used for."""
        row = self.db.execute("SELECT message_id, digest FROM submit_keys WHERE key = ?",
                              [key]).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def due(self, now: float, limit: int, max_bytes: int = 16 * 1024 * 1024,
            horizon: float | None = None, skip: Collection[str] = ()) -> list[OutboundRecord]:
        """The envelopes due now, oldest first: at most ``limit``, and about ``max_bytes``.

        The byte bound keeps a node's memory flat however much is queued and however large
        its envelopes are; the rest waits for the next round. No retry is ever scheduled more
        than ``horizon`` seconds ahead, so one further out means the wall clock stepped back
        (a corrected clock, a restored VM): it is due now rather than after the step.

        ``skip`` names envelopes the caller already has in flight. Only their hashes are read:
        under load most due envelopes are in flight, and reading each envelope at every poll
        cost more than choosing the rest.
        """
        far = float("inf") if horizon is None else now + horizon
        rows = self.db.execute(
            "SELECT o.envelope_hash, length(m.envelope) FROM outbox o JOIN messages_out m "
            "ON m.envelope_hash = o.envelope_hash "
            "WHERE o.next_attempt <= ? OR o.next_attempt > ? "
            "ORDER BY o.next_attempt LIMIT ?",
            [now, far, limit + len(skip)],
        ).fetchall()
        chosen: list[str] = []
        held = 0
        for digest, size in rows:
            if digest in skip:
                continue
            if held >= max_bytes or len(chosen) == limit:
                break
            chosen.append(digest)
            held += int(size)
        found: dict[str, OutboundRecord] = {}
        for start in range(0, len(chosen), 500):
            part = chosen[start:start + 500]
            cursor = self.db.execute(
                "SELECT *, NULL AS receipt FROM messages_out "
                f"WHERE envelope_hash IN ({','.join('?' * len(part))})", part)
            for row in cursor.fetchall():
                record = self._outbound_row(row, cursor.description)
                found[record.envelope_hash] = record
        return [found[digest] for digest in chosen if digest in found]

    def next_due(self, after: float = float("-inf")) -> float | None:
        """The earliest attempt scheduled after ``after``: the delivery worker already holds
        what is due now, and sleeps until the next retry."""
        row = self.db.execute("SELECT min(next_attempt) FROM outbox WHERE next_attempt > ?",
                              [after]).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def pending_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def record_delivery(self, envelope_hash: str, receipt: bytes, status: str, code: str,
                        at: int, *log: LogEntry) -> None:
        """Close an outbox entry with the peer's verified receipt (acceptance or refusal)."""
        state = "delivered" if status == "accepted" else "refused"
        with self._transaction():
            self._log(log, at)
            self.db.execute(
                "UPDATE messages_out SET state = ?, last_error = ?, delivered_at = ?, "
                "attempts = attempts + 1 WHERE envelope_hash = ?",
                [state, code, at, envelope_hash],
            )
            if status == "accepted":
                row = self.db.execute("SELECT message_id FROM messages_out "
                                      "WHERE envelope_hash = ?", [envelope_hash]).fetchone()
                if row is not None:
                    self.cases.delivered(str(row[0]), at)
            insert(self.db, "receipts",
                {
                    "envelope_hash": envelope_hash,
                    "direction": "received",
                    "status": status,
                    "code": code,
                    "receipt": receipt,
                    "stored_at": at,
                },
                conflict="REPLACE",
            )
            self.db.execute("DELETE FROM outbox WHERE envelope_hash = ?", [envelope_hash])

    def record_deliveries(self, deliveries: list[tuple[Any, ...]]) -> None:
        """Several receipts closing several envelopes, in one commit (a batch's answers).

        What ``record_delivery`` does for each, in the same order, in bulk: the log entries
        appended together, one statement per table, and the case lookup only for the messages
        a case tracks.
        """
        closing = [(envelope_hash, receipt, status, code, at, log)
                   for envelope_hash, receipt, status, code, at, *log in deliveries]
        with self._transaction():
            self.audit.append_many([(entry_type, entry, at) for *_, at, log in closing
                                    for entry_type, entry in log])
            self.db.conn.executemany(
                "UPDATE messages_out SET state = ?, last_error = ?, delivered_at = ?, "
                "attempts = attempts + 1 WHERE envelope_hash = ?",
                [("delivered" if status == "accepted" else "refused", code, at, envelope_hash)
                 for envelope_hash, _, status, code, at, _ in closing])
            accepted = [(envelope_hash, at) for envelope_hash, _, status, _, at, _ in closing
                        if status == "accepted"]
            tracked = self._tracked_message_ids([envelope_hash for envelope_hash, _ in accepted])
            for envelope_hash, at in accepted:
                if envelope_hash in tracked:
                    self.cases.delivered(tracked[envelope_hash], at)
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO receipts (envelope_hash, direction, status, code, "
                "receipt, stored_at) VALUES (?, 'received', ?, ?, ?, ?)",
                [(envelope_hash, status, code, receipt, at)
                 for envelope_hash, receipt, status, code, at, _ in closing])
            self.db.conn.executemany("DELETE FROM outbox WHERE envelope_hash = ?",
                                     [(envelope_hash,) for envelope_hash, *_ in closing])

    def _tracked_message_ids(self, envelope_hashes: list[str]) -> dict[str, str]:
        """envelope hash -> message id, for the outbound messages a case has an event for
        (``CaseBook.delivered`` changes nothing for the others)."""
        found: dict[str, str] = {}
        for start in range(0, len(envelope_hashes), 400):
            chunk = envelope_hashes[start:start + 400]
            rows = self.db.execute(
                "SELECT m.envelope_hash, m.message_id FROM messages_out m WHERE m.envelope_hash "
                f"IN ({', '.join('?' * len(chunk))}) AND EXISTS (SELECT 1 FROM case_events e "
                "WHERE e.message_id = m.message_id)", chunk).fetchall()
            found.update({str(h): str(m) for h, m in rows})
        return found

    def record_retry(self, envelope_hash: str, error: str, next_attempt: float) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE messages_out SET attempts = attempts + 1, last_error = ?, "
                "state = 'retrying' WHERE envelope_hash = ?",
                [error, envelope_hash],
            )
            self.db.execute(
                "UPDATE outbox SET next_attempt = ? WHERE envelope_hash = ?",
                [next_attempt, envelope_hash],
            )

    def record_failure(self, envelope_hash: str, error: str) -> None:
        """Give up for good (the envelope expired undelivered): a clear, final state."""
        with self._transaction():
            self.db.execute(
                "UPDATE messages_out SET state = 'failed', last_error = ? WHERE envelope_hash = ?",
                [error, envelope_hash],
            )
            self.db.execute("DELETE FROM outbox WHERE envelope_hash = ?", [envelope_hash])

    def outbound(self, limit: int = 100, offset: int = 0) -> list[OutboundRecord]:
        return list(self._outbound_query("ORDER BY m.created, m.rowid LIMIT ? OFFSET ?",
                                         [limit, offset]))

    def outbound_by_id(self, message_id: str) -> OutboundRecord:
        found = list(self._outbound_query("WHERE m.message_id = ?", [message_id]))
        if not found:
            raise StoreNotFound(f"no outbound message {message_id}")
        return found[0]

    def outbound_states(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, count(*) FROM messages_out GROUP BY state")
        return {state: int(count) for state, count in rows.fetchall()}

    def _outbound_query(self, clause: str, params: list[Any]) -> Iterator[OutboundRecord]:
        rows = self.db.execute(
            "SELECT m.*, r.receipt FROM messages_out m LEFT JOIN receipts r "
            "ON r.envelope_hash = m.envelope_hash AND r.direction = 'received' " + clause,
            params,
        )
        for row in rows.fetchall():
            yield self._outbound_row(row, rows.description)

    @staticmethod
    def _outbound_row(row: tuple[Any, ...], description: Any) -> OutboundRecord:
        data = dict(zip([d[0] for d in description], row, strict=True))
        data["envelope"] = bytes(data["envelope"])
        data["archive"] = bytes(data["archive"])
        data["receipt"] = bytes(data["receipt"]) if data["receipt"] is not None else None
        return OutboundRecord(**data)

    # --- directory ------------------------------------------------------------------------

    def latest_directory(self) -> tuple[int, str, bytes] | None:
        row = self.db.execute(
            "SELECT serial, hash, file FROM directories ORDER BY serial DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), str(row[1]), bytes(row[2])) if row else None

    def directory_files(self) -> list[bytes]:
        rows = self.db.execute("SELECT file FROM directories ORDER BY serial").fetchall()
        return [bytes(row[0]) for row in rows]

    def receipts(self, direction: str) -> list[bytes]:
        rows = self.db.execute(
            "SELECT receipt FROM receipts WHERE direction = ? ORDER BY stored_at, rowid",
            [direction],
        ).fetchall()
        return [bytes(row[0]) for row in rows]

    def adopt_directory(self, serial: int, digest: str, file: bytes, at: int,
                        *log: LogEntry) -> None:
        with self._transaction():
            self._log(log, at)
            self.db.table("directories").insert(
                {"serial": serial, "hash": digest, "adopted_at": at, "file": file}
            )

"""The store's append and acknowledge rates, next to the raw limits of SQLite and hashing.

A two-member federation is created in a temporary folder (plain HTTP, nothing started) and both
nodes are opened with ``Node.from_home``, so every figure comes from the node's real SQLite file
(``node.store.Store``: WAL, ``synchronous=FULL``) and the code paths the node runs:

- **append (sender)**: journalling an outbound envelope, ``Store.queue_outbound`` with its
  ``envelope-sent`` log entry (``node.outbound.sent_entry``), one envelope per transaction and
  16 or 64 per transaction; and the node's own group commit of submits, ``Node._queue_many``
  (the case step of each envelope, then the journal, as ``Node.submit`` journals them);
- **append (receiver)**: ``Store.accept_inbound`` with its ``envelope-received`` and
  ``receipt-issued`` entries, and the receiving desk's commit path (``InboundDesk.commit`` one
  at a time, ``InboundDesk.commit_many`` for a batch), which also signs each receipt and one
  checkpoint per transaction and proves each receipt's inclusion in the log;
- **acknowledge (sender)**: ``Store.record_delivery`` with its ``receipt-received`` entry
  (``node.outbound.receipt_received_entry``), one per transaction, and ``record_deliveries``
  for 16 or 64 receipts per transaction, as a batch's answers are recorded.

The envelopes are real: sealed with ``compose`` (and opened by the receiver's desk) before
anything is timed, so no HPKE or envelope signature is timed. So that a few hundred sealed
envelopes serve thousands of rows, each row's envelope hash and message id are re-drawn at
random (the store does not recompute them); sizes and the work per row are those of a real
envelope. Log entries are encoded inside the timed part, where the node encodes them too.

Raw limits, measured in the same run on the same disk, taking turns with the store figures:
an fsync'd SQLite commit (WAL, ``synchronous=FULL``) into a bare table of one row of the same
size per transaction (or 16, 64 rows), and SHA-256 (hashlib) of the leaf and nodes plus the
Merkle append bookkeeping (``merkle.leaf_hash``, ``append_keys``, ``appended_nodes``) per log
entry.

Run: ``python bench/store.py`` (about a minute); ``--quick`` (a few seconds, a smoke run);
``-n`` operations per measurement; ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from node.config import load_config
from node.federation import Federation, Member, passphrase_for
from node.inbound import Prepared
from node.node import Journalled, Node
from node.outbound import Draft, compose, receipt_received_entry, sent_entry
from node.store import InboundRecord, OutboundRecord
from protocol import merkle
from protocol.kinds import Kind
from protocol.log_entry import EntryType, encode_entry, received_entry
from protocol.receipt import Receipt, ReceiptStatus, parse_receipt, sign_receipt

SENDER, RECIPIENT = "XA:MOJ", "XB:MOJ"
GROUPS = (1, 16, 64)


def rekey() -> tuple[str, str]:
    """A fresh envelope hash and message id, so one sealed envelope can fill many rows."""
    return os.urandom(32).hex(), os.urandom(16).hex()


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclasses.dataclass
class Figure:
    label: str
    ops: list[float] = dataclasses.field(default_factory=list)  # ops/s, one per round
    raw: list[float] = dataclasses.field(default_factory=list)

    def line(self, unit: str) -> str:
        op, raw = statistics.median(self.ops), statistics.median(self.raw)
        return (f"  {self.label:<46}{op:9,.0f} {unit}/s ({min(self.ops):,.0f}-{max(self.ops):,.0f})"
                f"   raw {raw:9,.0f}/s   ratio {op / raw:.2f}")


class RawCommits:
    """Bare tables on another SQLite file in the same folder: WAL, synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")

    def rate(self, count: int, size: int, group: int) -> float:
        """Rows per second, ``group`` rows of ``size`` bytes per fsync'd transaction."""
        rows = [os.urandom(size) for _ in range(count)]

        def run() -> None:
            for part in chunks(rows, group):
                self.db.execute("BEGIN")
                for row in part:
                    self.db.execute("INSERT INTO t (v) VALUES (?)", [row])
                self.db.execute("COMMIT")

        return count / timed(run)


def hashing_rate(entry: bytes, count: int) -> float:
    """Log entries per second: SHA-256 of the leaf and the nodes it completes, in memory."""
    nodes: dict[tuple[int, int], bytes] = {}

    def run() -> None:
        for index in range(count):
            leaf = merkle.leaf_hash(entry)
            siblings = {key: nodes[key] for key in merkle.append_keys(index)}
            nodes.update(merkle.appended_nodes(index, leaf, siblings))

    return count / timed(run)


class Bench:
    def __init__(self, root: Path, pool: int) -> None:
        now = int(time.time())
        self.now = now
        federation = Federation.create(root, [Member(SENDER, "Sender"),
                                              Member(RECIPIENT, "Recipient")], tls=False, now=now)
        self.sender = Node.from_home(federation.home(SENDER), passphrase_for(SENDER))
        self.receiver = Node.from_home(federation.home(RECIPIENT), passphrase_for(RECIPIENT))
        self.database = load_config(federation.home(SENDER)).database_path
        payload = b"x" * 1024
        draft = Draft(RECIPIENT, Kind.REQUEST, "application/octet-stream", payload)
        s = self.sender
        self.records = [compose(draft, authority=SENDER, keystore=s.keystore,
                                directory=s.directory, archive=s.archive, now=now)
                        for _ in range(pool)]
        desk = self.receiver.inbound
        opened = [desk.open(r.envelope) for r in self.records]
        self.prepared = [p for p in opened if isinstance(p, Prepared)]
        if len(self.prepared) != pool:
            raise RuntimeError(f"the receiver refused a sealed envelope: {opened}")
        # One real receipt per envelope, for the store-level inbound rows and the acknowledge.
        keys = self.receiver.keystore.identity
        self.signed = [sign_receipt(
            status=ReceiptStatus.ACCEPTED, envelope_hash=p.digest,
            message_id=p.opened.header.id, sender=SENDER, receiver=RECIPIENT,
            receiver_key=keys.key_id, received=now, receiver_seed=keys.seed, log_index=i)
            for i, p in enumerate(self.prepared)]
        self.archives = [self.receiver.archive.seal(p.digest, p.opened.package.data)
                         for p in self.prepared]
        self.receipts: list[Receipt] = []  # filled by the receiver's commits, with proofs

    # --- sender: journal ------------------------------------------------------------------

    def outbound(self, count: int) -> list[OutboundRecord]:
        out = []
        for i in range(count):
            digest, message_id = rekey()
            out.append(dataclasses.replace(self.records[i % len(self.records)],
                                           envelope_hash=digest, message_id=message_id))
        return out

    def queue_outbound(self, records: list[OutboundRecord], group: int) -> float:
        store = self.sender.store

        def run() -> None:
            for part in chunks(records, group):
                with store.transaction():
                    for record in part:
                        store.queue_outbound(record, time.time(),
                                             sent_entry(record, SENDER, self.now))

        return len(records) / timed(run)

    def queue_many(self, records: list[OutboundRecord], group: int) -> float:
        node = self.sender

        def run() -> None:
            for part in chunks(records, group):
                results = node._queue_many([Journalled(record, None) for record in part])
                if any(results):
                    raise RuntimeError(f"a submit failed: {results}")

        return len(records) / timed(run)

    # --- receiver: accept -----------------------------------------------------------------

    def accept_inbound(self, count: int, group: int) -> float:
        store, rows = self.receiver.store, []
        for i in range(count):
            k = i % len(self.prepared)
            digest, message_id = rekey()
            signed = dataclasses.replace(self.signed[k], envelope_hash=digest,
                                         message_id=message_id)
            header = self.prepared[k].opened.header
            rows.append((signed, InboundRecord(
                envelope_hash=digest, message_id=message_id, sender=header.sender,
                kind=header.kind.value, case_ref=header.case, in_reply_to=header.in_reply_to,
                priority=header.priority.value, created=header.created, expires=header.expires,
                received_at=self.now, content_type=self.prepared[k].opened.package.content_type,
                archive=self.archives[k], receipt=signed.data, opened_at=None)))

        def run() -> None:
            for part in chunks(rows, group):
                with store.transaction():
                    for signed, record in part:
                        store.audit.append(EntryType.ENVELOPE_RECEIVED.value,
                                           received_entry(signed), self.now)
                        store.audit.append(EntryType.RECEIPT_ISSUED.value, encode_entry(
                            EntryType.RECEIPT_ISSUED,
                            {"envelope": record.envelope_hash, "id": record.message_id,
                             "from": record.sender, "to": RECIPIENT, "receipt": signed.digest,
                             "at": self.now}), self.now)
                        store.accept_inbound(record)

        return count / timed(run)

    def desk_prepared(self, count: int) -> list[Prepared]:
        out = []
        for i in range(count):
            p = self.prepared[i % len(self.prepared)]
            digest, message_id = rekey()
            header = dataclasses.replace(p.opened.header, id=message_id)
            envelope = dataclasses.replace(p.opened.envelope, header=header)
            out.append(dataclasses.replace(p, digest=digest, opened=dataclasses.replace(
                p.opened, envelope=envelope)))
        return out

    def desk_commit(self, prepared: list[Prepared], group: int) -> float:
        desk = self.receiver.inbound
        answers: list[bytes] = []

        def run() -> None:
            for part in chunks(prepared, group):
                if group == 1:
                    answers.append(desk.commit(part[0]).receipt)
                else:
                    answers.extend(o.receipt for o in desk.commit_many(list(part)) if o)

        rate = len(prepared) / timed(run)
        if len(answers) != len(prepared):
            raise RuntimeError("the desk did not accept every envelope")
        if len(self.receipts) < len(self.records):
            self.receipts.extend(parse_receipt(a) for a in answers[:len(self.records)])
        return rate

    # --- sender: acknowledge --------------------------------------------------------------

    def record_deliveries(self, records: list[OutboundRecord], group: int) -> float:
        store, receipts = self.sender.store, self.receipts

        def run() -> None:
            for i, part in enumerate(chunks(records, group)):
                closing = []
                for j, record in enumerate(part):
                    receipt = receipts[(i * group + j) % len(receipts)]
                    closing.append((record.envelope_hash, receipt.data, receipt.status.value,
                                    receipt.code, self.now,
                                    receipt_received_entry(record, SENDER, receipt, self.now)))
                if group == 1:
                    store.record_delivery(*closing[0])
                else:
                    store.record_deliveries(closing)

        return len(records) / timed(run)

    def close(self) -> None:
        for node in (self.sender, self.receiver):
            node.store.close()
            node._executor.shutdown()
            node._crypto.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=2048,
                        help="operations per measurement and round (default 2048)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, each taking turns with its raw limit (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="128 operations, 2 rounds: a few seconds, a smoke run")
    parser.add_argument("--keep", help="put the node folders here and keep them")
    args = parser.parse_args()
    count, rounds = (128, 2) if args.quick else (args.n, args.rounds)
    count = max(64, count - count % 64)
    started = time.perf_counter()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rogatory-store-"))
    root.mkdir(parents=True, exist_ok=True)
    bench = Bench(root / "nodes", pool=min(count, 256))
    raw = RawCommits(root / "raw-commits.db")
    try:
        report(bench, raw, count, rounds, started, root)
    finally:
        bench.close()
        raw.db.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def report(bench: Bench, raw: RawCommits, count: int, rounds: int, started: float,
           root: Path) -> None:
    record = bench.records[0]
    envelope_row = len(record.envelope) + len(record.archive)
    inbound_row = len(bench.archives[0]) + len(bench.signed[0].data)
    sent = sent_entry(record, SENDER, bench.now)[1]
    store = bench.sender.store
    mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = store.db.execute("PRAGMA synchronous").fetchone()[0]
    print(f"rogatory store benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
          f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, sqlite-utils {version('sqlite-utils')}")
    print(f"store: journal_mode={mode}, synchronous={sync} (2 = FULL); folder {root}; "
          f"{count:,} operations per measurement, median of {rounds} rounds (min-max), each "
          "round taking turns with its raw limit")
    print(f"1 KiB payloads: envelope {len(record.envelope):,} B + archive "
          f"{len(record.archive):,} B per outbound row, archive + receipt {inbound_row:,} B per "
          f"inbound row, envelope-sent entry {len(sent)} B")

    figures: dict[str, Figure] = {}

    def take(key: str, label: str, op: Callable[[], float], limit: Callable[[], float]) -> None:
        figure = figures.setdefault(key, Figure(label))
        figure.ops.append(op())
        figure.raw.append(limit())

    for _ in range(rounds):
        outbound = {g: bench.outbound(count) for g in GROUPS}
        for g in GROUPS:
            take(f"q{g}", f"queue_outbound, {g:2} per transaction",
                 lambda g=g, r=outbound[g]: bench.queue_outbound(r, g),
                 lambda g=g: raw.rate(count, envelope_row, g))
        queued = {g: bench.outbound(count) for g in GROUPS}
        for g in GROUPS:
            take(f"n{g}", f"Node._queue_many, {g:2} per transaction",
                 lambda g=g, r=queued[g]: bench.queue_many(r, g),
                 lambda g=g: raw.rate(count, envelope_row, g))
        for g in GROUPS:
            take(f"a{g}", f"accept_inbound + 2 entries, {g:2} per transaction",
                 lambda g=g: bench.accept_inbound(count, g),
                 lambda g=g: raw.rate(count, inbound_row, g))
        for g in GROUPS:
            prepared = bench.desk_prepared(count)
            take(f"d{g}", f"InboundDesk.commit{'' if g == 1 else '_many'}, {g:2} per tx",
                 lambda g=g, p=prepared: bench.desk_commit(p, g),
                 lambda g=g: raw.rate(count, inbound_row, g))
        for g in GROUPS:  # acknowledge the envelopes queue_outbound journalled this round
            take(f"r{g}", f"record_deliver{'y' if g == 1 else 'ies'}, {g:2} per transaction",
                 lambda g=g, r=outbound[g]: bench.record_deliveries(r, g),
                 lambda g=g: raw.rate(count, len(bench.receipts[0].data), g))
        figures.setdefault("h", Figure("SHA-256 + Merkle append, per log entry")).raw.append(
            hashing_rate(sent, count))

    def show(title: str, keys: str, unit: str) -> None:
        print(f"\n{title}")
        for key in keys.split():
            print(figures[key].line(unit))

    show("append, sender: journal an outbound envelope (raw = fsync'd commit of rows of "
         f"{envelope_row:,} B)", "q1 q16 q64 n1 n16 n64", "envelopes")
    show("append, receiver: an accepted envelope (raw = fsync'd commit of rows of "
         f"{inbound_row:,} B); the desk also signs receipts and a checkpoint",
         "a1 a16 a64 d1 d16 d64", "envelopes")
    show("acknowledge, sender: a verified receipt closes an envelope (raw = fsync'd commit of "
         f"rows of {len(bench.receipts[0].data):,} B)", "r1 r16 r64", "receipts")
    hashes = figures["h"].raw
    print(f"\nraw hashing: {statistics.median(hashes):,.0f} log entries/s "
          f"({min(hashes):,.0f}-{max(hashes):,.0f}): SHA-256 of a {len(sent)} B entry as a leaf "
          "and of the nodes it completes, with the Merkle append bookkeeping, in memory")
    print("per operation the store appends 1 log entry (journal, acknowledge) or 2 (accept)")
    print(f"\ntotal time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

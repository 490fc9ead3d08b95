"""The audit log at scale: appends, proofs, checkpoints and offline verification, next to the raw
limits (SHA-256, fsync'd SQLite commits, Ed25519) measured in the same run on the same disk.

A one-member federation is created in a temporary folder (``node.federation.Federation``,
plain HTTP, nothing started) and its node is opened with ``Node.from_home``, so the log lives in
the node's real SQLite file (``node.store.Store``: WAL, ``synchronous=FULL``) after the node's
own first entries (directory adopted, keys). Then:

1. appends through ``store.audit.append`` of realistic ``envelope-received`` entries
   (``encode_entry`` with random envelope hashes and message ids, made outside the timed part):
   first one transaction per append, as a node commits each message (fsync-bound), taking turns
   with raw commits of one small row on another SQLite file in the same folder; then batched,
   ``--batch`` appends per transaction, until ``--entries`` or the ``--append-seconds`` budget.
   Each append is also timed alone and counted by how many stored hashes it fetched
   (``merkle.append_keys``: 0-1, or 2 and more, which is one append in four);
2. if the budget ran out first, the rest of the log is BULK-FILLED: the same rows append writes
   (same entries format, leaf hashes and perfect-subtree hashes from ``merkle.appended_nodes``)
   inserted with ``executemany``. That is not an append rate and is never reported as one; it
   only builds a log of the requested size for the next steps, and step 4 checks it (the
   entries must hash to the root the store signs);
3. at the final size: inclusion proofs of random indices, consistency proofs between random
   sizes, and roots of random sizes, each through ``store.audit``, with the number of stored
   hashes each one asks for; the same proofs with those hashes fetched through the primary key by
   a query of this script (for comparison only: it is not what ``AuditLog`` does); and a signed
   checkpoint (``store.audit.sign``, rolled back so the log does not change) next to a raw
   Ed25519 signature;
4. the SQLite file size per entry, then a checkpoint signed with the node's identity key, an
   audit bundle (``encode_bundle``, the node's directory files, no receipts) and
   ``verify_bundle`` timed, next to hashing the entries as leaves (and the whole tree) with
   hashlib.

Run: ``python bench/audit_log.py --quick`` (10,000 entries, under a minute);
``python bench/audit_log.py`` (1,000,000, about 10 minutes on 2 cores); ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import nacl
import sqlite_utils
from measure import best_rate
from nacl.signing import SigningKey

from node.audit_bundle import encode_bundle, verify_bundle
from node.audit_log import nodes_query
from node.config import load_config
from node.federation import Federation, Member, passphrase_for
from node.node import Node
from node.store import Store
from protocol import merkle
from protocol.checkpoint import Checkpoint, sign_checkpoint
from protocol.log_entry import EntryType, encode_entry, log_origin, parse_entry

AUTHORITY = "XA:MOJ"
PEER = "XB:MOJ"
RECEIVED = EntryType.ENVELOPE_RECEIVED


class _Rollback(Exception):
    pass


# --- helpers --------------------------------------------------------------------------------


def entry(received: int) -> bytes:
    """A realistic entry: what a node logs when it accepts an envelope."""
    return encode_entry(RECEIVED, {
        "envelope": os.urandom(32).hex(), "id": os.urandom(16).hex(),
        "from": PEER, "to": AUTHORITY, "received": received,
    })


def entry_maker(received: int) -> Callable[[int], list[bytes]]:
    """Fast maker of the same entries for the bulk fill: ``encode_entry``'s bytes with the two
    random hex fields spliced in (checked against ``encode_entry`` and ``parse_entry``)."""
    template = encode_entry(RECEIVED, {"envelope": "e" * 64, "id": "d" * 32, "from": PEER,
                                       "to": AUTHORITY, "received": received})
    head, rest = template.split(b"e" * 64)
    middle, tail = rest.split(b"d" * 32)

    def make(count: int) -> list[bytes]:
        hexes = os.urandom(48 * count).hex().encode()
        return [head + hexes[96 * i:96 * i + 64] + middle + hexes[96 * i + 64:96 * i + 96] + tail
                for i in range(count)]

    sample = make(1)[0]
    _, fields = parse_entry(sample)
    assert encode_entry(RECEIVED, fields) == sample
    return make


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def tree_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 root of leaf hashes with hashlib alone: n - 1 node hashes."""
    sha256 = hashlib.sha256
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        count, value = 1, leaf
        while stack and stack[-1][0] == count:
            left_count, left = stack.pop()
            count, value = left_count + count, sha256(b"\x01" + left + value).digest()
        stack.append((count, value))
    if not stack:
        return sha256(b"").digest()
    _, root = stack[-1]
    for _, left in reversed(stack[:-1]):
        root = sha256(b"\x01" + left + root).digest()
    return root


def indexed_nodes(db: sqlite_utils.Database, keys: set[tuple[int, int]]) -> dict:
    """The same stored hashes ``AuditLog.nodes`` returns, by the same query run directly."""
    wanted = sorted(keys)
    if not wanted:
        return {}
    values = ",".join("(?,?)" for _ in wanted)
    rows = db.execute(
        f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) AS k "
        "JOIN log_nodes AS n ON n.level = k.column1 AND n.idx = k.column2",
        [v for key in wanted for v in key],
    ).fetchall()
    return {(int(lv), int(ix)): bytes(h) for lv, ix, h in rows}


def query_plan(db: sqlite_utils.Database, keys: int) -> str:
    rows = db.execute("EXPLAIN QUERY PLAN " + nodes_query(keys), [0] * (2 * keys)).fetchall()
    return "; ".join(str(row[-1]) for row in rows if "log_nodes" in str(row[-1])
                     or "SEARCH n" in str(row[-1]) or "SCAN n" in str(row[-1]))


# --- appends ------------------------------------------------------------------------------


@dataclass
class Segment:
    start: int
    end: int = 0
    seconds: float = 0.0
    light: list[float] = field(default_factory=list)  # appends fetching 0-1 stored hashes
    heavy: list[float] = field(default_factory=list)  # appends fetching 2 or more

    @property
    def rate(self) -> float:
        return (self.end - self.start) / self.seconds


def append_one_per_transaction(store: Store, count: int, raw_db: sqlite3.Connection,
                               received: int, rounds: int = 4) -> tuple[float, float, float]:
    """Appends each in its own transaction, taking turns with raw one-row commits; best round."""
    entries = [entry(received) for _ in range(count)]
    per_round = max(1, count // rounds)
    best_append = best_raw = 0.0
    for r in range(rounds):
        start = time.perf_counter()
        for data in entries[r * per_round:(r + 1) * per_round]:
            with store.transaction():
                store.audit.append(RECEIVED.value, data, received)
        best_append = max(best_append, per_round / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in range(per_round):
            raw_db.execute("BEGIN")
            raw_db.execute("INSERT INTO t (v) VALUES (?)", [i])
            raw_db.execute("COMMIT")
        best_raw = max(best_raw, per_round / (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(per_round):
        raw_db.execute("BEGIN")
        raw_db.execute("COMMIT")
    empty = per_round / (time.perf_counter() - start)
    return best_append, best_raw, empty


def append_batched(store: Store, target: int, batch: int, budget: float,
                   received: int) -> list[Segment]:
    """Batched appends until the log holds ``target`` entries or ``budget`` seconds have run;
    segments double in size so the rate can be read against the log size."""
    audit = store.audit
    size = audit.size()
    segments = [Segment(size)]
    started = time.perf_counter()
    while size < target and time.perf_counter() - started < budget:
        count = min(batch, target - size)
        entries = [entry(received) for _ in range(count)]
        segment = segments[-1]
        begin = time.perf_counter()
        with store.transaction():
            for data in entries:
                heavy = len(merkle.append_keys(size)) >= 2
                t0 = time.perf_counter()
                audit.append(RECEIVED.value, data, received)
                (segment.heavy if heavy else segment.light).append(time.perf_counter() - t0)
                size += 1
        segment.seconds += time.perf_counter() - begin
        segment.end = size
        if size - segment.start >= max(batch, segment.start):
            segments.append(Segment(size))
    return [s for s in segments if s.end > s.start]


def bulk_fill(store: Store, target: int, received: int, chunk: int = 10_000) -> float:
    """Write the rows ``append`` would write, without ``append`` (see the module docstring)."""
    db, conn = store.db, store.db.conn
    size = store.audit.size()
    make = entry_maker(received)
    # The newest stored hash of each level: append_keys(i) only ever names those.
    frontier: dict[tuple[int, int], bytes] = {}
    for level in range(size.bit_length()):
        row = db.execute("SELECT idx, hash FROM log_nodes WHERE level = ? ORDER BY idx DESC "
                         "LIMIT 1", [level]).fetchone()
        if row is not None:
            frontier[(level, int(row[0]))] = bytes(row[1])
    sha256 = hashlib.sha256
    kind = RECEIVED.value
    start = time.perf_counter()
    while size < target:
        count = min(chunk, target - size)
        rows_e, rows_n = [], []
        for data in make(count):
            leaf = sha256(b"\x00" + data).digest()
            rows_e.append((size, kind, data, leaf, received))
            siblings = {key: frontier.pop(key) for key in merkle.append_keys(size)}
            written = merkle.appended_nodes(size, leaf, siblings)
            (top_key, top_hash) = written[-1]
            frontier[top_key] = top_hash
            rows_n.extend((lv, ix, h) for (lv, ix), h in written)
            size += 1
        with store.transaction():
            conn.executemany("INSERT INTO log_entries (idx, type, entry, leaf, at) "
                             "VALUES (?, ?, ?, ?, ?)", rows_e)
            conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)",
                             rows_n)
    return time.perf_counter() - start


def extrapolate(segments: list[Segment], target: int) -> tuple[float, float, float]:
    """Fit light = a and heavy = b + c*n (seconds per append at log size n) to the measured
    appends, and sum them over an append-only log of ``target`` entries."""
    light = [t for s in segments for t in s.light]
    a = statistics.median(light)
    points = [((s.start + s.end) / 2, statistics.median(s.heavy)) for s in segments if s.heavy]
    if len(points) >= 2:
        fit = statistics.linear_regression([n for n, _ in points], [t for _, t in points])
        b, c = fit.intercept, max(fit.slope, 0.0)
    else:
        b, c = points[0][1], 0.0
    heavy = target // 4  # indexes 3 mod 4
    total = (target - heavy) * a + heavy * b + c * heavy * (target / 2)
    return total, a, c


# --- main ---------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def run(args: argparse.Namespace, root: Path) -> int:
    started = time.perf_counter()
    now = int(time.time())
    received = now - 60
    print(f"rogatory audit log benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
          f"UTC; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"Python {platform.python_version()}")
    print(f"SQLite {sqlite3.sqlite_version}, sqlite-utils {version('sqlite-utils')}, PyNaCl "
          f"{nacl.__version__}; log target {args.entries:,} entries; folder {root}")

    federation = Federation.create(root, [Member(AUTHORITY, "Benchmark authority")], tls=False,
                                   now=now)
    home = federation.home(AUTHORITY)
    config = load_config(home)
    node = Node.from_home(home, passphrase_for(AUTHORITY))
    store = node.store
    seed = node.keystore.identity.seed
    origin = log_origin(AUTHORITY)
    mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = store.db.execute("PRAGMA synchronous").fetchone()[0]
    print(f"store {config.database_path.name}: journal_mode={mode}, synchronous={sync} "
          f"(2 = FULL); the node logged {store.audit.size()} entries of its own at start")

    raw_path = root / "raw-commits.db"
    raw_db = sqlite3.connect(str(raw_path), isolation_level=None)
    raw_db.execute("PRAGMA journal_mode=WAL")
    raw_db.execute("PRAGMA synchronous=FULL")
    raw_db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")

    sample = entry(received)
    left, right = os.urandom(32), os.urandom(32)
    sha256 = hashlib.sha256
    hash_rate = best_rate(lambda: (sha256(b"\x00" + sample).digest(),
                                   sha256(b"\x01" + left + right).digest()), args.raw_seconds)
    print()
    print("raw, this run")
    print(f"  SHA-256 leaf ({len(sample)} B entry) + one node hash, hashlib  "
          f"{hash_rate:12,.0f} /s   (an append hashes one leaf and on average one node)")

    # 1. appends
    single = min(args.single, args.entries - store.audit.size())
    one_tx, raw_commit, empty_commit = append_one_per_transaction(store, single, raw_db,
                                                                  received)
    print(f"  fsync'd SQLite commit, one small row, WAL FULL, same folder"
          f"{raw_commit:12,.0f} /s   (an empty BEGIN/COMMIT writes nothing: {empty_commit:,.0f}"
          " /s)")
    print()
    print(f"append (store.audit.append, {len(sample)} B envelope-received entries)")
    print(f"  one transaction per append, {single:,} appends (best of 4 rounds, taking turns "
          f"with raw commits)")
    print(f"    {one_tx:10,.0f} appends/s   raw fsync'd commit {raw_commit:,.0f}/s   ratio "
          f"{one_tx / raw_commit:.2f}")
    segments = append_batched(store, args.entries, args.batch, args.append_seconds, received)
    appended = segments[-1].end - segments[0].start if segments else 0
    seconds = sum(s.seconds for s in segments)
    print(f"  batched, {args.batch:,} appends per transaction: {appended:,} appends in "
          f"{seconds:.1f} s = {appended / seconds:,.0f}/s"
          f"   raw hashing limit {hash_rate:,.0f}/s   ratio {appended / seconds / hash_rate:.3f}")
    print(f"    {'log size':>21}  {'appends/s':>9}   {'µs/append: 0-1 fetched':>22}  "
          f"{'2+ fetched (1 in 4)':>19}")
    for s in segments:
        heavy = statistics.median(s.heavy) if s.heavy else float("nan")
        light = statistics.median(s.light)
        print(f"    {s.start:>9,} → {s.end:>9,}  {s.rate:9,.0f}   {us(light):>22}  {us(heavy):>19}")
    print(f"    query plan of AuditLog.nodes for 1 key: {query_plan(store.db, 1)}")
    print(f"    query plan of AuditLog.nodes for 2+ keys: {query_plan(store.db, 2)}")
    total, light, slope = extrapolate(segments, args.entries)
    if store.audit.size() < args.entries:
        print(f"  budget of {args.append_seconds:g} s spent at {store.audit.size():,} entries; "
              f"extrapolated time to append {args.entries:,} this way: {total:,.0f} s "
              f"({total / 3600:,.1f} h)")
        print(f"    (model: median {us(light)} µs for an append fetching 0-1 hashes; "
              f"{slope * 1e6:.2f} µs more per entry already logged for one fetching 2+, "
              "fitted on the segments above)")
        remaining = args.entries - store.audit.size()
        fill = bulk_fill(store, args.entries, received)
        print(f"  BULK FILL, not an append rate: the other {remaining:,} entries' rows "
              f"written with executemany in {fill:.1f} s (checked by the bundle below)")
    else:
        print(f"  all {args.entries:,} entries appended through store.audit.append; the same "
              f"model extrapolated to 1,000,000: {extrapolate(segments, 1_000_000)[0]:,.0f} s")

    # 3. proofs
    audit = store.audit
    n = audit.size()
    rng = random.Random(1)
    samples = args.samples
    print()
    rows = store.db.execute("SELECT count(*) FROM log_nodes").fetchone()[0]
    print(f"proofs at n = {n:,} ({samples} random samples each; µs); log_nodes holds {rows:,} "
          "rows")
    print(f"  {'':14} {'median':>10} {'p95':>10}   {'hashes fetched':>14}   "
          f"{'by primary key: median':>22} {'p95':>8}")
    cases: list[tuple[str, Callable[[], object], Callable[[], object], int]] = []
    for _ in range(samples):
        i = rng.randrange(n)
        cases.append(("inclusion", lambda i=i: audit.inclusion(i, n),
                      lambda i=i: merkle.inclusion_proof(
                          i, n, indexed_nodes(store.db, merkle.inclusion_keys(i, n))),
                      len(merkle.inclusion_keys(i, n))))
    for _ in range(samples):
        old = rng.randrange(1, n)
        new = rng.randrange(old + 1, n + 1)
        cases.append(("consistency", lambda o=old, w=new: audit.consistency(o, w),
                      lambda o=old, w=new: merkle.consistency_proof(
                          o, w, indexed_nodes(store.db, merkle.consistency_keys(o, w))),
                      len(merkle.consistency_keys(old, new))))
    for _ in range(samples):
        size = rng.randrange(1, n + 1)
        cases.append(("root", lambda s=size: audit.root(s),
                      lambda s=size: merkle.root_from(
                          s, indexed_nodes(store.db, set(merkle.root_keys(s)))),
                      len(merkle.root_keys(size))))
    results: dict[str, tuple[list[float], list[float], list[int]]] = {}
    for name, through_store, by_key, keys in cases:
        slow, fast, counts = results.setdefault(name, ([], [], []))
        start = time.perf_counter()
        expected = through_store()
        slow.append(time.perf_counter() - start)
        start = time.perf_counter()
        got = by_key()
        fast.append(time.perf_counter() - start)
        assert got == expected
        counts.append(keys)
    for name, (slow, fast, counts) in results.items():
        print(f"  {name:14} {us(statistics.median(slow)):>10} {us(quantile(slow, 0.95)):>10}   "
              f"{statistics.median(counts):>6g} (max {max(counts):>2})   "
              f"{us(statistics.median(fast)):>22} {us(quantile(fast, 0.95)):>8}")
    print("  (by primary key: the same query run directly, without AuditLog's wrapper: the "
          "difference is the wrapper's overhead)")

    root = audit.root(n)
    sign_times, note_times = [], []
    for _ in range(max(3, min(samples, 10))):
        try:
            with store.transaction():
                start = time.perf_counter()
                audit.sign(origin, seed, now)
                sign_times.append(time.perf_counter() - start)
                raise _Rollback
        except _Rollback:
            pass
        note_times.append(timed(lambda: sign_checkpoint(Checkpoint(origin, n, root), origin,
                                                        seed)))
    assert audit.checkpoint_at(n) is None
    text = Checkpoint(origin, n, root).text()
    key = SigningKey(seed)
    ed_rate = best_rate(lambda: key.sign(text), args.raw_seconds)
    print(f"  sign a checkpoint (store.audit.sign: root, signed note, insert; rolled back, commit "
          f"not counted): median {us(statistics.median(sign_times))} µs, "
          f"p95 {us(quantile(sign_times, 0.95))} µs")
    print(f"    of which sign_checkpoint alone (root known): median "
          f"{statistics.median(note_times) * 1e6:,.1f} µs; raw Ed25519 sign of its "
          f"{len(text)} B text (PyNaCl, key made once): {1e6 / ed_rate:,.1f} µs")

    # 4. size, then the bundle
    note = None
    with store.transaction():
        note = audit.sign(origin, seed, now)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db_size = config.database_path.stat().st_size
    tables = dict(store.db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
                  .fetchall())
    log_tables = {name: size for name, size in tables.items() if "log_" in name}
    print()
    print(f"SQLite file {db_size:,} B for {n:,} entries = {db_size / n:,.0f} B per entry "
          f"(entry {len(sample)} B); after a WAL checkpoint")
    print("  " + ", ".join(f"{name} {size / n:,.0f}" for name, size in sorted(log_tables.items()))
          + " B per entry")

    print()
    print(f"offline verification of {n:,} entries")
    start = time.perf_counter()
    entries = audit.entries()
    directories = store.directory_files()
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    bundle = encode_bundle(authority=AUTHORITY, directories=directories, entries=entries,
                           checkpoint=note, witnessed=[], receipts_issued=[],
                           receipts_received=[])
    encode_s = time.perf_counter() - start
    print(f"  store.audit.entries() {read_s:.1f} s; encode_bundle {encode_s:.1f} s; bundle "
          f"{len(bundle) / 1e6:,.1f} MB")
    start = time.perf_counter()
    report = verify_bundle(bundle, config.secretariat_keys, config.threshold)
    verify_s = time.perf_counter() - start
    del bundle
    leaves_s = timed(lambda: [sha256(b"\x00" + e).digest() for e in entries])
    leaves = [sha256(b"\x00" + e).digest() for e in entries]
    tree_s = timed(lambda: tree_root(leaves))
    matches = tree_root(leaves) == root
    probe = entries[:10_000]
    parse_us = timed(lambda: [parse_entry(e) for e in probe]) / len(probe)
    print(f"  verify_bundle {verify_s:.1f} s, ok={report.ok}"
          + ("" if report.ok else f" ({report.problems[0]})"))
    print(f"  raw: SHA-256 of the {n:,} leaves (hashlib) {leaves_s:.2f} s; whole tree "
          f"(+ {n - 1:,} node hashes) {leaves_s + tree_s:.2f} s, root = the signed one: "
          f"{matches}; ratio {(leaves_s + tree_s) / verify_s:.3f}")
    print(f"  for scale: parse_entry {parse_us * 1e6:.1f} µs per entry "
          f"({parse_us * n:.1f} s for each pass over the {n:,} entries)")
    for line in report.lines[:3]:
        print(f"    {line}")

    raw_db.close()
    asyncio.run(node.stop())
    print()
    print(f"total time {time.perf_counter() - started:.1f} s")
    return 0 if report.ok and matches else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000,
                        help="log size to reach (default: 1,000,000)")
    parser.add_argument("--quick", action="store_true",
                        help="10,000 entries and more proof samples (under a minute)")
    parser.add_argument("--batch", type=int, default=1000,
                        help="appends per transaction in the batched phase (default: 1000)")
    parser.add_argument("--single", type=int, default=2000,
                        help="appends with one transaction each, first (default: 2000)")
    parser.add_argument("--append-seconds", type=float, default=90.0,
                        help="time budget of the batched appends; the rest of the log is "
                             "bulk-filled and the full time extrapolated (default: 90)")
    parser.add_argument("--samples", type=int, default=None,
                        help="random samples per proof kind (default: 30, 200 with --quick)")
    parser.add_argument("--raw-seconds", type=float, default=0.6,
                        help="time per raw measurement (default: 0.6)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to create the temporary folder (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.entries = 10_000
    if args.samples is None:
        args.samples = 200 if args.quick else 30
    if args.entries < args.single + 10:
        parser.error("--entries must exceed --single by a few")
    root = Path(tempfile.mkdtemp(prefix="rogatory-bench-audit-", dir=args.dir))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

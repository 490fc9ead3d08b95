"""End-to-end delivery throughput of a two-node federation, next to the raw cryptographic limit.

Two nodes run in this process (``node.federation.Federation``, TLS on unless ``--plain-http``,
fast retries) in a temporary folder. After a few warm-up messages (TLS handshakes, caches), N
requests of 1 KiB are submitted one after the other through ``Node.submit``, as the local API
does; the sender's delivery worker takes them from its outbox while later ones are still being
submitted. A poller reads the sender's outbound states in ONE query per poll (a separate
read-only SQLite connection, so it does not queue behind the node's own store thread) and
stamps each message when it is first seen closed.

Reported: deliveries/s from the first submit to the last "delivered", and the submit →
delivered latency (p50, p95, max), resolved to about one poll interval. Next to it, the raw
single-core limit measured in the same process: per message one HPKE seal and one HPKE open of
the same package size, and three Ed25519 signatures made and verified (the envelope's inner and
outer signatures, the receipt's signature), nothing else. Everything here, both nodes' crypto,
TLS and HTTP included, runs on one event-loop thread plus one SQLite thread per node, so the
single-core figure is the fair ceiling.

Run: ``python bench/delivery.py`` (15-30 s with the defaults); ``--help`` for options.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import best_rate as rate
from nacl.signing import SigningKey

from node.federation import Federation, Member
from node.node import Node
from node.outbound import Draft
from protocol.encoding import pae
from protocol.envelope import HPKE_INFO_LABEL, parse_envelope
from protocol.kinds import Kind
from protocol.signing import LABELS
from protocol.suites import Suite, hpke_open, hpke_seal, public_from_private

SENDER = "XA:MOJ"
RECIPIENT = "XB:MOJ"
CLOSED = ("delivered", "refused", "failed")


def raw_limit(suite: Suite, envelope: bytes, seconds: float) -> dict[str, float]:
    """Per-primitive rates for one message of this envelope's sizes, and their combination."""
    parsed = parse_envelope(envelope)
    if suite is Suite.HYBRID:
        private = hashlib.sha512(b"bench/mlkem").digest() + hashlib.sha256(b"bench/x").digest()
    else:
        private = hashlib.sha256(b"bench/x25519").digest()
    public = public_from_private(suite, private)
    info = HPKE_INFO_LABEL + hashlib.sha256(parsed.header_bytes).digest()
    package = os.urandom(len(parsed.sealed) - len(hpke_seal(suite, public, info, b"")))
    sealed = hpke_seal(suite, public, info, package)
    key = SigningKey(hashlib.sha256(b"bench/ed25519").digest())
    short = pae(LABELS["envelope"], os.urandom(32) + parsed.header_bytes)
    long = pae(LABELS["envelope-inner"], package[:-64])
    short_sig, long_sig = key.sign(short).signature, key.sign(long).signature
    verify = key.verify_key.verify
    rates = {
        "hpke_seal": rate(lambda: hpke_seal(suite, public, info, package), seconds),
        "hpke_open": rate(lambda: hpke_open(suite, private, info, sealed), seconds),
        "sign_short": rate(lambda: key.sign(short), seconds),
        "sign_long": rate(lambda: key.sign(long), seconds),
        "verify_short": rate(lambda: verify(short, short_sig), seconds),
        "verify_long": rate(lambda: verify(long, long_sig), seconds),
    }
    # inner signature over the package, outer and receipt signatures over short messages
    per_message = (1 / rates["hpke_seal"] + 1 / rates["hpke_open"]
                   + 1 / rates["sign_long"] + 2 / rates["sign_short"]
                   + 1 / rates["verify_long"] + 2 / rates["verify_short"])
    rates["limit"] = 1 / per_message
    rates["package"] = len(package)
    rates["short"] = len(short)
    return rates


class CommitCounter:
    """Counts COMMIT statements on a node's store connection (each one an fsync'd commit)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            self.count += 1

    async def attach(self, node: Node) -> None:
        await node.call(node.store.db.conn.set_trace_callback, self)


class Poller:
    """Follows the receipts the sender files, one read-only query per poll.

    A receipt row is written in the transaction that closes its envelope (delivered or
    refused), and rows only ever grow, so each poll reads only what closed since the last one:
    the harness stays light however many envelopes are in flight (re-reading every closed
    envelope above the oldest open one cost the benchmark a quarter of a core). Envelopes that
    expire undelivered get no receipt; the benchmarks require every envelope delivered.
    """

    def __init__(self, database: Path) -> None:
        self.conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True,
                                    check_same_thread=False)
        self.low = int(self.conn.execute("SELECT coalesce(max(rowid), 0) FROM receipts")
                       .fetchone()[0])
        self.closed: dict[str, tuple[str, float]] = {}
        self.polls = 0

    def poll(self) -> None:
        rows = self.conn.execute(
            "SELECT r.rowid, m.message_id, m.state FROM receipts r JOIN messages_out m "
            "ON m.envelope_hash = r.envelope_hash "
            "WHERE r.rowid > ? AND r.direction = 'received' ORDER BY r.rowid",
            [self.low],
        ).fetchall()
        now = time.perf_counter()
        self.polls += 1
        for rowid, message_id, state in rows:
            self.closed.setdefault(message_id, (state, now))
            self.low = rowid

    async def run(self, submitted: dict[str, float], total: int, interval: float,
                  timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            self.poll()  # a read of a few rows: cheaper than a hand-off to a thread
            if (len(submitted) == total and len(self.closed) >= total
                    and all(m in self.closed for m in submitted)):
                return
            await asyncio.sleep(interval)


async def wait_closed(node: Node, message_ids: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for message_id in message_ids:
        while (await node.call(node.store.outbound_by_id, message_id)).state not in CLOSED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"warm-up message {message_id} not delivered")
            await asyncio.sleep(0.01)


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def bench(args: argparse.Namespace, root: Path) -> int:
    federation = Federation.create(
        root, [Member(SENDER, "Sending authority"), Member(RECIPIENT, "Receiving authority")],
        tls=not args.plain_http,
        delivery={"retry_base": 0.05, "retry_max": 1.0},
    )
    nodes = await federation.start()
    try:
        sender = nodes[SENDER]
        payload = os.urandom(args.size)

        def draft(case: str) -> Draft:
            # One case per request: a case takes one formal request, then its answers.
            return Draft(RECIPIENT, Kind.REQUEST, "application/octet-stream", payload, case=case)

        warm = [await sender.submit(draft(f"BENCH/WARM-UP/{n}")) for n in range(args.warmup)]
        await wait_closed(sender, [r.message_id for r in warm])
        suite = sender.directory.prekey_for(RECIPIENT, int(time.time())).suite
        raw = raw_limit(suite, warm[-1].envelope, args.raw_seconds)

        first_rowid = 1 + (await sender.call(
            lambda: sender.store.db.execute("SELECT max(rowid) FROM messages_out")
            .fetchone()[0] or 0))
        poller = Poller(sender.config.database_path)
        commits = {SENDER: CommitCounter(), RECIPIENT: CommitCounter()}
        for authority, counter in commits.items():
            await counter.attach(nodes[authority])

        submitted: dict[str, float] = {}
        polling = asyncio.create_task(poller.run(submitted, args.messages, args.poll,
                                                 args.timeout))
        started = time.perf_counter()
        for i in range(args.messages):
            at = time.perf_counter()
            record = await sender.submit(draft(f"BENCH/{i}"))
            submitted[record.message_id] = at
        submit_done = time.perf_counter()
        await polling
        for node in nodes.values():
            await node.call(node.store.db.conn.set_trace_callback, None)
        attempts = await sender.call(
            lambda: sender.store.db.execute(
                "SELECT coalesce(sum(attempts), 0) FROM messages_out WHERE rowid >= ?",
                [first_rowid]).fetchone()[0])
    finally:
        await federation.stop()

    closed = {m: poller.closed[m] for m in submitted if m in poller.closed}
    delivered = {m: t for m, (state, t) in closed.items() if state == "delivered"}
    if not delivered:
        print("no message was delivered; see the log above")
        return 1
    finished = max(delivered.values())
    elapsed = finished - started
    latencies = sorted(1000 * (t - submitted[m]) for m, t in delivered.items())
    throughput = len(delivered) / elapsed
    transport = "plain HTTP" if args.plain_http else "TLS"
    n = args.messages

    print(f"rogatory delivery benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
          f"UTC; {os.cpu_count()} CPUs ({platform.machine()}), Python "
          f"{platform.python_version()}")
    print(f"2 nodes in one process, {transport}, suite {suite.value}; {n} requests of "
          f"{args.size:,} B submitted one after the other ({args.warmup} warm-up messages "
          f"before, not counted); poll every {args.poll * 1000:g} ms")
    print()
    print(f"  delivered            {len(delivered)}/{n}"
          + (f" ({len(closed) - len(delivered)} refused/failed,"
             f" {n - len(closed)} still open at the timeout)" if len(delivered) < n else ""))
    print(f"  submit phase         {submit_done - started:.2f} s "
          f"({n / (submit_done - started):,.0f} submits/s, each sealed and committed)")
    print(f"  first submit → last delivered  {elapsed:.2f} s")
    print(f"  deliveries/s         {throughput:,.0f}")
    print(f"  latency submit → delivered   p50 {percentile(latencies, 50):,.0f} ms, "
          f"p95 {percentile(latencies, 95):,.0f} ms, max {latencies[-1]:,.0f} ms "
          f"({poller.polls} polls)")
    print()
    print(f"  raw single-core limit  {raw['limit']:,.0f} messages/s  ->  this run reaches "
          f"{throughput / raw['limit']:.2f} of it")
    print(f"    = 1/(1/HPKE seal + 1/HPKE open + 3 Ed25519 signs + 3 verifies), "
          f"package {raw['package']:,.0f} B")
    print(f"    HPKE seal {raw['hpke_seal']:,.0f}/s, open {raw['hpke_open']:,.0f}/s; "
          f"Ed25519 sign {raw['sign_short']:,.0f}/s ({raw['short']:,.0f} B) and "
          f"{raw['sign_long']:,.0f}/s (package), verify {raw['verify_short']:,.0f}/s and "
          f"{raw['verify_long']:,.0f}/s")
    print()
    print(f"  per message: fsync'd SQLite commits (COMMIT statements counted): sender "
          f"{commits[SENDER].count / n:.2f}, receiver {commits[RECIPIENT].count / n:.2f}; "
          f"{transport} POSTs {attempts / n:.2f}")
    print("  (each delivery: the sender's journal commit at submit, one POST, the receiver's "
          "commit before its receipt, the sender's commit of the receipt)")
    return 0 if len(delivered) == n else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--messages", type=int, default=500,
                        help="requests to deliver (default: 500)")
    parser.add_argument("--size", type=int, default=1024, help="payload bytes (default: 1024)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="messages delivered before timing starts (default: 5)")
    parser.add_argument("--poll", type=float, default=0.005,
                        help="seconds between polls of the outbound states (default: 0.005)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="give up waiting for deliveries after this many seconds")
    parser.add_argument("--raw-seconds", type=float, default=0.6,
                        help="time spent on each raw primitive measurement (default: 0.6)")
    parser.add_argument("--plain-http", action="store_true",
                        help="peer endpoints without TLS (Federation.create(tls=False))")
    parser.add_argument("--keep", type=Path, default=None,
                        help="put the node folders here and keep them (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.warmup < 1:
        parser.error("--messages and --warmup must be at least 1")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(bench(args, args.keep))
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-") as tmp:
        return asyncio.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())

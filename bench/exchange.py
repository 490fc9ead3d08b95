"""Two node processes exchanging request envelopes, next to the cryptographic limit.

Two real nodes (``python -m node serve``, TLS, the hybrid post-quantum suite) run as separate
processes on loopback. The benchmark queues envelopes at the sender through its local API, as
a caseworker's tools do, with many requests in flight, and a poller reads the sender's outbound
states with a separate read-only SQLite connection. An envelope is done when the sender has
recorded its verified receipt: sealed, delivered, accepted and committed by the receiver before
it signed the receipt, the receipt's signature and log proof verified, and the receipt committed
by the sender.

Reported:

- sustained throughput of the whole run (first submit to last done);
- latency (submit to done) p50 and p99 when envelopes are offered at 25 %, 50 % and 100 % of
  that rate, at a steady pace (open loop);
- peak RSS of both node processes, to show memory does not grow with what is queued;
- the CPU time each node process spends per envelope in the throughput run (all its threads),
  which a busy shared machine disturbs far less than the rate;
- this machine's idle penalty: the CPU of one HPKE seal right after a 2 ms sleep against
  back to back (``bench/idle.py``), which the paced runs pay and the flood does not;
- in the same run, on one core, the raw cost of the same cryptography per envelope (HPKE seal
  and open of the same package size, the inner, outer and receipt signatures made and
  verified), and the ratio of the throughput to it.

Run: ``python bench/exchange.py`` (20,000 envelopes of 1 KiB; a few minutes);
``--short`` (300 envelopes, for CI); ``--size 65536`` for 64 KiB payloads; ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from delivery import Poller, raw_limit
from idle import seal_penalty

from node.config import NodeConfig, load_config, read_api_token
from node.federation import Federation, Member, serve, shut_down, wait_listening
from protocol.suites import Suite

SENDER = "XA:MOJ"


def recipients(peers: int) -> list[str]:
    """XB:MOJ, XC:MOJ, ...: the sender's peers, each its own node process."""
    return [f"X{chr(ord('B') + n)}:MOJ" for n in range(peers)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sender:
    """Queues envelopes through the sender's local API; stamps each submit."""

    def __init__(self, config: NodeConfig, size: int, peers: list[str]) -> None:
        self.url = f"http://127.0.0.1:{config.api_port}/api/v1/messages"
        self.headers = {"Authorization": f"Bearer {read_api_token(config)}",
                        "Content-Type": "application/json"}
        self.bodies = [{"to": peer, "kind": "request", "payload": "x" * size} for peer in peers]
        self.turn = 0
        self.submitted: dict[str, float] = {}

    @property
    def body(self) -> dict[str, str]:
        """The next peer's turn: envelopes go to the peers in rotation."""
        self.turn += 1
        return self.bodies[self.turn % len(self.bodies)]

    async def one(self, session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        async with session.post(self.url, data=json.dumps(self.body),
                                headers=self.headers) as response:
            answer = await response.json()
            if response.status != 202:
                raise RuntimeError(f"submit refused: {answer}")
        self.submitted[answer["id"]] = started

    async def many(self, session: aiohttp.ClientSession, count: int) -> None:
        started = time.perf_counter()
        body = {"messages": [self.body for _ in range(count)]}
        async with session.post(self.url + "/batch", data=json.dumps(body),
                                headers=self.headers) as response:
            answer = await response.json()
            if response.status != 207:
                raise RuntimeError(f"submit refused: {answer}")
        for result in answer["results"]:
            if "error" in result:
                raise RuntimeError(f"submit refused: {result}")
            self.submitted[result["id"]] = started

    async def flood(self, count: int, concurrency: int, per_call: int = 1) -> None:
        """As fast as the sender takes them: ``concurrency`` submits in flight."""
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            remaining = count

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    take = min(per_call, remaining)
                    remaining -= take
                    if per_call == 1:
                        await self.one(session)
                    else:
                        await self.many(session, take)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def paced(self, rate: float, count: int) -> None:
        """``count`` submits at a steady ``rate`` per second, whatever the answers."""
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            start = time.perf_counter()
            tasks = []
            for n in range(count):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.one(session)))
            await asyncio.gather(*tasks)


async def run_phase(config: NodeConfig, size: int, count: int, peers: list[str], *,
                    concurrency: int = 0, rate: float = 0.0, per_call: int = 1,
                    poll: float = 0.005, timeout: float = 1800.0) -> tuple[float, list[float]]:
    """Throughput (done/s from first submit to last done) and the latencies, in seconds."""
    sender = Sender(config, size, peers)
    poller = Poller(config.database_path)
    started = time.perf_counter()
    submitting = (sender.flood(count, concurrency, per_call) if concurrency
                  else sender.paced(rate, count))
    await asyncio.gather(submitting, poller.run(sender.submitted, count, poll, timeout))
    states = [poller.closed[m][0] for m in sender.submitted]
    if states.count("delivered") != count:
        raise RuntimeError(f"only {states.count('delivered')} of {count} delivered")
    done = [poller.closed[m][1] for m in sender.submitted]
    latencies = [poller.closed[m][1] - t for m, t in sender.submitted.items()]
    return count / (max(done) - started), latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


def envelope_sample(database: Path) -> bytes:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return bytes(conn.execute("SELECT envelope FROM messages_out ORDER BY rowid DESC "
                                  "LIMIT 1").fetchone()[0])
    finally:
        conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--messages", type=int, default=20_000,
                        help="envelopes in the throughput run (default 20,000; 0: only the "
                             "paced runs at --rates, to compare versions at fixed loads)")
    parser.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="submits in flight in the throughput run (default 64)")
    parser.add_argument("--paced", type=int, default=0,
                        help="envelopes per paced run (default: n/10, at least 200)")
    parser.add_argument("--per-call", type=int, default=1,
                        help="envelopes per local API call in the throughput run (default 1; "
                             "more uses POST /api/v1/messages/batch, as a bulk tool would)")
    parser.add_argument("--short", action="store_true", help="300 envelopes: a CI smoke run")
    parser.add_argument("--rates", type=lambda t: [float(r) for r in t.split(",")],
                        default=[], help="also pace at these rates, e.g. 100,200,300 (to "
                                         "compare versions at the same load)")
    parser.add_argument("--peers", type=int, default=1,
                        help="receiving nodes, each its own process; the sender sends to them "
                             "in turn (default 1)")
    parser.add_argument("--keep", help="put the node folders here and keep them")
    args = parser.parse_args()
    peers = recipients(args.peers)
    everyone = [SENDER, *peers]
    count = 300 if args.short else args.messages
    paced = args.paced or max(200, count // 10)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rogatory-exchange-"))
    root.mkdir(parents=True, exist_ok=True)

    federation = Federation.create(root / "nodes", [Member(a, a[:2]) for a in everyone],
                                   delivery={"retry_base": 0.05, "retry_max": 1.0})
    configs = {a: load_config(federation.home(a)) for a in everyone}
    processes = {a: serve(federation.home(a), a, root / f"{a.replace(':', '-')}.log")
                 for a in everyone}
    try:
        for authority, process in processes.items():
            wait_listening(federation.home(authority), process)
        config = configs[SENDER]
        await run_phase(config, args.size, 20 * len(peers), peers,
                        concurrency=4)  # warm-up: TLS, caches
        # The raw limit on either side of the throughput run, the nodes idle: this shared
        # VM's speed drifts by a third over minutes, and the ratio should not ride on it.
        envelope = envelope_sample(configs[SENDER].database_path)
        # What a pause costs the next piece of work here: the paced runs pay it, the flood
        # and the raw limit (both back to back) do not.
        idle = seal_penalty()
        paced_runs = {}
        offered: list[tuple[str, float]] = []
        if count:
            limit_before = raw_limit(Suite.HYBRID, envelope, 0.6)
            cpu = {a: cpu_seconds(p.pid) for a, p in processes.items()}
            throughput, flood = await run_phase(config, args.size, count, peers,
                                                concurrency=args.concurrency,
                                                per_call=args.per_call)
            cpu = {a: (cpu_seconds(p.pid) - cpu[a]) / count for a, p in processes.items()}
            limit_after = raw_limit(Suite.HYBRID, envelope, 0.6)
            offered = [(f"{share:4.0%}", share * throughput) for share in (0.25, 0.5, 1.0)]
        for label, rate in offered + [("fixed", fixed) for fixed in args.rates]:
            # CPU per envelope too: at a steady pace each envelope pays more of its own
            # hand-offs and commits than in the flood, which is what makes the latency.
            before = {a: cpu_seconds(p.pid) for a, p in processes.items()}
            _, latencies = await run_phase(config, args.size, paced, peers, rate=rate)
            spent = {a: (cpu_seconds(p.pid) - before[a]) / paced for a, p in processes.items()}
            paced_runs[rate] = (label, latencies, spent)
        rss = {a: peak_rss_mb(p.pid) for a, p in processes.items()}
    finally:
        for process in processes.values():
            shut_down(process, timeout=30)

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"rogatory exchange benchmark, {now}; {os.cpu_count()} CPUs ({platform.machine()}), "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(f"{len(everyone)} node processes on loopback (1 sender, {len(peers)} receiving "
          f"peer(s)), TLS, suite {Suite.HYBRID.value}; "
          f"payload {args.size:,} B, envelope {len(envelope):,} B")
    print()
    if count:
        print(f"  throughput run      {count:,} envelopes, {args.concurrency} submit calls in "
              f"flight, {args.per_call} envelope(s) per call")
        print(f"  sustained           {throughput:,.0f} envelopes/s (submit to receipt durable "
              "on both sides)")
        print(f"  latency in that run p50 {1000 * statistics.median(flood):,.0f} ms, "
              f"p99 {1000 * pct(flood, 99):,.0f} ms (a queue: everything offered at once)")
    for rate, (share, latencies, spent) in paced_runs.items():
        print(f"  paced at {share}       {rate:,.0f}/s offered, "
              f"{len(latencies):,} envelopes: p50 {1000 * statistics.median(latencies):,.0f} ms,"
              f" p99 {1000 * pct(latencies, 99):,.0f} ms; CPU per envelope "
              f"{1000 * spent[SENDER]:.2f} / {1000 * sum(spent[a] for a in peers):.2f} ms")
    if count:
        receiving = sum(cpu[a] for a in peers)
        print(f"  CPU per envelope    sender {1000 * cpu[SENDER]:.2f} ms, receiver "
              f"{1000 * receiving:.2f} ms (user + system, all threads, in the throughput run"
              f"{'; receivers together' if len(peers) > 1 else ''})")
    print(f"  peak RSS            sender {rss[SENDER]:,.0f} MB, receiver "
          f"{max(rss[a] for a in peers):,.0f} MB{' (the largest)' if len(peers) > 1 else ''}")
    print(f"  idle penalty        one HPKE seal costs {idle[0] * 1e6:,.0f} us of CPU back to "
          f"back, {idle[1] * 1e6:,.0f} us after 2 ms asleep ({idle[1] / idle[0]:.1f}x; "
          "bench/idle.py)")
    if args.keep:
        print(f"  node folders and logs kept in {root}")
    if not count:
        return
    limit = {key: (limit_before[key] + limit_after[key]) / 2 for key in limit_before}
    print()
    print(f"  raw single-core limit  {limit['limit']:,.0f} envelopes/s  ->  this run reaches "
          f"{throughput / limit['limit']:.2f} of it")
    print(f"    (measured just before the throughput run, {limit_before['limit']:,.0f}/s, and "
          f"just after, {limit_after['limit']:,.0f}/s; the mean of each rate)")
    print("    = 1/(HPKE seal + HPKE open + 3 Ed25519 signatures made + 3 verified), package "
          f"{limit['package']:,.0f} B")
    print(f"    HPKE seal {limit['hpke_seal']:,.0f}/s, open {limit['hpke_open']:,.0f}/s; "
          f"Ed25519 sign {limit['sign_short']:,.0f}/s and {limit['sign_long']:,.0f}/s, "
          f"verify {limit['verify_short']:,.0f}/s and {limit['verify_long']:,.0f}/s")


if __name__ == "__main__":
    asyncio.run(main())

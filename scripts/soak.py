#!/usr/bin/env python3
"""Soak: several node processes exchanging all to all at a steady rate, under faults (issue #7).

A fresh federation of ``--nodes`` authorities (default 5) is provisioned in a temporary folder
(TLS on loopback, delivery retries from 0.05 s up to 1 s, witnesses cosigning each other's logs
every 5 s), and each node runs as ``python -m node serve``. For ``--duration`` seconds every
node's users submit requests through its local API at ``--rate`` per second, in turn to each
of the other nodes. Meanwhile, at seeded moments about ``--fault-gap`` seconds apart, one
random node meets one random fault:

- ``kill``: SIGKILL, restarted from its folder after 0 to 2 s;
- ``outage``: stopped (SIGTERM), restarted after 5 to 30 s;
- ``freeze``: SIGSTOP, SIGCONT after 2 to 40 s (past 30 s, its peers' requests time out and
  are retried);
- ``tls``: restarted with a fresh TLS certificate that no directory names; 3 to 10 s later its
  record, re-signed with the new fingerprint, goes out in a new directory that every node
  adopts (``scripts/faults.py``, ``publish_pin``);
- ``skew`` (only if asked for with ``--faults``): restarted with its clock ten minutes behind
  for 3 to 10 s, then with the right clock.

A node that is down takes no submissions (its users are told so; those ticks are dropped);
a submit call cut by a fault leaves its items of unknown outcome. Once the traffic stops,
every node is up and every outbox has drained, the run is checked:

- every item a node acknowledged is journalled under its tag, delivered, and held exactly
  once by its recipient; an item of unknown outcome is journalled and delivered once, or is
  nowhere; no recipient holds a message its sender does not have, and nothing is journalled
  or accepted twice;
- for each pair of nodes, every receipt the sender holds is byte for byte the one the
  receiver stored, an acceptance naming its envelope, signed by the receiver's key in the
  secretariat-signed directory, with a log inclusion proof that verifies;
- every node's audit bundle verifies offline with the secretariat keys alone and records each
  message once; no node holds a witness alarm; a node restarted with an unlisted certificate
  or a wrong clock accepted nothing until it was right again.

    python scripts/soak.py                               # 5 nodes, 10 minutes
    python scripts/soak.py --duration 40 --fault-gap 8   # a short run
    python scripts/soak.py --faults kill,outage,freeze,tls,skew --keep /tmp/soak

Prints each fault as it happens and one summary; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from faults import (
    DELIVERY,
    HELD_BACK,
    SKEW,
    Disturbance,
    NodeProcess,
    Tally,
    check_acceptances,
    check_bundle,
    check_receipts,
    count,
    disturb,
    rows,
    signed_directory,
    submit_batch,
    waiting_for,
)

from node.config import NodeConfig
from node.federation import Federation, Member
from protocol.log_entry import EntryType

__all__ = ["FAULTS", "Planned", "SoakResult", "check", "main", "plan", "soak"]

FAULTS = ("kill", "outage", "freeze", "tls", "skew")
DEFAULT_FAULTS = ("kill", "outage", "freeze", "tls")
WITNESS_INTERVAL = 5.0
SUBMIT_TIMEOUT = 60.0  # longer than any freeze: a call to a frozen node waits for it


def authorities(nodes: int) -> list[str]:
    assert 2 <= nodes <= 26
    return [f"X{chr(ord('A') + i)}:MOJ" for i in range(nodes)]


# --- the plan -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Planned:
    """At ``at`` seconds into the traffic (or as soon as the previous fault is over), node
    ``victim`` meets a ``kind`` fault lasting ``length`` seconds."""

    at: float
    kind: str
    victim: str
    length: float

    def __post_init__(self) -> None:
        assert self.kind in FAULTS and self.at >= 0 and self.length >= 0


def plan(seed: int, nodes: list[str], duration: float, gap: float,
         kinds: tuple[str, ...] = DEFAULT_FAULTS) -> list[Planned]:
    """Faults about ``gap`` seconds apart (0.5 to 1.5 times), from 10% of the run until 15 s
    before its end; the same for the same arguments. No fault lasts more than a fifth of the
    run."""
    rng = random.Random(f"rogatory-soak/{seed}")
    ranges = {"kill": (0.0, 2.0), "outage": (5.0, 30.0), "freeze": (2.0, 40.0),
              "tls": (3.0, 10.0), "skew": (3.0, 10.0)}
    planned: list[Planned] = []
    at = max(3.0, 0.1 * duration)
    while at < duration - 15.0:
        kind = rng.choice(kinds)
        low, high = ranges[kind]
        length = rng.uniform(low, max(low, min(high, duration / 5)))
        planned.append(Planned(round(at, 2), kind, rng.choice(nodes), round(length, 2)))
        at += length + rng.uniform(0.5, 1.5) * gap
    return planned


# --- traffic --------------------------------------------------------------------------------

class Pacer:
    """One node's users: ``rate`` requests a second, in turn to each of ``peers``, each in a
    batch call with those due at the same moment. Items due while the node is down (``up``
    clear) are dropped, as are those due beyond a second's worth behind schedule (after a
    call waited on a frozen node)."""

    def __init__(self, node: NodeProcess, peers: list[str], rate: float) -> None:
        self.node, self.peers, self.rate = node, peers, rate
        self.letter = node.authority[1]
        self.acked: dict[str, tuple[str, str]] = {}  # tag -> (message id, recipient)
        self.unknown: dict[str, str] = {}  # tag -> recipient, for items of failed calls
        self.refused: dict[str, str] = {}  # tag -> error, in a 207 answer
        self.calls = 0
        self.failed_calls = 0
        self.dropped = 0
        self.sequence = 0
        self.up = asyncio.Event()
        self.up.set()

    async def run(self, session: aiohttp.ClientSession, start: float, stop: float) -> None:
        scheduled = 0
        while (now := time.monotonic()) < stop:
            due = int((now - start) * self.rate) - scheduled
            if due <= 0:
                await asyncio.sleep(max(0.0, start + (scheduled + 1) / self.rate - now))
                continue
            scheduled += due
            if not self.up.is_set():
                self.dropped += due
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.up.wait(), max(0.01, stop - now))
                continue
            keep = max(1, math.ceil(self.rate))
            self.dropped += max(0, due - keep)
            items = []
            for _ in range(min(due, keep)):
                tag = f"{self.letter}{self.sequence:07d}"
                items.append((tag, self.peers[self.sequence % len(self.peers)]))
                self.sequence += 1
            self.calls += 1
            results = await submit_batch(session, self.node, items, SUBMIT_TIMEOUT)
            if results is None:
                self.failed_calls += 1
                self.unknown.update(items)
                continue
            for (tag, recipient), result in zip(items, results, strict=True):
                if "id" in result:
                    self.acked[tag] = (result["id"], recipient)
                else:
                    self.refused[tag] = json.dumps(result.get("error"))


# --- the run --------------------------------------------------------------------------------

@dataclass
class Struck:
    planned: Planned
    at: float  # seconds into the traffic
    seen: Disturbance = field(default_factory=Disturbance)

    def describe(self) -> str:
        p = self.planned
        what = {"kill": "SIGKILL, restarted", "outage": "stopped, restarted",
                "freeze": "SIGSTOP, SIGCONT", "tls": "unlisted TLS certificate, new pin",
                "skew": f"clock {SKEW:.0f}s behind, then right"}[p.kind]
        extra = (f", {self.seen.accepted_during} accepted meanwhile"
                 if p.kind in HELD_BACK else "")
        return (f"{self.at:7.1f}s  {p.kind:<6} {p.victim}  ({what}) {self.seen.lasted:5.1f}s; "
                f"{self.seen.held_back} envelopes waiting for it at the end{extra}")


@dataclass
class Evidence:
    """What the checks read once every node is stopped."""

    federation: Federation
    pacers: dict[str, Pacer]
    configs: dict[str, NodeConfig]
    bundles: dict[str, bytes]
    starts: dict[str, int]  # how many times each node was started


@dataclass
class SoakResult(Tally):
    nodes: int
    duration: float
    rate: float
    struck: list[Struck] = field(default_factory=list)
    submitted: int = 0  # acknowledged by a local API
    calls: int = 0
    dropped: int = 0
    drain: float = 0.0
    evidence: Evidence | None = field(default=None, repr=False)

    def faults(self) -> Counter[str]:
        return Counter(s.planned.kind for s in self.struck)

    def summary(self) -> str:
        traffic = self.exchanged / self.duration if self.duration else 0.0
        figures = {
            "nodes": self.nodes,
            "traffic": f"{self.duration:.0f}s at {self.rate:g} per node per second",
            "messages exchanged": f"{self.exchanged} ({traffic:.1f}/s over the traffic time)",
            "  acknowledged by a local API": self.submitted,
            "  of submit calls cut by a fault": (
                f"{self.unknown} items of {self.failed_calls} calls: {self.unknown_journalled}"
                f" journalled and delivered once, {self.unknown - self.unknown_journalled} "
                "nowhere"),
            "  not submitted (node down)": self.dropped,
            "faults injected": (f"{len(self.struck)}: " + ", ".join(
                f"{kind} {n}" for kind, n in sorted(self.faults().items()))),
            "lost (must be 0)": self.lost,
            "duplicated (must be 0)": self.duplicated,
            "spurious (must be 0)": self.spurious,
            "witness alarms (must be 0)": self.alarms,
            "receipts verified": f"{self.receipts_verified} of {self.receipts_expected}",
            "bundles verified": f"{self.bundles_verified} of {self.nodes}",
            "outboxes drained in": f"{self.drain:.1f}s after the traffic",
            "wall time": f"{self.seconds:.0f}s",
            "violations": len(self.problems),
        }
        width = max(len(k) for k in figures)
        return "\n".join(f"  {k:<{width}}  {v}" for k, v in figures.items())


async def _strike(planned: Planned, nodes: dict[str, NodeProcess], pacers: dict[str, Pacer],
                  federation: Federation, session: aiohttp.ClientSession,
                  struck: Struck) -> None:
    victim = nodes[planned.victim]
    others = [n for a, n in nodes.items() if a != planned.victim]
    started = time.monotonic()
    if planned.kind in ("kill", "outage"):
        pacers[planned.victim].up.clear()
        if planned.kind == "kill":
            victim.kill()
        else:
            victim.stop()
        await asyncio.sleep(planned.length)
        struck.seen.held_back = waiting_for(victim, others, "state != 'delivered'")
        victim.start()
        await victim.wait_listening(session)
        pacers[planned.victim].up.set()
        struck.seen.lasted = time.monotonic() - started
        return
    if planned.kind != "freeze":
        pacers[planned.victim].up.clear()  # restarted twice; its users wait
    try:
        struck.seen = await disturb(planned.kind, planned.length, victim, others, federation,
                                    list(nodes.values()), session,
                                    lambda: count(victim.config.database_path,
                                                  "SELECT count(*) FROM messages_in"))
    finally:
        pacers[planned.victim].up.set()


async def _inject(schedule: list[Planned], nodes: dict[str, NodeProcess],
                  pacers: dict[str, Pacer], federation: Federation,
                  session: aiohttp.ClientSession, start: float, result: SoakResult,
                  verbose: bool) -> None:
    for planned in schedule:
        await asyncio.sleep(max(0.0, start + planned.at - time.monotonic()))
        struck = Struck(planned, time.monotonic() - start)
        result.struck.append(struck)
        await _strike(planned, nodes, pacers, federation, session, struck)
        if struck.seen.accepted_during:
            result.problems.append(f"{planned.victim} accepted {struck.seen.accepted_during} "
                                   f"envelopes while misconfigured ({planned.kind})")
        if verbose:
            print(struck.describe(), flush=True)


async def _progress(nodes: dict[str, NodeProcess], pacers: dict[str, Pacer], start: float,
                    every: float) -> None:
    while True:
        await asyncio.sleep(every)
        held = sum(count(n.config.database_path, "SELECT count(*) FROM messages_in")
                   for n in nodes.values())
        queued = sum(count(n.config.database_path, "SELECT count(*) FROM outbox")
                     for n in nodes.values())
        print(f"{time.monotonic() - start:7.1f}s  submitted "
              f"{sum(len(p.acked) for p in pacers.values())}, accepted {held}, "
              f"queued {queued}", flush=True)


async def soak(root: Path, *, nodes: int = 5, duration: float = 600.0, rate: float = 4.0,
               schedule: list[Planned] | None = None, seed: int = 1, gap: float = 20.0,
               kinds: tuple[str, ...] = DEFAULT_FAULTS, drain_timeout: float = 300.0,
               verbose: bool = False) -> SoakResult:
    """One soak under ``root``, checked; the nodes are stopped when it returns. ``schedule``
    (default: ``plan(seed, ...)``) gives the faults."""
    result = SoakResult(nodes, duration, rate)
    began = time.monotonic()
    names = authorities(nodes)
    if schedule is None:
        schedule = plan(seed, names, duration, gap, kinds)
    federation = Federation.create(
        root / "nodes", [Member(a, f"Authority {a[1]}") for a in names],
        delivery={**DELIVERY, "witness_interval": WITNESS_INTERVAL})
    processes = {a: NodeProcess(federation.home(a), a, root / f"{a[:2]}.log") for a in names}
    pacers = {a: Pacer(p, [b for b in names if b != a], rate) for a, p in processes.items()}
    bundles: dict[str, bytes] = {}
    try:
        for process in processes.values():
            process.start()
        connector = aiohttp.TCPConnector(limit=4 * nodes)
        async with aiohttp.ClientSession(connector=connector) as session:
            for process in processes.values():
                await process.wait_listening(session)
            start = time.monotonic()
            stop = start + duration
            injecting = asyncio.create_task(_inject(schedule, processes, pacers, federation,
                                                    session, start, result, verbose))
            progress = asyncio.create_task(_progress(processes, pacers, start, 30.0)) \
                if verbose else None
            await asyncio.gather(*(p.run(session, start, stop) for p in pacers.values()))
            await injecting  # a fault under way ends; none is planned after the traffic
            if progress is not None:
                progress.cancel()
            ended = time.monotonic()
            queued = [n.config.database_path for n in processes.values()]
            deadline = ended + drain_timeout
            while sum(count(db, "SELECT count(*) FROM outbox", unreadable=1)
                      for db in queued):
                if time.monotonic() > deadline:
                    result.problems.append(f"the outboxes did not drain in {drain_timeout:.0f}s")
                    break
                await asyncio.sleep(0.1)
            result.drain = time.monotonic() - ended
            for authority, process in processes.items():
                alarms = json.loads(await process.get(session, "/audit/alarms"))["alarms"]
                result.alarms += len(alarms)
                result.problems.extend(f"witness alarm at {authority}: {a}" for a in alarms)
                bundles[authority] = await process.get(session, "/audit/bundle")
    finally:
        for process in processes.values():
            process.stop()
    for pacer in pacers.values():
        result.submitted += len(pacer.acked)
        result.unknown += len(pacer.unknown)
        result.failed_calls += pacer.failed_calls
        result.calls += pacer.calls
        result.dropped += pacer.dropped
        result.problems.extend(f"submit of {tag} at {pacer.node.authority} answered with an "
                               f"error: {error}" for tag, error in pacer.refused.items())
    result.evidence = Evidence(federation, pacers,
                               {a: p.config for a, p in processes.items()}, bundles,
                               {a: p.starts for a, p in processes.items()})
    check(result, result.evidence)
    result.seconds = time.monotonic() - began
    return result


# --- the invariants -------------------------------------------------------------------------

def check(result: SoakResult, evidence: Evidence) -> None:
    """Every invariant of a finished soak; counts and problems go into ``result``."""
    problems = result.problems
    configs = evidence.configs
    out = {a: rows(c.database_path, "SELECT message_id, case_ref, state, envelope_hash, "
                                    "recipient FROM messages_out") for a, c in configs.items()}
    out_by_id = {a: {row[0]: row for row in sent} for a, sent in out.items()}
    inbound = {a: rows(c.database_path, "SELECT message_id, case_ref, sender FROM messages_in")
               for a, c in configs.items()}
    held: Counter[tuple[str, str, str]] = Counter()  # (sender, message id, recipient)
    tags_held: Counter[tuple[str, str]] = Counter()  # (recipient, tag)
    for recipient, received in inbound.items():
        for message_id, tag, sender in received:
            held[sender, message_id, recipient] += 1
            tags_held[recipient, tag] += 1

    for sender, pacer in evidence.pacers.items():
        sent = out_by_id[sender]
        by_tag = {row[1]: row for row in out[sender]}

        def delivered_once(message_id: str, recipient: str, what: str,
                           sender: str = sender, sent: dict[str, Any] = sent) -> None:
            row, n = sent.get(message_id), held[sender, message_id, recipient]
            if row is None or n == 0:
                result.lost += 1
                problems.append(f"{what} {message_id} from {sender} to {recipient}: lost "
                                f"(journalled {row is not None}, held {n} times)")
            elif n > 1:
                result.duplicated += n - 1
                problems.append(f"{what} {message_id}: accepted {n} times by {recipient}")
            elif row[4] != recipient:
                problems.append(f"{what} {message_id}: journalled for {row[4]}, not {recipient}")

        for tag, (message_id, recipient) in pacer.acked.items():
            row = sent.get(message_id)
            if row is not None and row[1] != tag:
                problems.append(f"acknowledged {message_id} carries case {row[1]!r}, not {tag!r}")
            delivered_once(message_id, recipient, f"acknowledged {tag}")
        for tag, recipient in pacer.unknown.items():
            if tag in by_tag:
                result.unknown_journalled += 1
                delivered_once(by_tag[tag][0], recipient, f"unacknowledged but journalled {tag}")
            elif tags_held[recipient, tag]:
                result.spurious += tags_held[recipient, tag]
                problems.append(f"unacknowledged {tag}: not journalled at {sender}, yet "
                                f"{recipient} holds it")
        known = set(pacer.acked) | set(pacer.unknown) | set(pacer.refused)
        for tag, n in Counter(row[1] for row in out[sender]).items():
            if tag not in known:
                problems.append(f"{sender} holds {n} message(s) tagged {tag!r}, never submitted")
            if n > 1:
                result.duplicated += n - 1
                problems.append(f"{sender} journalled {tag} {n} times")
        for message_id, _, state, _, recipient in out[sender]:
            if state != "delivered":
                problems.append(f"{message_id} from {sender} to {recipient}: {state!r}")

    for recipient, received in inbound.items():
        for (who, tag), n in tags_held.items():
            if who == recipient and n > 1:
                result.duplicated += n - 1
                problems.append(f"{recipient} accepted {tag} {n} times")
        for message_id, _, sender in received:
            row = out_by_id.get(sender, {}).get(message_id)
            if row is None or row[4] != recipient:
                result.spurious += 1
                problems.append(f"{recipient} holds {message_id} from {sender}, which "
                                f"{sender} never journalled for it")
    result.exchanged = sum(1 for (s, m, r), n in held.items() if n >= 1)

    directory = signed_directory(evidence.federation, next(iter(configs.values())))
    for receiver, receiver_cfg in configs.items():
        check_acceptances(problems, receiver_cfg)
        for sender, sender_cfg in configs.items():
            pairs = [(row[0], row[3]) for row in out[sender] if row[4] == receiver]
            if sender == receiver or not pairs:
                continue
            result.receipts_expected += len(pairs)
            result.receipts_verified += check_receipts(problems, directory, sender_cfg,
                                                       receiver_cfg, pairs)
    for authority, data in evidence.bundles.items():
        journalled, taken = len(out[authority]), len(inbound[authority])
        result.bundles_verified += check_bundle(problems, f"{authority}'s", data,
                                                evidence.federation, {
            EntryType.ENVELOPE_SENT: journalled, EntryType.RECEIPT_RECEIVED: journalled,
            EntryType.ENVELOPE_RECEIVED: taken, EntryType.RECEIPT_ISSUED: taken})


# --- command line ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of traffic (default 600)")
    parser.add_argument("--rate", type=float, default=4.0,
                        help="requests each node submits per second (default 4)")
    parser.add_argument("--fault-gap", type=float, default=20.0,
                        help="mean seconds between the end of a fault and the next (default 20)")
    parser.add_argument("--faults", default=",".join(DEFAULT_FAULTS),
                        help=f"fault kinds to draw from, of {', '.join(FAULTS)} "
                             f"(default {','.join(DEFAULT_FAULTS)})")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="keep the node folders and logs here")
    args = parser.parse_args(argv)
    kinds = tuple(args.faults.split(","))
    if not set(kinds) <= set(FAULTS):
        parser.error(f"--faults: choose among {', '.join(FAULTS)}")

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rogatory-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    names = authorities(args.nodes)
    schedule = plan(args.seed, names, args.duration, args.fault_gap, kinds)
    print(f"rogatory soak: {args.nodes} nodes, {args.duration:.0f}s at {args.rate:g} requests "
          f"per node per second, {len(schedule)} faults planned ({', '.join(kinds)}), seed "
          f"{args.seed}, {os.cpu_count()} CPUs; in {root}", flush=True)
    try:
        result = asyncio.run(soak(root, nodes=args.nodes, duration=args.duration,
                                  rate=args.rate, schedule=schedule, verbose=True))
    except Exception as exc:  # a soak that could not complete is a violation too
        print(f"\nthe soak failed: {exc!r}; node folders and logs kept in {root}", flush=True)
        return 1
    print("\nsummary")
    print(result.summary())
    for problem in result.problems[:30]:
        print(f"    {problem}")
    if result.problems:
        print(f"    ... {len(result.problems)} problem(s); node folders and logs kept in {root}")
    elif not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print("\nVIOLATIONS FOUND" if result.problems else "\nno violation", flush=True)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())

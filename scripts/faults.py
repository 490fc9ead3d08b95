#!/usr/bin/env python3
"""Faults with real node processes: SIGKILL of the sender or the receiver mid-exchange, a
frozen receiver, a receiver with its clock wrong, a receiver whose TLS key changed (issue #7).

Each run provisions a fresh two-node federation in a temporary folder (TLS, delivery retries
from 0.05 s up to 1 s), starts both nodes as ``python -m node serve`` processes and submits the
envelopes through the sender's local API in batch calls (``POST /api/v1/messages/batch``,
several calls in flight). At a seeded point of the exchange one node is killed with SIGKILL and
restarted from its folder after a pause of 0 to 2 s; one run of the set keeps the receiver down
for 30 s, and about half the runs kill a node (either) a second time, at a point counted from
the first restart, so it may strike while the first victim is still recovering. A submit call
that fails because the sender was killed under it is retried by the script under new tags, and
its items are kept aside: the sender may or may not have journalled them.

``--kinds`` gives other faults, taken in turn by the runs (see ``Fault``): ``freeze`` stops the
receiver with SIGSTOP for 5 to 45 s, then SIGCONT; ``skew`` restarts it with its clock ten
minutes behind for 3 to 10 s (``SKEWED_CLOCK``), then with the right clock; ``tls`` restarts it
with a fresh TLS certificate that no directory names, and 3 to 10 s later publishes its record
re-signed with the new fingerprint. For these, the rest of the envelopes is submitted once
the fault is in place; a skewed receiver or one behind an unlisted certificate must accept
nothing meanwhile.

Once the sender's outbox is empty, the run is checked:

- every item answered with an id (207) is in the sender's store, delivered, and the receiver
  holds exactly one message for it; an item whose call failed is either in the sender's store
  (then delivered exactly once) or nowhere (not at the receiver either); the receiver holds no
  message the sender does not have;
- the receipt the sender holds is byte for byte the one the receiver stored, and verifies
  against the receiver's key in the secretariat-signed directory, with its log inclusion proof;
- both nodes' audit bundles, fetched through their local APIs, pass ``verify_bundle`` offline
  with the federation's secretariat keys, each log records every message exactly once, and
  neither node has a witness alarm.

    python scripts/faults.py                                  # 20 runs of 2,000 envelopes
    python scripts/faults.py --runs 4 --envelopes 500 --seed 7
    python scripts/faults.py --keep /tmp/faults               # keep node folders and logs
    python scripts/faults.py --runs 6 --kinds freeze,skew,tls  # the other faults, twice each

Prints one line per run and a summary; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from keys.directory import Directory, sign_record, verify_directory
from keys.keystore import KeyStore
from node.audit_bundle import verify_bundle
from node.config import NodeConfig, load_config, read_api_token
from node.federation import Federation, Member, passphrase_for, serve, shut_down
from node.tls import create_certificate
from protocol.errors import RogatoryError
from protocol.log_entry import EntryType, parse_entry, verify_receipt_proof
from protocol.receipt import parse_receipt

__all__ = [
    "KINDS",
    "Disturbance",
    "Evidence",
    "Fault",
    "Injected",
    "NodeProcess",
    "RunResult",
    "Tally",
    "check",
    "check_acceptances",
    "check_bundle",
    "check_receipts",
    "count",
    "disturb",
    "main",
    "plan_run",
    "rows",
    "run_once",
    "signed_directory",
    "submit_batch",
    "summary",
    "waiting_for",
]

SENDER, RECEIVER = "XA:MOJ", "XB:MOJ"
ROLES = {"sender": SENDER, "receiver": RECEIVER}
DELIVERY = {"retry_base": 0.05, "retry_max": 1.0}
LONG_OUTAGE = 30.0


# --- node processes -------------------------------------------------------------------------

SKEWED_CLOCK = """\
import runpy, sys, time
offset = float(sys.argv.pop(1))
wall = time.time
time.time = lambda: wall() + offset
runpy.run_module("node", run_name="__main__", alter_sys=True)
"""
"""``python -c SKEWED_CLOCK OFFSET serve ...``: the node with its wall clock ``OFFSET`` seconds
off. Every wall-clock read of the node (envelope times, freshness checks, receipts, log
entries, the outbox schedule) goes through ``time.time``; the product is not changed."""


class NodeProcess:
    """One node run as ``python -m node serve``; killed and restarted from the same folder,
    frozen with SIGSTOP and thawed with SIGCONT, or started with its clock off."""

    def __init__(self, home: Path, authority: str, log: Path) -> None:
        self.home, self.authority, self.log = home, authority, log
        self.config: NodeConfig = load_config(home)
        self.token = read_api_token(self.config)
        self.api = f"http://127.0.0.1:{self.config.api_port}/api/v1"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.clock_offset = 0.0  # seconds, for the next start
        self.frozen = False

    def start(self) -> None:
        command = [sys.executable, "-m", "node"]
        if self.clock_offset:
            command = [sys.executable, "-c", SKEWED_CLOCK, repr(self.clock_offset)]
        self._mark(f"start #{self.starts + 1}, clock offset {self.clock_offset:+.0f}s,")
        self.process = serve(self.home, self.authority, self.log, python=command)
        self.starts += 1

    def _mark(self, what: str) -> None:
        with self.log.open("ab") as handle:
            handle.write(f"\n=== {what} at {time.time():.3f}\n".encode())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.frozen = False
        self._mark("SIGKILL")

    def freeze(self) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing (a hung peer)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True
        self._mark("SIGSTOP")

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False
        self._mark("SIGCONT")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.frozen:
            self.thaw()
        shut_down(self.process, timeout=20)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def wait_listening(self, session: aiohttp.ClientSession, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.authority} exited with {self.process.returncode}; "
                                   f"see {self.log}")
            try:
                async with session.get(f"{self.api}/status", headers=self.headers,
                                       timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.authority} did not start; see {self.log}")
            await asyncio.sleep(0.05)

    async def get(self, session: aiohttp.ClientSession, path: str) -> bytes:
        return await self._call(session, "GET", path)

    async def post(self, session: aiohttp.ClientSession, path: str, data: bytes) -> bytes:
        return await self._call(session, "POST", path, data)

    async def _call(self, session: aiohttp.ClientSession, method: str, path: str,
                    data: bytes | None = None) -> bytes:
        async with session.request(method, f"{self.api}{path}", data=data, headers=self.headers,
                                   timeout=aiohttp.ClientTimeout(total=120)) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} {path} at {self.authority}: {response.status} "
                                   f"{body!r}")
            return body


def count(db: Path, sql: str, unreadable: int = 0) -> int:
    """A count read with a separate read-only connection; ``unreadable`` if it cannot be read
    (the file is missing, or busy while its node restarts)."""
    if not db.exists():
        return unreadable
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return unreadable
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return unreadable
    finally:
        conn.close()


# --- submitting -----------------------------------------------------------------------------

async def submit_batch(session: aiohttp.ClientSession, node: NodeProcess,
                       items: list[tuple[str, str]], timeout: float = 120.0,
                       ) -> list[dict[str, Any]] | None:
    """Requests submitted through ``node``'s local API in one batch call, one per ``(tag,
    recipient)``, the tag as case reference: the per-item results (each an ``id`` or an
    ``error``), or ``None`` if the call failed and the items' outcome is unknown."""
    body = json.dumps({"messages": [
        {"to": recipient, "kind": "request", "case": tag,
         "payload": f"fault-injection request {tag}"} for tag, recipient in items]})
    try:
        async with session.post(
                f"{node.api}/messages/batch", data=body,
                headers={**node.headers, "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            answer = await response.json(content_type=None)
            if response.status != 207:
                raise RuntimeError(f"status {response.status}: {answer}")
            results: list[dict[str, Any]] = answer["results"]
            return results
    except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError, ValueError):
        return None


class Submitter:
    """Queues ``total`` envelopes at the sender in batch calls, ``in_flight`` calls at a time.

    Every item carries a unique tag in its case reference: ``<run>-<item>.<attempt>``. A call
    answered 207 acknowledges its items (tag -> message id); a call that fails (the sender was
    killed under it, or was down) leaves its items of unknown outcome, and they are submitted
    again under the next attempt's tags once the sender is back.
    """

    def __init__(self, sender: NodeProcess, run: str, total: int, per_call: int,
                 in_flight: int) -> None:
        self.sender, self.run = sender, run
        self.in_flight = in_flight
        self.chunks: deque[list[int]] = deque(
            list(range(start, min(start + per_call, total)))
            for start in range(0, total, per_call))
        self.attempts: Counter[int] = Counter()
        self.acked: dict[str, str] = {}  # tag -> message id
        self.unknown: list[str] = []  # tags of items whose call failed
        self.refused: dict[str, str] = {}  # tag -> error, in a 207 answer
        self.failed_calls = 0
        self.sender_up = asyncio.Event()
        self.sender_up.set()
        self.hold_from: int | None = None  # items from here wait until ``released``
        self.released = asyncio.Event()
        self.started = 0.0
        self.finished = 0.0

    def tag(self, item: int) -> str:
        return f"{self.run}-{item:05d}.{self.attempts[item]}"

    async def call(self, session: aiohttp.ClientSession, items: list[int]) -> bool:
        tags = [self.tag(item) for item in items]
        results = await submit_batch(session, self.sender, [(tag, RECEIVER) for tag in tags])
        if results is None:
            self.failed_calls += 1
            self.unknown.extend(tags)
            return False
        for tag, result in zip(tags, results, strict=True):
            if "id" in result:
                self.acked[tag] = result["id"]
            else:
                self.refused[tag] = json.dumps(result.get("error"))
        return True

    def hold(self, at: int) -> int:
        """Submit nothing from item ``at`` on until ``released`` is set; return how many items
        will have been acknowledged when the hold is reached."""
        self.hold_from = at
        self.released.clear()
        return len(self.acked) + sum(len(c) for c in self.chunks if c[0] < at)

    async def worker(self, session: aiohttp.ClientSession) -> None:
        while self.chunks:
            if self.hold_from is not None and self.chunks[0][0] >= self.hold_from:
                await self.released.wait()
                self.hold_from = None
                continue
            items = self.chunks.popleft()
            if await self.call(session, items):
                continue
            for item in items:
                self.attempts[item] += 1
            self.chunks.appendleft(items)
            await asyncio.sleep(0.05)
            await self.sender_up.wait()

    async def run_all(self, session: aiohttp.ClientSession) -> None:
        self.started = time.monotonic()
        await asyncio.gather(*(self.worker(session) for _ in range(self.in_flight)))
        self.finished = time.monotonic()


# --- faults ---------------------------------------------------------------------------------

KINDS = ("kill", "freeze", "skew", "tls")
SKEW = 600.0
"""How far behind the skewed receiver's clock is: twice the default ``max_skew``, so every
envelope it is sent looks created too far in the future."""
HELD_BACK = {"skew": "envelope.clock_skew", "tls": "transport.tls_pin_mismatch"}
"""The error a sender's outbox shows for an envelope held back by each misconfiguration."""


@dataclass(frozen=True)
class Fault:
    """Strike ``victim`` once its ``trigger`` counter has moved ``fraction`` of the way from
    where it stood when the previous fault ended to the number of envelopes.

    ``trigger`` is ``submitted`` (items the sender acknowledged) or ``accepted`` (messages the
    receiver holds). ``kind`` says what happens for ``pause`` seconds:

    - ``kill``: SIGKILL, then a restart from the node's folder after ``pause``;
    - ``freeze``: SIGSTOP, then SIGCONT after ``pause`` (a hung peer: its sockets stay open,
      nothing is answered; past the sender's 30 s request timeout, attempts are abandoned);
    - ``skew``: the receiver restarted with its clock ``SKEW`` seconds behind, for ``pause``
      seconds, then restarted with the right clock;
    - ``tls``: the receiver restarted with a fresh TLS certificate and key that no directory
      names; after ``pause`` seconds its record, re-signed with the new fingerprint, goes out
      in a new directory that every node adopts through its local API.
    """

    victim: str
    trigger: str
    fraction: float
    pause: float
    kind: str = "kill"

    def __post_init__(self) -> None:
        assert self.victim in ROLES and self.trigger in ("submitted", "accepted")
        assert 0 < self.fraction < 1 and self.pause >= 0 and self.kind in KINDS
        assert self.kind not in HELD_BACK or self.victim == "receiver"


def plan_run(seed: int, number: int, *, long_outage_run: int = 3,
             long_outage: float = LONG_OUTAGE, kind: str = "kill") -> list[Fault]:
    """The faults of run ``number`` (from 1): the same for the same seed, number and kind.

    Kill runs: the first victim alternates (odd runs the sender, even runs the receiver),
    except that the long-outage run kills the receiver and keeps it down ``long_outage``
    seconds; about half the runs kill a node (either) a second time. Other kinds strike the
    receiver once: frozen 5 to 45 s (so some freezes outlast the sender's request timeout),
    or misconfigured 3 to 10 s.
    """
    if kind != "kill":
        rng = random.Random(f"rogatory-faults/{seed}/{number}/{kind}")
        pause = rng.uniform(5.0, 45.0) if kind == "freeze" else rng.uniform(3.0, 10.0)
        return [Fault("receiver", "submitted", round(rng.uniform(0.1, 0.6), 3),
                      round(pause, 3), kind)]
    rng = random.Random(f"rogatory-faults/{seed}/{number}")
    long = number == long_outage_run
    victim = "receiver" if long or number % 2 == 0 else "sender"
    trigger = rng.choice(["submitted", "accepted"]) if victim == "sender" else "accepted"
    faults = [Fault(victim, trigger, round(rng.uniform(0.05, 0.85), 3),
                    long_outage if long else round(rng.uniform(0.0, 2.0), 3))]
    if rng.random() < 0.5:
        faults.append(Fault(rng.choice(["sender", "receiver"]), "accepted",
                            round(rng.uniform(0.1, 0.8), 3), round(rng.uniform(0.0, 2.0), 3)))
    return faults


@dataclass
class Disturbance:
    """What a ``disturb`` call saw."""

    lasted: float = 0.0  # seconds, from the first signal until the victim was right again
    held_back: int = 0  # envelopes still waiting for the victim at the senders as the fault
    #                     ends (with HELD_BACK as their last error, for skew and tls)
    accepted_during: int = 0  # skew, tls: envelopes the victim accepted while misconfigured


@dataclass
class Injected:
    fault: Fault
    at: float  # seconds after the first submit
    submitted: int
    accepted: int
    down: float  # from the kill until it listened again; how long the fault lasted
    interrupted: bool = False  # killed again while it was starting
    seen: Disturbance = field(default_factory=Disturbance)  # freeze, skew, tls

    def describe(self) -> str:
        kind, victim = self.fault.kind, self.fault.victim
        when = f"at {self.at:.2f}s (submitted {self.submitted}, accepted {self.accepted})"
        if kind == "freeze":
            return (f"froze {victim} {when} for {self.down:.1f}s: {self.seen.held_back} "
                    "envelopes waiting for it at the end")
        if kind in HELD_BACK:
            how = (f"its clock {SKEW:.0f}s behind" if kind == "skew"
                   else "an unlisted TLS certificate")
            return (f"ran {victim} with {how} {when} for {self.down:.1f}s: "
                    f"{self.seen.held_back} envelopes held back ({HELD_BACK[kind]}) at the "
                    f"end, {self.seen.accepted_during} accepted")
        down = ("killed again while restarting" if self.interrupted
                else f"down {self.down:.2f}s")
        return f"killed {victim} {when}, {down}"


async def publish_pin(federation: Federation, victim: NodeProcess, fingerprint: str,
                      processes: list[NodeProcess], session: aiohttp.ClientSession) -> None:
    """What an operator and the secretariat do after a TLS key change: the authority re-signs
    its record with the new fingerprint, the secretariat signs a new directory, and every node
    adopts it through its local API."""
    keystore = KeyStore.open(victim.config.keystore_path, passphrase_for(victim.authority))
    now = int(time.time())
    federation.records[victim.authority] = sign_record(
        replace(federation.records[victim.authority].record, tls_fingerprint=fingerprint,
                updated=now), keystore.identity)
    file = federation.directory_file(now)
    for process in processes:
        await process.post(session, "/directory", file)


def waiting_for(victim: NodeProcess, senders: list[NodeProcess], condition: str) -> int:
    """Envelopes journalled at ``senders`` for ``victim`` that meet an SQL ``condition``."""
    query = (f"SELECT count(*) FROM messages_out WHERE recipient = '{victim.authority}' "
             f"AND {condition}")
    return sum(count(s.config.database_path, query) for s in senders)


async def disturb(kind: str, pause: float, victim: NodeProcess, senders: list[NodeProcess],
                  federation: Federation, processes: list[NodeProcess],
                  session: aiohttp.ClientSession, accepted: Callable[[], int],
                  ready: Callable[[], None] = lambda: None) -> Disturbance:
    """A freeze, skew or tls fault of ``pause`` seconds (see ``Fault``); ``senders`` are the
    nodes whose outboxes show envelopes held back, ``accepted`` counts the messages the victim
    holds, and ``ready`` is called once the fault is in place."""
    seen, started = Disturbance(), time.monotonic()
    if kind == "freeze":
        victim.freeze()
        ready()
        await asyncio.sleep(pause)
        seen.held_back = waiting_for(victim, senders, "state != 'delivered'")
        victim.thaw()
        seen.lasted = time.monotonic() - started
        return seen
    victim.stop()
    before = accepted()
    fingerprint = ""
    if kind == "skew":
        victim.clock_offset = -SKEW
    else:
        config = victim.config
        fingerprint = create_certificate(config.cert_path, config.tls_key_path, victim.authority,
                                         config.peer_host, passphrase_for(victim.authority))
    victim.start()
    await victim.wait_listening(session)
    ready()
    await asyncio.sleep(pause)
    seen.held_back = waiting_for(victim, senders,
                                 f"state = 'retrying' AND last_error = '{HELD_BACK[kind]}'")
    if kind == "skew":
        victim.stop()  # every acceptance it made with the wrong clock is on disk now
        seen.accepted_during = accepted() - before
        victim.clock_offset = 0.0
        victim.start()
        await victim.wait_listening(session)
    else:
        seen.accepted_during = accepted() - before
        await publish_pin(federation, victim, fingerprint, processes, session)
    seen.lasted = time.monotonic() - started
    return seen


# --- one run --------------------------------------------------------------------------------

@dataclass
class Evidence:
    """What the checks read once both nodes are stopped: enough to check a run again."""

    federation: Federation
    submitter: Submitter
    sender: NodeConfig
    receiver: NodeConfig
    bundles: dict[str, bytes]


@dataclass(kw_only=True)
class Tally:
    """What the checks of a run count, and the violations they found (``problems``)."""

    unknown: int = 0  # items of submit calls that failed
    unknown_journalled: int = 0  # of them, journalled by their sender
    failed_calls: int = 0
    exchanged: int = 0
    lost: int = 0
    duplicated: int = 0
    spurious: int = 0
    receipts_verified: int = 0
    receipts_expected: int = 0
    bundles_verified: int = 0
    alarms: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class RunResult(Tally):
    number: int
    envelopes: int
    injected: list[Injected] = field(default_factory=list)
    skipped: list[tuple[Fault, str]] = field(default_factory=list)  # and why
    acked: int = 0
    folder: Path | None = None
    evidence: Evidence | None = field(default=None, repr=False)

    def line(self) -> str:
        faults = "; ".join(i.describe() for i in self.injected) or "no fault injected"
        for fault, why in self.skipped:
            faults += f"; {fault.victim} not killed ({why})"
        unknown = (f", {self.failed_calls} submit calls failed ({self.unknown} items: "
                   f"{self.unknown_journalled} journalled, "
                   f"{self.unknown - self.unknown_journalled} not)" if self.failed_calls else "")
        verdict = "ok" if self.ok else f"VIOLATION ({len(self.problems)})"
        return (f"run {self.number:2d}: {faults}; {self.envelopes} envelopes, "
                f"{self.exchanged} exchanged{unknown}; {self.seconds:.1f}s: {verdict}")


async def _wait_for(probe: Callable[[], int], target: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while probe() < target:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def run_once(number: int, envelopes: int, faults: list[Fault], root: Path, *,
                   per_call: int = 100, in_flight: int = 4, timeout: float = 300.0,
                   ) -> RunResult:
    """One exchange of ``envelopes`` under ``faults``, in a fresh federation under ``root``,
    checked; the nodes are stopped when it returns."""
    result = RunResult(number, envelopes, folder=root)
    started = time.monotonic()
    federation = Federation.create(root / "nodes", [Member(SENDER, "A"), Member(RECEIVER, "B")],
                                   delivery=DELIVERY)
    nodes = {role: NodeProcess(federation.home(authority), authority,
                               root / f"{role}.log") for role, authority in ROLES.items()}
    sender, receiver = nodes["sender"], nodes["receiver"]
    bundles: dict[str, bytes] = {}
    try:
        for process in nodes.values():
            process.start()
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=in_flight + 4)) as session:
            for process in nodes.values():
                await process.wait_listening(session)
            submitter = Submitter(sender, f"F{number:02d}", envelopes, per_call, in_flight)
            submitting = asyncio.create_task(submitter.run_all(session))
            counters: dict[str, Callable[[], int]] = {
                "submitted": lambda: len(submitter.acked),
                "accepted": lambda: count(receiver.config.database_path,
                                          "SELECT count(*) FROM messages_in"),
            }
            base = {name: 0 for name in counters}
            starting: dict[str, asyncio.Task[None]] = {}  # restarted, not yet listening

            async def back_up(role: str, injected: Injected, killed: float) -> None:
                await nodes[role].wait_listening(session)
                injected.down = time.monotonic() - killed
                if role == "sender":
                    submitter.sender_up.set()

            for fault in faults:
                probe = counters[fault.trigger]
                remaining = envelopes - base[fault.trigger]
                target = base[fault.trigger] + max(1, int(fault.fraction * remaining))
                if fault.kind != "kill" and remaining >= 2:
                    # The rest is submitted once the fault is in place, so that it meets it.
                    target = submitter.hold(target)
                if remaining < 2:
                    result.skipped.append((fault, f"{fault.trigger} {base[fault.trigger]} of "
                                                  f"{envelopes} already"))
                    continue
                if not await _wait_for(probe, target, timeout):
                    result.skipped.append((fault, f"{fault.trigger} {probe()} < {target} "
                                                  f"after {timeout:.0f}s"))
                    continue
                victim = nodes[fault.victim]
                restarting = starting.pop(fault.victim, None)
                if fault.kind != "kill" and restarting is not None:
                    await restarting  # the other kinds strike a node that is up
                    restarting = None
                if victim is sender and fault.kind == "kill":
                    submitter.sender_up.clear()
                if restarting is not None and not restarting.done():
                    restarting.cancel()  # killed again before it was listening: in recovery
                    with contextlib.suppress(asyncio.CancelledError):
                        await restarting
                    result.injected[-1].interrupted = True
                at = time.monotonic() - submitter.started
                if fault.kind == "kill":
                    victim.kill()
                killed = time.monotonic()
                injected = Injected(fault, at, len(submitter.acked),
                                    counters["accepted"](), 0.0)
                result.injected.append(injected)
                if fault.kind != "kill":
                    injected.seen = await disturb(
                        fault.kind, fault.pause, victim, [sender], federation,
                        list(nodes.values()), session, counters["accepted"],
                        submitter.released.set)
                    submitter.released.set()
                    injected.down = injected.seen.lasted
                    if injected.seen.accepted_during:
                        result.problems.append(f"{injected.describe()}: accepted while "
                                               "misconfigured")
                    base = {name: probe() for name, probe in counters.items()}
                    continue
                await asyncio.sleep(fault.pause)
                victim.start()
                # The next fault counts from here, while this node recovers: it may strike
                # before the node listens again, or kill it again during its recovery.
                base = {name: probe() for name, probe in counters.items()}
                starting[fault.victim] = asyncio.create_task(
                    back_up(fault.victim, injected, killed))
            for restarting in starting.values():
                await restarting
            await asyncio.wait_for(submitting, timeout)
            drained = await _wait_for(
                lambda: -count(sender.config.database_path, "SELECT count(*) FROM outbox",
                               unreadable=1), 0, timeout)
            if not drained:
                result.problems.append(f"the sender's outbox did not drain in {timeout:.0f}s")
            for role, process in nodes.items():
                alarms = json.loads(await process.get(session, "/audit/alarms"))["alarms"]
                result.alarms += len(alarms)
                for alarm in alarms:
                    result.problems.append(f"witness alarm at the {role}: {alarm}")
                bundles[role] = await process.get(session, "/audit/bundle")
    finally:
        for process in nodes.values():
            process.stop()
    result.acked, result.unknown = len(submitter.acked), len(submitter.unknown)
    result.failed_calls = submitter.failed_calls
    for tag, error in submitter.refused.items():
        result.problems.append(f"submit of {tag} answered with an error: {error}")
    result.evidence = Evidence(federation, submitter, sender.config, receiver.config, bundles)
    check(result, result.evidence)
    result.seconds = time.monotonic() - started
    return result


# --- the invariants -------------------------------------------------------------------------

def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def check(result: RunResult, evidence: Evidence) -> None:
    """Every invariant of a finished run; counts and problems go into ``result``."""
    federation, submitter = evidence.federation, evidence.submitter
    sender_cfg, receiver_cfg, bundles = evidence.sender, evidence.receiver, evidence.bundles
    problems = result.problems
    out = rows(sender_cfg.database_path,
                "SELECT message_id, case_ref, state, envelope_hash FROM messages_out")
    inbound = rows(receiver_cfg.database_path,
                    "SELECT message_id, case_ref, sender, envelope_hash FROM messages_in")
    out_by_id = {row[0]: row for row in out}
    out_tags = Counter(row[1] for row in out)
    in_ids = Counter(row[0] for row in inbound)
    in_tags = Counter(row[1] for row in inbound)

    def delivered_once(message_id: str, what: str) -> None:
        row = out_by_id.get(message_id)
        held = in_ids.get(message_id, 0)
        if row is None or held == 0:
            result.lost += 1
            problems.append(f"{what} {message_id}: lost (sender row {row is not None}, "
                            f"receiver holds {held})")
        elif held > 1:
            result.duplicated += 1
            problems.append(f"{what} {message_id}: accepted {held} times")
        if row is not None and row[2] != "delivered":
            problems.append(f"{what} {message_id}: state {row[2]!r} at the sender")

    # Every acknowledged item: journalled under its tag and delivered exactly once.
    for tag, message_id in submitter.acked.items():
        row = out_by_id.get(message_id)
        if row is not None and row[1] != tag:
            problems.append(f"acknowledged {message_id} carries case {row[1]!r}, not {tag!r}")
        delivered_once(message_id, f"acknowledged {tag}")
    # Every item of a failed call: journalled and delivered once, or nowhere.
    by_tag = {row[1]: row for row in out}
    for tag in submitter.unknown:
        if tag in by_tag:
            result.unknown_journalled += 1
            delivered_once(by_tag[tag][0], f"unacknowledged but journalled {tag}")
        elif in_tags.get(tag, 0):
            result.spurious += 1
            problems.append(f"unacknowledged {tag}: not in the sender's store, yet the receiver "
                            f"holds it {in_tags[tag]} time(s)")
    # Nothing else on either side, and nothing journalled or accepted twice.
    known = set(submitter.acked) | set(submitter.unknown) | set(submitter.refused)
    for tag, n in out_tags.items():
        if tag not in known:
            problems.append(f"the sender holds {n} message(s) tagged {tag!r}, never submitted")
        if n > 1:
            result.duplicated += n - 1
            problems.append(f"the sender journalled {tag} {n} times")
    for tag, n in in_tags.items():
        if n > 1:
            result.duplicated += n - 1
            problems.append(f"the receiver accepted {tag} {n} times")
    for message_id, n in in_ids.items():
        if message_id not in out_by_id:
            result.spurious += n
            problems.append(f"the receiver holds {message_id}, which the sender never journalled")
    for message_id, _, state, _ in out:
        if state != "delivered" and message_id not in submitter.acked.values():
            problems.append(f"{message_id}: state {state!r} at the sender")
    if any(row[2] != SENDER for row in inbound):
        problems.append("the receiver holds messages from another sender")
    result.exchanged = sum(1 for row in out if row[2] == "delivered" and in_ids.get(row[0]))

    _check_receipts(result, federation, sender_cfg, receiver_cfg, out)
    _check_bundles(result, federation, bundles, len(out), len(inbound))


def _check_receipts(result: RunResult, federation: Federation, sender_cfg: NodeConfig,
                    receiver_cfg: NodeConfig, out: list[tuple[Any, ...]]) -> None:
    check_acceptances(result.problems, receiver_cfg)
    result.receipts_expected += len(out)
    result.receipts_verified += check_receipts(
        result.problems, signed_directory(federation, receiver_cfg), sender_cfg, receiver_cfg,
        [(row[0], row[3]) for row in out])


def _check_bundles(result: RunResult, federation: Federation, bundles: dict[str, bytes],
                   sent: int, received: int) -> None:
    expected = {
        "sender": {EntryType.ENVELOPE_SENT: sent, EntryType.RECEIPT_RECEIVED: sent},
        "receiver": {EntryType.ENVELOPE_RECEIVED: received, EntryType.RECEIPT_ISSUED: received},
    }
    for role, data in bundles.items():
        result.bundles_verified += check_bundle(result.problems, f"{role}'s", data,
                                                federation, expected[role])


# --- checks shared with scripts/soak.py ------------------------------------------------------

def signed_directory(federation: Federation, config: NodeConfig) -> Directory:
    """The directory a node holds, verified against the federation's secretariat keys."""
    pins = [key.public_raw for key in federation.secretariat]
    return verify_directory(config.directory_path.read_bytes(), pins, federation.threshold)


def check_acceptances(problems: list[str], receiver: NodeConfig) -> None:
    """The receiver issued exactly one acceptance per message it holds."""
    accepted = rows(receiver.database_path,
                    "SELECT count(*) FROM receipts WHERE direction = 'issued' "
                    "AND status = 'accepted'")[0][0]
    inbound = rows(receiver.database_path, "SELECT count(*) FROM messages_in")[0][0]
    if accepted != inbound:
        problems.append(f"{receiver.authority} issued {accepted} acceptances for {inbound} "
                        "messages")


def check_receipts(problems: list[str], directory: Directory, sender: NodeConfig,
                   receiver: NodeConfig, out: list[tuple[str, str]]) -> int:
    """For each ``(message id, envelope hash)`` the sender sent the receiver: the sender holds
    the receipt the receiver stored, byte for byte, and it is an acceptance naming that envelope,
    signed by the receiver's key in ``directory``, with a log inclusion proof that verifies.
    Returns how many passed."""
    held = {row[0]: bytes(row[1]) for row in rows(
        sender.database_path,
        "SELECT envelope_hash, receipt FROM receipts WHERE direction = 'received'")}
    issued = {row[0]: bytes(row[1]) for row in rows(
        receiver.database_path,
        "SELECT envelope_hash, receipt FROM receipts WHERE direction = 'issued'")}
    verified = 0
    for message_id, envelope_hash in out:
        data = held.get(envelope_hash)
        if data is None:
            problems.append(f"{message_id}: the sender holds no receipt")
            continue
        if issued.get(envelope_hash) != data:
            problems.append(f"{message_id}: the sender's receipt is not the one the receiver "
                            "stored")
            continue
        try:
            receipt = parse_receipt(data)
            key = directory.receiver_key(receiver.authority, receipt.receiver_key)
            receipt.verify(key)
            receipt.check_names(envelope_hash=envelope_hash, message_id=message_id,
                                sender=sender.authority, receiver=receiver.authority)
            if not receipt.accepted:
                raise RuntimeError(f"a refusal ({receipt.code})")
            verify_receipt_proof(receipt, key)
        except (RogatoryError, RuntimeError) as exc:
            problems.append(f"{message_id}: the receipt does not verify: {exc}")
            continue
        verified += 1
    return verified


def check_bundle(problems: list[str], whose: str, data: bytes, federation: Federation,
                 expected: dict[EntryType, int]) -> bool:
    """The audit bundle verifies offline with the secretariat keys alone, holds ``expected``
    entries of each type, and records no message twice under one type."""
    pins = [key.public_raw for key in federation.secretariat]
    report = verify_bundle(data, pins, federation.threshold)
    if not report.ok:
        problems.extend(f"{whose} audit bundle: {p}" for p in report.problems)
    kinds: Counter[EntryType] = Counter()
    ids: Counter[tuple[EntryType, str]] = Counter()
    for text in json.loads(data)["entries"]:
        entry_type, fields = parse_entry(base64.b64decode(text))
        kinds[entry_type] += 1
        if "id" in fields:
            ids[entry_type, fields["id"]] += 1
    consistent = True
    for entry_type, n in expected.items():
        if kinds[entry_type] != n:
            consistent = False
            problems.append(f"{whose} log has {kinds[entry_type]} {entry_type.value} entries "
                            f"for {n} messages")
    for (entry_type, message_id), n in ids.items():
        if n > 1:
            consistent = False
            problems.append(f"{whose} log records {entry_type.value} of {message_id} {n} times")
    return report.ok and consistent


# --- the set of runs ------------------------------------------------------------------------

def summary(results: list[RunResult]) -> str:
    total = {
        "runs": len(results),
        "faults injected": sum(len(r.injected) for r in results),
        "  by kind": ", ".join(f"{kind} {n}" for kind, n in sorted(Counter(
            i.fault.kind for r in results for i in r.injected).items())) or "-",
        "envelopes submitted": sum(r.envelopes for r in results),
        "envelopes exchanged": sum(r.exchanged for r in results),
        "submit calls failed (sender killed)": sum(r.failed_calls for r in results),
        "  their items journalled, delivered once": sum(r.unknown_journalled for r in results),
        "  their items not journalled, absent": sum(r.unknown - r.unknown_journalled
                                                    for r in results),
        "lost (must be 0)": sum(r.lost for r in results),
        "duplicated (must be 0)": sum(r.duplicated for r in results),
        "spurious at the receiver (must be 0)": sum(r.spurious for r in results),
        "witness alarms (must be 0)": sum(r.alarms for r in results),
        "receipts verified": f"{sum(r.receipts_verified for r in results)} of "
                             f"{sum(r.receipts_expected for r in results)}",
        "bundles verified": f"{sum(r.bundles_verified for r in results)} of "
                            f"{2 * len(results)}",
        "runs with a violation": sum(1 for r in results if not r.ok),
        "time": f"{sum(r.seconds for r in results):.0f}s",
    }
    width = max(len(k) for k in total)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in total.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--long-outage-run", type=int, default=3,
                        help="the run (from 1) whose receiver stays down --long-outage seconds "
                             "(default 3; 0 for none)")
    parser.add_argument("--long-outage", type=float, default=LONG_OUTAGE)
    parser.add_argument("--kinds", default="kill",
                        help="fault kinds the runs take in turn, comma-separated, of "
                             f"{', '.join(KINDS)} (default kill; see Fault)")
    parser.add_argument("--per-call", type=int, default=100, help="envelopes per batch call")
    parser.add_argument("--in-flight", type=int, default=4, help="batch calls in flight")
    parser.add_argument("--keep", help="keep every run's node folders and logs here")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: choose among {', '.join(KINDS)}")

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rogatory-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"rogatory faults: {args.runs} runs of {args.envelopes} envelopes, seed {args.seed}, "
          f"{os.cpu_count()} CPUs; faults: {', '.join(kinds)}; long outage "
          f"({args.long_outage:.0f}s) in run {args.long_outage_run or 'none'} if it kills",
          flush=True)
    results: list[RunResult] = []
    for number in range(1, args.runs + 1):
        faults = plan_run(args.seed, number, long_outage_run=args.long_outage_run,
                          long_outage=args.long_outage, kind=kinds[(number - 1) % len(kinds)])
        folder = base / f"run-{number:02d}"
        folder.mkdir()
        try:
            result = asyncio.run(run_once(number, args.envelopes, faults, folder,
                                          per_call=args.per_call, in_flight=args.in_flight))
        except Exception as exc:  # a run that could not complete is a violation too
            result = RunResult(number, args.envelopes, problems=[f"the run failed: {exc!r}"],
                               folder=folder)
        results.append(result)
        print(result.line(), flush=True)
        for problem in result.problems[:20]:
            print(f"    {problem}", flush=True)
        if result.problems:
            print(f"    ... {len(result.problems)} problem(s); node folders and logs kept in "
                  f"{folder}", flush=True)
        elif not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print("\nsummary")
    print(summary(results))
    if not args.keep:
        with contextlib.suppress(OSError):
            base.rmdir()
    bad = any(not r.ok for r in results)
    print("\nVIOLATIONS FOUND" if bad else "\nno violation", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

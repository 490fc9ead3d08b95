"""What the same work costs right after the thread has slept: this machine's idle penalty.

A node under a steady load sleeps between envelopes; in a flood it never does. On some
machines (virtual machines above all, whose vCPU the host takes away while it is idle) code that
runs just after a sleep finds its caches and branch predictors cold and costs far more CPU than
the same code run back to back. Every paced figure of ``exchange.py`` carries that cost, and the
raw limit, measured back to back, does not. This script measures it for the operations an
envelope is made of, so that the figures of two machines can be compared for what they are.

For each operation, its median CPU time (``time.process_time``) over many calls: back to
back; after the thread slept 2 or 20 ms before each call; after it *spun* 2 ms instead (busy,
never idle), which tells the cost of idling from the cost of time passing; and after it copied
16 MiB, as the other processes on the same cores do between two envelopes. Nothing else
should run meanwhile. ``--quick`` takes about 5 s, the default about 25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nacl.signing import SigningKey

from protocol.suites import Suite, hpke_seal, public_from_private

PACKAGE = 1434  # the HPKE plaintext of an envelope with 1 KiB of payload
_SCRATCH = bytearray(16 * 1024 * 1024)
_OTHER = bytes(len(_SCRATCH))


def _spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def _other_work() -> None:
    """16 MiB copied, as other processes sharing the cores would touch memory meanwhile."""
    _SCRATCH[:] = _OTHER


Pause = Callable[[], object] | None
PAUSES: list[tuple[str, Pause]] = [
    ("back to back", None),
    ("asleep 2 ms", lambda: time.sleep(0.002)),
    ("asleep 20 ms", lambda: time.sleep(0.02)),
    ("spinning 2 ms", lambda: _spin(0.002)),
    ("16 MiB copied", _other_work),
]


def _one(operation: Callable[[], object], pause: Pause) -> float:
    if pause is not None:
        pause()
    started = time.process_time()
    operation()
    return time.process_time() - started


def penalties(operation: Callable[[], object], pauses: list[Pause], calls: int,
              rounds: int = 10) -> list[float]:
    """Median CPU seconds of one call after each pause (``None``: none) before it. The pauses
    take turns over ``rounds`` rounds, so that a drift in the machine's speed hits them all
    alike."""
    operation()
    costs: list[list[float]] = [[] for _ in pauses]
    for _ in range(rounds):
        for i, pause in enumerate(pauses):
            costs[i].extend(_one(operation, pause) for _ in range(max(1, calls // rounds)))
    return [statistics.median(c) for c in costs]


def seal_operation() -> Callable[[], object]:
    """One HPKE seal of an envelope's package, hybrid suite, the recipient's key made once."""
    suite = Suite.HYBRID
    public = public_from_private(suite, os.urandom(suite.private_length))
    package = os.urandom(PACKAGE)
    return lambda: hpke_seal(suite, public, b"rogatory/bench/idle", package)


def sign_operation() -> Callable[[], object]:
    key = SigningKey(os.urandom(32))
    message = os.urandom(389)  # what the outer signature covers
    return lambda: key.sign(message)


def commit_operation(folder: Path) -> Callable[[], object]:
    """One row and its commit in WAL mode with synchronous=FULL, as the node's store does."""
    conn = sqlite3.connect(folder / "idle.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    body = os.urandom(3000)

    def commit() -> None:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
    return commit


def handoff_operation() -> Callable[[], object]:
    """An asyncio hand-off to a worker thread and back, as the node does for every store call
    (the CPU of both threads: ``process_time``)."""
    loop = asyncio.new_event_loop()
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def handoff() -> None:
        loop.run_until_complete(loop.run_in_executor(pool, int))
    return handoff


def seal_penalty(gap: float = 0.002, calls: int = 200) -> tuple[float, float]:
    """CPU seconds of one HPKE seal back to back and after ``gap`` asleep (``exchange.py``)."""
    back_to_back, asleep = penalties(seal_operation(), [None, lambda: time.sleep(gap)], calls)
    return back_to_back, asleep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200, help="calls per cell (default 200)")
    parser.add_argument("--quick", action="store_true", help="60 calls per measurement")
    args = parser.parse_args()
    calls = 60 if args.quick else args.calls
    print(f"rogatory idle-penalty benchmark; {os.cpu_count()} CPUs ({platform.machine()}), "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(f"median CPU per call, {calls} calls per cell; x = the cost back to back")
    with tempfile.TemporaryDirectory(prefix="rogatory-idle-") as folder:
        operations = {
            f"HPKE seal ({PACKAGE:,} B, hybrid)": seal_operation(),
            "Ed25519 sign (389 B)": sign_operation(),
            "SQLite commit (WAL, FULL)": commit_operation(Path(folder)),
            "asyncio hand-off to a thread": handoff_operation(),
        }
        print(f"  {'':32}" + "".join(f"{name:>18}" for name, _ in PAUSES))
        for name, operation in operations.items():
            costs = penalties(operation, [pause for _, pause in PAUSES], calls)
            cells = "".join(f"{c * 1e6:9.0f} us {c / costs[0]:4.1f}x" for c in costs)
            print(f"  {name:32}{cells}")


if __name__ == "__main__":
    main()

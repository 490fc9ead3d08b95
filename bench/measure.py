"""Timing shared by the benchmark scripts: operations per second, best of several rounds."""

from __future__ import annotations

import time
from collections.abc import Callable


def rates(fns: list[Callable[[], object]], seconds: float, rounds: int = 3) -> list[float]:
    """Operations per second of each function: the best of ``rounds`` rounds of
    ``seconds / rounds`` each, the functions taking turns so that a change in background load
    hits them all alike."""
    for fn in fns:
        fn()  # warm caches (parsed key objects, allocator)
    best = [0.0] * len(fns)
    per_round = seconds / rounds
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            count = 0
            start = time.perf_counter()
            deadline = start + per_round
            while True:
                fn()
                count += 1
                now = time.perf_counter()
                if now >= deadline:
                    break
            best[i] = max(best[i], count / (now - start))
    return best


def best_rate(fn: Callable[[], object], seconds: float, rounds: int = 3) -> float:
    """Operations per second of one function, best of ``rounds`` rounds."""
    return rates([fn], seconds, rounds)[0]

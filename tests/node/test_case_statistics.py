"""Statistics from the case book itself: a generated history of a few hundred cases, recorded
message by message in a real SQLite store as the nodes record them, counted independently."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from node.statistics import compute_statistics
from node.store import Store
from protocol.case import Direction
from protocol.case_message import REFUSAL_GROUNDS, CaseMessage
from protocol.kinds import Kind
from protocol.request_package import OFFENCE_CATEGORIES, RequestPackage

REQUESTS = Path(__file__).resolve().parents[2] / "examples" / "requests"
FORMS = ("mla", "extradition", "confiscation", "transfer-of-proceedings")
BASES = ("UNTOC", "UNCAC", "bilateral treaty", "reciprocity")
PEERS = ("BR:MJSP", "KE:ODPP", "DE:BFJ", "JP:MOJ", "ZA:DOJCD")
DAY = 86_400
ENDINGS = ("executed", "refused", "withdrawn", "partially-executed", "acknowledged",
           "delivered")


def _package(rng: random.Random, form: str, ref: str) -> tuple[RequestPackage, list[str], str]:
    value = json.loads((REQUESTS / f"{form}.json").read_text())
    value["requesting_authority"]["reference"] = ref
    basis = rng.choice(BASES)
    value["legal_basis"]["instrument"] = basis
    categories = rng.sample(OFFENCE_CATEGORIES, k=len(value["offences"]))
    for offence, category in zip(value["offences"], categories, strict=True):
        offence["category"] = category
    return RequestPackage.from_json(value), categories, basis


def _message(kind: Kind, **fields: Any) -> CaseMessage:
    return CaseMessage.build(kind, **fields)


def _history(store: Store, count: int, seed: int) -> list[dict[str, Any]]:
    """Record ``count`` cases; return what each one is, as the test knows it."""
    rng = random.Random(seed)
    truth = []
    clock = 1_767_225_600  # 2026-01-01
    for n in range(count):
        ref, peer, form = f"CASE-{n:04d}", rng.choice(PEERS), rng.choice(FORMS)
        outgoing = rng.random() < 0.55
        package, categories, basis = _package(rng, form, ref)
        ending = rng.choice(ENDINGS)
        grounds = sorted(rng.sample(sorted(REFUSAL_GROUNDS), k=rng.randint(1, 2)))
        ours = Direction.SENT if outgoing else Direction.RECEIVED
        theirs = Direction.RECEIVED if outgoing else Direction.SENT
        clock += rng.randint(1, 5) * DAY
        sent_at = clock
        steps: list[tuple[Kind, Direction, object]] = [(Kind.REQUEST, ours, package)]
        if outgoing:
            steps.append((Kind.RETRIEVAL, theirs, None))  # evidence changes nothing
        if ending != "delivered":
            steps.append((Kind.ACKNOWLEDGEMENT, theirs,
                          _message(Kind.ACKNOWLEDGEMENT, reference=f"R-{n}", gaps=[], note="")))
        if ending in ("executed", "partially-executed"):
            steps.append((Kind.OUTCOME, theirs,
                          _message(Kind.OUTCOME, final=False, summary="first part")))
        if ending == "executed":
            steps.append((Kind.OUTCOME, theirs,
                          _message(Kind.OUTCOME, final=True, summary="the rest")))
        if ending == "refused":
            steps.append((Kind.REFUSAL, theirs, _message(Kind.REFUSAL, grounds=grounds,
                                                         explanation="see grounds")))
        if ending == "withdrawn":
            steps.append((Kind.WITHDRAWAL, ours,
                          _message(Kind.WITHDRAWAL, reason="no longer needed")))
        at = sent_at
        for i, (kind, direction, content) in enumerate(steps):
            if i:
                at += rng.randint(1, 40) * DAY // 4
            store.cases.record(case_ref=ref, counterpart=peer, message_id=f"{n:08d}{i:024d}",
                               kind=kind.value, direction=direction, at=at,
                               content=content,  # type: ignore[arg-type]
                               strict=direction is Direction.SENT)
        truth.append({
            "direction": "outgoing" if outgoing else "incoming", "country": peer[:2],
            "form": form, "basis": basis, "categories": categories, "ending": ending,
            "grounds": grounds if ending == "refused" else [],
            "measures": list(package.measure_types) or [form],
            "days": (at - sent_at) / DAY if ending == "executed" else None,
        })
    return truth


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Any]:
    store = Store(tmp_path_factory.mktemp("stats") / "node.db")
    try:
        truth = _history(store, 320, seed=20261129)
        rows = store.cases.statistics_rows()
    finally:
        store.close()
    return truth, compute_statistics(rows)


def _expected(truth: list[dict[str, Any]], key: str) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {"outgoing": Counter(), "incoming": Counter()}
    for case in truth:
        value = case[key]
        for item in value if isinstance(value, list) else [value]:
            counts[case["direction"]][item] += 1
    return {d: dict(c) for d, c in counts.items()}


def _got(stats: Any, dimension: str) -> dict[str, dict[str, int]]:
    return {d: dict(rows) for d, rows in stats.breakdowns[dimension].items()}


def test_every_case_is_counted_once_per_direction(history: Any) -> None:
    truth, stats = history
    assert stats.total == dict(Counter(case["direction"] for case in truth))
    assert sum(stats.total.values()) == 320


@pytest.mark.parametrize(("dimension", "key"), [
    ("country", "country"), ("form", "form"), ("legal_basis", "basis"),
    ("offence_category", "categories"), ("refusal_grounds", "grounds"),
    ("assistance", "measures"),
])
def test_breakdowns_match_the_history(history: Any, dimension: str, key: str) -> None:
    truth, stats = history
    assert _got(stats, dimension) == _expected(truth, key)


def test_outcomes_match_the_history(history: Any) -> None:
    truth, stats = history
    named = {"executed", "refused", "withdrawn", "partially-executed"}
    for case in truth:
        case["outcome"] = case["ending"] if case["ending"] in named else "pending"
    assert _got(stats, "outcome") == _expected(truth, "outcome")


def test_time_to_execution_median_and_p90(history: Any) -> None:
    truth, stats = history
    for direction in ("outgoing", "incoming"):
        days = sorted(c["days"] for c in truth
                      if c["direction"] == direction and c["days"] is not None)
        summary = stats.durations["all"][direction]
        assert summary.count == len(days) > 10
        assert summary.median_days == pytest.approx(statistics.median(days))
        rank = -(-9 * len(days) // 10)  # nearest rank: ceil(0.9 n)
        assert summary.p90_days == pytest.approx(days[rank - 1])

"""The statistics must match figures worked out independently, since officials report them on.

The expected figures are computed here with plain loops and ``Counter`` from the same records,
following the rules as written in the brief, never by calling the module's own helpers.
"""

from __future__ import annotations

import csv
import json
import random
import statistics as pystats
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from node.statistics import (
    DIMENSIONS,
    DurationSummary,
    Statistics,
    compute_statistics,
    draw_charts,
    format_tables,
    nearest_rank,
    write_csv,
    write_json,
)
from protocol.errors import ApiBadRequest, StoreError

DAY = 86_400
START = 1_704_067_200  # 2024-01-01 00:00 UTC
AUTHORITIES = ["BR:MJSP", "BR:PGR", "FR:MJ", "DE:BFJ", "US:OIA", "IT:MG", "ZA:DOJ", "JP:MOJ",
               "NG:FMOJ"]
FORMS = ["mla", "extradition", "transfer-of-proceedings", "transfer-of-sentenced-persons",
         "confiscation", ""]
MEASURES = ["taking-evidence", "bank-records", "service-of-documents",
            "search-seizure-freezing", "videoconference", ""]
CATEGORIES = ["01-acts-leading-to-death", "07-fraud-deception-corruption",
              "06-controlled-drugs", "09-acts-against-public-safety", "08-acts-against-order"]
BASES = ["UNTOC", "UNCAC", "bilateral-treaty", "reciprocity", ""]
STATES = ["draft", "consultation", "sent", "delivered", "acknowledged", "in-execution",
          "additional-information-requested", "postponed", "partially-executed", "executed",
          "refused", "withdrawn"]
GROUNDS = ["dual-criminality", "political-offence", "ne-bis-in-idem", "essential-interests",
           "insufficient-information", "death-penalty"]
DIRECTION = {"requesting": "outgoing", "requested": "incoming"}


def _case(ref: str, **fields: Any) -> dict[str, Any]:
    case: dict[str, Any] = {
        "case_ref": ref, "counterpart": "BR:MJSP", "role": "requesting", "form": "mla",
        "measures": ["taking-evidence"], "offence_categories": [], "legal_basis": "UNTOC",
        "state": "sent", "refusal_grounds": [], "sent_at": START, "closed_at": None,
    }
    case.update(fields)
    return case


def _history(seed: int = 2010, count: int = 420) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases = []
    for n in range(count):
        # Every state appears for sure; the rest are drawn with executed over-represented.
        state = STATES[n] if n < len(STATES) else rng.choice(STATES + ["executed"] * 4)
        form = FORMS[n % len(FORMS)] if n < 24 else rng.choice(FORMS)
        measures: list[str] = []
        if form == "mla":
            measures = rng.sample(MEASURES, rng.randrange(0, 4))
            if measures and rng.random() < 0.1:
                measures.append(measures[0])  # a repeated measure still counts once
        categories = rng.sample(CATEGORIES, rng.choice([0, 1, 1, 2]))
        sent_at = None if state in ("draft", "consultation") else (
            START + rng.randrange(0, 365 * DAY))
        closed_at = None
        if sent_at is not None and state in ("executed", "refused", "withdrawn"):
            closed_at = sent_at + rng.randrange(0, 400 * DAY)
            if state == "executed" and rng.random() < 0.05:
                closed_at = None  # an executed case whose closing time was not recorded
        grounds: list[str] = []
        if state == "refused":
            grounds = rng.sample(GROUNDS, rng.choice([0, 1, 1, 2, 3]))
        elif rng.random() < 0.05:
            grounds = [rng.choice(GROUNDS)]  # a ground on a case not refused is not counted
        cases.append({
            "case_ref": f"REF-{n:04d}",
            "counterpart": rng.choice(AUTHORITIES),
            "role": rng.choice(["requesting", "requested"]),
            "form": form,
            "measures": measures,
            "offence_categories": categories,
            "legal_basis": rng.choice(BASES),
            "state": state,
            "refusal_grounds": grounds,
            "sent_at": sent_at,
            "closed_at": closed_at,
        })
    return cases


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    rank = 1
    while rank * 10 < 9 * len(ordered):  # the smallest rank with rank >= 0.9 n
        rank += 1
    return ordered[rank - 1]


def _summary(values: list[float]) -> DurationSummary:
    if not values:
        return DurationSummary(0, None, None)
    return DurationSummary(len(values), pystats.median(values), _p90(values))


def _expected(cases: Iterable[Mapping[str, Any]], since: int | None = None,
              until: int | None = None) -> dict[str, Any]:
    counts: dict[str, dict[str, Counter[str]]] = {
        dim: {"outgoing": Counter(), "incoming": Counter()} for dim in DIMENSIONS}
    total = {"outgoing": 0, "incoming": 0}
    days: dict[str, dict[str, list[float]]] = {}
    for case in cases:
        if case["state"] in ("draft", "consultation"):
            continue
        sent = case["sent_at"]
        if since is not None and (sent is None or sent < since):
            continue
        if until is not None and (sent is None or sent >= until):
            continue
        d = DIRECTION[case["role"]]
        total[d] += 1
        form = case["form"] or "unspecified"
        counts["country"][d][case["counterpart"].split(":")[0]] += 1
        counts["form"][d][form] += 1
        if case["form"] in ("mla", ""):
            kinds = {m or "unspecified" for m in case["measures"]} or {"unspecified"}
        else:
            kinds = {case["form"]}
        for kind in kinds:
            counts["assistance"][d][kind] += 1
        for category in set(case["offence_categories"]) or {"unspecified"}:
            counts["offence_category"][d][category] += 1
        counts["legal_basis"][d][case["legal_basis"] or "unspecified"] += 1
        state = case["state"]
        outcome = state if state in (
            "executed", "partially-executed", "refused", "withdrawn") else "pending"
        counts["outcome"][d][outcome] += 1
        if state == "refused":
            for ground in set(case["refusal_grounds"]) or {"unspecified"}:
                counts["refusal_grounds"][d][ground] += 1
        per_form = days.setdefault(form, {"outgoing": [], "incoming": []})
        if state == "executed" and sent is not None and case["closed_at"] is not None:
            per_form[d].append((case["closed_at"] - sent) / DAY)
    durations: dict[str, dict[str, DurationSummary]] = {}
    for group in ["all", *sorted(days)]:
        chosen = list(days.values()) if group == "all" else [days[group]]
        out = [x for per in chosen for x in per["outgoing"]]
        inc = [x for per in chosen for x in per["incoming"]]
        durations[group] = {"outgoing": _summary(out), "incoming": _summary(inc),
                            "all": _summary(out + inc)}
    breakdowns = {
        dim: {d: sorted(c.items(), key=lambda kv: (-kv[1], kv[0])) for d, c in per.items()}
        for dim, per in counts.items()}
    return {"total": total, "breakdowns": breakdowns, "durations": durations}


def _assert_matches(stats: Statistics, expected: dict[str, Any]) -> None:
    assert stats.total == expected["total"]
    assert set(stats.breakdowns) == set(DIMENSIONS)
    for dim in DIMENSIONS:
        for d in ("outgoing", "incoming"):
            assert stats.breakdowns[dim][d] == expected["breakdowns"][dim][d], (dim, d)
    assert stats.durations == expected["durations"]


# --- the generated history -------------------------------------------------------------------


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return _history()


def test_the_history_covers_what_it_should(history: list[dict[str, Any]]) -> None:
    assert len(history) >= 300
    assert {c["state"] for c in history} == set(STATES)
    assert {c["form"] for c in history} == set(FORMS)
    assert {c["role"] for c in history} == {"requesting", "requested"}
    assert len({c["counterpart"].split(":")[0] for c in history}) >= 6
    refused = [c for c in history if c["state"] == "refused"]
    assert any(not c["refusal_grounds"] for c in refused)
    assert len({g for c in refused for g in c["refusal_grounds"]}) >= 4


def test_every_figure_of_the_history_matches(history: list[dict[str, Any]]) -> None:
    stats = compute_statistics(history)
    expected = _expected(history)
    _assert_matches(stats, expected)
    unsent = sum(c["state"] in ("draft", "consultation") for c in history)
    assert unsent > 0
    assert sum(stats.total.values()) == len(history) - unsent
    # Every direction and every form has executed cases to measure, so no figure is vacuous.
    for group, per in stats.durations.items():
        assert per["all"].count > 0, group
    assert set(stats.durations) == {"all", "mla", "extradition", "transfer-of-proceedings",
                                    "transfer-of-sentenced-persons", "confiscation",
                                    "unspecified"}
    assert stats.since is None and stats.until is None


def test_a_period_of_the_history_matches(history: list[dict[str, Any]]) -> None:
    since, until = START + 90 * DAY, START + 270 * DAY
    stats = compute_statistics(history, since=since, until=until)
    _assert_matches(stats, _expected(history, since, until))
    assert (stats.since, stats.until) == (since, until)
    everything = compute_statistics(history)
    assert 0 < sum(stats.total.values()) < sum(everything.total.values())
    _assert_matches(compute_statistics(history, since=since), _expected(history, since=since))
    _assert_matches(compute_statistics(history, until=until), _expected(history, until=until))


def test_any_iterable_is_accepted(history: list[dict[str, Any]]) -> None:
    assert compute_statistics(iter(history)) == compute_statistics(history)


# --- hand-made cases with known answers ------------------------------------------------------


def _executed(ref: str, days: float, **fields: Any) -> dict[str, Any]:
    return _case(ref, state="executed", sent_at=START, closed_at=START + round(days * DAY),
                 **fields)


def test_durations_one_to_ten_days() -> None:
    cases = [_executed(f"R{n}", n) for n in range(1, 11)]
    stats = compute_statistics(cases)
    assert stats.durations["all"]["outgoing"] == DurationSummary(10, 5.5, 9.0)
    assert stats.durations["all"]["all"] == DurationSummary(10, 5.5, 9.0)
    assert stats.durations["all"]["incoming"] == DurationSummary(0, None, None)
    assert stats.durations["mla"]["outgoing"] == DurationSummary(10, 5.5, 9.0)


def test_one_case_is_its_own_median_and_percentile() -> None:
    stats = compute_statistics([_executed("R1", 2.5, role="requested")])
    assert stats.durations["all"]["incoming"] == DurationSummary(1, 2.5, 2.5)
    assert stats.durations["all"]["outgoing"] == DurationSummary(0, None, None)


def test_nearest_rank_takes_an_observed_value() -> None:
    assert nearest_rank([7.0], 90) == 7.0
    assert nearest_rank(list(range(1, 21)), 90) == 18  # ceil(18.0): exactly the 18th
    assert nearest_rank(list(range(1, 22)), 90) == 19  # ceil(18.9)
    assert nearest_rank([3, 1, 2], 90) == 3
    assert nearest_rank([4, 1], 50) == 1
    with pytest.raises(ValueError):
        nearest_rank([], 90)


def test_per_direction_and_per_form_durations_are_kept_apart() -> None:
    cases = [
        _executed("A", 10, role="requesting", form="mla"),
        _executed("B", 20, role="requesting", form="extradition", measures=[]),
        _executed("C", 30, role="requested", form="extradition", measures=[]),
        _executed("D", 40, role="requested", form="extradition", measures=[]),
    ]
    d = compute_statistics(cases).durations
    assert d["all"]["outgoing"] == DurationSummary(2, 15.0, 20.0)
    assert d["all"]["incoming"] == DurationSummary(2, 35.0, 40.0)
    assert d["all"]["all"] == DurationSummary(4, 25.0, 40.0)
    assert d["extradition"]["all"] == DurationSummary(3, 30.0, 40.0)
    assert d["mla"]["incoming"] == DurationSummary(0, None, None)


def test_only_executed_cases_are_timed() -> None:
    cases = [
        _case("P", state="partially-executed", closed_at=START + DAY),
        _case("R", state="refused", closed_at=START + DAY),
        _case("W", state="withdrawn", closed_at=START + DAY),
        _case("E", state="executed", closed_at=None),
    ]
    stats = compute_statistics(cases)
    assert stats.durations["all"]["all"] == DurationSummary(0, None, None)
    assert stats.breakdowns["outcome"]["outgoing"] == [
        ("executed", 1), ("partially-executed", 1), ("refused", 1), ("withdrawn", 1)]


def test_breakdown_rules_on_small_cases() -> None:
    cases = [
        _case("1", measures=["bank-records", "bank-records", "taking-evidence"],
              offence_categories=["06-controlled-drugs", "06-controlled-drugs"]),
        _case("2", measures=[], legal_basis="", counterpart="FR:MJ"),
        _case("3", form="extradition", measures=[], role="requested", state="refused",
              refusal_grounds=["political-offence", "political-offence"]),
        _case("4", form="confiscation", measures=[], state="refused", refusal_grounds=[]),
        _case("5", form="", measures=[], state="acknowledged", refusal_grounds=["death-penalty"]),
        _case("6", form="", measures=["videoconference"], state="postponed"),
        _case("7", state="draft", sent_at=None, counterpart="XX:GONE"),
        _case("8", state="consultation", sent_at=None, form="extradition"),
    ]
    b = compute_statistics(cases).breakdowns
    assert b["country"] == {"outgoing": [("BR", 4), ("FR", 1)], "incoming": [("BR", 1)]}
    assert b["form"]["outgoing"] == [
        ("mla", 2), ("unspecified", 2), ("confiscation", 1)]
    assert b["assistance"]["outgoing"] == [
        ("unspecified", 2), ("bank-records", 1), ("confiscation", 1), ("taking-evidence", 1),
        ("videoconference", 1)]
    assert b["assistance"]["incoming"] == [("extradition", 1)]
    assert b["offence_category"]["outgoing"] == [("unspecified", 4), ("06-controlled-drugs", 1)]
    assert b["legal_basis"]["outgoing"] == [("UNTOC", 4), ("unspecified", 1)]
    assert b["outcome"]["outgoing"] == [("pending", 4), ("refused", 1)]
    assert b["refusal_grounds"] == {"outgoing": [("unspecified", 1)],
                                    "incoming": [("political-offence", 1)]}


def test_a_blank_mla_measure_is_unspecified() -> None:
    stats = compute_statistics([_case("1", measures=["", "taking-evidence"])])
    assert stats.breakdowns["assistance"]["outgoing"] == [
        ("taking-evidence", 1), ("unspecified", 1)]


def test_ties_are_broken_by_value() -> None:
    cases = [_case(str(n), counterpart=f"{cc}:X") for n, cc in enumerate("ZZAMMB")]
    assert compute_statistics(cases).breakdowns["country"]["outgoing"] == [
        ("M", 2), ("Z", 2), ("A", 1), ("B", 1)]


def test_no_cases_gives_empty_figures() -> None:
    stats = compute_statistics([])
    assert stats.total == {"outgoing": 0, "incoming": 0}
    assert all(rows == [] for per in stats.breakdowns.values() for rows in per.values())
    assert stats.durations == {"all": dict.fromkeys(
        ("outgoing", "incoming", "all"), DurationSummary(0, None, None))}


# --- the period ------------------------------------------------------------------------------


def test_since_is_inclusive_and_until_exclusive() -> None:
    cases = [_case(str(t), sent_at=START + t) for t in (-1, 0, 1, 99, 100, 101)]
    refs = compute_statistics(cases, since=START, until=START + 100).total["outgoing"]
    assert refs == 3  # 0, 1 and 99
    assert compute_statistics(cases, since=START + 100).total["outgoing"] == 2
    assert compute_statistics(cases, until=START).total["outgoing"] == 1
    assert compute_statistics(cases, since=START, until=START).total["outgoing"] == 0


def test_a_period_leaves_out_cases_without_a_sending_time() -> None:
    cases = [_case("1", sent_at=None), _case("2")]
    assert compute_statistics(cases).total["outgoing"] == 2
    assert compute_statistics(cases, since=0).total["outgoing"] == 1


@pytest.mark.parametrize("since, until", [(10, 9), (True, None), (None, 1.5), ("0", None)])
def test_a_bad_period_is_refused(since: Any, until: Any) -> None:
    with pytest.raises(ApiBadRequest) as caught:
        compute_statistics([], since=since, until=until)
    assert caught.value.code == "api.bad_request"


# --- bad records -----------------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    case = _case("R")
    del case[key]
    return case


BAD_RECORDS = {
    "missing case_ref": _without("case_ref"),
    "missing state": _without("state"),
    "missing closed_at": _without("closed_at"),
    "counterpart not a string": _case("R", counterpart=42),
    "counterpart without country": _case("R", counterpart="MJSP"),
    "unknown role": _case("R", role="observer"),
    "unknown state": _case("R", state="lost"),
    "measures a string": _case("R", measures="taking-evidence"),
    "categories of numbers": _case("R", offence_categories=[7]),
    "grounds null": _case("R", refusal_grounds=None),
    "sent_at as text": _case("R", sent_at="1704067200"),
    "sent_at a float": _case("R", sent_at=1.5),
    "closed_at a bool": _case("R", closed_at=True),
    "closed before sent": _case("R", state="executed", closed_at=START - 1),
    "legal basis null": _case("R", legal_basis=None),
    "a draft is checked too": _case("R", state="draft", sent_at=None, form=None),
}


@pytest.mark.parametrize("record", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_a_bad_record_raises_the_typed_error(record: dict[str, Any]) -> None:
    with pytest.raises(StoreError) as caught:
        compute_statistics([_case("fine"), record])
    assert caught.value.code == "store.failed"
    assert "case record #1" in str(caught.value)


def test_a_record_that_is_not_a_mapping_raises_the_typed_error() -> None:
    with pytest.raises(StoreError, match="mapping"):
        compute_statistics([["R", "BR:MJSP"]])  # type: ignore[list-item]


# --- writers ---------------------------------------------------------------------------------


def test_csv_round_trip(history: list[dict[str, Any]], tmp_path: Path) -> None:
    stats = compute_statistics(history, since=START + 30 * DAY)
    figures, durations = write_csv(stats, tmp_path / "out")
    assert (figures.name, durations.name) == ("statistics.csv", "durations.csv")
    with figures.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["dimension", "direction", "value", "cases"]
    back: dict[str, dict[str, list[tuple[str, int]]]] = {}
    totals = {}
    for dimension, direction, value, cases in rows[1:]:
        if dimension == "total":
            totals[direction] = int(cases)
        else:
            back.setdefault(dimension, {}).setdefault(direction, []).append((value, int(cases)))
    assert totals == stats.total
    for dim in DIMENSIONS:
        for d in ("outgoing", "incoming"):
            assert back.get(dim, {}).get(d, []) == stats.breakdowns[dim][d]
    with durations.open(newline="", encoding="utf-8") as handle:
        drows = list(csv.DictReader(handle))
    assert list(drows[0]) == ["group", "direction", "cases", "median_days", "p90_days"]
    read: dict[str, dict[str, DurationSummary]] = {}
    for row in drows:
        read.setdefault(row["group"], {})[row["direction"]] = DurationSummary(
            int(row["cases"]),
            float(row["median_days"]) if row["median_days"] else None,
            float(row["p90_days"]) if row["p90_days"] else None)
    assert read == stats.durations


def test_csv_of_no_cases_has_headers_and_blank_figures(tmp_path: Path) -> None:
    figures, durations = write_csv(compute_statistics([]), tmp_path)
    assert figures.read_text(encoding="utf-8").splitlines() == [
        "dimension,direction,value,cases", "total,outgoing,all,0", "total,incoming,all,0"]
    assert "all,outgoing,0,," in durations.read_text(encoding="utf-8").splitlines()


def test_json_round_trip(history: list[dict[str, Any]], tmp_path: Path) -> None:
    stats = compute_statistics(history, until=START + 200 * DAY)
    path = write_json(stats, tmp_path)
    assert path == tmp_path / "statistics.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == stats.to_json()
    assert data["since"] is None and data["until"] == START + 200 * DAY
    assert data["total"] == stats.total
    for dim in DIMENSIONS:
        for d in ("outgoing", "incoming"):
            assert [(r["value"], r["cases"]) for r in data["breakdowns"][dim][d]] == \
                stats.breakdowns[dim][d]
    for group, per in stats.durations.items():
        for d, s in per.items():
            assert data["durations"][group][d] == {
                "cases": s.count, "median_days": s.median_days, "p90_days": s.p90_days}
    assert "execution_days" not in data  # only aggregates are published


def test_tables_show_every_dimension(history: list[dict[str, Any]]) -> None:
    stats = compute_statistics(history, since=START, until=START + 365 * DAY)
    text = format_tables(stats)
    assert "cases sent from 2024-01-01 to before 2024-12-31" in text
    for heading in ("Counterpart country", "Form of cooperation", "Type of assistance",
                    "Offence category", "Legal basis", "Outcome", "Grounds for refusal",
                    "Time from sending to execution"):
        assert heading in text
    assert "value" in text and "outgoing" in text and "incoming" in text and "total" in text
    top = stats.breakdowns["country"]["outgoing"][0][0]
    out = dict(stats.breakdowns["country"]["outgoing"]).get(top, 0)
    inc = dict(stats.breakdowns["country"]["incoming"]).get(top, 0)
    assert any(line.split() == [top, str(out), str(inc), str(out + inc)]
               for line in text.splitlines())
    assert "(none)" in format_tables(compute_statistics([]))


# --- charts ----------------------------------------------------------------------------------


CHARTS = {"countries", "assistance", "outcome", "refusal_grounds", "time_to_execution"}


def test_charts_in_png_and_svg(history: list[dict[str, Any]], tmp_path: Path) -> None:
    stats = compute_statistics(history)
    pngs = draw_charts(stats, tmp_path / "png")
    assert {p.stem for p in pngs} == CHARTS
    for path in pngs:
        assert path.suffix == ".png" and path.read_bytes().startswith(b"\x89PNG")
    svgs = draw_charts(stats, tmp_path / "svg", "svg")
    assert {p.stem for p in svgs} == CHARTS
    for path in svgs:
        assert path.suffix == ".svg" and "<svg" in path.read_text(encoding="utf-8")


def test_no_cases_still_draw_the_outcome_chart(tmp_path: Path) -> None:
    paths = draw_charts(compute_statistics([]), tmp_path, "svg")
    assert paths == [tmp_path / "outcome.svg"]
    assert "<svg" in paths[0].read_text(encoding="utf-8")


def test_charts_without_data_for_them_are_skipped(tmp_path: Path) -> None:
    paths = draw_charts(compute_statistics([_case("1", role="requested")]), tmp_path)
    assert {p.stem for p in paths} == {"countries", "assistance", "outcome"}
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("fmt", ["pdf", "PNG", "", "../png"])
def test_a_bad_chart_format_is_refused(fmt: str, tmp_path: Path) -> None:
    with pytest.raises(ApiBadRequest) as caught:
        draw_charts(compute_statistics([]), tmp_path / "charts", fmt)
    assert caught.value.code == "api.bad_request"
    assert not (tmp_path / "charts").exists()

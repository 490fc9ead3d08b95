"""The figures a central authority keeps on the mutual legal assistance it sends and receives.

The United Nations asks central authorities to keep statistics on international cooperation in
criminal matters, so that delays and recurring grounds for refusal can be seen and acted on: the
Conference of the Parties to the Organized Crime Convention (CTOC/COP/2010, §26) and the Crime
Congress (A/CONF.222/10, §63(i)). The breakdowns below are the ones those texts point to:
incoming and outgoing volume by counterpart country, type of assistance, offence, legal basis,
outcome, grounds for refusal, and the time a request takes from sending to execution.

Requests still in draft or under consultation were never sent, so they are in no figure: counting
them would make the authority look busier, and slower, than its counterparts see it. A case
counts once in every breakdown value it carries (a request for bank records and for a witness
hearing is one request for each), so the rows of a multi-valued breakdown add up to more than the
number of cases; the totals say how many cases there are.

Time to execution is given as a median and a 90th percentile rather than a mean, because a few
requests pending for years would swamp a mean. The percentile is the nearest-rank one (the
ceil(0.9·n)-th smallest value): it is always the duration of a real case that can be pointed at,
it needs no interpolation that a reader would have to reproduce, and a spreadsheet gets the same
number. The rank is computed in integers so that 0.9·n never rounds up to one case too many.

This module only computes and writes. It never opens the database: the caller passes the case
rows, so the same code serves the node, exports and tests, and the figures cannot drift from
what the caller chose to count.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any, Final

from protocol.errors import ApiBadRequest, StoreError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DIMENSIONS",
    "DIRECTIONS",
    "OUTCOMES",
    "TITLES",
    "DurationSummary",
    "Statistics",
    "compute_statistics",
    "draw_charts",
    "format_tables",
    "nearest_rank",
    "svg_charts",
    "write_csv",
    "write_json",
]

DIRECTIONS: Final[tuple[str, ...]] = ("outgoing", "incoming")
DIMENSIONS: Final[tuple[str, ...]] = (
    "country", "form", "assistance", "offence_category", "legal_basis", "outcome",
    "refusal_grounds",
)
OUTCOMES: Final[tuple[str, ...]] = (
    "executed", "partially-executed", "refused", "withdrawn", "pending")
UNSPECIFIED: Final = "unspecified"
ALL: Final = "all"

TITLES: Final[dict[str, str]] = {
    "country": "Counterpart country",
    "form": "Form of cooperation",
    "assistance": "Type of assistance",
    "offence_category": "Offence category",
    "legal_basis": "Legal basis",
    "outcome": "Outcome",
    "refusal_grounds": "Grounds for refusal",
}
_DIRECTION_OF_ROLE: Final[dict[str, str]] = {"requesting": "outgoing", "requested": "incoming"}
_UNSENT: Final[frozenset[str]] = frozenset({"draft", "consultation"})
_STATES: Final[frozenset[str]] = _UNSENT | {
    "sent", "delivered", "acknowledged", "in-execution", "additional-information-requested",
    "postponed", "partially-executed", "executed", "refused", "withdrawn",
}
_SECONDS_PER_DAY: Final = 86_400
_TOP: Final = 15
_COLOURS: Final[dict[str, str]] = {"outgoing": "#1f6fb4", "incoming": "#e07b16"}


@dataclass(frozen=True)
class DurationSummary:
    """Days from sending to execution; ``None`` figures where no case was executed."""

    count: int
    median_days: float | None
    p90_days: float | None

    def to_json(self) -> dict[str, Any]:
        return {"cases": self.count, "median_days": self.median_days, "p90_days": self.p90_days}


@dataclass(frozen=True)
class Statistics:
    """One period's figures, kept per direction because each side answers for its own delays.

    ``durations`` maps a group (``"all"`` for every form, else a form of cooperation) to a
    direction (``"outgoing"``, ``"incoming"`` or ``"all"``). ``execution_days`` keeps each
    direction's individual durations, sorted, only so that charts can show their spread; they
    are left out of ``to_json`` so that what is published stays aggregate.
    """

    total: dict[str, int]
    breakdowns: dict[str, dict[str, list[tuple[str, int]]]]
    durations: dict[str, dict[str, DurationSummary]]
    since: int | None = None
    until: int | None = None
    execution_days: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "total": dict(self.total),
            "breakdowns": {
                dimension: {
                    direction: [{"value": value, "cases": count} for value, count in rows]
                    for direction, rows in per_direction.items()
                }
                for dimension, per_direction in self.breakdowns.items()
            },
            "durations": {
                group: {direction: summary.to_json() for direction, summary in per.items()}
                for group, per in self.durations.items()
            },
        }


def nearest_rank(values: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile: an observed value, with the rank found in integers."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def _summary(days: Sequence[float]) -> DurationSummary:
    if not days:
        return DurationSummary(0, None, None)
    return DurationSummary(len(days), float(median(days)), float(nearest_rank(days, 90)))


# --- reading the records ---------------------------------------------------------------------


def _corrupt(index: int, record: Mapping[str, Any] | None, problem: str) -> StoreError:
    ref = record.get("case_ref") if record is not None else None
    named = f" ({ref!r})" if isinstance(ref, str) else ""
    return StoreError(f"case record #{index}{named}: {problem}")


def _text(index: int, record: Mapping[str, Any], key: str) -> str:
    if key not in record:
        raise _corrupt(index, record, f"missing {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise _corrupt(index, record, f"{key!r} must be a string, not {type(value).__name__}")
    return value


def _texts(index: int, record: Mapping[str, Any], key: str) -> list[str]:
    if key not in record:
        raise _corrupt(index, record, f"missing {key!r}")
    value = record[key]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _corrupt(index, record, f"{key!r} must be a list of strings")
    return list(dict.fromkeys(v or UNSPECIFIED for v in value))


def _moment(index: int, record: Mapping[str, Any], key: str) -> int | None:
    if key not in record:
        raise _corrupt(index, record, f"missing {key!r}")
    value = record[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _corrupt(index, record, f"{key!r} must be Unix seconds or null")
    return value


@dataclass(frozen=True)
class _Case:
    direction: str
    country: str
    form: str
    assistance: list[str]
    offence_categories: list[str]
    legal_basis: str
    state: str
    refusal_grounds: list[str]
    sent_at: int | None
    closed_at: int | None


def _read(index: int, record: object) -> _Case:
    if not isinstance(record, Mapping):
        raise _corrupt(index, None, f"a case record must be a mapping, not {type(record).__name__}")
    _text(index, record, "case_ref")
    counterpart = _text(index, record, "counterpart")
    country, colon, _name = counterpart.partition(":")
    if not colon or not country:
        raise _corrupt(index, record, f"counterpart {counterpart!r} is not an authority id CC:NAME")
    role = _text(index, record, "role")
    if role not in _DIRECTION_OF_ROLE:
        raise _corrupt(index, record, f"role {role!r} is neither requesting nor requested")
    state = _text(index, record, "state")
    if state not in _STATES:
        raise _corrupt(index, record, f"unknown state {state!r}")
    form = _text(index, record, "form")
    measures = _texts(index, record, "measures")
    sent_at = _moment(index, record, "sent_at")
    closed_at = _moment(index, record, "closed_at")
    if sent_at is not None and closed_at is not None and closed_at < sent_at:
        raise _corrupt(index, record, "closed before it was sent")
    # A blank form with measures is an MLA request whose form was not recorded.
    assistance = (measures or [UNSPECIFIED]) if form in ("mla", "") else [form]
    return _Case(
        direction=_DIRECTION_OF_ROLE[role],
        country=country,
        form=form or UNSPECIFIED,
        assistance=assistance,
        offence_categories=_texts(index, record, "offence_categories") or [UNSPECIFIED],
        legal_basis=_text(index, record, "legal_basis") or UNSPECIFIED,
        state=state,
        refusal_grounds=_texts(index, record, "refusal_grounds") or [UNSPECIFIED],
        sent_at=sent_at,
        closed_at=closed_at,
    )


def _bound(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiBadRequest(f"{name} must be Unix seconds, not {value!r}")
    return value


def _in_period(case: _Case, since: int | None, until: int | None) -> bool:
    if since is None and until is None:
        return True
    # With a period, a case with no sending time cannot be shown to fall in it.
    if case.sent_at is None:
        return False
    return (since is None or case.sent_at >= since) and (until is None or case.sent_at < until)


def _sorted(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def compute_statistics(
    cases: Iterable[Mapping[str, Any]], *, since: int | None = None, until: int | None = None,
) -> Statistics:
    """Every figure of the period ``[since, until)`` on ``sent_at``, from the caller's case rows.

    Each record is checked in full, drafts included, so that a damaged row is reported rather
    than silently counted or dropped.
    """
    since, until = _bound("since", since), _bound("until", until)
    if since is not None and until is not None and since > until:
        raise ApiBadRequest(f"the period ends ({until}) before it starts ({since})")
    counters = {dim: {d: Counter[str]() for d in DIRECTIONS} for dim in DIMENSIONS}
    total = dict.fromkeys(DIRECTIONS, 0)
    days: dict[str, dict[str, list[float]]] = {}
    for index, record in enumerate(cases):
        case = _read(index, record)
        if case.state in _UNSENT or not _in_period(case, since, until):
            continue
        d = case.direction
        total[d] += 1
        outcome = case.state if case.state in OUTCOMES else "pending"
        counters["country"][d][case.country] += 1
        counters["form"][d][case.form] += 1
        counters["assistance"][d].update(case.assistance)
        counters["offence_category"][d].update(case.offence_categories)
        counters["legal_basis"][d][case.legal_basis] += 1
        counters["outcome"][d][outcome] += 1
        if case.state == "refused":
            counters["refusal_grounds"][d].update(case.refusal_grounds)
        by_form = days.setdefault(case.form, {way: [] for way in DIRECTIONS})
        if case.state == "executed" and case.sent_at is not None and case.closed_at is not None:
            by_form[d].append((case.closed_at - case.sent_at) / _SECONDS_PER_DAY)
    everything = {d: sorted(x for per in days.values() for x in per[d]) for d in DIRECTIONS}

    def summaries(per: Mapping[str, list[float]]) -> dict[str, DurationSummary]:
        both = [x for d in DIRECTIONS for x in per[d]]
        return {**{d: _summary(per[d]) for d in DIRECTIONS}, ALL: _summary(both)}

    durations = {ALL: summaries(everything)}
    durations.update({form: summaries(days[form]) for form in sorted(days)})
    return Statistics(
        total=total,
        breakdowns={
            dim: {d: _sorted(counters[dim][d]) for d in DIRECTIONS} for dim in DIMENSIONS},
        durations=durations,
        since=since,
        until=until,
        execution_days={d: tuple(everything[d]) for d in DIRECTIONS},
    )


# --- writers ---------------------------------------------------------------------------------


def _rows(stats: Statistics, dimension: str) -> list[tuple[str, int, int]]:
    """Both directions side by side, the busiest value first."""
    per = {d: dict(stats.breakdowns.get(dimension, {}).get(d, [])) for d in DIRECTIONS}
    values = set(per["outgoing"]) | set(per["incoming"])
    rows = [(v, per["outgoing"].get(v, 0), per["incoming"].get(v, 0)) for v in values]
    return sorted(rows, key=lambda row: (-(row[1] + row[2]), row[0]))


def _when(moment: int) -> str:
    at = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return at.strftime("%Y-%m-%d" if moment % _SECONDS_PER_DAY == 0 else "%Y-%m-%d %H:%M UTC")


def _period(stats: Statistics) -> str:
    if stats.since is None and stats.until is None:
        return "all cases sent"
    if stats.until is None:
        return f"cases sent from {_when(stats.since or 0)}"
    if stats.since is None:
        return f"cases sent before {_when(stats.until)}"
    return f"cases sent from {_when(stats.since)} to before {_when(stats.until)}"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, text: int = 1) -> list[str]:
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width) if n < text else cell.rjust(width)
                 for n, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_tables(stats: Statistics) -> str:
    """Plain-text tables a head of unit can read in a terminal or paste into a report."""
    out = [f"Mutual legal assistance statistics: {_period(stats)}", ""]
    totals = [stats.total.get(d, 0) for d in DIRECTIONS]
    out += _table(["Cases", *DIRECTIONS, "total"],
                  [["all", *map(str, totals), str(sum(totals))]])
    for dimension in DIMENSIONS:
        out += ["", TITLES[dimension]]
        rows = _rows(stats, dimension)
        if not rows:
            out.append("  (none)")
            continue
        out += _table(["value", *DIRECTIONS, "total"],
                      [[v, str(o), str(i), str(o + i)] for v, o, i in rows])
    out += ["", "Time from sending to execution, in days (executed cases)"]
    out += _table(
        ["group", "direction", "cases", "median", "p90"],
        [[group, direction, str(s.count), _days(s.median_days), _days(s.p90_days)]
         for group, per in stats.durations.items() for direction, s in per.items()], text=2)
    return "\n".join(out) + "\n"


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def write_csv(stats: Statistics, directory: Path) -> list[Path]:
    """Long-format CSV, the shape spreadsheets and pivot tables take without reshaping."""
    directory.mkdir(parents=True, exist_ok=True)
    figures, durations = directory / "statistics.csv", directory / "durations.csv"
    with figures.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dimension", "direction", "value", "cases"])
        for direction in DIRECTIONS:
            writer.writerow(["total", direction, ALL, stats.total.get(direction, 0)])
        for dimension, per in stats.breakdowns.items():
            for direction, rows in per.items():
                writer.writerows([dimension, direction, value, n] for value, n in rows)
    with durations.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "direction", "cases", "median_days", "p90_days"])
        for group, by_direction in stats.durations.items():
            writer.writerows(
                [group, direction, s.count, _number(s.median_days), _number(s.p90_days)]
                for direction, s in by_direction.items())
    return [figures, durations]


def write_json(stats: Statistics, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "statistics.json"
    text = json.dumps(stats.to_json(), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# --- charts ----------------------------------------------------------------------------------


def _grouped_bars(ax: Axes, rows: Sequence[tuple[str, int, int]], *, horizontal: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    width = 0.4
    positions = list(range(len(rows)))
    for offset, (direction, column) in zip((-width / 2, width / 2),
                                           (("outgoing", 1), ("incoming", 2)), strict=True):
        at = [p + offset for p in positions]
        counts = [row[column] for row in rows]
        label = f"{direction} ({'sent' if direction == 'outgoing' else 'received'})"
        if horizontal:
            bars = ax.barh(at, counts, height=width, label=label, color=_COLOURS[direction])
        else:
            bars = ax.bar(at, counts, width=width, label=label, color=_COLOURS[direction])
        ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], fontsize=8, padding=2)
    labels = [row[0] for row in rows]
    if horizontal:
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Cases")
        ax.margins(x=0.1)
    else:
        ax.set_xticks(positions, labels, rotation=45 if len(rows) > 8 else 0,
                      ha="right" if len(rows) > 8 else "center")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("Cases")
        ax.margins(y=0.12)
    ax.legend(frameon=False)


def _heading(stats: Statistics, title: str) -> str:
    return f"{title}\n{_period(stats)}"


def draw_charts(stats: Statistics, directory: Path, fmt: str = "png") -> list[Path]:
    """Charts for a head of unit: who we work with, for what, with what result, how fast.

    Drawn on bare ``Figure`` objects, not pyplot, so that a node serving requests never touches
    matplotlib's global state or needs a display.
    """
    if fmt not in ("png", "svg"):
        raise ApiBadRequest(f"chart format must be png or svg, not {fmt!r}")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        path = directory / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=120,
                    metadata={"Date": None} if fmt == "svg" else None)
        written.append(path)

    _draw(stats, save)
    return written


def svg_charts(stats: Statistics) -> list[tuple[str, str]]:
    """The same charts as SVG text, for the web interface's statistics page."""
    drawn: list[tuple[str, str]] = []

    def keep(fig: Figure, name: str) -> None:
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
        drawn.append((name, out.getvalue()))

    _draw(stats, keep)
    return drawn


def _draw(stats: Statistics, save: Callable[[Figure, str], None]) -> None:
    from matplotlib.figure import Figure

    def horizontal(dimension: str, name: str, title: str, axis: str) -> None:
        rows = _rows(stats, dimension)[:_TOP]
        if not rows:
            return
        fig = Figure(figsize=(10, 1.6 + 0.45 * len(rows)), layout="constrained")
        ax = fig.subplots()
        _grouped_bars(ax, rows, horizontal=True)
        ax.set_ylabel(axis)
        ax.set_title(_heading(stats, title))
        save(fig, name)

    countries = _rows(stats, "country")[:_TOP]
    if countries:
        fig = Figure(figsize=(10, 5.5), layout="constrained")
        ax = fig.subplots()
        _grouped_bars(ax, countries, horizontal=False)
        ax.set_xlabel("Counterpart country")
        ax.set_title(_heading(stats, f"Requests by counterpart country (top {_TOP})"))
        save(fig, "countries")

    horizontal("assistance", "assistance", f"Requests by type of assistance (top {_TOP})",
               "Type of assistance")

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    ax.set_title(_heading(stats, "Outcome of requests"))
    if sum(stats.total.values()):
        found = {value: (o, i) for value, o, i in _rows(stats, "outcome")}
        rows = [(v, *found.get(v, (0, 0))) for v in (*OUTCOMES, *sorted(set(found) - {*OUTCOMES}))]
        _grouped_bars(ax, rows, horizontal=False)
        ax.set_xlabel("Outcome (pending: not yet closed)")
    else:
        ax.text(0.5, 0.5, "no cases", ha="center", va="center", fontsize=16,
                transform=ax.transAxes)
        ax.set_axis_off()
    save(fig, "outcome")

    horizontal("refusal_grounds", "refusal_grounds",
               f"Grounds for refusal of refused requests (top {_TOP})", "Ground for refusal")

    spread = [(d, list(stats.execution_days.get(d, ()))) for d in DIRECTIONS]
    spread = [(d, days) for d, days in spread if days]
    if spread:
        fig = Figure(figsize=(8, 5.5), layout="constrained")
        ax = fig.subplots()
        positions = list(range(1, len(spread) + 1))
        ax.boxplot([days for _d, days in spread], positions=positions, widths=0.5,
                   medianprops={"color": "black", "linewidth": 2})
        for position, (direction, days) in zip(positions, spread, strict=True):
            p90 = nearest_rank(days, 90)
            ax.scatter([position], [p90], marker="D", color=_COLOURS[direction],
                       zorder=3, label=f"{direction}: 90th percentile")
            middle = float(median(days))
            ax.annotate(f"median {middle:.1f} d\np90 {p90:.1f} d", (position + 0.27, middle),
                        fontsize=9, va="center")
        ax.set_xticks(positions, [f"{d}\n(n={len(days)})" for d, days in spread])
        ax.set_xlim(0.4, len(spread) + 0.9)
        ax.set_ylabel("Days from sending to execution")
        ax.set_title(_heading(stats, "Time to execution of executed requests"))
        fig.legend(frameon=False, loc="outside lower center", ncols=len(spread))
        save(fig, "time_to_execution")

"""Case tracking: each case's state per counterpart, driven by the messages naming it.

A case is keyed by its reference and the other authority (two authorities may use the same
reference with different partners). The requesting side opens it with its request, the requested
side when the request reaches it; every later message with the same reference moves it through
``protocol.case.next_state``. The book is written in the same transaction as the message it
records: a sent message whose step is not allowed is refused before anything is queued
(``strict``), while an accepted inbound message that breaks the rules is stored all the same and
the case only notes the anomaly: the envelope was valid and receipted, so the node keeps it.
"""

from __future__ import annotations

import calendar
import datetime
import json
import logging
from typing import Any

import sqlite_utils

from node.statements import insert, update
from protocol.case import (
    ACTORS,
    CaseEvent,
    CaseState,
    Direction,
    LocalEvent,
    Role,
    due_at,
    next_state,
)
from protocol.case_message import CaseMessage
from protocol.errors import CaseTransitionInvalid, StoreNotFound
from protocol.kinds import Kind, Priority
from protocol.request_package import RequestPackage, check_completeness

__all__ = ["CaseBook", "Content", "deadline_of", "describe"]

Content = CaseMessage | RequestPackage | None

log = logging.getLogger("rogatory.cases")


def deadline_of(package: RequestPackage) -> int | None:
    """The package's deadline date as Unix seconds: the end of that day, UTC."""
    text = package.to_json()["urgency"]["deadline"]
    if not text:
        return None
    day = datetime.date.fromisoformat(text) + datetime.timedelta(days=1)
    return calendar.timegm(day.timetuple())


_CASE_COLUMNS: dict[str, type] = {
    "case_ref": str, "counterpart": str, "role": str, "state": str, "form": str,
    "urgent": int, "deadline": int, "opened_at": int, "updated_at": int, "state_since": int,
    "anomaly": str, "measures": str, "offence_categories": str, "legal_basis": str,
    "refusal_grounds": str, "requested_reference": str, "gaps": str, "sent_at": int,
    "closed_at": int,
}
_EVENT_COLUMNS: dict[str, type] = {
    "case_ref": str, "counterpart": str, "message_id": str, "kind": str, "direction": str,
    "at": int, "state_after": str, "anomaly": str, "override_reason": str, "detail": str,
}
_JSON_COLUMNS = ("measures", "offence_categories", "refusal_grounds", "gaps")
_SHORT = 100


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _SHORT else line[:_SHORT - 3] + "..."


def describe(kind: Kind, content: Content) -> str:
    """One line for the timeline: what the message said that moves or explains the case."""
    if isinstance(content, RequestPackage):
        gaps = check_completeness(content)
        what = f"{content.form} request, reference {content.reference or '(none)'}"
        return what + (f"; {len(gaps)} essential field(s) missing" if gaps else "")
    if not isinstance(content, CaseMessage):
        return ""
    if kind is Kind.ACKNOWLEDGEMENT:
        named = len(content["gaps"])
        return f"their reference {content['reference']}" + (
            f"; names {named} missing field(s)" if named else "")
    if kind is Kind.OUTCOME:
        return f"{'final' if content.final else 'partial'}: {_short(content['summary'])}"
    if kind is Kind.REFUSAL:
        return f"grounds: {', '.join(content['grounds'])}; {_short(content['explanation'])}"
    if kind is Kind.POSTPONEMENT:
        until = content["until"]
        return (f"until {until}: " if until else "") + _short(content["reason"])
    if kind is Kind.ADDITIONAL_INFORMATION_REQUEST:
        return _short("; ".join(content["questions"]))
    if kind is Kind.RETRIEVAL:
        return f"opened {content['message_id']}"
    for name in ("text", "reason"):
        if name in content.fields:
            return _short(content[name])
    return ""


class CaseBook:
    """The ``cases`` and ``case_events`` tables; synchronous, run on the store thread."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        with db.atomic():
            db.table("cases").create(_CASE_COLUMNS, pk=("case_ref", "counterpart"),
                                     not_null={"role", "state"}, if_not_exists=True)
            db.table("case_events").create(_EVENT_COLUMNS, if_not_exists=True)
            for table, columns in (("cases", _CASE_COLUMNS), ("case_events", _EVENT_COLUMNS)):
                have = set(db.table(table).columns_dict)
                for name, kind in columns.items():
                    if name not in have:  # a store created by an earlier release
                        db.table(table).add_column(name, kind)
            db.table("case_events").create_index(["case_ref", "counterpart"],
                                                 if_not_exists=True)
            db.table("case_events").create_index(["message_id"], if_not_exists=True)

    def _row(self, case_ref: str, counterpart: str) -> dict[str, Any] | None:
        rows = self.db.execute(
            "SELECT * FROM cases WHERE case_ref = ? AND counterpart = ?", [case_ref, counterpart])
        row = rows.fetchone()
        return None if row is None else dict(zip([d[0] for d in rows.description], row,
                                                 strict=True))

    def record(self, *, case_ref: str, counterpart: str, message_id: str, kind: str,
               direction: Direction, at: int, priority: str = Priority.NORMAL.value,
               content: Content = None, override_reason: str = "",
               strict: bool = False) -> CaseState | None:
        """Apply one message to its case; the state after, or ``None`` if it is not tracked.

        ``content`` is what ``check_content`` read from the payload: a request package gives
        the case its form, measures, offences and legal basis; a case message says whether an
        outcome is final, the grounds of a refusal, the requested authority's reference.
        ``strict`` (a message this node is about to send) raises ``case.transition_invalid``
        and writes nothing; otherwise (a message already accepted) the refusal is recorded as
        an anomaly of the case and its state stays as it was.
        """
        message_kind = Kind.from_name(kind)
        if not case_ref or message_kind not in ACTORS:
            return None  # no case, or not a step of a request's lifecycle (tracked on its own)
        row = self._row(case_ref, counterpart)
        if row is None and message_kind is Kind.RETRIEVAL:
            return None  # evidence about a message of no tracked case
        if row is None:
            role = Role.REQUESTING if direction is Direction.SENT else Role.REQUESTED
            state = CaseState.DRAFT
        else:
            role, state = Role(row["role"]), CaseState.from_name(row["state"])
        message = content if isinstance(content, CaseMessage) else None
        final = (message.final if message is not None else True) \
            if message_kind is Kind.OUTCOME else None
        anomaly = ""
        try:
            after = next_state(state, CaseEvent(message_kind, role, direction, final))
        except CaseTransitionInvalid as exc:
            if message_kind is Kind.RETRIEVAL:
                return None  # evidence of an opening is never refused, only left untracked
            if strict:
                raise
            anomaly, after = exc.detail or exc.message, state
            log.warning("case %s with %s: %s", case_ref, counterpart, anomaly)
        with self.db.atomic():
            if row is None:
                insert(self.db, "cases", {
                    **{name: "" for name, kind in _CASE_COLUMNS.items() if kind is str},
                    **{name: "[]" for name in _JSON_COLUMNS},
                    "case_ref": case_ref, "counterpart": counterpart, "role": role.value,
                    "state": after.value, "urgent": 0, "deadline": None, "opened_at": at,
                    "updated_at": at, "state_since": at, "anomaly": anomaly,
                    "sent_at": None, "closed_at": None,
                })
            changes: dict[str, Any] = {"updated_at": at}
            if anomaly:
                changes["anomaly"] = anomaly
            else:
                if message_kind is not Kind.RETRIEVAL and row is not None:
                    changes.update(state=after.value, state_since=at)
                changes.update(self._facts(message_kind, direction, content, at, after))
            if priority == Priority.URGENT.value:
                changes["urgent"] = 1
            update(self.db, "cases", {"case_ref": case_ref, "counterpart": counterpart},
                   changes)
            self._event(case_ref, counterpart, message_id, kind, direction.value, at, after,
                        anomaly, override_reason, describe(message_kind, content))
        return after

    @staticmethod
    def _facts(kind: Kind, direction: Direction, content: Content, at: int,
               after: CaseState) -> dict[str, Any]:
        """What a message that was applied tells the case beyond its state."""
        facts: dict[str, Any] = {}
        if kind is Kind.REQUEST:
            facts["sent_at"] = at
        if after.terminal:
            facts["closed_at"] = at
        if isinstance(content, RequestPackage) and kind is Kind.REQUEST:
            facts.update(
                form=content.form, deadline=deadline_of(content),
                measures=json.dumps(list(content.measure_types)),
                offence_categories=json.dumps(list(content.offence_categories)),
                legal_basis=content.legal_basis,
                gaps=json.dumps([g.to_json() for g in check_completeness(content)]),
            )
            if content.urgent:
                facts["urgent"] = 1
        if isinstance(content, CaseMessage):
            if kind is Kind.ACKNOWLEDGEMENT:
                facts["requested_reference"] = content["reference"]
                if direction is Direction.RECEIVED:
                    facts["gaps"] = json.dumps([g.to_json() for g in content["gaps"]])
            elif kind is Kind.REFUSAL:
                facts["refusal_grounds"] = json.dumps(list(content["grounds"]))
        return facts

    def _event(self, case_ref: str, counterpart: str, message_id: str, kind: str,
               direction: str, at: int, after: CaseState, anomaly: str,
               override_reason: str = "", detail: str = "") -> None:
        insert(self.db, "case_events", {
            "case_ref": case_ref, "counterpart": counterpart, "message_id": message_id,
            "kind": kind, "direction": direction, "at": at, "state_after": after.value,
            "anomaly": anomaly, "override_reason": override_reason, "detail": detail,
        })

    def delivered(self, message_id: str, at: int) -> CaseState | None:
        """The acceptance receipt for our request verified: ``LocalEvent.delivered``.

        Never raises: a receipt overtaken by the answer (the case already acknowledged) changes
        nothing and is kept in the timeline with the reason.
        """
        found = self.db.execute(
            "SELECT case_ref, counterpart FROM case_events WHERE message_id = ? "
            "AND kind = ? AND direction = ? AND anomaly = ''",
            [message_id, Kind.REQUEST.value, Direction.SENT.value],
        ).fetchone()
        if found is None:
            return None
        case_ref, counterpart = found
        row = self._row(case_ref, counterpart)
        assert row is not None
        state = CaseState.from_name(row["state"])
        try:
            after = next_state(state, CaseEvent.local(LocalEvent.DELIVERED, Role(row["role"])))
        except CaseTransitionInvalid as exc:
            with self.db.atomic():
                self._event(case_ref, counterpart, message_id, LocalEvent.DELIVERED.value,
                            "local", at, state, exc.detail or exc.message)
            return state
        with self.db.atomic():
            update(self.db, "cases", {"case_ref": case_ref, "counterpart": counterpart},
                   {"state": after.value, "state_since": at, "updated_at": at})
            self._event(case_ref, counterpart, message_id, LocalEvent.DELIVERED.value, "local",
                        at, after, "")
        return after

    # --- reading --------------------------------------------------------------------------

    @staticmethod
    def _view(row: dict[str, Any], now: int) -> dict[str, Any]:
        due = due_at(CaseState.from_name(row["state"]), sent_at=row["state_since"],
                     deadline=row["deadline"],
                     priority=Priority.URGENT if row["urgent"] else Priority.NORMAL)
        decoded = {name: json.loads(row[name] or "[]") for name in _JSON_COLUMNS}
        return {**row, **decoded, "urgent": bool(row["urgent"]), "due_at": due,
                "overdue": due is not None and now > due}

    def cases(self, now: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM cases ORDER BY opened_at, rowid")
        names = [d[0] for d in rows.description]
        return [self._view(dict(zip(names, row, strict=True)), now) for row in rows.fetchall()]

    def counterparts(self, case_ref: str) -> list[str]:
        rows = self.db.execute("SELECT counterpart FROM cases WHERE case_ref = ? "
                               "ORDER BY counterpart", [case_ref]).fetchall()
        return [str(row[0]) for row in rows]

    def case(self, case_ref: str, counterpart: str, now: int) -> dict[str, Any]:
        """One case with its timeline, oldest first."""
        row = self._row(case_ref, counterpart)
        if row is None:
            raise StoreNotFound(f"no case {case_ref} with {counterpart}")
        rows = self.db.execute(
            "SELECT message_id, kind, direction, at, state_after, anomaly, override_reason, "
            "detail "
            "FROM case_events WHERE case_ref = ? AND counterpart = ? ORDER BY rowid",
            [case_ref, counterpart],
        )
        names = [d[0] for d in rows.description]
        timeline = [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
        return {**self._view(row, now), "timeline": timeline}

    def overdue(self, now: int) -> list[dict[str, Any]]:
        return [case for case in self.cases(now) if case["overdue"]]

    def statistics_rows(self) -> list[dict[str, Any]]:
        """One record per case in the shape ``node.statistics`` counts."""
        return [
            {
                "case_ref": case["case_ref"], "counterpart": case["counterpart"],
                "role": case["role"], "form": case["form"], "measures": case["measures"],
                "offence_categories": case["offence_categories"],
                "legal_basis": case["legal_basis"], "state": case["state"],
                "refusal_grounds": case["refusal_grounds"], "sent_at": case["sent_at"],
                "closed_at": case["closed_at"],
            }
            for case in self.cases(0)
        ]


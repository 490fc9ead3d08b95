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
import logging
from typing import Any

import sqlite_utils

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
from protocol.errors import CaseTransitionInvalid, RogatoryError, StoreNotFound
from protocol.kinds import Kind, Priority
from protocol.request_package import CONTENT_TYPE, RequestPackage, parse_request

__all__ = ["CaseBook", "deadline_of", "package_or_none"]

log = logging.getLogger("rogatory.cases")


def deadline_of(package: RequestPackage) -> int | None:
    """The package's deadline date as Unix seconds: the end of that day, UTC."""
    text = package.to_json()["urgency"]["deadline"]
    if not text:
        return None
    day = datetime.date.fromisoformat(text) + datetime.timedelta(days=1)
    return calendar.timegm(day.timetuple())


class CaseBook:
    """The ``cases`` and ``case_events`` tables; synchronous, run on the store thread."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        with db.atomic():
            db.table("cases").create(
                {
                    "case_ref": str, "counterpart": str, "role": str, "state": str,
                    "form": str, "urgent": int, "deadline": int, "opened_at": int,
                    "updated_at": int, "state_since": int, "anomaly": str,
                },
                pk=("case_ref", "counterpart"),
                not_null={"role", "state"},
                if_not_exists=True,
            )
            db.table("case_events").create(
                {
                    "case_ref": str, "counterpart": str, "message_id": str, "kind": str,
                    "direction": str, "at": int, "state_after": str, "anomaly": str,
                    "override_reason": str,
                },
                if_not_exists=True,
            )
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
               package: RequestPackage | None = None, override_reason: str = "",
               strict: bool = False) -> CaseState | None:
        """Apply one message to its case; the state after, or ``None`` if it is not tracked.

        ``strict`` (a message this node is about to send) raises ``case.transition_invalid``
        and writes nothing; otherwise (a message already accepted) the refusal is recorded as
        an anomaly of the case and its state stays as it was.
        """
        message_kind = Kind.from_name(kind)
        if not case_ref or message_kind not in ACTORS:
            return None  # no case, or not a step of a request's lifecycle (tracked on its own)
        row = self._row(case_ref, counterpart)
        if row is None:
            role = Role.REQUESTING if direction is Direction.SENT else Role.REQUESTED
            state = CaseState.DRAFT
        else:
            role, state = Role(row["role"]), CaseState.from_name(row["state"])
        final = True if message_kind is Kind.OUTCOME else None
        anomaly = ""
        try:
            after = next_state(state, CaseEvent(message_kind, role, direction, final))
        except CaseTransitionInvalid as exc:
            if strict:
                raise
            anomaly, after = exc.detail or exc.message, state
            log.warning("case %s with %s: %s", case_ref, counterpart, anomaly)
        with self.db.atomic():
            if row is None:
                self.db.table("cases").insert({
                    "case_ref": case_ref, "counterpart": counterpart, "role": role.value,
                    "state": after.value, "form": "", "urgent": 0, "deadline": None,
                    "opened_at": at, "updated_at": at, "state_since": at, "anomaly": anomaly,
                })
            else:
                changes: dict[str, Any] = {"updated_at": at}
                if anomaly:
                    changes["anomaly"] = anomaly
                elif message_kind is not Kind.RETRIEVAL:
                    changes.update(state=after.value, state_since=at)
                self.db.table("cases").update((case_ref, counterpart), changes)
            changes = {}
            if priority == Priority.URGENT.value:
                changes["urgent"] = 1
            if package is not None and message_kind is Kind.REQUEST and not anomaly:
                changes["form"] = package.form
                changes["urgent"] = 1 if package.urgent or changes.get("urgent") else 0
                changes["deadline"] = deadline_of(package)
            if changes:
                self.db.table("cases").update((case_ref, counterpart), changes)
            self._event(case_ref, counterpart, message_id, kind, direction.value, at, after,
                        anomaly, override_reason)
        return after

    def _event(self, case_ref: str, counterpart: str, message_id: str, kind: str,
               direction: str, at: int, after: CaseState, anomaly: str,
               override_reason: str = "") -> None:
        self.db.table("case_events").insert({
            "case_ref": case_ref, "counterpart": counterpart, "message_id": message_id,
            "kind": kind, "direction": direction, "at": at, "state_after": after.value,
            "anomaly": anomaly, "override_reason": override_reason,
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
            self.db.table("cases").update((case_ref, counterpart), {
                "state": after.value, "state_since": at, "updated_at": at})
            self._event(case_ref, counterpart, message_id, LocalEvent.DELIVERED.value, "local",
                        at, after, "")
        return after

    # --- reading --------------------------------------------------------------------------

    @staticmethod
    def _view(row: dict[str, Any], now: int) -> dict[str, Any]:
        due = due_at(CaseState.from_name(row["state"]), sent_at=row["state_since"],
                     deadline=row["deadline"],
                     priority=Priority.URGENT if row["urgent"] else Priority.NORMAL)
        return {**row, "urgent": bool(row["urgent"]), "due_at": due,
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
            "SELECT message_id, kind, direction, at, state_after, anomaly, override_reason "
            "FROM case_events WHERE case_ref = ? AND counterpart = ? ORDER BY rowid",
            [case_ref, counterpart],
        )
        names = [d[0] for d in rows.description]
        timeline = [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
        return {**self._view(row, now), "timeline": timeline}

    def overdue(self, now: int) -> list[dict[str, Any]]:
        return [case for case in self.cases(now) if case["overdue"]]


def package_or_none(content_type: str, payload: bytes) -> RequestPackage | None:
    """The request package in a received payload, or ``None`` (never raises)."""
    if content_type != CONTENT_TYPE:
        return None
    try:
        return parse_request(payload)
    except RogatoryError:
        return None

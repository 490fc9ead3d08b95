"""Spontaneous information and the answer to its conditions, on both sides.

UNTOC art. 18(4)-(5) and UNCAC art. 46(4)-(5) let an authority send information nobody asked
for, under confidentiality and use restrictions the receiving authority must comply with. It
can only comply with conditions it has accepted, so the receiving node holds the content back
from its users (all but the designated receiver, who must read it to decide) until a signed
acceptance has been queued for the sender; a refusal keeps it withheld for good. The sender's
node records the answer when it arrives, so both sides can show what was agreed and when.

Rows are written in the same transaction as the message they follow; the book never commits on
its own.
"""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from protocol.case_message import Conditions
from protocol.errors import CaseConditionsAnswered, StoreNotFound

__all__ = ["ACCEPTED", "AWAITING", "DECLINED", "SpontaneousBook"]

AWAITING = "awaiting-answer"
ACCEPTED = "accepted"
DECLINED = "declined"


class SpontaneousBook:
    """The ``spontaneous`` table; synchronous, run on the store thread."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        with db.atomic():
            db.table("spontaneous").create(
                {
                    "message_id": str, "counterpart": str, "direction": str, "case_ref": str,
                    "conditions": str, "state": str, "at": int, "answered_at": int,
                    "answer_id": str, "reason": str,
                },
                pk=("message_id", "counterpart"),
                not_null={"direction", "state", "conditions"},
                if_not_exists=True,
            )

    def record(self, *, message_id: str, counterpart: str, direction: str, case_ref: str,
               conditions: Conditions, at: int) -> None:
        self.db.table("spontaneous").insert({
            "message_id": message_id, "counterpart": counterpart, "direction": direction,
            "case_ref": case_ref, "conditions": json.dumps(conditions.to_json(), sort_keys=True),
            "state": AWAITING, "at": at, "answered_at": None, "answer_id": "", "reason": "",
        })

    def get(self, message_id: str, counterpart: str) -> dict[str, Any]:
        rows = self.db.execute(
            "SELECT * FROM spontaneous WHERE message_id = ? AND counterpart = ?",
            [message_id, counterpart])
        row = rows.fetchone()
        if row is None:
            raise StoreNotFound(f"no spontaneous information {message_id} with {counterpart}")
        found = dict(zip([d[0] for d in rows.description], row, strict=True))
        found["conditions"] = json.loads(found["conditions"])
        return found

    def state(self, message_id: str, counterpart: str) -> str | None:
        row = self.db.execute(
            "SELECT state FROM spontaneous WHERE message_id = ? AND counterpart = ?",
            [message_id, counterpart]).fetchone()
        return None if row is None else str(row[0])

    def answer(self, *, message_id: str, counterpart: str, direction: str, accepted: bool,
               answer_id: str, reason: str, at: int) -> None:
        """Record the answer to the conditions; raises if already answered.

        ``direction`` is that of the spontaneous information the answer is about: ``received``
        when this node answers, ``sent`` when the answer to our own arrives.
        """
        found = self.get(message_id, counterpart)
        if found["direction"] != direction:
            raise StoreNotFound(f"no {direction} spontaneous information {message_id}")
        if found["state"] != AWAITING:
            raise CaseConditionsAnswered(
                f"{message_id} was {found['state']} at {found['answered_at']}")
        self.db.table("spontaneous").update((message_id, counterpart), {
            "state": ACCEPTED if accepted else DECLINED, "answered_at": at,
            "answer_id": answer_id, "reason": reason,
        })

    def all(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM spontaneous ORDER BY at, rowid")
        names = [d[0] for d in rows.description]
        out = []
        for row in rows.fetchall():
            found = dict(zip(names, row, strict=True))
            found["conditions"] = json.loads(found["conditions"])
            out.append(found)
        return out

"""The lifecycle of a case: one request for assistance, tracked from draft to its end.

A case is a state machine driven by the envelopes the two sides exchange about it, plus two
events only the requesting node sees (it saved a draft; the receipt for its request verified).
Both nodes run the same machine over the same messages, each from its own side, and end up in
the same state: a message is described by its kind, whether this node sent or received it, and
this node's role in the case, so "acknowledgement sent by the requested node" and
"acknowledgement received by the requesting node" are the same step.

Two tables are the whole of the rules, and everything else here is derived from them:

- ``ACTORS`` says who may send each kind of message (or record each local event). A message from
  the wrong side (a requested authority "withdrawing" the request, a requesting authority
  "acknowledging" it) is refused whatever the state.
- ``TRANSITIONS`` says, for each state, which steps are allowed and where each leads. Anything
  not in it is refused with ``case.transition_invalid``. The terminal states (executed, refused,
  withdrawn) allow nothing but retrieval receipts, which never change a state.

Consultations and draft requests go back and forth only before the formal request (CTOC/COP/
WG.3/2017 §4). The requested side's case begins when the request reaches it, so the request takes
its case straight to ``delivered``; the requesting side reaches ``delivered`` when the receipt
for its request verifies. The requested side's first answer (acknowledgement or refusal) is
accepted in ``sent`` too: it proves delivery at least as well, and can overtake a receipt whose
response was lost and is being fetched again by a retry (the late receipt then changes nothing
and is refused here; the node keeps it in the timeline all the same).

Spontaneous information and the answer to its conditions are not steps of a request's lifecycle
(UNTOC art. 18(4)-(5)): they are refused here and tracked on their own.

Deadlines are data too: ``RESPONSE_TIMES`` says, for each state that waits on someone, what is
awaited, from whom, and how long it may take for normal and for urgent cases. The defaults follow
the European Investigation Order's timetable (Directive 2014/41/EU, Annex B and art. 12: an
acknowledgement within a week, a decision within 30 days, execution within 90 days); authorities
with other agreements pass their own policy. Times are integer Unix seconds, always passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from protocol.errors import CaseError, CaseTransitionInvalid
from protocol.kinds import Kind, Priority

__all__ = [
    "ACTORS",
    "ALL_EVENTS",
    "DAY",
    "HOUR",
    "INITIAL_STATE",
    "RESPONSE_TIMES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "CaseEvent",
    "CaseState",
    "Direction",
    "LocalEvent",
    "ResponseTime",
    "Role",
    "Step",
    "allowed_events",
    "allowed_steps",
    "due_at",
    "is_overdue",
    "next_state",
    "replay",
    "step_of",
]


class CaseState(enum.Enum):
    DRAFT = "draft"
    CONSULTATION = "consultation"
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    IN_EXECUTION = "in-execution"
    ADDITIONAL_INFORMATION_REQUESTED = "additional-information-requested"
    POSTPONED = "postponed"
    PARTIALLY_EXECUTED = "partially-executed"
    EXECUTED = "executed"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @classmethod
    def from_name(cls, name: object) -> CaseState:
        for state in cls:
            if state.value == name:
                return state
        raise CaseError(f"unknown case state {name!r}")


TERMINAL_STATES: Final[frozenset[CaseState]] = frozenset(
    {CaseState.EXECUTED, CaseState.REFUSED, CaseState.WITHDRAWN})
INITIAL_STATE: Final[CaseState] = CaseState.DRAFT


class Role(enum.Enum):
    """This node's part in the case: it asks for assistance, or it is asked."""

    REQUESTING = "requesting"
    REQUESTED = "requested"

    @property
    def other(self) -> Role:
        return Role.REQUESTED if self is Role.REQUESTING else Role.REQUESTING


class Direction(enum.Enum):
    SENT = "sent"
    RECEIVED = "received"


class LocalEvent(enum.Enum):
    """What changes a case without a message: known to one node only."""

    DRAFTED = "drafted"  # a version of the draft request was saved
    DELIVERED = "delivered"  # the acceptance receipt for our request verified


class Step(enum.Enum):
    """The alphabet of the state machine: an event, seen the same from either side."""

    DRAFTED = "drafted"
    CONSULTATION = "consultation"
    REQUEST_SENT = "request-sent"
    REQUEST_RECEIVED = "request-received"
    DELIVERED = "delivered"
    ACKNOWLEDGEMENT = "acknowledgement"
    STATUS = "status"
    ADDITIONAL_INFORMATION_REQUEST = "additional-information-request"
    ADDITIONAL_INFORMATION = "additional-information"
    POSTPONEMENT = "postponement"
    PARTIAL_OUTCOME = "partial-outcome"
    FINAL_OUTCOME = "final-outcome"
    REFUSAL = "refusal"
    WITHDRAWAL = "withdrawal"
    RETRIEVAL = "retrieval"


_REQUESTING: Final = frozenset({Role.REQUESTING})
_REQUESTED: Final = frozenset({Role.REQUESTED})
_EITHER: Final = frozenset(Role)

# Who sends each kind of message about a case, or records each local event. Kinds missing here
# (spontaneous-information, conditions-answer) are not part of a request's lifecycle.
ACTORS: Final[Mapping[Kind | LocalEvent, frozenset[Role]]] = MappingProxyType({
    LocalEvent.DRAFTED: _REQUESTING,
    LocalEvent.DELIVERED: _REQUESTING,
    Kind.CONSULTATION: _EITHER,
    Kind.REQUEST: _REQUESTING,
    Kind.ACKNOWLEDGEMENT: _REQUESTED,
    Kind.STATUS: _REQUESTED,
    Kind.ADDITIONAL_INFORMATION_REQUEST: _REQUESTED,
    Kind.ADDITIONAL_INFORMATION: _REQUESTING,
    Kind.POSTPONEMENT: _REQUESTED,
    Kind.OUTCOME: _REQUESTED,
    Kind.REFUSAL: _REQUESTED,
    Kind.WITHDRAWAL: _REQUESTING,
    Kind.RETRIEVAL: _EITHER,
})


def _table(
    rows: Mapping[CaseState, Mapping[Step, CaseState]],
) -> Mapping[CaseState, Mapping[Step, CaseState]]:
    return MappingProxyType({state: MappingProxyType(dict(steps)) for state, steps in rows.items()})


_S = CaseState

# The one source of truth: state -> allowed step -> next state. Read a row as "in this state,
# this step leads there"; a step missing from a row is refused.
TRANSITIONS: Final[Mapping[CaseState, Mapping[Step, CaseState]]] = _table({
    _S.DRAFT: {
        Step.DRAFTED: _S.DRAFT,
        Step.CONSULTATION: _S.CONSULTATION,
        Step.REQUEST_SENT: _S.SENT,
        Step.REQUEST_RECEIVED: _S.DELIVERED,
    },
    _S.CONSULTATION: {
        Step.DRAFTED: _S.CONSULTATION,
        Step.CONSULTATION: _S.CONSULTATION,
        Step.REQUEST_SENT: _S.SENT,
        Step.REQUEST_RECEIVED: _S.DELIVERED,
        Step.RETRIEVAL: _S.CONSULTATION,
    },
    _S.SENT: {
        Step.DELIVERED: _S.DELIVERED,
        Step.ACKNOWLEDGEMENT: _S.ACKNOWLEDGED,  # the answer overtook a lost receipt
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.SENT,
    },
    _S.DELIVERED: {
        Step.ACKNOWLEDGEMENT: _S.ACKNOWLEDGED,
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.DELIVERED,
    },
    _S.ACKNOWLEDGED: {
        Step.STATUS: _S.IN_EXECUTION,
        Step.ADDITIONAL_INFORMATION_REQUEST: _S.ADDITIONAL_INFORMATION_REQUESTED,
        Step.POSTPONEMENT: _S.POSTPONED,
        Step.PARTIAL_OUTCOME: _S.PARTIALLY_EXECUTED,
        Step.FINAL_OUTCOME: _S.EXECUTED,
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.ACKNOWLEDGED,
    },
    _S.IN_EXECUTION: {
        Step.STATUS: _S.IN_EXECUTION,
        Step.ADDITIONAL_INFORMATION_REQUEST: _S.ADDITIONAL_INFORMATION_REQUESTED,
        Step.POSTPONEMENT: _S.POSTPONED,
        Step.PARTIAL_OUTCOME: _S.PARTIALLY_EXECUTED,
        Step.FINAL_OUTCOME: _S.EXECUTED,
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.IN_EXECUTION,
    },
    # Only the requesting side's answer closes the loop; a status update or a further question
    # leaves the question open.
    _S.ADDITIONAL_INFORMATION_REQUESTED: {
        Step.ADDITIONAL_INFORMATION: _S.IN_EXECUTION,
        Step.ADDITIONAL_INFORMATION_REQUEST: _S.ADDITIONAL_INFORMATION_REQUESTED,
        Step.STATUS: _S.ADDITIONAL_INFORMATION_REQUESTED,
        Step.PARTIAL_OUTCOME: _S.PARTIALLY_EXECUTED,
        Step.FINAL_OUTCOME: _S.EXECUTED,
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.ADDITIONAL_INFORMATION_REQUESTED,
    },
    # A status update after a postponement reports that execution resumed; a postponement
    # extends it.
    _S.POSTPONED: {
        Step.STATUS: _S.IN_EXECUTION,
        Step.POSTPONEMENT: _S.POSTPONED,
        Step.ADDITIONAL_INFORMATION_REQUEST: _S.ADDITIONAL_INFORMATION_REQUESTED,
        Step.PARTIAL_OUTCOME: _S.PARTIALLY_EXECUTED,
        Step.FINAL_OUTCOME: _S.EXECUTED,
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.POSTPONED,
    },
    # Some results returned, execution of the rest goes on.
    _S.PARTIALLY_EXECUTED: {
        Step.STATUS: _S.PARTIALLY_EXECUTED,
        Step.ADDITIONAL_INFORMATION_REQUEST: _S.ADDITIONAL_INFORMATION_REQUESTED,
        Step.POSTPONEMENT: _S.POSTPONED,
        Step.PARTIAL_OUTCOME: _S.PARTIALLY_EXECUTED,
        Step.FINAL_OUTCOME: _S.EXECUTED,
        Step.REFUSAL: _S.REFUSED,
        Step.WITHDRAWAL: _S.WITHDRAWN,
        Step.RETRIEVAL: _S.PARTIALLY_EXECUTED,
    },
    _S.EXECUTED: {Step.RETRIEVAL: _S.EXECUTED},
    _S.REFUSED: {Step.RETRIEVAL: _S.REFUSED},
    _S.WITHDRAWN: {Step.RETRIEVAL: _S.WITHDRAWN},
})

# Kinds and local events whose step does not depend on direction or on a flag.
_PLAIN_STEPS: Final[Mapping[Kind | LocalEvent, Step]] = MappingProxyType({
    LocalEvent.DRAFTED: Step.DRAFTED,
    LocalEvent.DELIVERED: Step.DELIVERED,
    Kind.CONSULTATION: Step.CONSULTATION,
    Kind.ACKNOWLEDGEMENT: Step.ACKNOWLEDGEMENT,
    Kind.STATUS: Step.STATUS,
    Kind.ADDITIONAL_INFORMATION_REQUEST: Step.ADDITIONAL_INFORMATION_REQUEST,
    Kind.ADDITIONAL_INFORMATION: Step.ADDITIONAL_INFORMATION,
    Kind.POSTPONEMENT: Step.POSTPONEMENT,
    Kind.REFUSAL: Step.REFUSAL,
    Kind.WITHDRAWAL: Step.WITHDRAWAL,
    Kind.RETRIEVAL: Step.RETRIEVAL,
})
_STEP_KIND: Final[Mapping[Step, Kind | LocalEvent]] = MappingProxyType({
    **{step: kind for kind, step in _PLAIN_STEPS.items()},
    Step.REQUEST_SENT: Kind.REQUEST,
    Step.REQUEST_RECEIVED: Kind.REQUEST,
    Step.PARTIAL_OUTCOME: Kind.OUTCOME,
    Step.FINAL_OUTCOME: Kind.OUTCOME,
})


@dataclass(frozen=True)
class CaseEvent:
    """One thing that happened to a case, seen from this node.

    ``kind`` is the envelope's kind, or a local event; ``role`` is this node's role in the case;
    ``direction`` says whether this node sent or received the envelope (``None`` for a local
    event); ``final`` says whether an outcome is the final one or partial (``None`` otherwise).
    """

    kind: Kind | LocalEvent
    role: Role
    direction: Direction | None = None
    final: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind | LocalEvent):
            raise CaseError(f"case event kind {self.kind!r}")
        if not isinstance(self.role, Role):
            raise CaseError(f"case event role {self.role!r}")
        if isinstance(self.kind, LocalEvent):
            if self.direction is not None:
                raise CaseError(f"local event {self.kind.value} has no direction")
        elif not isinstance(self.direction, Direction):
            raise CaseError(f"{self.kind.value} needs a direction, not {self.direction!r}")
        if self.kind is Kind.OUTCOME:
            if type(self.final) is not bool:
                raise CaseError("an outcome must say whether it is final or partial")
        elif self.final is not None:
            raise CaseError(f"only an outcome is final or partial, not {self.kind.value}")

    @classmethod
    def sent(cls, kind: Kind, role: Role, *, final: bool | None = None) -> CaseEvent:
        return cls(kind, role, Direction.SENT, final)

    @classmethod
    def received(cls, kind: Kind, role: Role, *, final: bool | None = None) -> CaseEvent:
        return cls(kind, role, Direction.RECEIVED, final)

    @classmethod
    def local(cls, event: LocalEvent, role: Role = Role.REQUESTING) -> CaseEvent:
        return cls(event, role)

    @property
    def actor(self) -> Role:
        """The side that sent the message, or that recorded the local event."""
        if self.direction is Direction.RECEIVED:
            return self.role.other
        return self.role

    @property
    def from_requesting(self) -> bool:
        return self.actor is Role.REQUESTING

    def __str__(self) -> str:
        name = self.kind.value
        if self.kind is Kind.OUTCOME:
            name = f"{'final' if self.final else 'partial'} outcome"
        if self.direction is None:
            return f"{name} (recorded by the {self.role.value} side)"
        if self.direction is Direction.SENT:
            return f"{name} sent by the {self.role.value} side"
        return f"{name} received by the {self.role.value} side"


def _all_events() -> tuple[CaseEvent, ...]:
    events: list[CaseEvent] = []
    for role in Role:
        events.extend(CaseEvent.local(local, role) for local in LocalEvent)
        for kind in Kind:
            for direction in Direction:
                for final in (False, True) if kind is Kind.OUTCOME else (None,):
                    events.append(CaseEvent(kind, role, direction, final))
    return tuple(events)


# Every event that can be built: both roles, both directions, every kind, every local event.
ALL_EVENTS: Final[tuple[CaseEvent, ...]] = _all_events()


def _classify(event: CaseEvent) -> Step | str:
    """The event's step, or why no state allows it."""
    actors = ACTORS.get(event.kind)
    if actors is None:
        return f"{event.kind.value} is not part of a request's lifecycle"
    if event.actor not in actors:
        only = next(iter(actors)).value
        return f"only the {only} side sends {event.kind.value}"
    if event.kind is Kind.REQUEST:
        return Step.REQUEST_SENT if event.direction is Direction.SENT else Step.REQUEST_RECEIVED
    if event.kind is Kind.OUTCOME:
        return Step.FINAL_OUTCOME if event.final else Step.PARTIAL_OUTCOME
    return _PLAIN_STEPS[event.kind]


def step_of(event: CaseEvent) -> Step:
    """The step an event takes; ``case.transition_invalid`` if no state allows it at all."""
    step = _classify(event)
    if isinstance(step, str):
        raise CaseTransitionInvalid(f"{event}: {step}")
    return step


def _describe(step: Step) -> str:
    kind = _STEP_KIND[step]
    actors = ACTORS[kind]
    who = "either side" if len(actors) > 1 else f"the {next(iter(actors)).value} side"
    verb = "recorded" if isinstance(kind, LocalEvent) else "sent"
    return f"{step.value} ({verb} by {who})"


def allowed_steps(state: CaseState) -> list[Step]:
    return list(TRANSITIONS[state])


def allowed_events(state: CaseState, role: Role | None = None) -> list[CaseEvent]:
    """Every event allowed in ``state``, for one role of this node or for both."""
    steps = TRANSITIONS[state]
    return [
        event for event in ALL_EVENTS
        if (role is None or event.role is role) and _classify(event) in steps
    ]


def next_state(state: CaseState, event: CaseEvent) -> CaseState:
    """The state the case moves to, or ``case.transition_invalid`` naming what is allowed."""
    steps = TRANSITIONS[state]
    step = _classify(event)
    if isinstance(step, Step) and step in steps:
        return steps[step]
    if state.terminal:
        allowed = f"{state.value} is terminal; only retrieval receipts are recorded"
    else:
        allowed = "allowed: " + ", ".join(_describe(s) for s in steps)
    why = step if isinstance(step, str) else f"not allowed in state {state.value}"
    raise CaseTransitionInvalid(f"{event} in state {state.value}: {why}; {allowed}")


def replay(events: Iterable[CaseEvent], start: CaseState = INITIAL_STATE) -> CaseState:
    """The state after ``events`` in order: a case's state recomputed from its timeline."""
    state = start
    for event in events:
        state = next_state(state, event)
    return state


# --- deadlines -------------------------------------------------------------------------------

HOUR: Final = 3_600
DAY: Final = 24 * HOUR


@dataclass(frozen=True)
class ResponseTime:
    """In one state: what the case waits for, from whom, and for how long."""

    awaited: str
    owed_by: Role
    normal: int  # seconds
    urgent: int  # seconds

    def allowance(self, priority: Priority) -> int:
        return self.urgent if priority is Priority.URGENT else self.normal


# States missing here wait on nobody: a draft or a consultation, and the terminal states.
RESPONSE_TIMES: Final[Mapping[CaseState, ResponseTime]] = MappingProxyType({
    _S.SENT: ResponseTime("receipt for the request", Role.REQUESTED, DAY, HOUR),
    _S.DELIVERED: ResponseTime("acknowledgement", Role.REQUESTED, 7 * DAY, DAY),
    _S.ACKNOWLEDGED: ResponseTime("decision on execution", Role.REQUESTED, 30 * DAY, 3 * DAY),
    _S.IN_EXECUTION: ResponseTime("status update or outcome", Role.REQUESTED, 90 * DAY, 7 * DAY),
    _S.ADDITIONAL_INFORMATION_REQUESTED: ResponseTime(
        "additional information", Role.REQUESTING, 30 * DAY, 3 * DAY),
    _S.POSTPONED: ResponseTime("resumption of execution", Role.REQUESTED, 90 * DAY, 7 * DAY),
    _S.PARTIALLY_EXECUTED: ResponseTime(
        "the rest of the outcome", Role.REQUESTED, 90 * DAY, 7 * DAY),
})


def due_at(
    state: CaseState,
    *,
    sent_at: int,
    deadline: int | None = None,
    priority: Priority = Priority.NORMAL,
    policy: Mapping[CaseState, ResponseTime] = RESPONSE_TIMES,
) -> int | None:
    """When the case becomes overdue in ``state``, or ``None`` if it never does.

    ``sent_at`` is when the case entered its current state (the time of the message or receipt
    that moved it, or of the latest status update while it stays); the policy's allowance runs
    from there. ``deadline`` is the case's own deadline, if the requesting authority set one
    (a trial date, a limitation period): it applies in every state until the case ends, and the
    earlier of the two wins.
    """
    if state.terminal:
        return None
    response = policy.get(state)
    candidates = [] if deadline is None else [deadline]
    if response is not None:
        candidates.append(sent_at + response.allowance(priority))
    return min(candidates, default=None)


def is_overdue(
    state: CaseState,
    *,
    sent_at: int,
    deadline: int | None = None,
    now: int,
    priority: Priority = Priority.NORMAL,
    policy: Mapping[CaseState, ResponseTime] = RESPONSE_TIMES,
) -> bool:
    """True when ``now`` is past the moment ``due_at`` gives; a terminal case never is."""
    due = due_at(state, sent_at=sent_at, deadline=deadline, priority=priority, policy=policy)
    return due is not None and now > due

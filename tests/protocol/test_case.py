"""The case state machine: every legal transition, every illegal one refused, and deadlines.

The expected behaviour is written out here a second time, as rules taken from the issue, and
compared with ``protocol.case.TRANSITIONS`` over the full cross product of states and events: a
hole that opens in the table (or a rule that goes missing from it) fails a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.case import (
    ACTORS,
    ALL_EVENTS,
    DAY,
    HOUR,
    INITIAL_STATE,
    RESPONSE_TIMES,
    TERMINAL_STATES,
    TRANSITIONS,
    CaseEvent,
    CaseState,
    Direction,
    LocalEvent,
    ResponseTime,
    Role,
    Step,
    allowed_events,
    allowed_steps,
    due_at,
    is_overdue,
    next_state,
    replay,
    step_of,
)
from protocol.errors import CaseError, CaseTransitionInvalid
from protocol.kinds import Kind, Priority

S = CaseState
ING = Role.REQUESTING
ED = Role.REQUESTED
SENT = Direction.SENT
RECEIVED = Direction.RECEIVED

# --- the rules of the issue, written independently of the table ------------------------------

REQUESTING_ONLY = frozenset({ING})
REQUESTED_ONLY = frozenset({ED})
EITHER = frozenset({ING, ED})
BEFORE_REQUEST = (S.DRAFT, S.CONSULTATION)
# An outcome needs an acknowledged case (or one further along, not yet ended).
ANSWERABLE = (S.ACKNOWLEDGED, S.IN_EXECUTION, S.ADDITIONAL_INFORMATION_REQUESTED, S.POSTPONED,
              S.PARTIALLY_EXECUTED)
AFTER_SENT = (S.SENT, S.DELIVERED, *ANSWERABLE)
ENDED = frozenset({S.EXECUTED, S.REFUSED, S.WITHDRAWN})
NON_TERMINAL: tuple[CaseState, ...] = tuple(s for s in S if s not in ENDED)


@dataclass(frozen=True)
class Rule:
    kind: Kind | LocalEvent
    actors: frozenset[Role]
    sources: tuple[CaseState, ...]
    target: CaseState | None  # None: the state does not change
    direction: Direction | None = None  # None: either direction
    final: bool | None = None  # outcomes only


RULES = (
    Rule(LocalEvent.DRAFTED, REQUESTING_ONLY, BEFORE_REQUEST, None),
    Rule(Kind.CONSULTATION, EITHER, BEFORE_REQUEST, S.CONSULTATION),
    Rule(Kind.REQUEST, REQUESTING_ONLY, BEFORE_REQUEST, S.SENT, direction=SENT),
    Rule(Kind.REQUEST, REQUESTING_ONLY, BEFORE_REQUEST, S.DELIVERED, direction=RECEIVED),
    Rule(LocalEvent.DELIVERED, REQUESTING_ONLY, (S.SENT,), S.DELIVERED),
    Rule(Kind.ACKNOWLEDGEMENT, REQUESTED_ONLY, (S.SENT, S.DELIVERED), S.ACKNOWLEDGED),
    Rule(Kind.STATUS, REQUESTED_ONLY, (S.ACKNOWLEDGED, S.IN_EXECUTION, S.POSTPONED),
         S.IN_EXECUTION),
    Rule(Kind.STATUS, REQUESTED_ONLY,
         (S.ADDITIONAL_INFORMATION_REQUESTED, S.PARTIALLY_EXECUTED), None),
    Rule(Kind.ADDITIONAL_INFORMATION_REQUEST, REQUESTED_ONLY, ANSWERABLE,
         S.ADDITIONAL_INFORMATION_REQUESTED),
    Rule(Kind.ADDITIONAL_INFORMATION, REQUESTING_ONLY, (S.ADDITIONAL_INFORMATION_REQUESTED,),
         S.IN_EXECUTION),
    Rule(Kind.POSTPONEMENT, REQUESTED_ONLY,
         (S.ACKNOWLEDGED, S.IN_EXECUTION, S.POSTPONED, S.PARTIALLY_EXECUTED), S.POSTPONED),
    Rule(Kind.OUTCOME, REQUESTED_ONLY, ANSWERABLE, S.PARTIALLY_EXECUTED, final=False),
    Rule(Kind.OUTCOME, REQUESTED_ONLY, ANSWERABLE, S.EXECUTED, final=True),
    Rule(Kind.REFUSAL, REQUESTED_ONLY, AFTER_SENT, S.REFUSED),
    Rule(Kind.WITHDRAWAL, REQUESTING_ONLY, AFTER_SENT, S.WITHDRAWN),
    Rule(Kind.RETRIEVAL, EITHER, tuple(s for s in S if s is not S.DRAFT), None),
)


ENDINGS = sorted(TERMINAL_STATES, key=lambda s: s.value)


def name(value: object) -> str:
    """A readable test id."""
    return str(getattr(value, "value", value))


def sender(event: CaseEvent) -> Role:
    """Who did it: this node, unless it received the message from the other side."""
    if event.direction is RECEIVED:
        return ED if event.role is ING else ING
    return event.role


def matching_rules(state: CaseState, event: CaseEvent) -> list[Rule]:
    return [
        rule for rule in RULES
        if rule.kind == event.kind
        and sender(event) in rule.actors
        and state in rule.sources
        and rule.direction in (None, event.direction)
        and (rule.final is None or rule.final == event.final)
    ]


def expected(state: CaseState, event: CaseEvent) -> CaseState | None:
    """The state the issue's rules lead to, or None where they refuse the event."""
    rules = matching_rules(state, event)
    assert len(rules) <= 1, f"the test's own rules overlap for {state}, {event}: {rules}"
    if not rules:
        return None
    return rules[0].target or state


def every_event() -> Iterator[CaseEvent]:
    """The cross product of everything an event is made of."""
    for role in Role:
        for local in LocalEvent:
            yield CaseEvent(local, role)
        for kind in Kind:
            for direction in Direction:
                finals: tuple[bool | None, ...] = (False, True) if kind is Kind.OUTCOME else (None,)
                for final in finals:
                    yield CaseEvent(kind, role, direction, final)


def refused(state: CaseState, event: CaseEvent) -> CaseTransitionInvalid:
    with pytest.raises(CaseTransitionInvalid) as caught:
        next_state(state, event)
    return caught.value


def got(kind: Kind, role: Role, final: bool | None = None) -> CaseEvent:
    return CaseEvent.received(kind, role, final=final)


def did(kind: Kind, role: Role, final: bool | None = None) -> CaseEvent:
    return CaseEvent.sent(kind, role, final=final)


# --- the table against the rules ---------------------------------------------------------------


def test_all_events_is_the_full_cross_product() -> None:
    events = list(every_event())
    assert len(events) == len(set(events)) == 60
    assert set(ALL_EVENTS) == set(events)
    assert len(ALL_EVENTS) == len(set(ALL_EVENTS))


def test_the_table_has_a_row_for_every_state_and_only_known_steps() -> None:
    assert set(TRANSITIONS) == set(CaseState)
    assert ENDED == TERMINAL_STATES
    assert INITIAL_STATE is S.DRAFT
    for row in TRANSITIONS.values():
        assert all(isinstance(step, Step) and isinstance(to, CaseState) for step, to in row.items())


def test_the_table_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[S.DRAFT][Step.FINAL_OUTCOME] = S.EXECUTED  # type: ignore[index]
    with pytest.raises(TypeError):
        ACTORS[Kind.OUTCOME] = frozenset(Role)  # type: ignore[index]


def _step_or_none(event: CaseEvent) -> Step | None:
    try:
        return step_of(event)
    except CaseTransitionInvalid:
        return None


LEGAL = [(state, step) for state, row in TRANSITIONS.items() for step in row]


@pytest.mark.parametrize(("state", "step"), LEGAL, ids=[f"{s.value}:{t.value}" for s, t in LEGAL])
def test_every_legal_transition(state: CaseState, step: Step) -> None:
    events = [e for e in ALL_EVENTS if _step_or_none(e) is step]
    assert events, f"no event takes step {step}"
    for event in events:
        assert next_state(state, event) is TRANSITIONS[state][step]
        assert expected(state, event) is TRANSITIONS[state][step], (state, str(event))
        assert event in allowed_events(state)
        assert event in allowed_events(state, event.role)
        assert event not in allowed_events(state, event.role.other)


@pytest.mark.parametrize("state", list(CaseState), ids=name)
def test_the_full_cross_product_of_states_and_events(state: CaseState) -> None:
    wrong: list[str] = []
    for event in every_event():
        want = expected(state, event)
        try:
            have: CaseState | str = next_state(state, event)
        except CaseTransitionInvalid as exc:
            assert exc.code == "case.transition_invalid"
            assert state.value in exc.detail
            have = "refused"
        if have != (want or "refused"):
            wrong.append(f"{event}: expected {want or 'refused'}, got {have}")
    assert not wrong, f"in state {state.value}:\n" + "\n".join(wrong)


def test_every_rule_of_the_issue_is_used() -> None:
    for rule in RULES:
        assert any(matching_rules(state, event) == [rule]
                   for state in rule.sources for event in ALL_EVENTS), rule


def test_the_counts_of_legal_and_refused_pairs() -> None:
    legal = sum(1 for state in S for e in ALL_EVENTS if expected(state, e) is not None)
    assert legal == sum(len(allowed_events(state)) for state in S)
    assert 12 * 60 - legal > legal  # most combinations are refused


# --- who may send what ---------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "only"), [
    (Kind.REQUEST, ING), (Kind.WITHDRAWAL, ING), (Kind.ADDITIONAL_INFORMATION, ING),
    (Kind.ACKNOWLEDGEMENT, ED), (Kind.STATUS, ED), (Kind.ADDITIONAL_INFORMATION_REQUEST, ED),
    (Kind.POSTPONEMENT, ED), (Kind.OUTCOME, ED), (Kind.REFUSAL, ED),
], ids=name)
def test_a_message_from_the_wrong_side_is_refused_in_every_state(kind: Kind, only: Role) -> None:
    assert ACTORS[kind] == {only}
    wrong_side = [e for e in ALL_EVENTS if e.kind is kind and e.actor is not only]
    assert wrong_side
    for state in S:
        for event in wrong_side:
            error = refused(state, event)
            assert f"only the {only.value} side sends {kind.value}" in error.detail


@pytest.mark.parametrize("local", list(LocalEvent), ids=name)
def test_local_events_belong_to_the_requesting_node(local: LocalEvent) -> None:
    for state in S:
        refused(state, CaseEvent.local(local, ED))


@pytest.mark.parametrize("kind", [Kind.SPONTANEOUS_INFORMATION, Kind.CONDITIONS_ANSWER],
                         ids=name)
def test_spontaneous_transmissions_are_not_request_steps(kind: Kind) -> None:
    assert kind not in ACTORS
    for state in S:
        for event in (e for e in ALL_EVENTS if e.kind is kind):
            assert "not part of a request's lifecycle" in refused(state, event).detail
            with pytest.raises(CaseTransitionInvalid):
                step_of(event)


def test_consultation_only_before_the_formal_request() -> None:
    for state in S:
        for event in (e for e in ALL_EVENTS if e.kind is Kind.CONSULTATION):
            if state in BEFORE_REQUEST:
                assert next_state(state, event) is S.CONSULTATION
            else:
                refused(state, event)


def test_the_request_takes_each_side_to_its_own_state() -> None:
    assert next_state(S.DRAFT, did(Kind.REQUEST, ING)) is S.SENT
    assert next_state(S.DRAFT, got(Kind.REQUEST, ED)) is S.DELIVERED
    assert next_state(S.CONSULTATION, got(Kind.REQUEST, ED)) is S.DELIVERED
    refused(S.SENT, did(Kind.REQUEST, ING))  # one request per case
    refused(S.DELIVERED, got(Kind.REQUEST, ED))


def test_withdrawal_from_every_non_terminal_state_after_sending() -> None:
    for state in S:
        event = did(Kind.WITHDRAWAL, ING)
        if state in AFTER_SENT:
            assert next_state(state, event) is S.WITHDRAWN
            assert next_state(state, got(Kind.WITHDRAWAL, ED)) is S.WITHDRAWN
        else:
            refused(state, event)


# --- named examples from the issue --------------------------------------------------------


@pytest.mark.parametrize("state", [S.DRAFT, S.CONSULTATION, S.SENT, S.DELIVERED],
                         ids=name)
@pytest.mark.parametrize("final", [True, False])
def test_an_outcome_for_a_case_never_acknowledged_is_refused(state: CaseState,
                                                             final: bool) -> None:
    for event in (got(Kind.OUTCOME, ING, final), did(Kind.OUTCOME, ED, final)):
        error = refused(state, event)
        assert error.code == "case.transition_invalid"
        assert f"in state {state.value}" in error.detail
        assert "outcome" in error.detail
        assert str(error).startswith("case.transition_invalid: ")


def test_the_error_names_state_event_and_what_is_allowed() -> None:
    error = refused(S.DELIVERED, got(Kind.OUTCOME, ING, True))
    assert error.detail == (
        "final outcome received by the requesting side in state delivered: not allowed in state "
        "delivered; allowed: acknowledgement (sent by the requested side), refusal (sent by the "
        "requested side), withdrawal (sent by the requesting side), retrieval (sent by either "
        "side)"
    )
    wrong_side = refused(S.DELIVERED, did(Kind.ACKNOWLEDGEMENT, ING))
    assert "only the requested side sends acknowledgement" in wrong_side.detail
    assert "allowed: acknowledgement (sent by the requested side)" in wrong_side.detail
    drafting = refused(S.SENT, CaseEvent.local(LocalEvent.DRAFTED))
    assert "allowed: delivered (recorded by the requesting side)" in drafting.detail


@pytest.mark.parametrize("terminal", ENDINGS, ids=name)
def test_a_withdrawal_of_an_ended_case_is_refused(terminal: CaseState) -> None:
    error = refused(terminal, did(Kind.WITHDRAWAL, ING))
    assert f"{terminal.value} is terminal" in error.detail
    refused(terminal, got(Kind.WITHDRAWAL, ED))


def test_a_withdrawal_of_an_executed_case_is_refused() -> None:
    executed = replay([
        did(Kind.REQUEST, ING), CaseEvent.local(LocalEvent.DELIVERED),
        got(Kind.ACKNOWLEDGEMENT, ING), got(Kind.OUTCOME, ING, final=True),
    ])
    assert executed is S.EXECUTED
    error = refused(executed, did(Kind.WITHDRAWAL, ING))
    assert error.detail.startswith("withdrawal sent by the requesting side in state executed")


@pytest.mark.parametrize("terminal", ENDINGS, ids=name)
def test_nothing_but_retrieval_after_a_terminal_state(terminal: CaseState) -> None:
    assert terminal.terminal
    assert allowed_steps(terminal) == [Step.RETRIEVAL]
    for event in ALL_EVENTS:
        if event.kind is Kind.RETRIEVAL:
            assert next_state(terminal, event) is terminal
        else:
            refused(terminal, event)


def test_retrieval_receipts_never_change_a_state() -> None:
    for state in S:
        for event in (e for e in ALL_EVENTS if e.kind is Kind.RETRIEVAL):
            if state is S.DRAFT:  # nothing was exchanged yet
                refused(state, event)
            else:
                assert next_state(state, event) is state


def test_an_answer_may_overtake_a_lost_receipt() -> None:
    assert next_state(S.SENT, got(Kind.ACKNOWLEDGEMENT, ING)) is S.ACKNOWLEDGED
    assert next_state(S.SENT, got(Kind.REFUSAL, ING)) is S.REFUSED
    refused(S.ACKNOWLEDGED, CaseEvent.local(LocalEvent.DELIVERED))  # the late receipt adds nothing
    refused(S.SENT, got(Kind.STATUS, ING))


def test_outcomes_partial_then_final() -> None:
    for state in ANSWERABLE:
        assert next_state(state, got(Kind.OUTCOME, ING, False)) is S.PARTIALLY_EXECUTED
        assert next_state(state, got(Kind.OUTCOME, ING, True)) is S.EXECUTED


# --- whole lifecycles ----------------------------------------------------------------------


def test_happy_path_of_the_requesting_side() -> None:
    steps = [
        (CaseEvent.local(LocalEvent.DRAFTED), S.DRAFT),
        (did(Kind.CONSULTATION, ING), S.CONSULTATION),
        (got(Kind.CONSULTATION, ING), S.CONSULTATION),
        (got(Kind.RETRIEVAL, ING), S.CONSULTATION),
        (CaseEvent.local(LocalEvent.DRAFTED), S.CONSULTATION),
        (did(Kind.REQUEST, ING), S.SENT),
        (CaseEvent.local(LocalEvent.DELIVERED), S.DELIVERED),
        (got(Kind.ACKNOWLEDGEMENT, ING), S.ACKNOWLEDGED),
        (got(Kind.STATUS, ING), S.IN_EXECUTION),
        (got(Kind.ADDITIONAL_INFORMATION_REQUEST, ING), S.ADDITIONAL_INFORMATION_REQUESTED),
        (got(Kind.STATUS, ING), S.ADDITIONAL_INFORMATION_REQUESTED),
        (did(Kind.ADDITIONAL_INFORMATION, ING), S.IN_EXECUTION),
        (got(Kind.POSTPONEMENT, ING), S.POSTPONED),
        (got(Kind.STATUS, ING), S.IN_EXECUTION),
        (got(Kind.OUTCOME, ING, final=False), S.PARTIALLY_EXECUTED),
        (got(Kind.ADDITIONAL_INFORMATION_REQUEST, ING), S.ADDITIONAL_INFORMATION_REQUESTED),
        (did(Kind.ADDITIONAL_INFORMATION, ING), S.IN_EXECUTION),
        (got(Kind.OUTCOME, ING, final=True), S.EXECUTED),
        (did(Kind.RETRIEVAL, ING), S.EXECUTED),
    ]
    state = INITIAL_STATE
    for event, after in steps:
        state = next_state(state, event)
        assert state is after, str(event)
    assert replay(event for event, _ in steps) is S.EXECUTED


def test_happy_path_of_the_requested_side() -> None:
    events = [
        got(Kind.CONSULTATION, ED), did(Kind.CONSULTATION, ED), got(Kind.REQUEST, ED),
        did(Kind.ACKNOWLEDGEMENT, ED), did(Kind.STATUS, ED),
        did(Kind.ADDITIONAL_INFORMATION_REQUEST, ED), got(Kind.ADDITIONAL_INFORMATION, ED),
        did(Kind.OUTCOME, ED, final=False), did(Kind.OUTCOME, ED, final=True),
    ]
    states = []
    state = INITIAL_STATE
    for event in events:
        state = next_state(state, event)
        states.append(state)
    assert states == [
        S.CONSULTATION, S.CONSULTATION, S.DELIVERED, S.ACKNOWLEDGED, S.IN_EXECUTION,
        S.ADDITIONAL_INFORMATION_REQUESTED, S.IN_EXECUTION, S.PARTIALLY_EXECUTED, S.EXECUTED,
    ]


@pytest.mark.parametrize(("last", "end"), [
    (got(Kind.REFUSAL, ING), S.REFUSED), (did(Kind.WITHDRAWAL, ING), S.WITHDRAWN),
], ids=["refused", "withdrawn"])
def test_the_other_endings(last: CaseEvent, end: CaseState) -> None:
    start = [did(Kind.REQUEST, ING), CaseEvent.local(LocalEvent.DELIVERED),
             got(Kind.ACKNOWLEDGEMENT, ING), got(Kind.STATUS, ING)]
    assert replay([*start, last]) is end
    assert replay([last], start=S.DELIVERED) is end


def test_replay_stops_at_the_first_illegal_event() -> None:
    with pytest.raises(CaseTransitionInvalid):
        replay([did(Kind.REQUEST, ING), got(Kind.OUTCOME, ING, final=True)])


def test_every_state_is_reachable_and_every_case_can_end() -> None:
    def reachable(start: CaseState) -> set[CaseState]:
        seen, todo = {start}, [start]
        while todo:
            for target in TRANSITIONS[todo.pop()].values():
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    assert reachable(INITIAL_STATE) == set(CaseState)
    for state in NON_TERMINAL:
        assert reachable(state) & TERMINAL_STATES, state
    for state in TERMINAL_STATES:
        assert reachable(state) == {state}


# --- properties ----------------------------------------------------------------------------

events_strategy = st.lists(st.sampled_from(ALL_EVENTS), max_size=40)


@settings(max_examples=400)
@given(st.sampled_from(list(CaseState)), events_strategy)
def test_random_events_never_leave_a_terminal_state(start: CaseState,
                                                    events: list[CaseEvent]) -> None:
    state = start
    for event in events:
        try:
            after = next_state(state, event)
        except CaseTransitionInvalid as exc:  # anything else fails the test
            assert exc.code == "case.transition_invalid"
            continue
        assert after is expected(state, event)
        if state.terminal:
            assert after is state
        state = after


@settings(max_examples=300)
@given(st.data())
def test_random_legal_walks(data: st.DataObject) -> None:
    state = INITIAL_STATE
    for _ in range(30):
        choices = allowed_events(state)
        assert choices  # no state is a dead end: terminal ones still record retrievals
        event = data.draw(st.sampled_from(choices))
        after = next_state(state, event)
        assert after in TRANSITIONS[state].values()
        if state.terminal:
            assert after is state
        state = after


# A message on the wire: its kind, the side that sends it, and (outcomes) whether it is final.
WIRE = [(kind, side, final) for kind in Kind for side in Role
        for final in ((False, True) if kind is Kind.OUTCOME else (None,))]


@settings(max_examples=400)
@given(st.lists(st.one_of(st.sampled_from(WIRE), st.just("drafted")), max_size=30))
def test_both_sides_agree_on_the_state(
    messages: list[tuple[Kind, Role, bool | None] | str],
) -> None:
    """Each node runs the machine from its own side; after each exchange they agree."""
    mine, theirs = INITIAL_STATE, INITIAL_STATE  # requesting node, requested node
    for message in messages:
        if isinstance(message, str):
            if Step.DRAFTED in TRANSITIONS[mine]:
                mine = next_state(mine, CaseEvent.local(LocalEvent.DRAFTED))
            continue
        kind, side, final = message
        sent = CaseEvent.sent(kind, side, final=final)
        received = CaseEvent.received(kind, side.other, final=final)
        sender_state = mine if side is ING else theirs
        try:
            after = next_state(sender_state, sent)
        except CaseTransitionInvalid:
            continue  # a node does not send what its own case refuses
        receiver_state = theirs if side is ING else mine
        after_receipt = next_state(receiver_state, received)
        if side is ING:
            mine, theirs = after, after_receipt
            if mine is S.SENT:
                mine = next_state(mine, CaseEvent.local(LocalEvent.DELIVERED))
        else:
            theirs, mine = after, after_receipt
        assert mine is theirs, f"after {kind.value} from the {side.value} side"


# --- events ---------------------------------------------------------------------------------


def test_event_views() -> None:
    ack = got(Kind.ACKNOWLEDGEMENT, ING)
    assert ack == CaseEvent(Kind.ACKNOWLEDGEMENT, ING, RECEIVED)
    assert ack.actor is ED and not ack.from_requesting
    assert did(Kind.ACKNOWLEDGEMENT, ED).actor is ED
    assert did(Kind.REQUEST, ING).from_requesting
    assert got(Kind.REQUEST, ED).from_requesting
    assert CaseEvent.local(LocalEvent.DELIVERED).actor is ING
    assert str(ack) == "acknowledgement received by the requesting side"
    assert str(did(Kind.OUTCOME, ED, final=False)) == "partial outcome sent by the requested side"
    assert str(CaseEvent.local(LocalEvent.DRAFTED)) == "drafted (recorded by the requesting side)"
    assert step_of(did(Kind.OUTCOME, ED, final=True)) is Step.FINAL_OUTCOME
    assert step_of(got(Kind.REQUEST, ED)) is Step.REQUEST_RECEIVED
    assert ING.other is ED and ED.other is ING


@pytest.mark.parametrize(("build", "why"), [
    (lambda: CaseEvent(Kind.OUTCOME, ED, SENT), "final or partial"),
    (lambda: CaseEvent(Kind.OUTCOME, ED, SENT, 1), "final or partial"),  # type: ignore[arg-type]
    (lambda: CaseEvent(Kind.STATUS, ED, SENT, True), "only an outcome"),
    (lambda: CaseEvent(LocalEvent.DELIVERED, ING, SENT), "has no direction"),
    (lambda: CaseEvent(Kind.STATUS, ED), "needs a direction"),
    (lambda: CaseEvent("status", ED, SENT), "kind"),  # type: ignore[arg-type]
    (lambda: CaseEvent(Kind.STATUS, "requested", SENT), "role"),  # type: ignore[arg-type]
    (lambda: CaseEvent(Kind.STATUS, ED, "sent"), "needs a direction"),  # type: ignore[arg-type]
], ids=["outcome-without-final", "final-not-bool", "final-on-status", "local-with-direction",
        "message-without-direction", "kind-as-string", "role-as-string", "direction-as-string"])
def test_malformed_events_are_refused(build: object, why: str) -> None:
    assert callable(build)
    with pytest.raises(CaseError) as caught:
        build()
    assert caught.value.code == "case.invalid"
    assert why in caught.value.detail


def test_state_names_round_trip() -> None:
    for state in S:
        assert S.from_name(state.value) is state
    with pytest.raises(CaseError):
        S.from_name("lost")
    assert [s.value for s in S] == [
        "draft", "consultation", "sent", "delivered", "acknowledged", "in-execution",
        "additional-information-requested", "postponed", "partially-executed", "executed",
        "refused", "withdrawn",
    ]


def test_allowed_events_by_role() -> None:
    assert allowed_steps(S.DELIVERED) == [
        Step.ACKNOWLEDGEMENT, Step.REFUSAL, Step.WITHDRAWAL, Step.RETRIEVAL,
    ]
    mine = allowed_events(S.DELIVERED, ING)
    assert got(Kind.ACKNOWLEDGEMENT, ING) in mine
    assert did(Kind.WITHDRAWAL, ING) in mine
    assert all(event.role is ING for event in mine)
    assert set(allowed_events(S.DELIVERED)) == set(mine) | set(allowed_events(S.DELIVERED, ED))


# --- deadlines ------------------------------------------------------------------------------

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_the_response_policy() -> None:
    assert set(RESPONSE_TIMES) == set(NON_TERMINAL) - set(BEFORE_REQUEST)
    for response in RESPONSE_TIMES.values():
        assert 0 < response.urgent <= response.normal
    delivered = RESPONSE_TIMES[S.DELIVERED]
    assert delivered.awaited == "acknowledgement" and delivered.owed_by is ED
    assert delivered.normal == 7 * DAY and delivered.urgent == DAY
    assert RESPONSE_TIMES[S.ADDITIONAL_INFORMATION_REQUESTED].owed_by is ING


def test_acknowledgement_overdue_after_a_week_or_a_day_when_urgent() -> None:
    week = T0 + 7 * DAY
    assert not is_overdue(S.DELIVERED, sent_at=T0, now=week)
    assert is_overdue(S.DELIVERED, sent_at=T0, now=week + 1)
    assert due_at(S.DELIVERED, sent_at=T0) == week
    assert not is_overdue(S.DELIVERED, sent_at=T0, now=T0 + DAY, priority=Priority.URGENT)
    assert is_overdue(S.DELIVERED, sent_at=T0, now=T0 + DAY + 1, priority=Priority.URGENT)
    assert is_overdue(S.SENT, sent_at=T0, now=T0 + HOUR + 1, priority=Priority.URGENT)
    assert not is_overdue(S.DELIVERED, sent_at=T0, now=T0 - 10)  # a clock behind is not late


@pytest.mark.parametrize("terminal", ENDINGS, ids=name)
def test_an_ended_case_is_never_overdue(terminal: CaseState) -> None:
    assert due_at(terminal, sent_at=T0, deadline=T0) is None
    assert not is_overdue(terminal, sent_at=T0, deadline=T0, now=T0 + 1000 * DAY)


def test_a_draft_waits_on_nobody_but_its_own_deadline() -> None:
    assert due_at(S.DRAFT, sent_at=T0) is None
    assert not is_overdue(S.CONSULTATION, sent_at=T0, now=T0 + 1000 * DAY)
    assert is_overdue(S.DRAFT, sent_at=T0, deadline=T0 + DAY, now=T0 + DAY + 1)


def test_the_case_deadline_and_the_policy_the_earlier_wins() -> None:
    # The trial is in three days: that beats the 90 days of execution.
    assert due_at(S.IN_EXECUTION, sent_at=T0, deadline=T0 + 3 * DAY) == T0 + 3 * DAY
    assert is_overdue(S.IN_EXECUTION, sent_at=T0, deadline=T0 + 3 * DAY, now=T0 + 4 * DAY)
    # A distant deadline does not excuse a missing acknowledgement.
    assert due_at(S.DELIVERED, sent_at=T0, deadline=T0 + 365 * DAY) == T0 + 7 * DAY


def test_a_policy_of_ones_own() -> None:
    policy = {S.DELIVERED: ResponseTime("acknowledgement", ED, 2 * DAY, HOUR)}
    assert is_overdue(S.DELIVERED, sent_at=T0, now=T0 + 2 * DAY + 1, policy=policy)
    assert not is_overdue(S.IN_EXECUTION, sent_at=T0, now=T0 + 1000 * DAY, policy=policy)
    assert ResponseTime("x", ED, 10, 1).allowance(Priority.URGENT) == 1


@given(st.sampled_from(list(CaseState)), st.integers(0, 2**40), st.integers(0, 2**34),
       st.one_of(st.none(), st.integers(0, 2**40)), st.integers(0, 2**34))
def test_overdue_stays_overdue_and_urgent_is_never_later(
    state: CaseState, sent_at: int, wait: int, deadline: int | None, more: int,
) -> None:
    now = sent_at + wait
    if is_overdue(state, sent_at=sent_at, deadline=deadline, now=now):
        assert is_overdue(state, sent_at=sent_at, deadline=deadline, now=now + more)
        assert is_overdue(state, sent_at=sent_at, deadline=deadline, now=now,
                          priority=Priority.URGENT)
    normal = due_at(state, sent_at=sent_at, deadline=deadline)
    urgent = due_at(state, sent_at=sent_at, deadline=deadline, priority=Priority.URGENT)
    assert (normal is None) == (urgent is None)
    if normal is not None and urgent is not None:
        assert urgent <= normal

"""Casework end to end on running nodes: structured case messages, refusals, illegal steps,
spontaneous information under conditions, the designated receiver's token, retrieval receipts
and the statistics both sides keep.

Every node is real (``federation``: FR:MJ, BR:MJSP, KE:ODPP on loopback over pinned TLS).
Deliveries are waited for with ``eventually``; "nothing queued" is checked by counting the rows
of the sending node's store before and after.
"""

from __future__ import annotations

import asyncio
import json
import time
from base64 import b64decode
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.federation import Federation
from node.local_api import OPERATOR, RECEIVER
from node.node import Node
from node.outbound import Draft, compose
from node.statistics import compute_statistics
from node.store import InboundRecord, OutboundRecord
from protocol.case_message import CONTENT_TYPE as CASE_TYPE
from protocol.case_message import (
    CaseMessage,
    Conditions,
    encode_case_message,
    parse_case_message,
)
from protocol.encoding import canonical_json
from protocol.envelope import envelope_hash
from protocol.errors import (
    CaseConditionsAnswered,
    CaseMessageMalformed,
    CaseTransitionInvalid,
    StoreNotFound,
)
from protocol.kinds import Kind
from protocol.receipt import ReceiptStatus
from protocol.request_package import CONTENT_TYPE as REQUEST_TYPE
from protocol.request_package import check_completeness, parse_request
from tests.integration.kit import (
    BR,
    DELIVERY,
    FR,
    KE,
    MEMBERS,
    eventually,
    outbound_state,
    post_raw,
    snapshot,
    start_federation,
)

REQUESTS = Path(__file__).resolve().parents[2] / "examples" / "requests"


# --- the federation, stopped only once it is quiet -------------------------------------------


async def settled(fed: Federation) -> None:
    """Every outbox empty and no delivery or witness check still running on any node.

    Retrieval receipts and conditions answers are queued as a side effect of reading; stopping
    while one is still in flight can trip the shutdown bug shown by
    ``test_quiescing_while_a_receipt_is_still_being_witnessed_is_clean``.
    """
    async def busy() -> list[str]:
        out = []
        for authority, node in fed.nodes.items():
            if await node.call(node.store.pending_count) or any(
                    not task.done() for task in node.worker._attempts):
                out.append(authority)
        return out

    await eventually(busy, lambda names: not names, what="a quiet federation")


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    """As in conftest.py (FR:MJ, BR:MJSP, KE:ODPP), but let everything in flight finish first."""
    fed = await start_federation(tmp_path, MEMBERS, delivery=DELIVERY)
    try:
        yield fed
        await settled(fed)
    finally:
        await fed.stop()


# --- helpers -------------------------------------------------------------------------------


def package(name: str, ref: str) -> bytes:
    """An example request package whose requesting authority's reference is the case ref."""
    value = json.loads((REQUESTS / f"{name}.json").read_bytes())
    value["requesting_authority"]["reference"] = ref
    return json.dumps(value).encode()


async def request(fed: Federation, ref: str, *, name: str = "mla", sender: str = FR,
                  to: str = BR, override_reason: str = "") -> str:
    record = await fed.nodes[sender].submit(Draft(
        recipient=to, kind=Kind.REQUEST, content_type=REQUEST_TYPE, payload=package(name, ref),
        case=ref, override_reason=override_reason))
    return record.message_id


async def state(node: Node, counterpart: str, ref: str) -> str:
    return str((await node.case(ref, counterpart))["state"])


async def reach(node: Node, counterpart: str, ref: str, expected: str) -> None:
    async def probe() -> str:
        try:
            return await state(node, counterpart, ref)
        except StoreNotFound as exc:  # the case may not exist on that side yet
            return repr(exc)

    await eventually(probe, lambda s: s == expected, what=f"{node.authority} {ref} {expected}")


async def both(fed: Federation, ref: str, expected: str, *, requesting: str = FR,
               requested: str = BR) -> None:
    """The requesting and the requested side both reach ``expected`` for case ``ref``."""
    await reach(fed.nodes[requesting], requested, ref, expected)
    await reach(fed.nodes[requested], requesting, ref, expected)


async def inbound(node: Node, kind: Kind | None = None,
                  in_reply_to: str | None = None) -> list[InboundRecord]:
    rows = await node.call(node.store.inbound, 1000, 0)
    return [r for r in rows if (kind is None or r.kind == kind.value)
            and (in_reply_to is None or r.in_reply_to == in_reply_to)]


async def outbound(node: Node, kind: Kind | None = None,
                   in_reply_to: str | None = None) -> list[OutboundRecord]:
    rows = await node.call(node.store.outbound, 1000, 0)
    return [r for r in rows if (kind is None or r.kind == kind.value)
            and (in_reply_to is None or r.in_reply_to == in_reply_to)]


async def arrived(node: Node, kind: Kind, in_reply_to: str) -> list[InboundRecord]:
    """Wait until ``node`` holds at least one received ``kind`` answering ``in_reply_to``."""
    async def probe() -> list[InboundRecord]:
        return await inbound(node, kind, in_reply_to)

    return await eventually(probe, bool, what=f"{kind.value} for {in_reply_to} at {node.authority}")


async def delivered(node: Node, message_id: str) -> OutboundRecord:
    return await outbound_state(node, message_id, lambda r: r.state == "delivered")


def spontaneous_payload(information: str, conditions: Conditions) -> bytes:
    message = CaseMessage.build(Kind.SPONTANEOUS_INFORMATION, conditions=conditions,
                                information=information)
    return encode_case_message(message)


CONDITIONS = Conditions(
    confidential=True,
    use_restrictions=("intelligence only: not to be used as evidence without consent",),
    designated_receiver="Head of the BEPI",
)


async def spontaneous(fed: Federation, information: str, ref: str = "") -> str:
    """KE sends FR spontaneous information under ``CONDITIONS``; returns once FR holds it."""
    record = await fed.nodes[KE].submit(Draft(
        recipient=FR, kind=Kind.SPONTANEOUS_INFORMATION, content_type=CASE_TYPE,
        payload=spontaneous_payload(information, CONDITIONS), case=ref))
    await delivered(fed.nodes[KE], record.message_id)
    return record.message_id


async def ke_spontaneous_state(fed: Federation, message_id: str) -> str:
    rows = await fed.nodes[KE].spontaneous()
    return next(str(r["state"]) for r in rows if r["message_id"] == message_id)


# --- 1. a full MLA case ----------------------------------------------------------------------


async def test_a_structured_mla_case_runs_to_partial_then_final_execution(
        federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0001"
    req = await request(federation, ref)
    await both(federation, ref, "delivered")

    ack = await br.reply(ref, FR, Kind.ACKNOWLEDGEMENT, {"reference": "BR-2026-1", "note": ""})
    assert ack.in_reply_to == req and ack.case_ref == ref
    assert ack.priority == "urgent"  # the example request is urgent; its answers are too
    await both(federation, ref, "acknowledged")
    assert (await fr.case(ref, BR))["requested_reference"] == "BR-2026-1"

    await br.reply(ref, FR, Kind.STATUS, {"text": "the bank has been served"})
    await both(federation, ref, "in-execution")
    await br.reply(ref, FR, Kind.ADDITIONAL_INFORMATION_REQUEST,
                   {"questions": ["Which accounts at Banco Exemplo?"]})
    await both(federation, ref, "additional-information-requested")
    await fr.reply(ref, BR, Kind.ADDITIONAL_INFORMATION, {"text": "BR15 0000 ... 001C 1"})
    await both(federation, ref, "in-execution")

    await br.reply(ref, FR, Kind.OUTCOME,
                   {"final": False, "summary": "statements of the first account"})
    await both(federation, ref, "partially-executed")
    for node, counterpart in ((fr, BR), (br, FR)):
        assert (await node.case(ref, counterpart))["closed_at"] is None

    await br.reply(ref, FR, Kind.OUTCOME, {"final": True, "summary": "all statements sent"})
    await both(federation, ref, "executed")

    for node, counterpart in ((fr, BR), (br, FR)):
        case = await node.case(ref, counterpart)
        assert case["requested_reference"] == "BR-2026-1"
        assert case["closed_at"] is not None and case["closed_at"] >= case["sent_at"]
        assert case["anomaly"] == ""
        assert not any(e["anomaly"] for e in case["timeline"])
        outcomes = [e["detail"] for e in case["timeline"] if e["kind"] == "outcome"]
        assert outcomes == ["partial: statements of the first account",
                            "final: all statements sent"]
        assert [e["state_after"] for e in case["timeline"]
                if e["kind"] not in ("request", "delivered")] == [
            "acknowledged", "in-execution", "additional-information-requested",
            "in-execution", "partially-executed", "executed"]
    # The request takes BR's case straight to delivered; FR's gets there by the receipt.
    assert [(e["kind"], e["state_after"]) for e in (await fr.case(ref, BR))["timeline"]][:2] \
        == [("request", "sent"), ("delivered", "delivered")]
    assert (await br.case(ref, FR))["timeline"][0]["state_after"] == "delivered"


# --- 2. an acknowledgement names the gaps --------------------------------------------------


async def test_the_acknowledgement_names_the_gaps_of_an_incomplete_request(
        federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0002"
    reason = "the account numbers follow by phone; the freeze cannot wait"
    expected = [g.field for g in check_completeness(parse_request(package("mla-incomplete",
                                                                          ref)))]
    assert expected  # the example really is incomplete
    req = await request(federation, ref, name="mla-incomplete", override_reason=reason)
    await both(federation, ref, "delivered")
    mine = await fr.case(ref, BR)
    assert mine["timeline"][0]["override_reason"] == reason
    assert f"{len(expected)} essential field(s) missing" in mine["timeline"][0]["detail"]
    assert [g["field"] for g in (await br.case(ref, FR))["gaps"]] == expected

    ack = await br.reply(ref, FR, Kind.ACKNOWLEDGEMENT, {"reference": "BR-2026-2", "note": ""})
    assert ack.in_reply_to == req
    await both(federation, ref, "acknowledged")

    # What actually travelled: the acknowledgement FR received names the same fields.
    shown = await fr.read_message(ack.message_id)
    said = parse_case_message(b64decode(shown["payload_b64"]), kind=Kind.ACKNOWLEDGEMENT)
    assert [g.field for g in said["gaps"]] == expected
    assert said["reference"] == "BR-2026-2"
    mine = await fr.case(ref, BR)
    assert [g["field"] for g in mine["gaps"]] == expected
    assert mine["timeline"][0]["override_reason"] == reason
    ack_event = next(e for e in mine["timeline"] if e["kind"] == "acknowledgement")
    assert ack_event["detail"] == (
        f"their reference BR-2026-2; names {len(expected)} missing field(s)")


async def test_an_acknowledgement_of_a_complete_request_names_no_gaps(
        federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0002B"
    await request(federation, ref)
    await both(federation, ref, "delivered")
    ack = await br.reply(ref, FR, Kind.ACKNOWLEDGEMENT, {"reference": "BR-2026-3", "note": ""})
    await both(federation, ref, "acknowledged")
    said = parse_case_message(b64decode((await fr.read_message(ack.message_id))["payload_b64"]))
    assert said["gaps"] == ()
    assert (await fr.case(ref, BR))["gaps"] == []


# --- 3. a refused extradition ----------------------------------------------------------------


async def test_a_refused_extradition_is_closed_for_both_sides(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0003"
    await request(federation, ref, name="extradition")
    await both(federation, ref, "delivered")
    await br.reply(ref, FR, Kind.REFUSAL, {
        "grounds": ["nationality"], "explanation": "the person sought is a Brazilian national"})
    await both(federation, ref, "refused")
    for node, counterpart in ((fr, BR), (br, FR)):
        case = await node.case(ref, counterpart)
        assert case["form"] == "extradition"
        assert case["refusal_grounds"] == ["nationality"]
        assert case["closed_at"] is not None
        assert case["timeline"][-1]["detail"].startswith("grounds: nationality; ")

    before = await snapshot(br)
    with pytest.raises(CaseTransitionInvalid) as refused:
        await br.reply(ref, FR, Kind.OUTCOME, {"final": True, "summary": "surrendered"})
    assert refused.value.code == "case.transition_invalid"
    assert "refused is terminal" in refused.value.detail
    assert await snapshot(br) == before

    before = await snapshot(fr)
    with pytest.raises(CaseTransitionInvalid) as refused:
        await fr.reply(ref, BR, Kind.WITHDRAWAL, {"reason": "no longer needed"})
    assert refused.value.code == "case.transition_invalid"
    assert await snapshot(fr) == before
    for node, counterpart in ((fr, BR), (br, FR)):
        assert await state(node, counterpart, ref) == "refused"


async def test_a_refusal_on_a_forbidden_ground_is_never_built(federation: Federation) -> None:
    """Bank secrecy is no ground (UNTOC art. 18(8)): the reply is refused, nothing queued."""
    br = federation.nodes[BR]
    ref = "FR-CW-0003B"
    await request(federation, ref)
    await both(federation, ref, "delivered")
    before = await snapshot(br)
    with pytest.raises(CaseMessageMalformed) as refused:
        await br.reply(ref, FR, Kind.REFUSAL,
                       {"grounds": ["bank-secrecy"], "explanation": "banking secrecy"})
    assert refused.value.code == "case.message_malformed"
    assert await snapshot(br) == before
    assert await state(br, FR, ref) == "delivered"


# --- 4. illegal steps ------------------------------------------------------------------------


async def test_illegal_steps_are_refused_before_anything_is_queued(
        federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0004"
    await request(federation, ref)
    await both(federation, ref, "delivered")

    # An outcome for a case never acknowledged: not a step of "delivered".
    before = await snapshot(br)
    with pytest.raises(CaseTransitionInvalid) as refused:
        await br.reply(ref, FR, Kind.OUTCOME, {"final": True, "summary": "done"})
    assert refused.value.code == "case.transition_invalid"
    assert "not allowed in state delivered" in refused.value.detail
    assert await snapshot(br) == before

    # A partial outcome is no more allowed there.
    with pytest.raises(CaseTransitionInvalid):
        await br.reply(ref, FR, Kind.OUTCOME, {"final": False, "summary": "some"})
    assert await snapshot(br) == before

    # The requesting side acknowledging its own request: the wrong side, whatever the state.
    before = await snapshot(fr)
    with pytest.raises(CaseTransitionInvalid) as refused:
        await fr.reply(ref, BR, Kind.ACKNOWLEDGEMENT, {"reference": "FR-ACK", "note": ""})
    assert refused.value.code == "case.transition_invalid"
    assert "only the requested side sends acknowledgement" in refused.value.detail
    assert await snapshot(fr) == before

    # Additional information nobody asked for.
    with pytest.raises(CaseTransitionInvalid):
        await fr.reply(ref, BR, Kind.ADDITIONAL_INFORMATION, {"text": "unasked"})
    assert await snapshot(fr) == before

    for node, counterpart in ((fr, BR), (br, FR)):
        case = await node.case(ref, counterpart)
        assert case["state"] == "delivered" and case["anomaly"] == ""


# --- 5. malformed case messages from a peer --------------------------------------------------


def _refusal_bank_secrecy() -> tuple[Kind, str, bytes]:
    return Kind.REFUSAL, CASE_TYPE, canonical_json({
        "v": 1, "kind": "refusal", "grounds": ["bank-secrecy"], "explanation": "secrecy"})


def _kind_mismatch() -> tuple[Kind, str, bytes]:
    # A genuine status message replayed under an outcome envelope.
    status = CaseMessage.build(Kind.STATUS, text="in progress")
    return Kind.OUTCOME, CASE_TYPE, encode_case_message(status)


def _non_canonical() -> tuple[Kind, str, bytes]:
    return Kind.OUTCOME, CASE_TYPE, json.dumps(
        {"v": 1, "kind": "outcome", "final": True, "summary": "done"}, indent=1).encode()


def _missing_field() -> tuple[Kind, str, bytes]:
    return Kind.OUTCOME, CASE_TYPE, canonical_json({"v": 1, "kind": "outcome", "final": True})


MALFORMED = {
    "refusal-bank-secrecy": _refusal_bank_secrecy,
    "body-kind-mismatch": _kind_mismatch,
    "non-canonical-json": _non_canonical,
    "missing-field": _missing_field,
}


@pytest.mark.parametrize("build", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_case_message_from_a_peer_is_refused_and_leaves_no_trace(
        federation: Federation, build: Any) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0005"
    await request(federation, ref)
    await both(federation, ref, "delivered")
    timeline = (await fr.case(ref, BR))["timeline"]

    # BR's node would never build it; sealed by hand with BR's real keys, it reaches FR.
    kind, content_type, payload = build()
    record = compose(Draft(recipient=FR, kind=kind, content_type=content_type, payload=payload,
                           case=ref),
                     authority=BR, keystore=br.keystore, directory=br.directory,
                     archive=br.archive, now=int(time.time()))
    before = await snapshot(fr)
    status, receipt = await post_raw(br.directory, FR, record.envelope)
    assert (status, receipt.code) == (422, "case.message_malformed"), receipt.detail
    assert receipt.status is ReceiptStatus.REJECTED and not receipt.accepted
    assert receipt.receiver_key == fr.keystore.identity.key_id
    assert (receipt.message_id, receipt.sender) == (record.message_id, BR)
    assert receipt.envelope_hash == envelope_hash(record.envelope)
    assert await snapshot(fr) == before
    case = await fr.case(ref, BR)
    assert case["state"] == "delivered" and case["timeline"] == timeline


async def test_spontaneous_information_as_plain_text_is_refused(federation: Federation) -> None:
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    record = compose(Draft(recipient=FR, kind=Kind.SPONTANEOUS_INFORMATION,
                           content_type="text/plain;charset=utf-8",
                           payload=b"no conditions, no structure"),
                     authority=KE, keystore=ke.keystore, directory=ke.directory,
                     archive=ke.archive, now=int(time.time()))
    before = await snapshot(fr)
    status, receipt = await post_raw(ke.directory, FR, record.envelope)
    assert (status, receipt.code) == (422, "case.message_malformed"), receipt.detail
    assert receipt.status is ReceiptStatus.REJECTED
    assert (receipt.message_id, receipt.sender) == (record.message_id, KE)
    assert await snapshot(fr) == before
    assert await fr.spontaneous() == []

    # KE's own node refuses to send it in the first place.
    before = await snapshot(ke)
    with pytest.raises(CaseMessageMalformed):
        await ke.submit(Draft(recipient=FR, kind=Kind.SPONTANEOUS_INFORMATION,
                              content_type="text/plain;charset=utf-8", payload=b"plain"))
    assert await snapshot(ke) == before


# --- 6. spontaneous information under conditions ---------------------------------------------


async def test_spontaneous_information_is_withheld_until_its_conditions_are_accepted(
        federation: Federation) -> None:
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    information = "A courier is expected in Marseille on 3 March with cash from Nairobi."
    sid = await spontaneous(federation, information)
    [sent] = await ke.spontaneous()
    assert (sent["direction"], sent["state"], sent["counterpart"]) == (
        "sent", "awaiting-answer", FR)
    assert sent["conditions"] == CONDITIONS.to_json()

    # The operator sees the conditions only, and opening it so sends no retrieval receipt.
    before = await snapshot(fr)
    shown = await fr.read_message(sid, OPERATOR)
    assert shown["withheld"] is True
    assert shown["conditions"] == CONDITIONS.to_json()
    assert shown["conditions_state"] == "awaiting-answer"
    assert "payload_b64" not in shown and "package_b64" not in shown
    assert information not in json.dumps(shown)
    assert await snapshot(fr) == before
    assert (await fr.call(fr.store.inbound_by_id, sid)).opened_at is None

    # The designated receiver reads it, and that first opening is evidenced to KE.
    shown = await fr.read_message(sid, RECEIVER)
    said = parse_case_message(b64decode(shown["payload_b64"]), kind=Kind.SPONTANEOUS_INFORMATION)
    assert said["information"] == information
    assert said.conditions == CONDITIONS
    [retrieval] = await arrived(ke, Kind.RETRIEVAL, sid)
    assert retrieval.sender == FR
    assert (await ke.read_message(sid))["retrieved_at"] == retrieval.received_at
    assert len(await outbound(fr, Kind.RETRIEVAL, sid)) == 1

    # Still withheld from the operator until FR accepts.
    assert (await fr.read_message(sid, OPERATOR))["withheld"] is True
    answer = await fr.answer_conditions(sid, accepted=True)
    assert (answer.recipient, answer.in_reply_to, answer.kind) == (KE, sid, "conditions-answer")
    shown = await fr.read_message(sid, OPERATOR)
    assert "withheld" not in shown and shown["conditions_state"] == "accepted"
    assert b64decode(shown["payload_b64"]) == spontaneous_payload(information, CONDITIONS)
    assert len(await outbound(fr, Kind.RETRIEVAL, sid)) == 1  # already opened: no second one

    async def ke_state() -> str:
        return await ke_spontaneous_state(federation, sid)

    await eventually(ke_state, lambda s: s == "accepted", what="KE sees the acceptance")
    [mine] = [r for r in await fr.spontaneous() if r["message_id"] == sid]
    [theirs] = [r for r in await ke.spontaneous() if r["message_id"] == sid]
    assert mine["answer_id"] == theirs["answer_id"] == answer.message_id
    assert (mine["direction"], theirs["direction"]) == ("received", "sent")

    # A second answer is refused and queues nothing, whichever way it goes.
    for accepted in (True, False):
        before = await snapshot(fr)
        with pytest.raises(CaseConditionsAnswered) as refused:
            await fr.answer_conditions(sid, accepted=accepted, reason="changed our mind")
        assert refused.value.code == "case.conditions_answered"
        assert await snapshot(fr) == before


async def test_declined_conditions_keep_the_content_withheld(federation: Federation) -> None:
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    sid = await spontaneous(federation, "The account at Banco Exemplo is a mule account.")
    reason = "we cannot keep it from the defence"
    await fr.answer_conditions(sid, accepted=False, reason=reason)
    shown = await fr.read_message(sid, OPERATOR)
    assert shown["withheld"] is True and shown["conditions_state"] == "declined"
    assert "payload_b64" not in shown
    assert (await fr.call(fr.store.inbound_by_id, sid)).opened_at is None

    async def ke_state() -> str:
        return await ke_spontaneous_state(federation, sid)

    await eventually(ke_state, lambda s: s == "declined", what="KE sees the refusal")
    [theirs] = await ke.spontaneous()
    assert theirs["reason"] == reason
    # Once declined, it cannot be accepted after all.
    before = await snapshot(fr)
    with pytest.raises(CaseConditionsAnswered):
        await fr.answer_conditions(sid, accepted=True)
    assert await snapshot(fr) == before
    assert (await fr.read_message(sid, OPERATOR))["withheld"] is True


async def test_answers_that_do_not_fit_leave_the_senders_record_as_it_was(
        federation: Federation) -> None:
    """A second answer, or one from a third authority, reaches KE validly signed; KE keeps the
    envelope (it was receipted) but its record of what FR agreed to does not change."""
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    sid = await spontaneous(federation, "The vessel changes its flag in Djibouti.")
    first = await fr.answer_conditions(sid, accepted=True)

    async def ke_state() -> str:
        return await ke_spontaneous_state(federation, sid)

    await eventually(ke_state, lambda s: s == "accepted", what="KE sees the acceptance")
    payload = encode_case_message(CaseMessage.build(Kind.CONDITIONS_ANSWER, accepted=False,
                                                    reason="on second thoughts"))
    for sender in (fr, br):  # FR going back on its word; BR answering for FR
        record = compose(Draft(recipient=KE, kind=Kind.CONDITIONS_ANSWER, content_type=CASE_TYPE,
                               payload=payload, in_reply_to=sid),
                         authority=sender.authority, keystore=sender.keystore,
                         directory=sender.directory, archive=sender.archive,
                         now=int(time.time()))
        status, receipt = await post_raw(sender.directory, KE, record.envelope)
        assert (status, receipt.accepted) == (200, True)
        [theirs] = await ke.spontaneous()
        assert (theirs["state"], theirs["answer_id"], theirs["counterpart"]) == (
            "accepted", first.message_id, FR)


# --- 7. the designated receiver's token over HTTP --------------------------------------------


def token(path: Path) -> str:
    return path.read_text("ascii").strip()


async def api(node: Node, method: str, path: str, auth: str | None,
              body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {} if auth is None else {"Authorization": f"Bearer {auth}"}
    url = f"http://127.0.0.1:{node.api_port}/api/v1{path}"
    async with aiohttp.ClientSession() as session, session.request(
            method, url, json=body, headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_the_designated_receivers_token_reads_and_answers_only(
        federation: Federation) -> None:
    fr = federation.nodes[FR]
    receiver, operator = token(fr.config.receiver_token_path), token(fr.config.api_token_path)
    assert receiver and receiver != operator
    information = "Two containers of precursors leave Mombasa for Le Havre next week."
    sid = await spontaneous(federation, information)

    status, shown = await api(fr, "GET", f"/messages/{sid}", operator)
    assert status == 200 and shown["withheld"] is True and "payload_b64" not in shown
    status, shown = await api(fr, "GET", f"/messages/{sid}", receiver)
    assert status == 200 and "withheld" not in shown
    said = parse_case_message(b64decode(shown["payload_b64"]))
    assert said["information"] == information
    [evidence] = await outbound(fr, Kind.RETRIEVAL, sid)  # the receiver's reading is evidenced
    await delivered(fr, evidence.message_id)
    status, listed = await api(fr, "GET", "/spontaneous", receiver)
    assert status == 200 and [r["message_id"] for r in listed["spontaneous"]] == [sid]

    before = await snapshot(fr)
    refused = [
        ("POST", "/messages", receiver, {"to": BR, "kind": "request", "payload": "x"}),
        ("GET", "/cases", receiver, None),
        ("GET", "/statistics/cases", receiver, None),
        ("GET", "/status", receiver, None),
        ("POST", f"/cases/{sid}/messages", receiver, {"kind": "status", "with": KE,
                                                      "fields": {"text": "x"}}),
        ("GET", f"/messages/{sid}", None, None),
        ("POST", f"/spontaneous/{sid}/answer", None, {"accepted": True}),
        ("GET", f"/messages/{sid}", "not-the-token", None),
    ]
    for method, path, auth, body in refused:
        status, answer = await api(fr, method, path, auth, body)
        assert (status, answer["error"]["code"]) == (401, "api.unauthorized"), (method, path)
    assert await snapshot(fr) == before

    status, answer = await api(fr, "POST", f"/spontaneous/{sid}/answer", receiver,
                               {"accepted": True, "reason": ""})
    assert status == 202, answer
    assert (answer["to"], answer["kind"], answer["in_reply_to"]) == (KE, "conditions-answer",
                                                                    sid)
    status, shown = await api(fr, "GET", f"/messages/{sid}", operator)
    assert status == 200 and "withheld" not in shown and shown["conditions_state"] == "accepted"

    async def ke_state() -> str:
        return await ke_spontaneous_state(federation, sid)

    await eventually(ke_state, lambda s: s == "accepted", what="KE sees the acceptance")
    status, answer = await api(fr, "POST", f"/spontaneous/{sid}/answer", receiver,
                               {"accepted": False})
    assert (status, answer["error"]["code"]) == (400, "case.conditions_answered")
    assert len(await outbound(fr, Kind.CONDITIONS_ANSWER, sid)) == 1


# --- 8. retrieval receipts -------------------------------------------------------------------


async def test_the_first_reading_of_a_request_is_evidenced_once(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0008"
    req = await request(federation, ref)
    await both(federation, ref, "delivered")
    sent = await fr.read_message(req)
    assert sent["retrieved_at"] is None

    opened = await br.read_message(req)
    assert opened["opened_at"] is None  # as it was before this reading
    [record] = await outbound(br, Kind.RETRIEVAL, req)
    [retrieval] = await arrived(fr, Kind.RETRIEVAL, req)
    assert (retrieval.sender, retrieval.case_ref, retrieval.message_id) == (
        BR, ref, record.message_id)
    evidence = parse_case_message(
        b64decode((await fr.read_message(retrieval.message_id))["payload_b64"]),
        kind=Kind.RETRIEVAL)
    request_record = await fr.call(fr.store.outbound_by_id, req)
    assert evidence["message_id"] == req
    assert evidence["envelope"] == request_record.envelope_hash
    opened_at = (await br.call(br.store.inbound_by_id, req)).opened_at
    assert opened_at is not None and evidence["opened_at"] == opened_at

    case = await fr.case(ref, BR)
    events = [e for e in case["timeline"] if e["kind"] == "retrieval"]
    assert len(events) == 1
    assert (events[0]["direction"], events[0]["message_id"]) == ("received", retrieval.message_id)
    assert events[0]["detail"] == f"opened {req}"
    assert case["state"] == "delivered"  # evidence never moves a case
    assert (await fr.read_message(req))["retrieved_at"] == retrieval.received_at

    # Reading it again, or FR reading the receipt itself, sends no further evidence.
    before = await snapshot(br)
    again = await br.read_message(req)
    assert again["opened_at"] == opened_at
    assert await snapshot(br) == before
    assert len(await outbound(fr, Kind.RETRIEVAL)) == 0
    await delivered(br, record.message_id)
    assert len(await inbound(fr, Kind.RETRIEVAL)) == 1


async def test_opening_a_message_of_an_anomalous_case_is_evidenced_too(
        federation: Federation) -> None:
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    # A status about a case FR never had (KE's node would refuse to send it; sealed by hand).
    record = compose(Draft(recipient=FR, kind=Kind.STATUS, content_type="text/plain",
                           payload=b"the hearing is set", case="KE-UNKNOWN-1"),
                     authority=KE, keystore=ke.keystore, directory=ke.directory,
                     archive=ke.archive, now=int(time.time()))
    status, receipt = await post_raw(ke.directory, FR, record.envelope)
    assert (status, receipt.accepted) == (200, True)
    case = await fr.case("KE-UNKNOWN-1", KE)
    assert case["state"] == "draft" and case["anomaly"]

    await fr.read_message(record.message_id)
    assert (await fr.call(fr.store.inbound_by_id, record.message_id)).opened_at is not None
    assert len(await outbound(fr, Kind.RETRIEVAL, record.message_id)) == 1


async def test_a_reply_does_not_answer_a_retrieval_receipt(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    ref = "FR-CW-0008B"
    req = await request(federation, ref)
    await both(federation, ref, "delivered")
    ack = await br.reply(ref, FR, Kind.ACKNOWLEDGEMENT, {"reference": "BR-2026-8", "note": ""})
    assert ack.in_reply_to == req
    await both(federation, ref, "acknowledged")
    await fr.read_message(ack.message_id)  # FR's node evidences the opening to BR
    [evidence] = await arrived(br, Kind.RETRIEVAL, ack.message_id)
    update = await br.reply(ref, FR, Kind.STATUS, {"text": "the bank has been served"})
    assert update.in_reply_to != evidence.message_id
    assert update.in_reply_to == req


async def test_quiescing_while_a_receipt_is_still_being_witnessed_is_clean(
        federation: Federation) -> None:
    fr = federation.nodes[FR]
    first = await fr.submit(Draft(recipient=BR, kind=Kind.STATUS, content_type="text/plain",
                                  payload=b"first"))
    await delivered(fr, first.message_id)

    async def view() -> object:
        return await fr.call(fr.witness.store.view, BR)

    await eventually(view, lambda v: v is not None, what="FR's view of BR's log")

    # Hold the witness check of the next receipt at its start, as a slow peer would.
    entered, release = asyncio.Event(), asyncio.Event()
    check = fr.worker.on_checkpoint
    assert check is not None

    async def held(peer: str, proof: bytes) -> None:
        entered.set()
        await release.wait()
        await check(peer, proof)

    fr.worker.on_checkpoint = held
    second = await fr.submit(Draft(recipient=BR, kind=Kind.STATUS, content_type="text/plain",
                                   payload=b"second"))
    await delivered(fr, second.message_id)
    await asyncio.wait_for(entered.wait(), 10)

    stopping = asyncio.create_task(fr.quiesce())
    await asyncio.sleep(0.2)  # the witness has stopped; the worker waits for its tasks
    release.set()
    await asyncio.wait_for(stopping, 10)


# --- 9. statistics through real nodes --------------------------------------------------------


def breakdown(stats: Any, dimension: str, direction: str) -> dict[str, int]:
    return dict(stats.breakdowns[dimension][direction])


async def test_statistics_count_what_both_sides_did(federation: Federation) -> None:
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    # FR -> BR: executed, refused, withdrawn, pending; FR -> KE: pending; KE -> FR: refused.
    cases = {"FR-ST-EXE": "mla", "FR-ST-REF": "extradition", "FR-ST-WDR": "confiscation",
             "FR-ST-PEN": "mla"}
    for ref, name in cases.items():
        await request(federation, ref, name=name)
    await request(federation, "FR-ST-KE", to=KE)
    await request(federation, "KE-ST-1", name="transfer-of-proceedings", sender=KE, to=FR)
    for ref in cases:
        await both(federation, ref, "delivered")
    await both(federation, "FR-ST-KE", "delivered", requested=KE)
    await both(federation, "KE-ST-1", "delivered", requesting=KE, requested=FR)

    await br.reply("FR-ST-EXE", FR, Kind.ACKNOWLEDGEMENT, {"reference": "BR-E", "note": ""})
    await both(federation, "FR-ST-EXE", "acknowledged")  # so the outcome cannot overtake it
    await br.reply("FR-ST-EXE", FR, Kind.OUTCOME, {"final": True, "summary": "done"})
    await br.reply("FR-ST-REF", FR, Kind.REFUSAL,
                   {"grounds": ["nationality", "death-penalty"], "explanation": "national"})
    await fr.reply("FR-ST-WDR", BR, Kind.WITHDRAWAL, {"reason": "the suspect was arrested"})
    await br.reply("FR-ST-PEN", FR, Kind.ACKNOWLEDGEMENT, {"reference": "BR-P", "note": ""})
    await fr.reply("KE-ST-1", KE, Kind.REFUSAL,
                   {"grounds": ["ne-bis-in-idem"], "explanation": "already tried in Paris"})
    for ref, final in (("FR-ST-EXE", "executed"), ("FR-ST-REF", "refused"),
                       ("FR-ST-WDR", "withdrawn"), ("FR-ST-PEN", "acknowledged")):
        await both(federation, ref, final)
    await both(federation, "KE-ST-1", "refused", requesting=KE, requested=FR)

    mine = compute_statistics(await fr.statistics())
    assert mine.total == {"outgoing": 5, "incoming": 1}
    assert breakdown(mine, "outcome", "outgoing") == {
        "executed": 1, "refused": 1, "withdrawn": 1, "pending": 2}
    assert breakdown(mine, "country", "outgoing") == {"BR": 4, "KE": 1}
    assert breakdown(mine, "form", "outgoing") == {"mla": 3, "extradition": 1,
                                                   "confiscation": 1}
    assert breakdown(mine, "refusal_grounds", "outgoing") == {"nationality": 1,
                                                              "death-penalty": 1}
    assert breakdown(mine, "outcome", "incoming") == {"refused": 1}
    assert breakdown(mine, "country", "incoming") == {"KE": 1}
    assert breakdown(mine, "refusal_grounds", "incoming") == {"ne-bis-in-idem": 1}
    assert mine.durations["all"]["outgoing"].count == 1
    assert mine.durations["all"]["incoming"].count == 0

    theirs = compute_statistics(await br.statistics())
    assert theirs.total == {"outgoing": 0, "incoming": 4}
    assert breakdown(theirs, "outcome", "incoming") == {
        "executed": 1, "refused": 1, "withdrawn": 1, "pending": 1}
    assert breakdown(theirs, "country", "incoming") == {"FR": 4}
    assert breakdown(theirs, "form", "incoming") == {"mla": 2, "extradition": 1,
                                                     "confiscation": 1}
    assert breakdown(theirs, "refusal_grounds", "incoming") == {"nationality": 1,
                                                                "death-penalty": 1}
    assert theirs.durations["all"]["incoming"].count == 1
    assert all(not rows for rows in (theirs.breakdowns[d]["outgoing"]
                                     for d in theirs.breakdowns))

    kenya = compute_statistics(await ke.statistics())
    assert kenya.total == {"outgoing": 1, "incoming": 1}
    assert breakdown(kenya, "outcome", "outgoing") == {"refused": 1}
    assert breakdown(kenya, "refusal_grounds", "outgoing") == {"ne-bis-in-idem": 1}
    assert breakdown(kenya, "country", "incoming") == {"FR": 1}
    assert breakdown(kenya, "outcome", "incoming") == {"pending": 1}

"""Case tracking on running nodes: both sides follow the same case through the same messages."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import time
from pathlib import Path
from typing import Any

import pytest

from node.audit_bundle import verify_bundle
from node.cli import main
from node.federation import Federation, Member
from node.node import Node
from node.outbound import Draft, Override, compose
from protocol.errors import (
    CaseTransitionInvalid,
    PackageIncomplete,
    PackageLanguageNotAccepted,
    StoreNotFound,
)
from protocol.kinds import Kind
from protocol.request_package import CONTENT_TYPE, check_completeness, parse_request
from tests.integration.kit import (
    BR,
    DELIVERY,
    FR,
    KE,
    eventually,
    log_entries,
    pins,
    post_raw,
    snapshot,
    start_federation,
)

REQUESTS = Path(__file__).resolve().parents[2] / "examples" / "requests"
CASE = "FR-2025-0042"


def package(name: str) -> bytes:
    return (REQUESTS / f"{name}.json").read_bytes()


async def overrides(node: Node) -> list[dict[str, Any]]:
    """The check-overridden entries of the node's audit log."""
    return [fields for kind, fields in await log_entries(node) if kind == "check-overridden"]


async def state(node: Node, counterpart: str, ref: str = CASE) -> str:
    return str((await node.case(ref, counterpart))["state"])


async def reach(node: Node, counterpart: str, expected: str, ref: str = CASE) -> None:
    async def probe() -> str:
        try:
            return await state(node, counterpart, ref)
        except StoreNotFound as exc:  # the case may not exist on that side yet
            return repr(exc)

    await eventually(probe, lambda s: s == expected, what=f"{node.authority} {ref} {expected}")


async def both(fed: Federation, expected: str) -> None:
    """The requesting side (FR) and the requested side (BR) both reach ``expected``."""
    await reach(fed.nodes[FR], BR, expected)
    await reach(fed.nodes[BR], FR, expected)


async def send(node: Node, to: str, kind: Kind, text: str = "", ref: str = CASE) -> str:
    draft = Draft(recipient=to, kind=kind, content_type="text/plain;charset=utf-8",
                  payload=(text or kind.value).encode(), case=ref)
    return (await node.submit(draft)).message_id


async def request(fed: Federation, ref: str = CASE) -> str:
    fr = fed.nodes[FR]
    record = await fr.submit(Draft(recipient=BR, kind=Kind.REQUEST, content_type=CONTENT_TYPE,
                                   payload=package("mla"), case=ref))
    return record.message_id


async def run_cli(*argv: str) -> tuple[int, str, str]:
    def call() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
        return status, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(call)


async def test_a_full_mla_case_moves_both_sides_in_step(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await request(federation)
    assert await state(fr, BR) in ("sent", "delivered")  # the receipt may already be back
    await both(federation, "delivered")
    mine = await fr.case(CASE, BR)
    assert (mine["role"], mine["form"], mine["urgent"]) == ("requesting", "mla", True)
    assert (await br.case(CASE, FR))["role"] == "requested"
    assert [e["kind"] for e in mine["timeline"]] == ["request", "delivered"]

    await send(br, FR, Kind.ACKNOWLEDGEMENT)
    assert await state(br, FR) == "acknowledged"
    await both(federation, "acknowledged")
    await send(br, FR, Kind.STATUS)
    await both(federation, "in-execution")
    await send(br, FR, Kind.ADDITIONAL_INFORMATION_REQUEST, "which account?")
    await both(federation, "additional-information-requested")
    await send(fr, BR, Kind.ADDITIONAL_INFORMATION, "account BR15...")
    await both(federation, "in-execution")
    await send(br, FR, Kind.OUTCOME, "bank statements attached")
    await both(federation, "executed")

    for node, counterpart in ((fr, BR), (br, FR)):
        case = await node.case(CASE, counterpart)
        assert case["anomaly"] == "" and case["overdue"] is False and case["due_at"] is None
        assert not any(e["anomaly"] for e in case["timeline"])
    assert [e["state_after"] for e in (await br.case(CASE, FR))["timeline"]] == [
        "delivered", "acknowledged", "in-execution", "additional-information-requested",
        "in-execution", "executed"]

    # Withdrawing an executed case is refused before anything is queued.
    before = await snapshot(fr)
    with pytest.raises(CaseTransitionInvalid, match="executed is terminal"):
        await send(fr, BR, Kind.WITHDRAWAL)
    assert await snapshot(fr) == before
    assert await state(fr, BR) == "executed"


async def test_an_outcome_from_the_requesting_side_is_refused(federation: Federation) -> None:
    fr = federation.nodes[FR]
    await request(federation)
    await both(federation, "delivered")
    before = await snapshot(fr)
    with pytest.raises(CaseTransitionInvalid) as refused:
        await send(fr, BR, Kind.OUTCOME)
    assert refused.value.code == "case.transition_invalid"
    assert "only the requested side sends outcome" in refused.value.detail
    assert await snapshot(fr) == before
    assert [e["kind"] for e in (await fr.case(CASE, BR))["timeline"]] == ["request",
                                                                         "delivered"]


async def test_an_illegal_inbound_message_is_kept_and_noted(federation: Federation) -> None:
    """A valid envelope that breaks its case's rules is stored and receipted; the case notes it."""
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    # KE's own node would refuse to send it; sealed by hand, it reaches FR all the same.
    record = compose(Draft(recipient=FR, kind=Kind.ACKNOWLEDGEMENT, content_type="text/plain",
                           payload=b"ack", case="FR-NEVER"),
                     authority=KE, keystore=ke.keystore, directory=ke.directory,
                     archive=ke.archive, now=int(time.time()))
    status, receipt = await post_raw(ke.directory, FR, record.envelope)
    assert (status, receipt.accepted) == (200, True)
    assert (await fr.call(fr.store.inbound_by_id, record.message_id)).case_ref == "FR-NEVER"
    case = await fr.case("FR-NEVER", KE)
    assert case["state"] == "draft" and "only the requested side" in case["anomaly"]
    assert case["timeline"][0]["anomaly"] == case["anomaly"]


async def test_an_incomplete_request_needs_a_recorded_reason(federation: Federation) -> None:
    """The reason is kept in the case book; the override, with the reason's digest, in the log,
    which an auditor reads offline from the bundle."""
    fr = federation.nodes[FR]
    before, logged = await snapshot(fr), await fr.call(fr.store.audit.size)
    draft = Draft(recipient=BR, kind=Kind.REQUEST, content_type=CONTENT_TYPE,
                  payload=package("mla-incomplete"), case="FR-INC-1")
    with pytest.raises(PackageIncomplete) as refused:
        await fr.submit(draft)
    assert refused.value.code == "package.incomplete"
    assert await snapshot(fr) == before
    assert await fr.call(fr.store.audit.size) == logged
    assert await fr.cases() == []

    reason = "the account numbers follow by phone; the freeze cannot wait"
    record = await fr.submit(dataclasses.replace(draft, override_reason=reason))
    case = await fr.case("FR-INC-1", BR)
    assert case["timeline"][0]["override_reason"] == reason
    gaps = len(check_completeness(parse_request(package("mla-incomplete"))))
    digest = hashlib.sha256(reason.encode()).hexdigest()
    assert await overrides(fr) == [{
        "envelope": record.envelope_hash, "id": record.message_id, "to": BR, "gaps": gaps,
        "language": "accepted", "reason": digest, "by": "token:operator",
        "at": record.created}]
    await reach(federation.nodes[BR], FR, "delivered", "FR-INC-1")
    await reach(fr, BR, "delivered", "FR-INC-1")

    report = verify_bundle(await fr.export_bundle(), *pins(federation))
    assert report.ok, report.text()
    assert "1 of them over the checks before sending" in report.text()
    assert (f"{record.message_id} to {BR} (sent with {gaps} gap(s) by token:operator, "
            f"reason SHA-256 {digest}): accepted") in report.text()


async def test_an_override_logged_for_a_message_never_sent_is_a_problem(
        federation: Federation) -> None:
    """The auditor is told of an override entry that no sent envelope matches."""
    fr = federation.nodes[FR]
    stray = Override("no such message", 3, True, "token:operator")
    record = compose(Draft(recipient=BR, kind=Kind.REQUEST, content_type="text/plain",
                           payload=b"never queued"),
                     authority=FR, keystore=fr.keystore, directory=fr.directory,
                     archive=fr.archive, now=int(time.time()))

    def append() -> None:
        with fr.store.transaction():
            kind, entry = stray.entry(record, record.created)
            fr.store.audit.append(kind, entry, record.created)

    await fr.call(append)
    report = verify_bundle(await fr.export_bundle(), *pins(federation))
    assert [p for p in report.problems if "override" in p] == [
        f"an override is logged for {record.message_id}, which the log does not show as sent"]


async def test_the_cli_lists_cases_and_shows_a_timeline(federation: Federation) -> None:
    await request(federation)
    await both(federation, "delivered")
    home = str(federation.home(FR))
    status, out, err = await run_cli("cases", "--home", home)
    assert status == 0, err
    header, line = out.strip().splitlines()
    assert header.split()[:5] == ["REF", "COUNTERPART", "ROLE", "STATE", "SINCE"]
    assert line.split()[:4] == [CASE, BR, "requesting", "delivered"]
    assert "OVERDUE" in line  # the example's deadline (2025-07-15) has passed
    assert line.split()[-3:-1] == ["2025-07-16", "00:00"]  # due: the end of that day, UTC

    # As a monitoring check: the overdue list, and exit status 1 naming the case.
    status, out, err = await run_cli("cases", "--overdue", "--home", home)
    assert status == 1 and CASE in out
    assert err.startswith("error: case.overdue") and f"{CASE} with {BR}" in err
    status, out, err = await run_cli("cases", "--overdue", "--home", str(federation.home(KE)))
    assert (status, out.strip()) == (0, "no overdue cases"), err

    status, out, err = await run_cli("case", "show", CASE, "--with", BR, "--home", home)
    assert status == 0, err
    assert f"case {CASE} with {BR}: requesting side, delivered" in out
    assert "request" in out and "-> delivered" in out

    status, out, err = await run_cli("case", "show", "NOPE", "--with", BR, "--home", home)
    assert status == 1 and err.startswith("error: store.not_found")

    status, out, err = await run_cli(
        "send", "--home", home, "--to", BR, "--kind", "outcome", "--text", "x", "--case", CASE)
    assert status == 1 and err.startswith("error: case.transition_invalid"), err


async def test_a_request_in_a_language_the_recipient_does_not_accept_needs_a_reason(
        tmp_path: Path) -> None:
    """The node flags it before sending, from the recipient's record in the signed directory."""
    members = (Member(FR, "Ministère de la Justice", {"languages": ["fr", "en"]}),
               Member(BR, "Ministério da Justiça", {"languages": ["pt", "es"]}))
    fed = await start_federation(tmp_path, members, delivery=DELIVERY)
    try:
        fr = fed.nodes[FR]
        before = await snapshot(fr)
        draft = Draft(recipient=BR, kind=Kind.REQUEST, content_type=CONTENT_TYPE,
                      payload=package("mla"), case="BEPI 2025/0142")
        with pytest.raises(PackageLanguageNotAccepted) as refused:
            await fr.submit(draft)
        assert refused.value.code == "package.language_not_accepted"
        assert "'en'" in refused.value.detail and "pt" in refused.value.detail
        assert await snapshot(fr) == before
        assert await fr.cases() == []

        reason = "Brazil agreed by phone to take it in English; translation follows"
        record = await fr.submit(dataclasses.replace(draft, override_reason=reason,
                                                     by="user:c.martin"))
        case = await fr.case("BEPI 2025/0142", BR)
        assert case["timeline"][0]["override_reason"] == reason
        assert [(f["id"], f["gaps"], f["language"], f["by"]) for f in await overrides(fr)] == [
            (record.message_id, 0, "not-accepted", "user:c.martin")]
        await reach(fed.nodes[BR], FR, "delivered", "BEPI 2025/0142")
    finally:
        await fed.stop()

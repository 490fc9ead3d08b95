"""Faults with real node processes, short mode of ``scripts/faults.py`` (issue #7).

Two runs of 300 envelopes, each in a fresh two-node federation of ``python -m node serve``
processes: one kills the sender with SIGKILL while batch submits are in flight, the other kills
the receiver in the middle of the exchange; each is restarted from its folder. After each,
everything acknowledged was delivered exactly once, an item whose submit call died with the
sender is either journalled and delivered once or nowhere, every receipt the sender holds is
the receiver's byte for byte and verifies against the signed directory, both audit bundles
verify offline and no witness raised an alarm. The long mode (20 runs of 2,000 envelopes,
random kill points, a 30 s outage, double kills) is ``python scripts/faults.py``.

The second test also shows the checks are not vacuous: a message removed at the receiver and a
receipt altered at the sender after a clean run are both reported.

Three more runs disturb the receiver while part of the envelopes is still to come (the rest
is submitted once the fault is in place): frozen with SIGSTOP for 8 s then thawed with
SIGCONT (a hung peer); restarted with its clock ten minutes behind (every envelope is refused
with a signed ``envelope.clock_skew``, retried, and only accepted once the clock is right);
restarted with a TLS certificate that no directory names (the sender will not deliver through
the pin mismatch until a new directory with the new pin is adopted). In each, nothing is
accepted out of turn, and afterwards nothing is lost or accepted twice.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from keys.directory import verify_directory
from node.federation import Federation, Member
from node.tls import certificate_fingerprint
from tests.integration.kit import load_script

ENVELOPES = 300
faults = load_script("faults")


def _assert_clean(result: Any) -> None:  # a faults.RunResult
    assert result.problems == [], "\n".join(result.problems[:20])
    assert (result.lost, result.duplicated, result.spurious, result.alarms) == (0, 0, 0, 0)
    assert len(result.injected) == 1 and not result.skipped
    assert result.acked == ENVELOPES
    assert not result.unknown or result.injected[0].fault.kind == "kill"
    assert result.exchanged == ENVELOPES + result.unknown_journalled
    assert result.receipts_verified == result.receipts_expected == result.exchanged
    assert result.bundles_verified == 2


@pytest.mark.slow
def test_sender_killed_with_submits_in_flight_loses_nothing_and_accepts_nothing_twice(
        tmp_path: Path) -> None:
    plan = [faults.Fault("sender", "submitted", 0.3, 0.5)]
    result = asyncio.run(faults.run_once(1, ENVELOPES, plan, tmp_path, per_call=25))
    _assert_clean(result)
    killed = result.injected[0]
    assert killed.submitted < ENVELOPES, "the kill must land while items are being submitted"
    assert result.failed_calls >= 1 and result.unknown >= 25
    assert 0 <= result.unknown_journalled <= result.unknown


@pytest.mark.slow
def test_receiver_killed_mid_exchange_loses_nothing_and_checks_catch_tampering(
        tmp_path: Path) -> None:
    plan = [faults.Fault("receiver", "accepted", 0.3, 0.5)]
    result = asyncio.run(faults.run_once(2, ENVELOPES, plan, tmp_path))
    _assert_clean(result)
    assert 0 < result.injected[0].accepted < ENVELOPES, "the kill must land mid-exchange"
    assert result.failed_calls == 0

    # The same checks, after one message is removed at the receiver and one receipt altered
    # at the sender, report both.
    evidence = result.evidence
    assert evidence is not None
    with sqlite3.connect(evidence.receiver.database_path) as db:
        gone = db.execute("SELECT message_id FROM messages_in LIMIT 1").fetchone()[0]
        db.execute("DELETE FROM messages_in WHERE message_id = ?", [gone])
    with sqlite3.connect(evidence.sender.database_path) as db:
        rowid, data = db.execute("SELECT rowid, receipt FROM receipts WHERE direction = "
                                 "'received' ORDER BY rowid DESC LIMIT 1").fetchone()
        db.execute("UPDATE receipts SET receipt = ? WHERE rowid = ?",
                   [bytes(data) + b"\x00", rowid])
    again = faults.RunResult(2, ENVELOPES)
    faults.check(again, evidence)
    assert again.lost == 1
    assert any(gone in p and "lost" in p for p in again.problems)
    assert any("not the one the receiver stored" in p for p in again.problems)
    assert again.receipts_verified == result.receipts_verified - 1


def _disturbed(tmp_path: Path, kind: str, pause: float) -> tuple[Any, Any]:
    """A clean run of ``ENVELOPES`` whose receiver met one ``kind`` fault with 150 to come:
    the ``faults.Injected`` and the run's ``faults.Evidence``."""
    plan = [faults.Fault("receiver", "submitted", 0.5, pause, kind)]
    result = asyncio.run(faults.run_once(3, ENVELOPES, plan, tmp_path, per_call=25))
    _assert_clean(result)
    injected = result.injected[0]
    assert injected.submitted == ENVELOPES // 2, "the rest is submitted once the fault is in"
    assert injected.down >= pause
    assert result.failed_calls == 0
    return injected, result.evidence


@pytest.mark.slow
def test_receiver_frozen_with_sigstop_then_thawed_loses_nothing_and_accepts_nothing_twice(
        tmp_path: Path) -> None:
    injected, _ = _disturbed(tmp_path, "freeze", 8.0)
    # After 8 s the envelopes submitted meanwhile were all still waiting for the frozen
    # receiver, and it took them all once thawed.
    assert injected.seen.held_back >= ENVELOPES // 2


@pytest.mark.slow
def test_receiver_clock_behind_refuses_with_a_signed_skew_error_then_takes_everything(
        tmp_path: Path) -> None:
    injected, _ = _disturbed(tmp_path, "skew", 4.0)
    # Every envelope submitted meanwhile was refused (envelope.clock_skew, a signed refusal
    # the sender verified before retrying) until the end, none was accepted with the wrong clock,
    # and all of them were delivered once the clock was right (``_assert_clean``).
    assert injected.seen.held_back >= ENVELOPES // 2
    assert injected.seen.accepted_during == 0


@pytest.mark.slow
def test_receiver_with_an_unlisted_tls_certificate_gets_nothing_until_the_new_pin_is_published(
        tmp_path: Path) -> None:
    injected, evidence = _disturbed(tmp_path, "tls", 4.0)
    assert injected.seen.held_back >= ENVELOPES // 2  # transport.tls_pin_mismatch, still queued
    assert injected.seen.accepted_during == 0
    # Both nodes adopted the new directory, which pins the certificate the receiver now uses
    # instead of the one the first directory pinned.
    federation = evidence.federation
    fingerprint = certificate_fingerprint(evidence.receiver.cert_path)
    with sqlite3.connect(evidence.sender.database_path) as db:
        first = db.execute("SELECT file FROM directories WHERE serial = 1").fetchone()[0]
    pins = [key.public_raw for key in federation.secretariat]
    old = verify_directory(bytes(first), pins, federation.threshold)
    assert old.record("XB:MOJ").tls_fingerprint != fingerprint
    for config in (evidence.sender, evidence.receiver):
        directory = faults.signed_directory(federation, config)
        assert directory.serial == 2
        assert directory.record("XB:MOJ").tls_fingerprint == fingerprint


@pytest.mark.slow
def test_a_sender_whose_clock_steps_back_retries_at_once_not_after_the_step(
        tmp_path: Path) -> None:
    """Retries are scheduled on the wall clock; after it steps back ten minutes (a corrected
    clock, a restored VM) they must not wait the ten minutes out."""
    async def scenario() -> list[tuple[Any, ...]]:
        fed = Federation.create(tmp_path / "nodes", [Member("XA:MOJ", "A"),
                                                     Member("XB:MOJ", "B")],
                                delivery=faults.DELIVERY)
        sender = faults.NodeProcess(fed.home("XA:MOJ"), "XA:MOJ", tmp_path / "a.log")
        receiver = faults.NodeProcess(fed.home("XB:MOJ"), "XB:MOJ", tmp_path / "b.log")
        database = sender.config.database_path
        async with aiohttp.ClientSession() as session:
            try:
                sender.start()
                await sender.wait_listening(session)
                answers = await faults.submit_batch(
                    session, sender, [(f"step-{i}", "XB:MOJ") for i in range(5)])
                assert answers is not None and all("id" in a for a in answers)
                # The receiver is not running: every envelope is retried at least once.
                assert await faults._wait_for(lambda: faults.count(
                    database, "SELECT count(*) FROM messages_out WHERE attempts >= 1"), 5, 30)
                sender.stop()
                sender.clock_offset = -600.0
                sender.start()
                receiver.start()
                await sender.wait_listening(session)
                await receiver.wait_listening(session)
                await faults._wait_for(lambda: faults.count(
                    database, "SELECT count(*) FROM messages_out WHERE state = 'delivered'"),
                    5, 20)  # ten minutes without the horizon in Store.due
                return faults.rows(database, "SELECT state FROM messages_out")
            finally:
                sender.stop()
                receiver.stop()

    assert asyncio.run(scenario()) == [("delivered",)] * 5

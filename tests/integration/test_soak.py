"""The soak, short mode of ``scripts/soak.py`` (issue #7).

Five ``python -m node serve`` processes (TLS on loopback, witnesses cosigning each other's
logs every 5 s) exchange requests all to all, each node's users submitting four a second
through its local API, for 38 s. Meanwhile one node is killed with SIGKILL and restarted,
another is stopped for 8 s, a third is frozen with SIGSTOP for 5 s, and the fourth is restarted
with a TLS certificate that no directory names until a new directory pins it. Once every
outbox has drained: everything acknowledged was delivered exactly once, nothing is held that
its sender never journalled, every receipt the senders hold is the receiver's byte for byte
and verifies with its log proof, every audit bundle verifies offline, no witness raised an
alarm. The long mode (10 minutes, random faults) is ``python scripts/soak.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.integration.kit import load_script

load_script("faults")
soak = load_script("soak")

DURATION, RATE = 38.0, 4.0
SCHEDULE = [
    soak.Planned(4.0, "kill", "XB:MOJ", 2.0),
    soak.Planned(9.0, "outage", "XC:MOJ", 8.0),
    soak.Planned(21.0, "freeze", "XD:MOJ", 5.0),
    soak.Planned(28.0, "tls", "XE:MOJ", 3.0),
]


@pytest.mark.slow
def test_five_nodes_all_to_all_under_faults_lose_nothing_and_accept_nothing_twice(
        tmp_path: Path) -> None:
    result = asyncio.run(soak.soak(tmp_path, nodes=5, duration=DURATION, rate=RATE,
                                   schedule=SCHEDULE))
    assert result.problems == [], "\n".join(result.problems[:20])
    assert (result.lost, result.duplicated, result.spurious, result.alarms) == (0, 0, 0, 0)

    # The faults happened, each while traffic for its victim was waiting.
    assert [s.planned for s in result.struck] == SCHEDULE
    for struck in result.struck:
        assert struck.seen.lasted >= struck.planned.length, struck.describe()
        assert struck.seen.held_back > 0, struck.describe()
    assert result.struck[-1].seen.accepted_during == 0
    evidence = result.evidence
    assert evidence.starts == {"XA:MOJ": 1, "XB:MOJ": 2, "XC:MOJ": 2, "XD:MOJ": 1,
                               "XE:MOJ": 2}

    # Steady traffic, all of it delivered once with verified receipts and bundles.
    assert result.submitted >= 0.6 * 5 * RATE * DURATION
    assert result.exchanged == result.submitted + result.unknown_journalled
    assert result.receipts_verified == result.receipts_expected == result.exchanged
    assert result.bundles_verified == 5
    assert result.drain < 60

    # The same checks report a message removed at one receiver and a receipt altered at
    # one sender.
    with sqlite3.connect(evidence.configs["XA:MOJ"].database_path) as db:
        gone = db.execute("SELECT message_id FROM messages_in LIMIT 1").fetchone()[0]
        db.execute("DELETE FROM messages_in WHERE message_id = ?", [gone])
    with sqlite3.connect(evidence.configs["XB:MOJ"].database_path) as db:
        rowid, data = db.execute("SELECT rowid, receipt FROM receipts WHERE direction = "
                                 "'received' LIMIT 1").fetchone()
        db.execute("UPDATE receipts SET receipt = ? WHERE rowid = ?", [bytes(data)[:-1], rowid])
    again = soak.SoakResult(5, DURATION, RATE)
    soak.check(again, evidence)
    assert again.lost == 1
    assert any(gone in p and "lost" in p for p in again.problems)
    assert any("not the one the receiver stored" in p for p in again.problems)
    assert again.receipts_verified == result.receipts_verified - 1

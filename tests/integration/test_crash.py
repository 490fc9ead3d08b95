"""A receiving node killed with SIGKILL in the middle of a burst loses nothing it acknowledged.

Two real node processes (``python -m node serve``) on loopback with TLS. The test queues 1,000
messages at the sender through its local API; while they are being delivered the receiver is
killed with SIGKILL, then restarted from its folder. The sender's outbox retries until every
envelope has a receipt. At the end each envelope was accepted exactly once, the receipt the
sender holds is byte for byte the one the receiver stored, and every one verifies against the
receiver's key in the signed directory.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from keys.directory import verify_directory
from node.config import load_config
from node.federation import Federation, Member, serve, shut_down, wait_listening
from node.node import read_api_token
from protocol.receipt import parse_receipt

BURST = 1000
SENDER, RECEIVER = "FR:MJ", "BR:MJSP"


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _submit(api_port: int, token: str, n: int) -> str:
    body = json.dumps({"to": RECEIVER, "kind": "request", "payload": f"request number {n}",
                       "case": f"BURST-{n:04d}"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/v1/messages",
                                     data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["id"])


@pytest.mark.slow
def test_receiver_killed_mid_burst_accepts_each_envelope_exactly_once(tmp_path: Path) -> None:
    federation = Federation.create(
        tmp_path, [Member(SENDER, "Ministère de la Justice"), Member(RECEIVER, "MJSP")],
        delivery={"retry_base": 0.05, "retry_max": 0.5},
    )
    sender_home, receiver_home = federation.home(SENDER), federation.home(RECEIVER)
    sender_cfg, receiver_cfg = load_config(sender_home), load_config(receiver_home)
    logs = tmp_path / "logs"
    logs.mkdir()
    sender = serve(sender_home, SENDER, logs / "sender.log")
    receiver = serve(receiver_home, RECEIVER, logs / "receiver.log")
    processes = [sender, receiver]
    try:
        wait_listening(sender_home, sender)
        wait_listening(receiver_home, receiver)
        token = read_api_token(sender_cfg)
        with ThreadPoolExecutor(max_workers=8) as pool:
            pending = [pool.submit(_submit, sender_cfg.api_port, token, n)
                       for n in range(BURST)]
            accepted_at_kill = 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                accepted_at_kill = _count(receiver_cfg.database_path,
                                          "SELECT count(*) FROM messages_in")
                if accepted_at_kill >= 100:
                    break
                time.sleep(0.005)
            receiver.send_signal(signal.SIGKILL)
            receiver.wait()
            sent_ids = [future.result() for future in pending]
        assert 100 <= accepted_at_kill < BURST, "the kill must land in the middle of the burst"
        time.sleep(0.3)
        receiver = serve(receiver_home, RECEIVER, logs / "receiver.log")
        processes.append(receiver)
        wait_listening(receiver_home, receiver)

        deadline = time.monotonic() + 120
        while _count(sender_cfg.database_path, "SELECT count(*) FROM outbox") > 0:
            assert time.monotonic() < deadline, "outbox did not drain"
            time.sleep(0.1)
    finally:
        for process in processes:
            shut_down(process, timeout=10)

    sent = sqlite3.connect(sender_cfg.database_path)
    received = sqlite3.connect(receiver_cfg.database_path)
    states = dict(sent.execute("SELECT state, count(*) FROM messages_out GROUP BY state"))
    assert states == {"delivered": BURST}
    assert len(set(sent_ids)) == BURST
    inbound_ids = [row[0] for row in received.execute("SELECT message_id FROM messages_in")]
    assert sorted(inbound_ids) == sorted(sent_ids), "each envelope accepted exactly once"

    directory = verify_directory(receiver_cfg.directory_path.read_bytes(),
                                 receiver_cfg.secretariat_keys, receiver_cfg.threshold)
    issued = dict(received.execute(
        "SELECT envelope_hash, receipt FROM receipts WHERE direction = 'issued'"))
    rows = sent.execute(
        "SELECT m.envelope_hash, m.message_id, r.receipt FROM messages_out m "
        "JOIN receipts r ON r.envelope_hash = m.envelope_hash AND r.direction = 'received'"
    ).fetchall()
    assert len(rows) == BURST
    for envelope_hash, message_id, data in rows:
        receipt = parse_receipt(bytes(data))
        receipt.verify(directory.receiver_key(RECEIVER, receipt.receiver_key))
        receipt.check_names(envelope_hash=envelope_hash, message_id=message_id,
                            sender=SENDER, receiver=RECEIVER)
        assert receipt.accepted
        assert bytes(issued[envelope_hash]) == bytes(data), "the sender holds the stored receipt"

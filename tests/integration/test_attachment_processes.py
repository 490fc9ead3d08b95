"""Large attachments between two real node processes: flat memory, and resumption after SIGKILL.

Two node processes (``python -m node serve``, provisioned and started as in test_crash.py) on
loopback with TLS. Files of random bytes are sent FR:MJ -> BR:MJSP as attachments through the
sender's local API, and every received attachment is downloaded through the receiver's local
API and compared by SHA-256 with the file that was sent.

- Memory: the peak RSS (VmHWM) of each process stays under 150 MB with a 256 MiB attachment
  (the bound set for a 4 GiB transfer) and grows by less than 30 MB from a 32 MiB one sent
  first by the same processes: memory does not grow with the size.
- The receiver killed with SIGKILL while the upload is between 20 % and 80 %, then restarted:
  the sender resumes from the bytes the receiver holds (the receiver's file keeps them and only
  grows; the progress the sender reports never falls back below them), the envelope is
  accepted exactly once with one receipt, and the attachment verifies.
- The sender killed with SIGKILL mid-upload, then restarted: its outbox picks the message up,
  the upload resumes where the receiver stands, delivery completes, the attachment verifies.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keys.directory import verify_directory
from node.config import NodeConfig, load_config
from node.federation import Federation, Member, serve, shut_down, wait_listening
from node.node import read_api_token
from protocol.attachment import ciphertext_size
from protocol.log_entry import EntryType, parse_entry
from protocol.receipt import parse_receipt

SENDER, RECEIVER = "FR:MJ", "BR:MJSP"
MIB = 1024 * 1024
MB = 1_000_000
RSS_BOUND = 150 * MB  # the bound for a 4 GiB transfer
RSS_GROWTH = 30 * MB  # 32 MiB -> 256 MiB: memory must not follow the size
CLOSED = ("delivered", "refused", "failed")

pytestmark = pytest.mark.slow


def _vm(pid: int, field: str) -> int:
    """VmHWM or VmRSS of a live process, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def _write_random(path: Path, size: int) -> str:
    """``size`` incompressible bytes, written in 1 MiB pieces; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for at in range(0, size, MIB):
            piece = os.urandom(min(MIB, size - at))
            digest.update(piece)
            file.write(piece)
    return digest.hexdigest()


@dataclass
class Proc:
    """One node: its home, config, log, and the process serving it (restartable)."""

    authority: str
    home: Path
    log: Path
    config: NodeConfig
    token: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        self.process = serve(self.home, self.authority, self.log)

    def wait_ready(self) -> None:
        try:
            wait_listening(self.home, self.process, timeout=20)
        except (ChildProcessError, TimeoutError) as exc:
            raise AssertionError(f"{exc}:\n{self.tail()}") from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            shut_down(self.process, timeout=10)

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = 60) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.config.api_port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.config.database_path}?mode=ro", uri=True, timeout=5)


@dataclass
class Pair:
    root: Path
    sender: Proc
    receiver: Proc

    def send(self, path: Path, case: str) -> dict[str, Any]:
        """Submit ``path`` as the attachment of a request; the API's answer (id, hash)."""
        answer: dict[str, Any] = self.sender.api("POST", "/api/v1/messages", {
            "to": RECEIVER, "kind": "request", "payload": f"evidence for {case}",
            "case": case, "attachments": [str(path)]})
        return answer

    def outbound(self, message_id: str) -> dict[str, Any]:
        shown: dict[str, Any] = self.sender.api("GET", f"/api/v1/messages/{message_id}")
        return shown

    def wait_closed(self, message_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.outbound(message_id)
            if shown["state"] in CLOSED:
                return shown
            assert time.monotonic() < deadline, (
                f"{message_id} still {shown['state']} ({shown['last_error']}); sender log:\n"
                f"{self.sender.tail()}\nreceiver log:\n{self.receiver.tail()}")
            time.sleep(0.05)

    def incoming(self, envelope_hash: str) -> Path:
        return self.receiver.home / "attachments" / "in" / envelope_hash / "0.ct"

    def download_sha256(self, message_id: str) -> tuple[str, int]:
        """The received attachment's plaintext through the receiver's local API."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.receiver.config.api_port}"
            f"/api/v1/messages/{message_id}/attachments/0")
        request.add_header("Authorization", f"Bearer {self.receiver.token}")
        digest, size = hashlib.sha256(), 0
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
            while piece := response.read(MIB):
                digest.update(piece)
                size += len(piece)
        return digest.hexdigest(), size

    def kill_mid_upload(self, victim: Proc, message_id: str) -> float:
        """SIGKILL ``victim`` once the sender reports 20-80 % of the upload sent."""
        deadline = time.monotonic() + 60
        seen: list[float] = []
        while time.monotonic() < deadline:
            shown = self.outbound(message_id)
            sent, total = shown["transfer"]["sent"], shown["transfer"]["total"]
            fraction = sent / total if total else 0.0
            seen.append(fraction)
            if 0.2 <= fraction <= 0.8:
                victim.kill()
                return fraction
            assert fraction < 0.8 and shown["state"] not in CLOSED, (
                f"the upload went past 80 % between two polls: {seen[-5:]}")
            time.sleep(0.002)
        raise AssertionError(f"the upload did not reach 20 % in time: {seen[-5:]}")

    def check_delivered_once(self, answer: dict[str, Any]) -> None:
        """One acceptance on the receiver, one verified receipt closing it at the sender."""
        message_id, envelope = answer["id"], answer["envelope_hash"]
        sent, received = self.sender.db(), self.receiver.db()
        try:
            rows = received.execute("SELECT envelope_hash FROM messages_in WHERE message_id = ?",
                                    [message_id]).fetchall()
            assert rows == [(envelope,)], "accepted exactly once, as the envelope sent"
            logged = [fields for kind, fields in
                      (parse_entry(bytes(r[0])) for r in received.execute(
                          "SELECT entry FROM log_entries WHERE type = ?",
                          [EntryType.ENVELOPE_RECEIVED.value]))
                      if kind is EntryType.ENVELOPE_RECEIVED and fields["id"] == message_id]
            assert len(logged) == 1, "the receiver logged one acceptance"
            issued = received.execute(
                "SELECT receipt FROM receipts WHERE envelope_hash = ? AND direction = 'issued'",
                [envelope]).fetchall()
            assert len(issued) == 1
            transfers = received.execute(
                "SELECT verified FROM attachment_transfers WHERE envelope_hash = ?",
                [envelope]).fetchall()
            assert transfers == [(1,)]
            state = sent.execute("SELECT state FROM messages_out WHERE message_id = ?",
                                 [message_id]).fetchall()
            assert state == [("delivered",)]
            assert sent.execute("SELECT count(*) FROM outbox WHERE envelope_hash = ?",
                                [envelope]).fetchone() == (0,)
            closing = [fields for kind, fields in
                       (parse_entry(bytes(r[0])) for r in sent.execute(
                           "SELECT entry FROM log_entries WHERE type = ?",
                           [EntryType.RECEIPT_RECEIVED.value]))
                       if kind is EntryType.RECEIPT_RECEIVED and fields["id"] == message_id]
            assert len(closing) == 1, "the sender logged one receipt"
            (data,) = sent.execute(
                "SELECT receipt FROM receipts WHERE envelope_hash = ? AND direction = 'received'",
                [envelope]).fetchone()
        finally:
            sent.close()
            received.close()
        assert bytes(data) == bytes(issued[0][0]), "the sender holds the receipt that was issued"
        config = self.receiver.config
        directory = verify_directory(config.directory_path.read_bytes(),
                                     config.secretariat_keys, config.threshold)
        receipt = parse_receipt(bytes(data))
        receipt.verify(directory.receiver_key(RECEIVER, receipt.receiver_key))
        receipt.check_names(envelope_hash=envelope, message_id=message_id, sender=SENDER,
                            receiver=RECEIVER)
        assert receipt.accepted


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    federation = Federation.create(
        tmp_path, [Member(SENDER, "Ministère de la Justice"), Member(RECEIVER, "MJSP")],
        delivery={"retry_base": 0.05, "retry_max": 0.5},
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    for authority, log in ((SENDER, "sender.log"), (RECEIVER, "receiver.log")):
        home = federation.home(authority)
        config = load_config(home)
        procs.append(Proc(authority, home, logs / log, config, read_api_token(config)))
    sender, receiver = procs
    try:
        for proc in procs:
            proc.spawn()
        for proc in procs:
            proc.wait_ready()
        yield Pair(tmp_path, sender, receiver)
    finally:
        for proc in procs:
            proc.stop()


def test_peak_memory_stays_flat_with_attachment_size(pair: Pair) -> None:
    peaks = {}
    for size in (32 * MIB, 256 * MIB):
        source = pair.root / f"evidence-{size // MIB}MiB.bin"
        digest = _write_random(source, size)
        answer = pair.send(source, f"MEMORY-{size // MIB}")
        assert pair.wait_closed(answer["id"], timeout=120)["state"] == "delivered"
        after_delivery = {p.authority: _vm(p.pid, "VmHWM") for p in (pair.sender, pair.receiver)}
        assert pair.download_sha256(answer["id"]) == (digest, size), "the attachment verifies"
        peaks[size] = {p.authority: _vm(p.pid, "VmHWM") for p in (pair.sender, pair.receiver)}
        for authority, peak in peaks[size].items():
            assert after_delivery[authority] <= peak
            assert peak < RSS_BOUND, (
                f"{authority} peaked at {peak / MB:.1f} MB with {size // MIB} MiB attached")
        source.unlink()
    small, large = peaks[32 * MIB], peaks[256 * MIB]
    for authority in (SENDER, RECEIVER):
        assert large[authority] - small[authority] < RSS_GROWTH, (
            f"{authority}: peak RSS {small[authority] / MB:.1f} MB with 32 MiB, "
            f"{large[authority] / MB:.1f} MB with 256 MiB")


def _watch_resume(pair: Pair, answer: dict[str, Any], floor: int,
                  ) -> tuple[list[int], list[int]]:
    """Until delivered: the receiver's file sizes and the sender's reported bytes sent."""
    sizes, reported = [], []
    incoming = pair.incoming(answer["envelope_hash"])
    deadline = time.monotonic() + 120
    while True:
        sizes.append(incoming.stat().st_size if incoming.exists() else -1)
        shown = pair.outbound(answer["id"])
        reported.append(shown["transfer"]["sent"])
        if shown["state"] in CLOSED:
            break
        assert time.monotonic() < deadline, f"not delivered:\n{pair.sender.tail()}"
        time.sleep(0.01)
    assert all(b >= a for a, b in itertools.pairwise(sizes)), "the file only grows"
    assert sizes[0] >= floor, "what the receiver held before the kill is still there"
    return sizes, reported


def test_receiver_killed_mid_upload_resumes_from_what_it_holds(pair: Pair) -> None:
    size = 128 * MIB
    source = pair.root / "evidence.bin"
    digest = _write_random(source, size)
    answer = pair.send(source, "RESUME-RECEIVER")
    expected = ciphertext_size(size)

    fraction = pair.kill_mid_upload(pair.receiver, answer["id"])
    incoming = pair.incoming(answer["envelope_hash"])
    held = incoming.stat().st_size
    assert 0 < held < expected, f"killed at {fraction:.0%} sent, the receiver holds {held}"
    # The sender's attempt fails and is retried against a closed port; how soon it notices
    # depends on the machine's load, so wait for it rather than for a fixed time.
    deadline = time.monotonic() + 15
    while (while_down := pair.outbound(answer["id"]))["state"] != "retrying":
        assert time.monotonic() < deadline, while_down
        time.sleep(0.05)
    assert while_down["last_error"].startswith("transport."), while_down
    assert while_down["transfer"]["sent"] >= held

    pair.receiver.start()
    assert incoming.stat().st_size == held, "a restart keeps every byte received"
    sizes, reported = _watch_resume(pair, answer, held)
    assert min(reported) >= held, (
        f"the sender reported {min(reported)} bytes sent after the restart, below the "
        f"{held} the receiver held: the upload started over")
    assert sizes[-1] == expected
    pair.check_delivered_once(answer)
    assert pair.download_sha256(answer["id"]) == (digest, size)


def test_sender_killed_mid_upload_resumes_after_restart(pair: Pair) -> None:
    size = 128 * MIB
    source = pair.root / "evidence.bin"
    digest = _write_random(source, size)
    answer = pair.send(source, "RESUME-SENDER")
    expected = ciphertext_size(size)

    fraction = pair.kill_mid_upload(pair.sender, answer["id"])
    incoming = pair.incoming(answer["envelope_hash"])
    time.sleep(0.2)  # the receiver sees the connection drop and closes its file
    held = incoming.stat().st_size
    assert 0 < held < expected, f"killed at {fraction:.0%} sent, the receiver holds {held}"

    pair.sender.start()
    sizes, reported = _watch_resume(pair, answer, held)
    assert sizes[-1] == expected
    assert all(r == 0 or r >= held for r in reported), (
        "after the restart the sender reports progress from where the receiver stood")
    pair.check_delivered_once(answer)
    assert pair.download_sha256(answer["id"]) == (digest, size)


def test_cli_send_wait_follows_an_upload_through_a_receiver_restart(pair: Pair) -> None:
    size = 128 * MIB
    source = pair.root / "evidence.bin"
    _write_random(source, size)
    with (pair.root / "logs" / "cli.err").open("w") as err:
        cli = subprocess.Popen(
            [sys.executable, "-m", "node", "send", "--home", str(pair.sender.home),
             "--to", RECEIVER, "--kind", "request", "--text", "evidence attached",
             "--case", "CLI-WAIT", "--attach", str(source), "--wait"],
            stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert cli.stdout is not None
        queued = cli.stdout.readline()  # "queued <id> to BR:MJSP (envelope ...)"
        assert queued.startswith("queued "), queued
        message_id = queued.split()[1]
        pair.kill_mid_upload(pair.receiver, message_id)
        time.sleep(0.6)  # the failed attempt is recorded; --wait polls every 0.2 s
        pair.receiver.start()
        assert pair.wait_closed(message_id)["state"] == "delivered", "the node delivers it"
        out, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, f"--wait gave up on a message still being delivered: {out!r}"
    assert out.rstrip().endswith("delivered")

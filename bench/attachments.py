"""One large attachment between two node processes, next to the raw secretstream limit.

Two real nodes (``python -m node serve``, as ``tests/integration/test_crash.py`` starts them)
run on loopback with TLS, provisioned by ``node.federation.Federation.create`` in a temporary
folder (or ``--keep DIR``). The script writes a file of ``--size`` random bytes (incompressible,
``os.urandom`` in 1 MiB pieces), sends it FR:MJ -> BR:MJSP as the attachment of a request
through the sender's local API (``POST /api/v1/messages`` with ``"attachments": [path]``) and
watches the transfer from outside the nodes until the sender records the receipt:

(a) encryption: the submit call, which returns once the file is hashed, encrypted into the
    outbox, fsync'd, and the envelope sealed and journalled;
(b) upload: from then until the receiver's ciphertext file holds every byte (polled with
    ``stat``): the first POST (answered ``attachment.incomplete``), the GET of the transfer
    state, the PUT of the ciphertext over TLS;
(c) verification: from then until the sender logs "delivered": the receiver's fsync and the
    sender's second POST, until the receiver starts reading the file back (its ``rchar`` in
    /proc/<pid>/io climbs), the decryption and SHA-256 of the whole stream up to the receiver's
    "accepted" log line, then the receipt back to the sender.

Next to it, measured in this process in the same run on one core: ``Encryptor.push`` over
64 KiB chunks, the raw secretstream pull, hashlib SHA-256, and ``Decryptor`` fed whole chunks
(pull + SHA-256, what verification cannot avoid) and fed 1 MiB pieces (as ``verify_file`` reads
them); and an fsync'd write of the same amount into the run's folder. The single-core pipeline
limit is 1/(1/SHA-256 + 1/push + 1/Decryptor): what the sender and the receiver must compute per
byte, with nothing overlapping. Peak memory of both node processes: VmHWM from /proc at the end
(before the check download), and the largest VmRSS sampled during the run.

Run: ``python bench/attachments.py`` (1 GiB, about a minute); ``--short`` (64 MiB) for CI;
``--size 4G``; ``--help`` for the options. The run needs about 3x the size in free disk.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from node.attachments import DISK_MARGIN
from node.config import load_config
from node.federation import Federation, Member, serve, shut_down, wait_listening
from node.node import read_api_token
from protocol.attachment import (
    CHUNK_SIZE,
    AttachmentSpec,
    Decryptor,
    Encryptor,
    chunk_ad,
    ciphertext_size,
)

SENDER, RECEIVER = "FR:MJ", "BR:MJSP"
MIB = 1024 * 1024
MB = 1e6
UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": 1024 * 1024 * MIB}
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def parse_size(text: str) -> int:
    """``1073741824``, ``256M``, ``4G``, ``4GiB``, ``64k``: binary multiples."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 1G, 256M or 65536")
    size = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if size < 1:
        raise argparse.ArgumentTypeError("the size must be at least 1 byte")
    return size


def human(size: float) -> str:
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size:g} B"


# --- /proc ---------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (empty once it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def proc_rchar(pid: int) -> int:
    """Bytes the process has read with read(2) and friends, sockets and files alike."""
    try:
        with open(f"/proc/{pid}/io") as file:
            for line in file:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the nodes -----------------------------------------------------------------------------------


@dataclass
class NodeProcess:
    authority: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    api_port: int = 0
    token: str = ""
    max_rss: int = 0
    samples: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        config = load_config(self.home)
        self.api_port, self.token = config.api_port, read_api_token(config)
        self.process = serve(self.home, self.authority, self.log)
        try:
            wait_listening(self.home, self.process)
        except (ChildProcessError, TimeoutError) as exc:
            raise SystemExit(f"{exc}; see {self.log}") from None

    def stop(self) -> None:
        if self.process is not None:
            shut_down(self.process)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = 30) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def sample(self) -> None:
        rss = proc_status(self.pid).get("VmRSS", 0)
        self.max_rss = max(self.max_rss, rss)

    def log_time(self, *needles: str) -> float | None:
        """Epoch time of the first log line holding every needle (ms resolution)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return None
        for line in lines:
            match = LOG_TIME.match(line)
            if match and all(n in line for n in needles):
                stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp()  # the node logs local time
        return None


# --- raw limits ----------------------------------------------------------------------------------


def best_time(fn: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def raw_limits(size: int, rounds: int, folder: Path) -> dict[str, float]:
    """MB/s on one core of the primitives an attachment goes through, best of ``rounds``."""
    count = max(1, size // CHUNK_SIZE)
    size = count * CHUNK_SIZE
    pool = os.urandom(4 * MIB)
    pieces = [pool[i:i + CHUNK_SIZE] for i in range(0, len(pool), CHUNK_SIZE)]
    key, message_id = os.urandom(32), os.urandom(16).hex()
    header = b""
    ciphertext: list[bytes] = []

    def push() -> None:
        nonlocal header
        encryptor = Encryptor(key, message_id, 0)
        header = encryptor.header
        ciphertext.clear()
        for i in range(count):
            ciphertext.append(encryptor.push(pieces[i % len(pieces)], final=i == count - 1))

    def sha256() -> None:
        digest = hashlib.sha256()
        for i in range(count):
            digest.update(pieces[i % len(pieces)])

    out: dict[str, float] = {"size": size}
    out["push"] = size / best_time(push, rounds) / MB
    out["sha256"] = size / best_time(sha256, rounds) / MB
    digest = hashlib.sha256()
    for i in range(count):
        digest.update(pieces[i % len(pieces)])
    spec = AttachmentSpec(index=0, name="raw.bin", media_type="application/octet-stream",
                          size=size, sha256=digest.hexdigest(), key=key, header=header)
    ad = chunk_ad(message_id, 0)

    def pull() -> None:
        state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
        for chunk in ciphertext:
            sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunk, ad)

    def decryptor_chunks() -> None:
        decryptor = Decryptor(spec, message_id)
        for chunk in ciphertext:
            for _ in decryptor.feed(chunk):
                pass
        for _ in decryptor.finish():
            pass

    stream = b"".join(ciphertext)

    def decryptor_mib() -> None:
        decryptor = Decryptor(spec, message_id)
        view = memoryview(stream)
        for at in range(0, len(stream), MIB):
            for _ in decryptor.feed(bytes(view[at:at + MIB])):
                pass
        for _ in decryptor.finish():
            pass

    out["pull"] = size / best_time(pull, rounds) / MB
    out["decryptor"] = size / best_time(decryptor_chunks, rounds) / MB
    out["decryptor_mib"] = size / best_time(decryptor_mib, rounds) / MB
    stream = b""
    ciphertext.clear()

    target = folder / "raw-disk.bin"

    def disk() -> None:
        with target.open("wb") as file:
            for i in range(0, size, MIB):
                file.write(pool[(i % len(pool)):(i % len(pool)) + MIB])
            file.flush()
            os.fsync(file.fileno())

    try:
        out["disk"] = size / best_time(disk, 1) / MB
    finally:
        target.unlink(missing_ok=True)
    out["limit"] = 1 / (1 / out["sha256"] + 1 / out["push"] + 1 / out["decryptor"])
    return out


# --- the run -------------------------------------------------------------------------------------


def write_source(path: Path, size: int) -> str:
    """``size`` random bytes in 1 MiB pieces; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            piece = os.urandom(min(MIB, left))
            digest.update(piece)
            file.write(piece)
            left -= len(piece)
    return digest.hexdigest()


@dataclass
class Timeline:
    submit: float = 0.0
    submitted: float = 0.0
    first_byte: float | None = None
    uploaded: float | None = None
    reading: float | None = None
    accepted: float | None = None
    delivered: float | None = None
    sent_equals_total: float | None = None
    polls: int = 0
    api_polls: int = 0
    max_sent: int = 0


def transfer(args: argparse.Namespace, sender: NodeProcess, receiver: NodeProcess,
             source: Path) -> tuple[Timeline, dict[str, Any]]:
    """Submit the attachment and watch it until delivered (or the timeout)."""
    nodes = (sender, receiver)
    line = Timeline()
    answer: dict[str, Any] = {}
    failure: list[BaseException] = []

    def submit() -> None:
        try:
            answer.update(sender.api("POST", "/api/v1/messages", {
                "to": RECEIVER, "kind": "request", "payload": "evidence, see the attachment",
                "case": f"BENCH-ATTACHMENT-{os.getpid()}", "attachments": [str(source)]},
                timeout=args.timeout))
            line.submitted = time.perf_counter()
        except BaseException as exc:
            failure.append(exc)

    epoch_offset = time.time() - time.perf_counter()
    line.submit = time.perf_counter()
    thread = threading.Thread(target=submit, daemon=True)
    thread.start()
    deadline = line.submit + args.timeout
    expected = ciphertext_size(args.size)
    incoming: Path | None = None
    rchar_at_upload = 0
    last_api = 0.0
    state: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        for node in nodes:
            node.sample()
        line.polls += 1
        now = time.perf_counter()
        if failure:
            raise SystemExit(f"submit failed: {failure[0]!r}")
        if answer and incoming is None:
            incoming = receiver.home / "attachments" / "in" / answer["envelope_hash"] / "0.ct"
        if incoming is not None:
            have = incoming.stat().st_size if incoming.exists() else 0
            if have and line.first_byte is None:
                line.first_byte = now
            if have >= expected and line.uploaded is None:
                line.uploaded = now
                rchar_at_upload = proc_rchar(receiver.pid)
            if (line.uploaded is not None and line.reading is None
                    and proc_rchar(receiver.pid) - rchar_at_upload > 2 * MIB):
                line.reading = now
            if now - last_api >= args.api_poll:
                last_api = now
                state = sender.api("GET", f"/api/v1/messages/{answer['id']}")
                line.api_polls += 1
                sent, total = state["transfer"]["sent"], state["transfer"]["total"]
                line.max_sent = max(line.max_sent, sent)
                if total and sent == total and line.sent_equals_total is None:
                    line.sent_equals_total = now
                if state["state"] in ("delivered", "refused", "failed"):
                    break
        time.sleep(args.poll)
    else:
        raise SystemExit(f"not delivered within {args.timeout:.0f} s (last state: "
                         f"{state.get('state')}, {state.get('last_error')}); logs in "
                         f"{sender.log.parent}")
    if state["state"] != "delivered":
        raise SystemExit(f"the message was {state['state']}: {state.get('last_error')}")
    at = receiver.log_time("accepted", answer["id"])
    line.accepted = None if at is None else at - epoch_offset
    at = sender.log_time("delivered", answer["id"])
    line.delivered = time.perf_counter() if at is None else at - epoch_offset
    return line, answer


def download(node: NodeProcess, message_id: str, timeout: float) -> tuple[str, int, float]:
    """The attachment's plaintext through the local API: SHA-256, size, seconds."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.api_port}/api/v1/messages/{message_id}/attachments/0")
    request.add_header("Authorization", f"Bearer {node.token}")
    digest, size = hashlib.sha256(), 0
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while piece := response.read(MIB):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size, time.perf_counter() - start


def run(args: argparse.Namespace, root: Path) -> int:
    started = time.perf_counter()
    federation = Federation.create(
        root, [Member(SENDER, "Ministère de la Justice"), Member(RECEIVER, "MJSP")],
        tls=not args.plain_http, delivery={"retry_base": 0.05, "retry_max": 1.0})
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    sender = NodeProcess(SENDER, federation.home(SENDER), logs / "sender.log")
    receiver = NodeProcess(RECEIVER, federation.home(RECEIVER), logs / "receiver.log")
    source = root / f"evidence-{args.size}.bin"
    begun = time.perf_counter()
    source_sha = write_source(source, args.size)
    write_seconds = time.perf_counter() - begun
    try:
        sender.start()
        receiver.start()
        load = os.getloadavg()
        idle = {n.authority: proc_status(n.pid).get("VmRSS", 0) for n in (sender, receiver)}
        cpu0 = {n.authority: proc_cpu(n.pid) for n in (sender, receiver)}
        line, answer = transfer(args, sender, receiver, source)
        cpu = {n.authority: proc_cpu(n.pid) - cpu0[n.authority] for n in (sender, receiver)}
        hwm = {n.authority: proc_status(n.pid).get("VmHWM", 0) for n in (sender, receiver)}
        check = None
        if not args.no_check:
            check = download(receiver, answer["id"], args.timeout)
        hwm_after = proc_status(receiver.pid).get("VmHWM", 0)
        raw = raw_limits(min(args.raw_size, max(args.size, CHUNK_SIZE)), args.rounds, root)
    finally:
        sender.stop()
        receiver.stop()

    size, ct = args.size, ciphertext_size(args.size)
    total = line.delivered - line.submit if line.delivered else float("nan")
    throughput = size / total / MB
    transport = "plain HTTP" if args.plain_http else "TLS"
    print(f"rogatory attachment benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}"
          f" UTC; {os.cpu_count()} CPUs ({platform.machine()}), Python "
          f"{platform.python_version()}, libsodium via PyNaCl")
    print(f"2 node processes (python -m node serve) on loopback, {transport}; one attachment of "
          f"{size:,} B ({human(size)}, random), ciphertext {ct:,} B; folder {root}")
    print(f"source file written with os.urandom in {write_seconds:.1f} s (not counted); "
          f"polls every {args.poll * 1000:g} ms (sender API every {args.api_poll * 1000:g} ms); "
          f"load average {load[0]:.2f} before the transfer, {os.getloadavg()[0]:.2f} at the end")
    print()

    def row(label: str, start: float | None, end: float | None, amount: int | None,
            note: str = "") -> None:
        if start is None or end is None:
            print(f"  {label:<46} {'n/a':>9}")
            return
        seconds = end - start
        rate = f"{amount / seconds / MB:>9,.0f}" if amount and seconds > 0 else " " * 9
        print(f"  {label:<46} {seconds:>8.2f} s {rate}  {note}")

    print(f"  {'phase (wall clock, submit → delivered)':<46} {'time':>10} {'MB/s':>9}")
    row("(a) encrypt into the sender's outbox", line.submit, line.submitted, size,
        "submit call: read, SHA-256, secretstream, write, fsync, seal, journal")
    row("(b) upload", line.submitted, line.uploaded, ct,
        "until the receiver's file holds every byte")
    row("      of which until the first byte arrived", line.submitted, line.first_byte, None,
        "first POST (attachment.incomplete), GET state")
    row("(c) verify and accept", line.uploaded, line.delivered, size,
        "until the sender logs 'delivered'")
    row("      fsync, second POST, until reading starts", line.uploaded, line.reading, None,
        "receiver's rchar climbs")
    row("      decrypt + SHA-256 of the stream, accept", line.reading, line.accepted, size,
        "until the receiver logs 'accepted'")
    row("      receipt back to the sender", line.accepted, line.delivered, None)
    row("total", line.submit, line.delivered, size)
    if line.sent_equals_total is not None:
        print(f"  (the sender's transfer.sent reached total "
              f"{line.sent_equals_total - line.submit:.2f} s after submit; the receiver's file "
              "was complete at "
              f"{(line.uploaded or 0) - line.submit:.2f} s)")
    print()
    print(f"  end-to-end throughput  {throughput:,.0f} MB/s ({size / total / MIB:,.0f} MiB/s)")
    print(f"  raw, this process, one core, {human(raw['size'])} in 64 KiB chunks (best of "
          f"{args.rounds}):")
    print(f"    secretstream push (Encryptor.push)        {raw['push']:>7,.0f} MB/s")
    print(f"    secretstream pull (libsodium)             {raw['pull']:>7,.0f} MB/s")
    print(f"    SHA-256 (hashlib)                         {raw['sha256']:>7,.0f} MB/s")
    print(f"    Decryptor fed whole chunks (pull+SHA-256) {raw['decryptor']:>7,.0f} MB/s")
    print(f"    Decryptor fed 1 MiB pieces (verify_file)  {raw['decryptor_mib']:>7,.0f} MB/s")
    print(f"    write + fsync into this folder            {raw['disk']:>7,.0f} MB/s")
    print(f"  single-core pipeline limit 1/(1/SHA-256 + 1/push + 1/Decryptor) "
          f"{raw['limit']:,.0f} MB/s")
    print(f"  ratio end-to-end / pipeline limit  {throughput / raw['limit']:.2f};   "
          f"end-to-end / raw push  {throughput / raw['push']:.2f};   "
          f"end-to-end / raw pull  {throughput / raw['pull']:.2f}")
    print()
    print(f"  {'node process':<22} {'idle RSS':>9} {'max VmRSS':>10} {'VmHWM':>9} "
          f"{'CPU s':>7}   (MB = 10^6 B)")
    for node in (sender, receiver):
        name = f"{node.authority} ({'sender' if node is sender else 'receiver'})"
        print(f"  {name:<22} {idle[node.authority] / MB:>9.1f} {node.max_rss / MB:>10.1f} "
              f"{hwm[node.authority] / MB:>9.1f} {cpu[node.authority]:>7.1f}")
    print(f"  (VmHWM read after delivery; max VmRSS over {line.polls:,} samples; CPU from "
          "submit to delivered)")
    status = 0
    if check is not None:
        digest, got, seconds = check
        ok = digest == source_sha and got == size
        status = 0 if ok else 1
        print(f"  check: downloaded through {RECEIVER}'s local API in {seconds:.2f} s "
              f"({got / seconds / MB:,.0f} MB/s), SHA-256 "
              f"{'matches the source' if ok else 'DIFFERS FROM THE SOURCE'}; "
              f"{RECEIVER} VmHWM after it {hwm_after / MB:.1f} MB")
    print(f"total time {time.perf_counter() - started:.1f} s")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=None,
                        help="attachment size, e.g. 1G, 256M, 4GiB (default: 1G)")
    parser.add_argument("--short", action="store_true",
                        help="64 MiB attachment and 64 MiB raw measurements (CI)")
    parser.add_argument("--raw-size", type=parse_size, default=None,
                        help="bytes per raw measurement (default: 256M, at most --size)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="raw measurements: best of this many rounds (default: 3)")
    parser.add_argument("--poll", type=float, default=0.02,
                        help="seconds between samples of RSS and file sizes (default: 0.02)")
    parser.add_argument("--api-poll", type=float, default=0.1,
                        help="seconds between reads of the sender's message (default: 0.1)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up after this many seconds (default: 120 + 1 s per 20 MB)")
    parser.add_argument("--plain-http", action="store_true",
                        help="peer endpoints without TLS (Federation.create(tls=False))")
    parser.add_argument("--no-check", action="store_true",
                        help="do not download the received attachment to compare its SHA-256")
    parser.add_argument("--keep", type=Path, default=None,
                        help="put the node folders and the file here and keep them")
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 64 * MIB if args.short else 1024 * MIB
    if args.raw_size is None:
        args.raw_size = 64 * MIB if args.short else 256 * MIB
    if args.timeout is None:
        args.timeout = 120 + args.size / 20e6
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    parent = args.keep if args.keep is not None else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    # the source file, the sender's outbox copy, the receiver's copy, and the receiver's margin
    needed = args.size + 2 * ciphertext_size(args.size) + DISK_MARGIN + 64 * MIB
    if free < needed:
        print(f"not enough disk in {parent}: a {human(args.size)} run needs about "
              f"{needed / 1e9:.1f} GB (the file, the sender's encrypted copy, the receiver's, "
              f"and the receiver's {human(DISK_MARGIN)} margin); {free / 1e9:.1f} GB free",
              file=sys.stderr)
        return 2
    if args.keep is not None:
        return run(args, args.keep)
    with tempfile.TemporaryDirectory(prefix="rogatory-bench-att-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())

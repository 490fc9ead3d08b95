"""Several authorities and a secretariat on one machine: for the demo, the tests and benchmarks.

It does what a real federation does, in one process: each authority runs ``initialise_node``
and hands its signed record over; the secretariat builds the directory and M of its N keys
sign it; every node pins the secretariat keys and starts from that directory. Only the ports
(free loopback ports) and the secretariat keys (held in memory) are shortcuts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.pwhash

from keys.directory import SignedRecord, add_signature, build_directory, sign_directory
from keys.identity import IdentityKey, encode_public
from node.config import load_config, read_api_token
from node.node import Node
from node.provision import initialise_node

__all__ = ["Federation", "Member", "free_port", "serve", "shut_down", "wait_listening"]

SOURCE = Path(__file__).resolve().parent.parent
"""The checkout this module runs from; a node process started from here runs the same code."""

FAST_KEYSTORE = {
    "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
    "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
}
"""Argon2id at its minimum: for throwaway demo and test nodes only, never for a real one."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(home: Path, authority: str, log: Path,
          python: Sequence[str] = (sys.executable, "-m", "node")) -> subprocess.Popen[bytes]:
    """Start a member's ``rogatory serve`` as a child process, appending its output to ``log``.

    For the crash tests, fault scripts and benchmarks, which must kill, freeze or measure a
    node as the operating system sees it. ``python`` is the interpreter command that runs the
    ``node`` package (a fault script wraps it to skew the child's clock).
    """
    env = {**os.environ, "ROGATORY_PASSPHRASE": passphrase_for(authority).decode(),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE),
                                                       os.environ.get("PYTHONPATH")]))}
    with log.open("ab") as handle:
        return subprocess.Popen([*python, "serve", "--home", str(home)],
                                env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_listening(home: Path, process: subprocess.Popen[bytes] | None = None,
                   timeout: float = 30.0) -> None:
    """Return once the node in ``home`` answers on its local API.

    Raises ``ChildProcessError`` if ``process`` exits first, ``TimeoutError`` after ``timeout``
    seconds: a node that cannot start should fail its caller at once, pointing at its log.
    """
    config = load_config(home)
    request = urllib.request.Request(f"http://127.0.0.1:{config.api_port}/api/v1/status")
    request.add_header("Authorization", f"Bearer {read_api_token(config)}")
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ChildProcessError(f"the node in {home} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node in {home} did not answer within {timeout:.0f} s"
                                   ) from None
            time.sleep(0.05)


def shut_down(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, as an operator would stop it (thawed first, should it be frozen); SIGKILL if it
    has not exited within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Member:
    authority: str
    name: str
    profile: dict[str, Any] = field(default_factory=dict)


def passphrase_for(authority: str) -> bytes:
    return f"passphrase of {authority} (demo only)".encode()


@dataclass
class Federation:
    root: Path
    secretariat: list[IdentityKey]
    threshold: int
    records: dict[str, SignedRecord]
    serial: int = 0
    nodes: dict[str, Node] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        root: Path,
        members: Iterable[Member],
        *,
        secretariat_size: int = 3,
        threshold: int = 2,
        tls: bool = True,
        now: int | None = None,
        delivery: dict[str, Any] | None = None,
        keystore_limits: dict[str, int] | None = None,
        web: bool = False,
    ) -> Federation:
        now = int(time.time()) if now is None else now
        secretariat = [IdentityKey.generate() for _ in range(secretariat_size)]
        pinned = tuple(encode_public("secretariat", k.public_raw) for k in secretariat)
        records = {}
        for member in members:
            home = root / member.authority.replace(":", "_")
            records[member.authority] = initialise_node(
                home, authority=member.authority, name=member.name,
                passphrase=passphrase_for(member.authority), now=now,
                peer_port=free_port(), api_port=free_port(), tls=tls,
                web_port=free_port() if web else None,
                secretariat=pinned, threshold=threshold, profile=member.profile,
                keystore_limits=FAST_KEYSTORE if keystore_limits is None else keystore_limits,
                delivery=delivery,
            )
        federation = cls(root, secretariat, threshold, records)
        federation.publish(now)
        return federation

    def home(self, authority: str) -> Path:
        return self.root / authority.replace(":", "_")

    def directory_file(self, issued: int, serial: int | None = None) -> bytes:
        """A directory of the current records, signed by the first ``threshold`` keys."""
        self.serial = self.serial + 1 if serial is None else serial
        body = build_directory("rogatory-demo", self.serial, issued, self.records.values())
        file = sign_directory(body, self.secretariat[0])
        for key in self.secretariat[1:self.threshold]:
            file = add_signature(file, key)
        return file

    def publish(self, issued: int) -> bytes:
        """Write a new directory into every member's home, as the secretariat would distribute."""
        file = self.directory_file(issued)
        for authority in self.records:
            load_config(self.home(authority)).directory_path.write_bytes(file)
        return file

    async def start(self, clock: Callable[[], float] = time.time) -> dict[str, Node]:
        for authority in self.records:
            node = Node.from_home(self.home(authority), passphrase_for(authority), clock=clock)
            await node.start()
            self.nodes[authority] = node
        return self.nodes

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.quiesce()
        for node in self.nodes.values():
            await node.stop()
        self.nodes.clear()

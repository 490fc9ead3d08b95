"""Helpers for tests that run real nodes: raw posts to a peer endpoint, store snapshots,
polling, and stopping or restarting one member of a running federation.

Kept out of conftest.py so that test modules (here and in tests/node) can import them by one
module name; conftest.py re-exports them next to the ``federation`` fixture.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import importlib.util
import io
import sys
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import aiohttp

from keys.directory import Directory, Revocation, sign_record
from keys.identity import IdentityKey
from keys.prekeys import generate_prekey
from node.config import load_config
from node.federation import Federation, Member, passphrase_for
from node.node import Node
from node.outbound import ENVELOPE_MEDIA_TYPE, RECEIPT_MEDIA_TYPE
from node.store import OutboundRecord
from node.tls import client_pin
from protocol.log_entry import parse_entry
from protocol.receipt import Receipt, parse_receipt
from protocol.suites import Suite

FR, BR, KE = "FR:MJ", "BR:MJSP", "KE:ODPP"
MEMBERS = (
    Member(FR, "Ministère de la Justice"),
    Member(BR, "Ministério da Justiça e Segurança Pública"),
    Member(KE, "Office of the Director of Public Prosecutions"),
)
DELIVERY = {"retry_base": 0.05, "retry_max": 0.5}
TABLES = ("messages_in", "seen", "receipts", "messages_out", "outbox")

T = TypeVar("T")
SCRIPTS = Path(__file__).resolve().parent.parent.parent / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as module ``name``, loaded once: the scripts import each other by
    that name, and dataclasses look their module up in ``sys.modules``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def post_raw(
    directory: Directory, target_authority: str, data: bytes | AsyncIterable[bytes]
) -> tuple[int, Receipt]:
    """POST bytes to a node's peer endpoint over TLS pinned from ``directory``.

    Returns the HTTP status and the receipt, whose signature has already been checked against
    the key the directory lists for ``target_authority`` (a refusal is signed too).
    """
    record = directory.record(target_authority)
    body: bytes | io.BytesIO | AsyncIterable[bytes] = data
    if isinstance(data, bytes) and len(data) > 1024 * 1024:
        body = io.BytesIO(data)  # sized, so still sent with a Content-Length
    async with aiohttp.ClientSession() as session, session.post(
        record.endpoint + "/v1/envelopes", data=body, ssl=client_pin(record.tls_fingerprint),
        headers={"Content-Type": ENVELOPE_MEDIA_TYPE},
    ) as response:
        assert response.content_type == RECEIPT_MEDIA_TYPE
        status, answer = response.status, await response.read()
    receipt = parse_receipt(answer)
    assert receipt.receiver == target_authority
    receipt.verify(directory.receiver_key(target_authority, receipt.receiver_key))
    return status, receipt


async def snapshot(node: Node) -> dict[str, int]:
    """Row counts of the tables an envelope can touch, read on the node's store thread."""

    def count() -> dict[str, int]:
        return {t: int(node.store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in TABLES}

    return await node.call(count)


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *,
                     timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``probe`` until ``done`` holds of its result; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s; last: {value!r}")
        await asyncio.sleep(0.02)


async def outbound_state(node: Node, message_id: str, done: Callable[[OutboundRecord], bool],
                         timeout: float = 10.0) -> OutboundRecord:
    async def probe() -> OutboundRecord:
        return await node.call(node.store.outbound_by_id, message_id)

    return await eventually(probe, done, timeout=timeout, what=f"state of {message_id}")


async def stop_node(federation: Federation, authority: str) -> Node:
    """Stop one member and take it out of the federation (its home stays as it is)."""
    node = federation.nodes.pop(authority)
    await node.stop()
    return node


async def start_node(federation: Federation, authority: str,
                     clock: Callable[[], float] = time.time, *, patience: float = 10.0) -> Node:
    """(Re)start a member from its home, on the ports its config names, as an operator would.

    The ports were free when the federation was created, but any outgoing connection on this
    machine may borrow one as its ephemeral source port for a while; binding is retried for
    ``patience`` seconds before EADDRINUSE is let through.
    """
    deadline = time.monotonic() + patience
    while True:
        node = Node.from_home(federation.home(authority), passphrase_for(authority), clock=clock)
        try:
            await node.start()
        except OSError as exc:
            await node.stop()  # whatever did start (store, a first listener) is closed again
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        federation.nodes[authority] = node
        return node


async def start_federation(root: Path, members: Sequence[Member], *, tries: int = 3,
                           **options: Any) -> Federation:
    """``Federation.create`` then start every member; on a port taken meanwhile, start over
    with fresh ports in a fresh folder (``options`` go to ``Federation.create``)."""
    for attempt in range(tries):
        fed = Federation.create(root if attempt == 0 else root / f"retry-{attempt}", members,
                                **options)
        try:
            for member in members:
                await start_node(fed, member.authority, patience=2.0)
        except OSError as exc:
            await fed.stop()
            if exc.errno != errno.EADDRINUSE or attempt == tries - 1:
                raise
            continue
        return fed
    raise AssertionError("unreachable")


def revoke_identity(federation: Federation, authority: str, identity: IdentityKey,
                    now: int) -> bytes:
    """The secretariat publishes ``authority``'s record with ``identity`` revoked as of now - 1.

    The authority has moved to a fresh identity key (and a prekey signed by it); returns the
    new directory file, signed by the threshold of secretariat keys, with the next serial.
    """
    new = IdentityKey.generate()
    prekey = generate_prekey(new, Suite.HYBRID, now)
    record = dataclasses.replace(
        federation.records[authority].record, identity_key=new.public_raw,
        prekeys=(prekey.signed,), updated=now,
        revoked=(Revocation(identity.key_id, identity.public_raw, now - 1, "key compromised"),),
    )
    federation.records[authority] = sign_record(record, new)
    return federation.directory_file(now)


def pins(federation: Federation, authority: str = FR) -> tuple[list[bytes], int]:
    """The pinned secretariat keys and threshold an auditor verifies a bundle with."""
    config = load_config(federation.home(authority))
    return config.secretariat_keys, config.threshold


async def log_entries(node: Node, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """The node's audit log entries from ``start``, parsed: (type, fields)."""
    def read() -> list[bytes]:
        return node.store.audit.entries(start, node.store.audit.size())
    return [(t.value, f) for t, f in (parse_entry(e) for e in await node.call(read))]

"""Attachment transfers that no envelope can complete any more are forgotten, bytes and all.

A transfer is registered when an envelope announcing attachments passes every check; its
sender then uploads. One registered longer ago than any envelope's lifetime (plus the clock
skew allowed) whose envelope was never taken in can never be completed, and the room promised
to it counts against every new transfer, so the node forgets it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.attachments import AttachmentFiles
from node.node import TRANSFER_HORIZON
from node.store import Store
from protocol.attachment import HEADER_BYTES, KEY_BYTES, AttachmentSpec
from tests.integration.kit import (
    BR,
    FR,
    MEMBERS,
    eventually,
    start_federation,
    start_node,
    stop_node,
)
from tests.node.test_store import inbound

NOW = 1_800_000_000
MIB = 1024 * 1024


def spec(index: int = 0, size: int = 4 * MIB) -> AttachmentSpec:
    return AttachmentSpec(index, f"evidence-{index}.bin", "application/octet-stream", size,
                          hashlib.sha256(b"x").hexdigest(), os.urandom(KEY_BYTES),
                          os.urandom(HEADER_BYTES))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "node.db")
    yield opened
    opened.close()


@pytest.fixture
def files(tmp_path: Path, store: Store) -> AttachmentFiles:
    return AttachmentFiles(tmp_path / "attachments", store.db)


def announce(files: AttachmentFiles, at: int, received: int = MIB) -> str:
    """A transfer of two attachments registered at ``at``, ``received`` bytes of the first in."""
    digest = os.urandom(32).hex()
    files.expect(digest, FR, os.urandom(16).hex(), (spec(0), spec(1)), at)
    files.incoming(digest, 0).write_bytes(b"\0" * received)
    return digest


def promised(files: AttachmentFiles) -> int:
    return sum(row["expected"] - row["received"] for row in files._unfinished())


def test_a_transfer_past_any_envelope_lifetime_is_forgotten(files: AttachmentFiles) -> None:
    dead = announce(files, NOW - TRANSFER_HORIZON - 1)
    alive = announce(files, NOW - TRANSFER_HORIZON + 60)
    before = promised(files)
    assert files.sweep(NOW, TRANSFER_HORIZON) == 1
    assert files.transfer(dead) == [] and not files.incoming(dead, 0).parent.exists()
    assert [row["received"] for row in files.transfer(alive)] == [MIB, 0]
    assert promised(files) == before - (2 * spec().ciphertext_size - MIB)
    assert files.sweep(NOW, TRANSFER_HORIZON) == 0


def test_the_attachments_of_a_message_taken_in_are_kept_however_old(
        files: AttachmentFiles, store: Store) -> None:
    old = announce(files, NOW - 10 * TRANSFER_HORIZON, received=spec().ciphertext_size)
    store.accept_inbound(dataclasses.replace(inbound(), envelope_hash=old))
    files.mark_verified(old)
    assert files.sweep(NOW, TRANSFER_HORIZON) == 0
    assert files.incoming(old, 0).stat().st_size == spec().ciphertext_size


async def test_a_node_forgets_dead_transfers_when_it_starts(tmp_path: Path) -> None:
    fed = await start_federation(tmp_path, [m for m in MEMBERS if m.authority in (FR, BR)])
    try:
        stopped = await stop_node(fed, BR)
        store = Store(stopped.config.database_path)
        try:
            dead = announce(AttachmentFiles(stopped.config.home / "attachments", store.db),
                            int(stopped.clock()) - TRANSFER_HORIZON - 1)
        finally:
            store.close()
        node = await start_node(fed, BR)

        async def transfer() -> list[dict[str, int]]:
            return await node.call(node.attachments.transfer, dead)

        await eventually(transfer, lambda rows: rows == [], what="the dead transfer forgotten")
        assert not node.attachments.incoming(dead, 0).parent.exists()
    finally:
        await fed.stop()

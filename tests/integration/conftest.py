"""A running three-authority federation on loopback, and helpers to talk to its nodes raw.

Every node is real: its own home folder under tmp_path, an encrypted key store, a SQLite file,
a self-signed TLS certificate pinned in a secretariat-signed directory, a peer endpoint and a
delivery worker. Tests post bytes to a node's peer endpoint exactly as a peer (or an attacker
who reached the port) would, and read the node's store to check what it kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.federation import Federation
from tests.integration.kit import (  # noqa: F401 - helpers offered to the tests here
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
    start_node,
    stop_node,
)


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    """FR:MJ, BR:MJSP and KE:ODPP, started, with pinned TLS and quick retries."""
    fed = await start_federation(tmp_path, MEMBERS, delivery=DELIVERY)
    try:
        yield fed
    finally:
        await fed.stop()

"""Two running nodes (FR:MJ and BR:MJSP) for tests of one node's own surfaces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.federation import Federation
from tests.integration.kit import BR, DELIVERY, FR, MEMBERS, start_federation


@pytest.fixture
async def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Federation]:
    # The token must come from each node's own token file, not from the environment.
    monkeypatch.delenv("ROGATORY_API_TOKEN", raising=False)
    fed = await start_federation(
        tmp_path, [m for m in MEMBERS if m.authority in (FR, BR)], delivery=DELIVERY)
    try:
        yield fed
    finally:
        await fed.stop()

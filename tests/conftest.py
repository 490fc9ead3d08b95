from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from node.federation import Federation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture
async def federation(tmp_path: Path) -> AsyncIterator[Federation]:
    """FR:MJ, BR:MJSP and KE:ODPP, started, with pinned TLS and quick retries.

    Here rather than in ``tests/integration/conftest.py`` so that the fuzzing of the peer
    endpoint (``tests/fuzz``) starts the same federation; a module that needs another one
    defines its own fixture of this name.
    """
    from tests.integration.kit import DELIVERY, MEMBERS, start_federation

    fed = await start_federation(tmp_path, MEMBERS, delivery=DELIVERY)
    try:
        yield fed
    finally:
        await fed.stop()

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from node.federation import Federation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Property tests check behaviour, not speed: hypothesis's default 200 ms deadline per example
# turns a slow moment on a shared 2-core CI machine into a failure (speed is for bench/).
settings.register_profile("rogatory", deadline=None)
settings.load_profile("rogatory")


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

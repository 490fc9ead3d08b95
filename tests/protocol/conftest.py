"""The ``world`` fixture: three authorities with fixed keys (see ``protocol_kit``)."""

from __future__ import annotations

import pytest
from protocol_kit import World, make_party


@pytest.fixture(scope="session")
def world() -> World:
    return World(make_party("XA:MOJ"), make_party("XB:MOJ"), make_party("XC:PGO"))

"""Helpers to talk raw to the nodes of a running federation (the ``federation`` fixture itself,
three authorities on loopback, is in ``tests/conftest.py``, shared with ``tests/fuzz``).

Every node is real: its own home folder under tmp_path, an encrypted key store, a SQLite file,
a self-signed TLS certificate pinned in a secretariat-signed directory, a peer endpoint and a
delivery worker. Tests post bytes to a node's peer endpoint exactly as a peer (or an attacker
who reached the port) would, and read the node's store to check what it kept.
"""

from __future__ import annotations

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


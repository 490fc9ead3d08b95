"""The README's casework walkthrough, run as it is written: the CLI against two real nodes."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "examples" / "casework.sh"


def _free_run(count: int) -> int:
    """A first port of ``count`` consecutive ports that are free now."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no run of free ports")


@pytest.mark.slow
def test_the_casework_walkthrough_runs_end_to_end(tmp_path: Path) -> None:
    rogatory = shutil.which("rogatory", path=str(Path(sys.executable).parent))
    assert rogatory, "the rogatory command is not installed next to this Python"
    env = {**os.environ, "ROGATORY": rogatory, "ROGATORY_PORT_BASE": str(_free_run(4))}
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "nodes")], env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # Each scenario reached its end state on the requesting side.
    assert "requesting executed" in output
    assert "requesting refused" in output
    assert "refused on: nationality" in output
    # The incomplete request was blocked first, then sent with its reason, and Brazil's
    # acknowledgement named what was missing.
    assert "error: package.incomplete" in output
    assert "sent incomplete; reason: Assets about to move" in output
    assert "missing: measures[0].accounts" in output
    # An outcome on the refused case was refused by the node.
    assert "error: case.transition_invalid" in output
    # Spontaneous information: withheld, then accepted, and the sender saw the acceptance.
    assert "content withheld until its conditions are accepted" in output
    assert "queued acceptance of the conditions" in output
    assert " accepted " in output
    # The evidence arrived with the final outcome, verified, and was never overwritten.
    assert "saved" in output and "verified)" in output
    assert "error: attachment.exists" in output
    # Statistics with charts a head of unit can open.
    stats = tmp_path / "nodes" / "stats"
    for name in ("statistics.csv", "durations.csv", "statistics.json", "outcome.png"):
        assert (stats / name).stat().st_size > 0, name
    assert (stats / "outcome.png").read_bytes().startswith(b"\x89PNG")

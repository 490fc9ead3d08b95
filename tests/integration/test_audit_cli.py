"""``rogatory audit export / verify / alarms`` against running nodes, through the local API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

from node.cli import main
from node.federation import Federation
from protocol.checkpoint import Checkpoint, sign_checkpoint
from protocol.log_entry import log_origin
from tests.integration.kit import BR, FR, KE
from tests.integration.test_audit import deliver


async def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI on a thread: its HTTP client is synchronous and the nodes share this loop."""

    def call() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
        return status, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(call)


async def test_export_then_verify_offline(federation: Federation, tmp_path: Path) -> None:
    fr = federation.nodes[FR]
    await deliver(fr, BR)
    await deliver(federation.nodes[KE], FR, b"spontaneous")
    for authority in (BR, KE):
        await federation.nodes[authority].witness.round()
    home = str(federation.home(FR))
    bundle = tmp_path / "fr.audit.json"
    status, out, _ = await run("audit", "export", "--home", home, "--out", str(bundle))
    assert status == 0 and bundle.exists()

    status, out, err = await run("audit", "verify", str(bundle), "--home", home)
    assert status == 0, out + err
    assert out.rstrip().endswith("VERIFIED: no problem found")
    assert "Witness: BR:MJSP cosigned" in out and "Witness: KE:ODPP cosigned" in out

    data = json.loads(bundle.read_bytes())
    data["entries"].pop(1)
    bundle.write_text(json.dumps(data))
    status, out, err = await run("audit", "verify", str(bundle), "--home", home)
    assert status == 1
    assert "PROBLEM:" in out
    assert err.count("\n") == 1 and err.startswith("error: log.verify_failed")


async def test_alarms_are_listed_and_make_the_command_fail(federation: Federation) -> None:
    ke = federation.nodes[KE]
    home = str(federation.home(KE))
    status, out, _ = await run("audit", "alarms", "--home", home)
    assert (status, out.strip()) == (0, "no alarms")

    br = federation.nodes[BR]
    forged = sign_checkpoint(Checkpoint(log_origin(BR), 1, bytes(32)), log_origin(BR),
                             federation.nodes[FR].keystore.identity.seed)
    await ke.witness.observe(BR, forged, source="test")
    await ke.witness.observe(BR, await br.checkpoint(), source="test")
    status, out, err = await run("audit", "alarms", "--home", home)
    assert status == 1
    assert "log.signature_invalid" in out and "log of BR:MJSP" in out
    assert err.startswith("error: log.alarm")
    # Alarms stay: a later good observation does not clear them.
    assert [a.code for a in await ke.alarms()] == ["log.signature_invalid"]

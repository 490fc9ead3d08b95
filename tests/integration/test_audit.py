"""The audit log end to end: receipts prove their log position, witnesses catch rewritten, forked
and rolled-back logs, and an exported bundle verifies offline and fails on any alteration."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json

import pytest

from node.audit_bundle import verify_bundle
from node.federation import Federation
from node.node import Node
from node.outbound import Draft
from protocol import merkle
from protocol.checkpoint import Checkpoint, open_checkpoint, parse_tlog_proof, sign_checkpoint
from protocol.errors import RogatoryError
from protocol.kinds import Kind
from protocol.log_entry import log_origin, received_entry, verify_receipt_proof
from protocol.receipt import parse_receipt
from tests.integration.kit import BR, FR, KE, eventually, outbound_state, pins


async def deliver(sender: Node, to: str, text: bytes = b"request") -> bytes:
    queued = await sender.submit(Draft(to, Kind.REQUEST, "text/plain", text))
    record = await outbound_state(sender, queued.message_id, lambda r: r.state == "delivered")
    assert record.receipt is not None

    async def view() -> tuple[int, bytes, bytes] | None:
        return await sender.call(sender.witness.store.view, to)

    # The sender witnesses the receiver's checkpoint just after it records the delivery.
    await eventually(view, lambda v: v is not None, what=f"view of {to}")
    return record.receipt


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(RogatoryError) as caught:
        call()
    return caught.value.code


async def alarms(node: Node) -> list[str]:
    return [alarm.code for alarm in await node.alarms()]


# --- receipts -----------------------------------------------------------------------------


async def test_receipt_carries_a_verified_proof_of_its_log_entry(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    receipt = parse_receipt(await deliver(fr, BR))
    assert receipt.log_index is not None and receipt.proof
    checkpoint = verify_receipt_proof(receipt, br.keystore.identity.public_raw)
    entry = await br.call(br.store.audit.entry, receipt.log_index)
    assert entry == received_entry(receipt)
    assert checkpoint.size == receipt.log_index + 1
    # The sender logged what it sent and the receipt it got; the receiver what it took in.
    sent = await fr.call(fr.store.audit.counts)
    assert sent["envelope-sent"] == 1 and sent["receipt-received"] == 1
    got = await br.call(br.store.audit.counts)
    assert got["envelope-received"] == 1 and got["receipt-issued"] == 1
    assert got["directory-adopted"] == 1 and got["keys-rotated"] == 1


async def test_forged_or_mismatched_proof_is_refused(federation: Federation) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await deliver(fr, BR, b"first")
    receipt = parse_receipt(await deliver(fr, BR, b"second"))
    key = br.keystore.identity.public_raw
    proof = parse_tlog_proof(receipt.proof)
    assert proof.hashes, "a second entry makes a non-empty proof"
    forged_hash = bytearray(proof.hashes[0])
    forged_hash[0] ^= 1
    forged = dataclasses.replace(proof, hashes=(bytes(forged_hash), *proof.hashes[1:]))
    assert code_of(lambda: verify_receipt_proof(receipt.with_proof(forged.encode()), key)) \
        == "log.proof_invalid"
    other_index = dataclasses.replace(proof, index=0)
    assert code_of(lambda: verify_receipt_proof(receipt.with_proof(other_index.encode()), key)) \
        == "log.proof_invalid"
    # A proof whose checkpoint another key signed.
    checkpoint, _ = open_checkpoint(proof.checkpoint, log_origin(BR), key)
    foreign = sign_checkpoint(checkpoint, log_origin(BR), fr.keystore.identity.seed)
    swapped = dataclasses.replace(proof, checkpoint=foreign)
    assert code_of(lambda: verify_receipt_proof(receipt.with_proof(swapped.encode()), key)) \
        == "log.signature_invalid"


# --- witnessing ---------------------------------------------------------------------------


async def test_witnesses_cosign_consistent_checkpoints(federation: Federation) -> None:
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    await deliver(fr, BR)
    await ke.witness.round()
    await deliver(fr, BR, b"more")
    await ke.witness.round()
    view = await ke.call(ke.witness.store.view, BR)
    assert view is not None and view[0] == await br.call(br.store.audit.size)
    assert b"rogatory/witness/KE:ODPP" in view[2]
    assert await alarms(ke) == []


async def test_checkpoint_with_a_bad_signature_raises_an_alarm(federation: Federation) -> None:
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    note = await federation.nodes[BR].checkpoint()
    checkpoint, _ = open_checkpoint(note, log_origin(BR),
                                    federation.nodes[BR].keystore.identity.public_raw)
    forged = sign_checkpoint(checkpoint, log_origin(BR), fr.keystore.identity.seed)
    await ke.witness.observe(BR, forged, source="test")
    assert await alarms(ke) == ["log.signature_invalid"]


async def test_rolled_back_log_raises_an_alarm(federation: Federation) -> None:
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    await deliver(fr, BR)
    await ke.witness.round()
    # BR's operator deletes the latest entries, then the node signs a checkpoint of what is left.
    size = await br.call(br.store.audit.size)

    def truncate() -> None:
        with br.store.transaction():
            br.store.db.execute("DELETE FROM log_entries WHERE idx >= ?", [size - 2])
            br.store.db.execute("DELETE FROM log_checkpoints")

    await br.call(truncate)
    await ke.witness.round()
    assert "log.rollback" in await alarms(ke)
    # Seen again next round: the same evidence is not stored twice, and nothing is cleared.
    before = await alarms(ke)
    await ke.witness.round()
    assert await alarms(ke) == before


async def test_modified_entry_breaks_consistency_and_raises_a_fork_alarm(
    federation: Federation,
) -> None:
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    await deliver(fr, BR)
    await ke.witness.round()
    # BR's operator rewrites history: recompute the whole tree over an altered first entry.
    await br.call(rewrite_entry, br, 0, b'{"rewritten":true}')
    await deliver(fr, BR, b"after the rewrite")
    await ke.witness.round()
    assert "log.fork" in await alarms(ke)


async def test_log_showing_two_peers_different_histories_is_caught(
    federation: Federation,
) -> None:
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    await deliver(fr, BR)  # FR now holds BR's genuine checkpoint from the receipt
    view = await fr.call(fr.witness.store.view, BR)
    assert view is not None
    size = view[0]
    # BR shows KE another history of the same size, signed with its real key.
    genuine = await br.call(br.store.audit.entries)
    altered = [*genuine[:size - 1], b'{"other":"history"}']
    fork = sign_checkpoint(
        Checkpoint(log_origin(BR), size, merkle.root_of([merkle.leaf_hash(e) for e in altered])),
        log_origin(BR), br.keystore.identity.seed)
    await ke.witness.observe(BR, fork, source="shown to KE")
    assert await alarms(ke) == []  # on its own, KE has nothing to compare with
    # KE reads the view FR cosigned: same size, another root.
    await ke.witness.observe(BR, await ke.witness.fetch_view(FR, BR), source="cosigned by FR")
    assert await alarms(ke) == ["log.fork"]
    evidence = (await ke.alarms())[0].evidence
    assert fork.decode() in evidence and "rogatory/witness/FR:MJ" in evidence


def rewrite_entry(node: Node, index: int, entry: bytes) -> None:
    """Play a dishonest operator: change one entry and rebuild every stored hash."""
    entries = node.store.audit.entries()
    entries[index] = entry
    with node.store.transaction():
        node.store.db.execute("DELETE FROM log_nodes")
        node.store.db.execute("DELETE FROM log_checkpoints")
        node.store.db.execute("UPDATE log_entries SET entry = ?, leaf = ? WHERE idx = ?",
                              [entry, merkle.leaf_hash(entry), index])
        nodes: dict[tuple[int, int], bytes] = {}
        for i, data in enumerate(entries):
            siblings = {k: nodes[k] for k in merkle.append_keys(i)}
            nodes.update(dict(merkle.appended_nodes(i, merkle.leaf_hash(data), siblings)))
        node.store.db.table("log_nodes").insert_all(
            [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in nodes.items()])


# --- the offline audit bundle -------------------------------------------------------------


async def exported(federation: Federation) -> bytes:
    fr, br, ke = (federation.nodes[a] for a in (FR, BR, KE))
    await deliver(fr, BR)
    await deliver(ke, FR, b"spontaneous")
    await deliver(fr, KE, b"answer")
    for node in (br, ke):
        await node.witness.round()
    return await fr.export_bundle()


async def test_exported_bundle_verifies_offline(federation: Federation) -> None:
    bundle = await exported(federation)
    report = verify_bundle(bundle, *pins(federation))
    assert report.ok, report.text()
    text = report.text()
    assert "VERIFIED" in text and "Witness: BR:MJSP cosigned" in text
    assert text.count("accepted at") == 2 and "Receipts issued: 1 of 1 verified" in text


def _alter(bundle: bytes, change: object) -> bytes:
    data = json.loads(bundle)
    assert callable(change)
    change(data)
    return json.dumps(data).encode()


def _entries_without(data: dict[str, list[str]], index: int) -> None:
    del data["entries"][index]


def _entry_modified(data: dict[str, list[str]], index: int) -> None:
    entry = json.loads(base64.b64decode(data["entries"][index]))
    entry["at" if "at" in entry else "received"] += 1
    data["entries"][index] = base64.b64encode(
        json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()).decode()


def _root_replaced(data: dict[str, str]) -> None:
    lines = data["checkpoint"].split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()
    data["checkpoint"] = "\n".join(lines)


@pytest.mark.parametrize("change, expected", [
    (lambda d: _entries_without(d, 3), "entries are missing"),
    (lambda d: _entries_without(d, 0), "entries are missing"),
    (lambda d: _entry_modified(d, 2), "do not hash to the signed checkpoint"),
    (lambda d: _root_replaced(d), "checkpoint is not signed"),
])
async def test_altered_bundle_fails_with_its_own_message(
    federation: Federation, change: object, expected: str,
) -> None:
    bundle = await exported(federation)
    report = verify_bundle(_alter(bundle, change), *pins(federation))
    assert not report.ok
    assert any(expected in problem for problem in report.problems), report.problems


async def test_any_changed_byte_of_the_bundle_is_detected(federation: Federation) -> None:
    bundle = await exported(federation)
    step = max(1, len(bundle) // 97)
    for position in range(0, len(bundle), step):
        changed = bytearray(bundle)
        changed[position] ^= 0x01
        report = verify_bundle(bytes(changed), *pins(federation))
        assert not report.ok, f"byte {position} ({bundle[position:position + 1]!r}) changed"


async def test_a_stream_of_receipts_is_checked_at_most_once_per_interval_and_the_newest_always(
        federation: Federation, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the exchange benchmark: one consistency check per batch cost both nodes CPU.

    While receipts keep coming, checks of the receiver's log start at most every
    ``receipt_check_interval``; the newest checkpoint is still checked, and at once when the
    node stops.
    """
    fr = federation.nodes[FR]
    await deliver(fr, BR)  # the first view, so later checks fetch consistency proofs
    fr.witness.receipt_interval = 0.4
    checks: list[float] = []
    real = fr.witness._observe

    async def counted(*args: object) -> None:
        checks.append(asyncio.get_running_loop().time())
        await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fr.witness, "_observe", counted)
    for n in range(12):  # one at a time: one receipt, one checkpoint each
        size = await deliver_only(fr, BR, f"burst {n}".encode())

    async def view_size() -> int:
        view = await fr.call(fr.witness.store.view, BR)
        return -1 if view is None else view[0]

    await eventually(view_size, lambda s: s == size, what="the newest checkpoint checked")
    assert 1 <= len(checks) < 12
    assert all(b - a >= 0.39 for a, b in itertools.pairwise(checks))

    # Stopping does not wait out the pause, and still checks the newest checkpoint.
    fr.witness.receipt_interval = 30.0
    await deliver_only(fr, BR, b"one more")
    size = await deliver_only(fr, BR, b"and the last")
    started = asyncio.get_running_loop().time()
    await fr.quiesce()
    assert asyncio.get_running_loop().time() - started < 10
    assert await view_size() == size


async def deliver_only(sender: Node, to: str, text: bytes) -> int:
    """Deliver one message; the size of the receiver's checkpoint in its receipt."""
    queued = await sender.submit(Draft(to, Kind.REQUEST, "text/plain", text))
    record = await outbound_state(sender, queued.message_id, lambda r: r.state == "delivered")
    assert record.receipt is not None
    note = parse_tlog_proof(parse_receipt(record.receipt).proof).checkpoint
    key = sender.directory.record(to).identity_key
    return open_checkpoint(note, log_origin(to), key)[0].size

"""Attachments end to end on running nodes (PROTOCOL.md §16): real files, real HTTPS, real stores.

The transfer is: POST the envelope, get a signed transient ``attachment.incomplete`` (HTTP 202);
GET/PUT ``/v1/attachments/<envelope-hash>/<i>?offset=`` until every stream has arrived; POST the
same envelope again, which the receiver only accepts once every stream decrypts and matches the
signed manifest, with one receipt for the whole. Envelopes a well-behaved node would never send
(wrong hash or name in the manifest) are sealed by hand with the sender's real keys; raw GETs
and PUTs go to the peer endpoint over TLS pinned from the directory, as a peer's would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import node.attachments as attachment_files
from node.attachments import encrypt_file, export, verify_file
from node.federation import Federation
from node.local_api import OPERATOR, RECEIVER
from node.node import Node
from node.outbound import Draft, compose
from node.store import OutboundRecord
from node.tls import client_pin
from protocol.attachment import (
    CHUNK_SIZE,
    AttachmentSpec,
    ciphertext_size,
    encode_manifest,
)
from protocol.case_message import CONTENT_TYPE as CASE_TYPE
from protocol.case_message import CaseMessage, Conditions, encode_case_message
from protocol.encoding import canonical_json
from protocol.errors import (
    AttachmentCorrupt,
    AttachmentExists,
    AttachmentMalformed,
    AttachmentNameUnsafe,
    AttachmentTruncated,
    CaseContentWithheld,
)
from protocol.kinds import Kind
from protocol.receipt import Receipt, ReceiptStatus, parse_receipt
from tests.integration.kit import BR, FR, KE, eventually, outbound_state, post_raw, snapshot

MiB = 1024 * 1024

# --- helpers -------------------------------------------------------------------------------


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


async def drain(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def delivered(node: Node, message_id: str, timeout: float = 15.0) -> OutboundRecord:
    return await outbound_state(node, message_id, lambda r: r.state == "delivered", timeout)


async def transfer_rows(node: Node, digest: str) -> list[dict[str, int]]:
    return await node.call(node.attachments.transfer, digest)


async def attachment_state(fed: Federation, target: str, digest: str, index: int,
                           ) -> tuple[int, dict[str, Any]]:
    """GET the receiver's state of one attachment, as the sender's worker does."""
    return await peer_call(fed, target, "GET", digest, index)


async def put(fed: Federation, target: str, digest: str, index: int, offset: int | str,
              data: bytes) -> tuple[int, dict[str, Any]]:
    return await peer_call(fed, target, "PUT", digest, index, offset=offset, data=data)


async def peer_call(fed: Federation, target: str, method: str, digest: str, index: int, *,
                    offset: int | str | None = None, data: bytes = b"",
                    ) -> tuple[int, dict[str, Any]]:
    """One raw call to ``target``'s attachment endpoint, TLS pinned from FR's directory."""
    record = fed.nodes[FR].directory.record(target)
    url = f"{record.endpoint.rstrip('/')}/v1/attachments/{digest}/{index}"
    params = {} if offset is None else {"offset": str(offset)}
    async with aiohttp.ClientSession() as session, session.request(
        method, url, params=params, data=data if method == "PUT" else None,
        ssl=client_pin(record.tls_fingerprint),
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        return response.status, await response.json(content_type=None)


async def post(fed: Federation, target: str, envelope: bytes) -> tuple[int, Receipt]:
    """POST an envelope by hand; the receipt is already verified against the directory."""
    return await post_raw(fed.nodes[FR].directory, target, envelope)


def rejection(status: int, receipt: Receipt, record: OutboundRecord, code: str,
              http: int) -> None:
    """A signed refusal with ``code`` that names exactly this envelope, message and sender."""
    assert (status, receipt.code) == (http, code), receipt.detail
    assert receipt.status is ReceiptStatus.REJECTED and not receipt.accepted
    assert receipt.envelope_hash == record.envelope_hash
    assert (receipt.message_id, receipt.sender) == (record.message_id, FR)


@dataclasses.dataclass
class Handmade:
    """An envelope with attachments sealed with FR's real keys, outside FR's outbox."""

    record: OutboundRecord
    specs: list[AttachmentSpec]
    ciphertexts: list[bytes]
    plaintexts: list[bytes]


def handmade(fed: Federation, folder: Path, files: dict[str, bytes], *,
             specs: Callable[[list[AttachmentSpec]], list[AttachmentSpec]] = lambda s: s,
             manifest: Callable[[list[AttachmentSpec]], bytes] = encode_manifest,
             ) -> Handmade:
    """Encrypt ``files`` as FR's node would, let the test bend the manifest, seal to BR."""
    fr = fed.nodes[FR]
    message_id = os.urandom(16).hex()
    made = []
    for index, (name, data) in enumerate(files.items()):
        source = write(folder / message_id / "plain", name, data)
        made.append(encrypt_file(source, folder / message_id / f"{index}.ct",
                                 message_id=message_id, index=index))
    ciphertexts = [(folder / message_id / f"{i}.ct").read_bytes() for i in range(len(made))]
    bent = specs(made)
    record = compose(Draft(BR, Kind.REQUEST, "text/plain", b"evidence follows"),
                     authority=FR, keystore=fr.keystore, directory=fr.directory,
                     archive=fr.archive, now=int(time.time()), message_id=message_id,
                     manifest=manifest(bent))
    return Handmade(record, bent, ciphertexts, list(files.values()))


async def upload_all(fed: Federation, made: Handmade) -> None:
    for index, ciphertext in enumerate(made.ciphertexts):
        status, state = await put(fed, BR, made.record.envelope_hash, index, 0, ciphertext)
        assert (status, state) == (200, {"received": len(ciphertext),
                                         "expected": len(ciphertext)})


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- 1. the round trip ---------------------------------------------------------------------


async def test_three_attachments_travel_with_one_verified_receipt(
        federation: Federation, tmp_path: Path) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    contents = {"empty.bin": b"", "statement.pdf": os.urandom(MiB + 123),
                "ledger.csv": os.urandom(2 * CHUNK_SIZE)}
    paths = tuple(write(tmp_path / "evidence", n, d) for n, d in contents.items())
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"see the attachments",
                                   attachments=paths))
    sent = await delivered(fr, queued.message_id)
    mid, digest = sent.message_id, sent.envelope_hash

    # One receipt, an acceptance, verified and the same on both sides; one log entry.
    receipt = parse_receipt(sent.receipt or b"")
    receipt.verify(fr.directory.receiver_key(BR, receipt.receiver_key))
    assert receipt.accepted and receipt.envelope_hash == digest
    assert await br.call(br.store.receipt_for_inbound, digest) == sent.receipt
    for node, direction in ((br, "issued"), (fr, "received")):
        rows = await node.call(lambda n=node, d=direction: n.store.db.execute(
            "SELECT count(*) FROM receipts WHERE envelope_hash = ? AND direction = ?",
            [digest, d]).fetchone()[0])
        assert rows == 1
    entries = await br.call(lambda: br.store.db.execute(
        "SELECT count(*) FROM log_entries WHERE type = 'envelope-received'").fetchone()[0])
    assert entries == 1

    # BR lists them; each streams back to the exact bytes.
    shown = await br.read_message(mid)
    assert [(a["index"], a["name"], a["size"], a["sha256"]) for a in shown["attachments"]] == [
        (i, n, len(d), hashlib.sha256(d).hexdigest())
        for i, (n, d) in enumerate(contents.items())]
    for index, data in enumerate(contents.values()):
        spec, chunks = await br.attachment(mid, index)
        assert spec.size == len(data)
        assert await drain(chunks) == data

    # FR's outbound view: the whole ciphertext was sent.
    total = sum(ciphertext_size(len(d)) for d in contents.values())
    mine = await fr.read_message(mid)
    assert mine["transfer"] == {"sent": total, "total": total}
    assert [a["name"] for a in mine["attachments"]] == list(contents)

    # BR keeps the ciphertext that travelled, never the plaintext.
    for index, data in enumerate(contents.values()):
        held = br.attachments.incoming(digest, index).read_bytes()
        assert len(held) == ciphertext_size(len(data)) and held != data
        assert held == fr.attachments.outgoing(mid, index).read_bytes()
    big = contents["statement.pdf"]
    for path in files_under(br.config.home):
        on_disk = path.read_bytes()
        assert big[:64] not in on_disk and big[-64:] not in on_disk, path
    assert await transfer_rows(br, digest) == [
        {"index": i, "expected": ciphertext_size(len(d)), "received": ciphertext_size(len(d)),
         "verified": 1} for i, d in enumerate(contents.values())]


# --- 2. not accepted before its attachments ------------------------------------------------


async def test_the_envelope_waits_for_its_attachments(
        federation: Federation, tmp_path: Path) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await fr.worker.stop()  # FR queues the message; this test delivers it by hand
    paths = (write(tmp_path, "a.txt", b"alpha" * 1000), write(tmp_path, "b.bin", b"\x00" * 10))
    record = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x", attachments=paths))
    before = await snapshot(br)

    for _ in range(2):  # asking twice registers the transfer once
        status, receipt = await post(federation, BR, record.envelope)
        rejection(status, receipt, record, "attachment.incomplete", 202)
        assert receipt.receiver_key == br.keystore.identity.key_id

    assert await snapshot(br) == before
    assert await br.call(br.store.count_inbound) == 0
    expected = [ciphertext_size(5000), ciphertext_size(10)]
    assert await transfer_rows(br, record.envelope_hash) == [
        {"index": i, "expected": e, "received": 0, "verified": 0}
        for i, e in enumerate(expected)]
    for index, size in enumerate(expected):
        assert await attachment_state(federation, BR, record.envelope_hash, index) == (
            200, {"expected": size, "received": 0})
    # No third slot, and nothing about an envelope never announced.
    assert (await attachment_state(federation, BR, record.envelope_hash, 2))[0] == 404
    assert (await attachment_state(federation, BR, "ab" * 32, 0))[0] == 404

    # FR's worker finishes the job.
    await fr.worker.start()
    await delivered(fr, record.message_id)
    assert await br.call(br.store.count_inbound) == 1


# --- 3. resuming an upload -----------------------------------------------------------------


async def test_an_interrupted_upload_resumes_where_it_stopped(
        federation: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await fr.worker.stop()
    data = os.urandom(3 * CHUNK_SIZE + 5)
    record = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                   attachments=(write(tmp_path, "video.mp4", data),)))
    digest = record.envelope_hash
    ciphertext = fr.attachments.outgoing(record.message_id, 0).read_bytes()
    size, half = len(ciphertext), len(ciphertext) // 2
    status, receipt = await post(federation, BR, record.envelope)
    rejection(status, receipt, record, "attachment.incomplete", 202)

    # The first half arrives, then the connection "drops".
    assert await put(federation, BR, digest, 0, 0, ciphertext[:half]) == (
        200, {"received": half, "expected": size})
    # A piece sent from the wrong offset is refused with where the receiver stands.
    for wrong in (0, half - 1, half + 1, size):
        assert await put(federation, BR, digest, 0, wrong, ciphertext[half:half + 100]) == (
            409, {"received": half, "expected": size})
    status, answer = await put(federation, BR, digest, 0, "half", b"x")
    assert status == 400 and answer["error"]["code"] == "transport.bad_response"
    assert br.attachments.incoming(digest, 0).read_bytes() == ciphertext[:half]
    assert await attachment_state(federation, BR, digest, 0) == (
        200, {"expected": size, "received": half})

    # FR's worker comes back: it asks where BR stands and sends only the rest.
    offsets: list[int] = []
    read_from = fr.worker._read_from

    def spy(path: Path, offset: int, *args: Any) -> AsyncIterator[bytes]:
        offsets.append(offset)
        return read_from(path, offset, *args)

    monkeypatch.setattr(fr.worker, "_read_from", spy)
    await fr.worker.start()
    sent = await delivered(fr, record.message_id)
    assert offsets == [half]
    assert br.attachments.incoming(digest, 0).read_bytes() == ciphertext
    assert (await fr.read_message(record.message_id))["transfer"] == {"sent": size,
                                                                       "total": size}
    _, chunks = await br.attachment(sent.message_id, 0)
    assert await drain(chunks) == data


async def test_a_put_cut_off_mid_body_keeps_what_arrived_and_the_worker_resumes(
        federation: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await fr.worker.stop()
    data = os.urandom(4 * MiB)
    record = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                   attachments=(write(tmp_path, "dump.bin", data),)))
    digest = record.envelope_hash
    ciphertext = fr.attachments.outgoing(record.message_id, 0).read_bytes()
    status, receipt = await post(federation, BR, record.envelope)
    rejection(status, receipt, record, "attachment.incomplete", 202)

    class Dropped(Exception):
        pass

    async def held() -> dict[str, Any]:
        return (await attachment_state(federation, BR, digest, 0))[1]

    async def cut_off() -> AsyncIterator[bytes]:
        yield ciphertext[:MiB]
        await eventually(held, lambda s: s["received"] > 0, what="the first bytes written")
        raise Dropped  # the sender's side of the connection goes away mid-body

    peer = fr.directory.record(BR)
    with pytest.raises((Dropped, aiohttp.ClientError)):
        async with aiohttp.ClientSession() as session, session.put(
            f"{peer.endpoint}/v1/attachments/{digest}/0", params={"offset": "0"},
            data=cut_off(), ssl=client_pin(peer.tls_fingerprint)) as response:
            await response.read()

    # What arrived is kept, and is a prefix of the stream; the rest is never invented.
    state = await held()
    assert state["expected"] == len(ciphertext) and 0 < state["received"] <= MiB
    path = br.attachments.incoming(digest, 0)
    assert ciphertext.startswith(path.read_bytes())

    offsets: list[int] = []
    read_from = fr.worker._read_from

    def spy(path: Path, offset: int, *args: Any) -> AsyncIterator[bytes]:
        offsets.append(offset)
        return read_from(path, offset, *args)

    monkeypatch.setattr(fr.worker, "_read_from", spy)
    await fr.worker.start()
    await delivered(fr, record.message_id)
    assert offsets and offsets[0] >= state["received"] > 0
    assert path.read_bytes() == ciphertext
    _, chunks = await br.attachment(record.message_id, 0)
    assert await drain(chunks) == data


# --- 4. what the upload endpoint takes -----------------------------------------------------


async def test_uploads_are_bounded_by_what_a_checked_envelope_announced(
        federation: Federation, tmp_path: Path) -> None:
    br = federation.nodes[BR]
    made = handmade(federation, tmp_path, {"note.txt": b"n" * 70_000})
    digest, ciphertext = made.record.envelope_hash, made.ciphertexts[0]
    expected = len(ciphertext)

    # Before any envelope announced it: 404, and nothing written anywhere.
    before = files_under(br.attachments.root)
    assert (await put(federation, BR, digest, 0, 0, ciphertext))[0] == 404
    assert (await attachment_state(federation, BR, digest, 0))[0] == 404
    assert files_under(br.attachments.root) == before
    assert not (br.attachments.root / "in" / digest).exists()

    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.incomplete", 202)
    # A slot the manifest does not list is not taken either.
    assert (await put(federation, BR, digest, 1, 0, b"x"))[0] == 404
    assert not br.attachments.incoming(digest, 1).exists()

    # More than expected: the surplus is dropped, the file stops at `expected`.
    assert await put(federation, BR, digest, 0, 0, ciphertext + b"surplus" * 100) == (
        200, {"received": expected, "expected": expected})
    assert await put(federation, BR, digest, 0, expected, b"more") == (
        200, {"received": expected, "expected": expected})
    path = br.attachments.incoming(digest, 0)
    assert path.stat().st_size == expected and path.read_bytes() == ciphertext

    status, receipt = await post(federation, BR, made.record.envelope)
    assert (status, receipt.status) == (200, ReceiptStatus.ACCEPTED)
    assert path.stat().st_size == expected


# --- 5. tampering at rest before verification ----------------------------------------------


async def test_a_stream_modified_on_disk_while_arriving_is_refused_and_starts_over(
        federation: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    await fr.worker.stop()
    data = os.urandom(2 * CHUNK_SIZE + 10)
    record = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                   attachments=(write(tmp_path, "scan.tiff", data),)))
    digest = record.envelope_hash
    ciphertext = fr.attachments.outgoing(record.message_id, 0).read_bytes()
    status, receipt = await post(federation, BR, record.envelope)
    rejection(status, receipt, record, "attachment.incomplete", 202)
    half = len(ciphertext) // 2
    assert (await put(federation, BR, digest, 0, 0, ciphertext[:half]))[0] == 200

    # Someone with access to BR's disk flips one byte of what has arrived; the bytes checked
    # as they arrived were sound, but the file no longer holds them.
    path = br.attachments.incoming(digest, 0)
    tampered = bytearray(path.read_bytes())
    tampered[CHUNK_SIZE // 2] ^= 0x01
    path.write_bytes(bytes(tampered))
    assert (await put(federation, BR, digest, 0, half, ciphertext[half:]))[0] == 200
    before = await snapshot(br)
    status, receipt = await post(federation, BR, record.envelope)
    rejection(status, receipt, record, "attachment.corrupt", 422)
    assert await snapshot(br) == before
    assert await br.call(br.store.count_inbound) == 0
    assert await transfer_rows(br, digest) == []
    assert not (br.attachments.root / "in" / digest).exists()
    assert (await attachment_state(federation, BR, digest, 0))[0] == 404

    # The sender's next attempt starts the transfer over, from byte 0, and gets through.
    offsets: list[int] = []
    read_from = fr.worker._read_from

    def spy(path: Path, offset: int, *args: Any) -> AsyncIterator[bytes]:
        offsets.append(offset)
        return read_from(path, offset, *args)

    monkeypatch.setattr(fr.worker, "_read_from", spy)
    await fr.worker.start()
    await delivered(fr, record.message_id)
    assert offsets == [0]
    assert path.read_bytes() == ciphertext
    _, chunks = await br.attachment(record.message_id, 0)
    assert await drain(chunks) == data


# --- 6. a manifest that lies about its file ------------------------------------------------


async def test_a_manifest_whose_hash_is_wrong_is_refused_after_upload(
        federation: Federation, tmp_path: Path) -> None:
    br = federation.nodes[BR]
    made = handmade(federation, tmp_path, {"a.txt": b"a" * 100, "b.txt": b"b" * 100_000},
                    specs=lambda s: [s[0], dataclasses.replace(s[1], sha256="0" * 64)])
    digest = made.record.envelope_hash
    before = await snapshot(br)
    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.incomplete", 202)
    await upload_all(federation, made)

    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.mismatch", 422)
    assert await snapshot(br) == before
    assert await transfer_rows(br, digest) == []
    assert not (br.attachments.root / "in" / digest).exists()


async def test_a_manifest_whose_size_is_wrong_is_refused_after_upload(
        federation: Federation, tmp_path: Path) -> None:
    """One byte less in the manifest: the stream's single chunk decrypts to one byte more."""
    br = federation.nodes[BR]
    made = handmade(federation, tmp_path, {"a.txt": b"a" * 100, "b.txt": b"b" * 1000},
                    specs=lambda s: [s[0], dataclasses.replace(s[1], size=999)])
    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.incomplete", 202)
    # BR expects the ciphertext of 999 bytes: the real stream is one byte longer.
    assert await attachment_state(federation, BR, made.record.envelope_hash, 1) == (
        200, {"expected": ciphertext_size(999), "received": 0})
    before = await snapshot(br)
    assert (await put(federation, BR, made.record.envelope_hash, 0, 0,
                      made.ciphertexts[0]))[0] == 200
    assert await put(federation, BR, made.record.envelope_hash, 1, 0, made.ciphertexts[1]) == (
        200, {"expected": ciphertext_size(999), "received": ciphertext_size(999)})

    # Cut to the declared length, the one chunk no longer authenticates.
    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.corrupt", 422)
    assert await snapshot(br) == before
    assert await transfer_rows(br, made.record.envelope_hash) == []


async def test_a_stream_moved_to_another_message_is_refused(
        federation: Federation, tmp_path: Path) -> None:
    """Same key and header in a second message's manifest: the chunks are bound to the first."""
    fr, br = federation.nodes[FR], federation.nodes[BR]
    made = handmade(federation, tmp_path, {"a.txt": os.urandom(70_000)})
    moved = compose(Draft(BR, Kind.REQUEST, "text/plain", b"same file, new message"),
                    authority=FR, keystore=fr.keystore, directory=fr.directory,
                    archive=fr.archive, now=int(time.time()),
                    message_id=os.urandom(16).hex(), manifest=encode_manifest(made.specs))
    status, receipt = await post(federation, BR, moved.envelope)
    assert (status, receipt.code) == (202, "attachment.incomplete")
    assert (await put(federation, BR, moved.envelope_hash, 0, 0, made.ciphertexts[0]))[0] == 200
    before = await snapshot(br)
    status, receipt = await post(federation, BR, moved.envelope)
    rejection(status, receipt, moved, "attachment.corrupt", 422)
    assert await snapshot(br) == before
    assert await transfer_rows(br, moved.envelope_hash) == []


# --- 7. truncation -------------------------------------------------------------------------


async def test_a_cut_stream_is_truncated_and_never_accepted(
        federation: Federation, tmp_path: Path) -> None:
    br = federation.nodes[BR]
    made = handmade(federation, tmp_path, {"long.bin": os.urandom(3 * CHUNK_SIZE + 1000)})
    spec, ciphertext, mid = made.specs[0], made.ciphertexts[0], made.record.message_id
    whole = CHUNK_SIZE + 17
    cut = tmp_path / "cut.ct"
    for length in (0, 100, whole, 2 * whole, 2 * whole + 5000, len(ciphertext) - 1):
        cut.write_bytes(ciphertext[:length])
        with pytest.raises(AttachmentTruncated) as caught:
            verify_file(cut, spec, mid)
        assert caught.value.code == "attachment.truncated", length
    cut.write_bytes(ciphertext + b"\x00")
    with pytest.raises(AttachmentCorrupt):
        verify_file(cut, spec, mid)
    cut.write_bytes(ciphertext)
    verify_file(cut, spec, mid)

    # Over the wire, a stream short of its declared size leaves the envelope waiting.
    digest = made.record.envelope_hash
    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.incomplete", 202)
    assert (await put(federation, BR, digest, 0, 0, ciphertext[:-1]))[0] == 200
    before = await snapshot(br)
    status, receipt = await post(federation, BR, made.record.envelope)
    rejection(status, receipt, made.record, "attachment.incomplete", 202)
    assert await snapshot(br) == before
    assert await transfer_rows(br, digest) == [
        {"index": 0, "expected": len(ciphertext), "received": len(ciphertext) - 1,
         "verified": 0}]


# --- 8. hostile names ----------------------------------------------------------------------

HOSTILE = ["../../etc/passwd", "..", ".bashrc", "a/b.txt", "a\\b.txt", "CON", "nul.txt",
           "c:evil.txt", "report\u202etxt.exe", "trailing.", "line\nbreak.txt"]


async def test_hostile_names_are_refused_by_sender_and_receiver(
        federation: Federation, tmp_path: Path) -> None:
    br = federation.nodes[BR]
    made = handmade(federation, tmp_path, {"ok.txt": b"fine"})
    good = made.specs[0]
    for name in HOSTILE:
        with pytest.raises(AttachmentNameUnsafe):
            dataclasses.replace(good, name=name)

    before = await snapshot(br)
    for name in HOSTILE:
        entry = {**good.to_json(), "name": name}

        def raw(_: list[AttachmentSpec], entry: dict[str, Any] = entry) -> bytes:
            return canonical_json({"attachments": [entry], "chunk_size": CHUNK_SIZE, "v": 1})

        hostile = handmade(federation, tmp_path, {"ok.txt": b"fine"}, manifest=raw)
        status, receipt = await post(federation, BR, hostile.record.envelope)
        rejection(status, receipt, hostile.record, "attachment.name_unsafe", 422)
        assert await transfer_rows(br, hostile.record.envelope_hash) == []
        assert not (br.attachments.root / "in" / hostile.record.envelope_hash).exists()
    assert await snapshot(br) == before
    assert not (br.attachments.root / "in").exists() or not any(
        (br.attachments.root / "in").iterdir())


async def test_a_node_refuses_to_send_a_file_whose_name_is_unsafe(
        federation: Federation, tmp_path: Path) -> None:
    fr = federation.nodes[FR]
    good = write(tmp_path, "ok.txt", b"fine")
    before = await snapshot(fr)
    for name in (".bashrc", "CON", "nul.txt", "c:evil.txt", "report\u202etxt.exe",
                 "trailing.", "line\nbreak.txt"):
        hostile = write(tmp_path / "hostile", name, b"x")
        with pytest.raises(AttachmentNameUnsafe) as caught:
            await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                  attachments=(good, hostile)))
        assert caught.value.code == "attachment.name_unsafe"
    assert await snapshot(fr) == before
    assert files_under(fr.attachments.root) == []


# --- 9. a full disk ------------------------------------------------------------------------


async def test_a_full_disk_is_transient_and_the_sender_retries(
        federation: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    margin = attachment_files.DISK_MARGIN
    br.attachments.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(br.attachments.root).free
    monkeypatch.setattr(attachment_files, "DISK_MARGIN", free + 1024 * MiB)
    data = os.urandom(100_000)
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                   attachments=(write(tmp_path, "big.bin", data),)))
    before = await snapshot(br)

    refused = await outbound_state(fr, queued.message_id,
                                   lambda r: r.last_error == "store.disk_full" and r.attempts >= 2)
    assert refused.state == "retrying" and refused.receipt is None
    assert await snapshot(br) == before
    assert await transfer_rows(br, queued.envelope_hash) == []

    # The same refusal, seen raw: signed, transient, naming the envelope.
    status, receipt = await post(federation, BR, queued.envelope)
    rejection(status, receipt, queued, "store.disk_full", 422)

    monkeypatch.setattr(attachment_files, "DISK_MARGIN", margin)
    sent = await delivered(fr, queued.message_id)
    _, chunks = await br.attachment(sent.message_id, 0)
    assert await drain(chunks) == data


# --- 10. export ----------------------------------------------------------------------------


async def test_export_writes_once_under_the_safe_name(
        federation: Federation, tmp_path: Path) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    data = os.urandom(2 * CHUNK_SIZE + 77)
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x", attachments=(
        write(tmp_path / "evidence", "Relevé bancaire 2025.pdf", data),)))
    sent = await delivered(fr, queued.message_id)
    spec, _ = await br.attachment(sent.message_id, 0)
    source = br.attachments.incoming(sent.envelope_hash, 0)

    folder = tmp_path / "export"
    folder.mkdir()
    final = export(source, spec, sent.message_id, folder)
    assert final == folder / "Relevé bancaire 2025.pdf"
    assert final.read_bytes() == data
    stat = final.stat()
    with pytest.raises(AttachmentExists) as caught:
        export(source, spec, sent.message_id, folder)
    assert caught.value.code == "attachment.exists"
    assert final.read_bytes() == data and final.stat().st_mtime_ns == stat.st_mtime_ns
    assert [p.name for p in folder.iterdir()] == [final.name]  # no .part, hidden or not

    # A file someone else put there under that name is not replaced either.
    other = tmp_path / "other"
    other.mkdir()
    (other / final.name).write_bytes(b"mine")
    with pytest.raises(AttachmentExists):
        export(source, spec, sent.message_id, other)
    assert (other / final.name).read_bytes() == b"mine"
    assert [p.name for p in other.iterdir()] == [final.name]

    # A stream that does not verify leaves nothing behind, not even the chunks before the bad one.
    bad = tmp_path / "bad.ct"
    flipped = bytearray(source.read_bytes())
    flipped[-5] ^= 0x80
    bad.write_bytes(bytes(flipped))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AttachmentCorrupt):
        export(bad, spec, sent.message_id, empty)
    assert list(empty.iterdir()) == []


# --- 11. spontaneous information with an attachment ----------------------------------------


async def test_an_attachment_of_withheld_information_is_withheld_too(
        federation: Federation, tmp_path: Path) -> None:
    fr, ke = federation.nodes[FR], federation.nodes[KE]
    conditions = Conditions(confidential=True, use_restrictions=("intelligence only",),
                            designated_receiver="Head of the BEPI")
    payload = encode_case_message(CaseMessage.build(
        Kind.SPONTANEOUS_INFORMATION, conditions=conditions,
        information="Wire records of the courier are attached."))
    data = b"IBAN;amount\n" + os.urandom(5000)
    queued = await ke.submit(Draft(FR, Kind.SPONTANEOUS_INFORMATION, CASE_TYPE, payload,
                                   attachments=(write(tmp_path, "wires.csv", data),)))
    await delivered(ke, queued.message_id)
    sid = queued.message_id

    before = await snapshot(fr)
    with pytest.raises(CaseContentWithheld) as caught:
        await fr.attachment(sid, 0, OPERATOR)
    assert caught.value.code == "case.content_withheld"
    with pytest.raises(CaseContentWithheld):
        await fr.attachment(sid, 0)
    # Not even the name or size shows before acceptance, nor over the local API.
    shown = await fr.read_message(sid, OPERATOR)
    assert shown["withheld"] is True and "attachments" not in shown
    assert "wires.csv" not in json.dumps(shown)
    status, _, body = await api_get(fr, f"/messages/{sid}/attachments/0")
    assert status == 403 and json.loads(body)["error"]["code"] == "case.content_withheld"
    assert data not in body
    assert await snapshot(fr) == before
    assert (await fr.call(fr.store.inbound_by_id, sid)).opened_at is None

    spec, chunks = await fr.attachment(sid, 0, RECEIVER)
    assert (spec.name, spec.size) == ("wires.csv", len(data))
    assert await drain(chunks) == data


# --- 12. the local API ---------------------------------------------------------------------


async def api_get(node: Node, path: str) -> tuple[int, dict[str, str], bytes]:
    token = node.config.api_token_path.read_text("ascii").strip()
    async with aiohttp.ClientSession() as session, session.get(
        f"http://127.0.0.1:{node.api_port}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def test_the_local_api_streams_the_plaintext(
        federation: Federation, tmp_path: Path) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    contents = {"notes.txt": b"hello\n", "photo.jpg": os.urandom(CHUNK_SIZE * 3 + 9)}
    paths = tuple(write(tmp_path, n, d) for n, d in contents.items())
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x", attachments=paths))
    mid = (await delivered(fr, queued.message_id)).message_id

    for index, (name, data) in enumerate(contents.items()):
        status, headers, body = await api_get(br, f"/messages/{mid}/attachments/{index}")
        assert status == 200
        assert body == data
        assert headers["Content-Length"] == str(len(data))
        assert headers["X-Rogatory-SHA256"] == hashlib.sha256(data).hexdigest()
        assert headers["X-Rogatory-Name"] == name
    assert headers["Content-Type"] == "image/jpeg"

    # The sender reads its own copy from its outbox the same way.
    status, headers, body = await api_get(fr, f"/messages/{mid}/attachments/1")
    assert (status, body) == (200, contents["photo.jpg"])

    status, _, body = await api_get(br, f"/messages/{mid}/attachments/2")
    assert status == 404 and b"store.not_found" in body

    async def no_token() -> int:
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{br.api_port}/api/v1/messages/{mid}/attachments/0",
        ) as response:
            return response.status

    assert await eventually(no_token, lambda s: s == 401, timeout=2.0) == 401


# --- bugs found while writing these tests ------------------------------------------------


@pytest.mark.parametrize("where", ["last chunk", "first chunk"])
async def test_the_local_api_never_passes_off_a_failing_stream_as_complete(
        federation: Federation, tmp_path: Path, where: str) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    data = os.urandom(3 * CHUNK_SIZE + 9)
    queued = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                   attachments=(write(tmp_path, "x.bin", data),)))
    sent = await delivered(fr, queued.message_id)
    path = br.attachments.incoming(sent.envelope_hash, 0)
    tampered = bytearray(path.read_bytes())
    tampered[-5 if where == "last chunk" else 100] ^= 0x01  # at rest, after acceptance
    path.write_bytes(bytes(tampered))
    _, chunks = await br.attachment(sent.message_id, 0)
    with pytest.raises(AttachmentCorrupt):  # the node itself notices
        await drain(chunks)

    token = br.config.api_token_path.read_text("ascii").strip()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session, \
                session.get(f"http://127.0.0.1:{br.api_port}/api/v1/messages/"
                            f"{sent.message_id}/attachments/0",
                            headers={"Authorization": f"Bearer {token}"}) as response:
            status, body = response.status, await response.read()
    except aiohttp.ClientError:
        outcome = "cut off"  # the client knows the body is incomplete
    except TimeoutError:
        outcome = "left hanging"
    else:
        refused = status >= 400 and b"attachment.corrupt" in body
        outcome = "refused" if refused else f"HTTP {status}, {len(body)} bytes: ...{body[-9:]!r}"
    assert outcome in ("cut off", "refused")


async def test_a_refused_submit_leaves_no_ciphertext_behind(
        federation: Federation, tmp_path: Path) -> None:
    fr = federation.nodes[FR]
    good = write(tmp_path, "ok.txt", b"fine" * 1000)
    before = await snapshot(fr)
    for unreadable in (tmp_path / "missing.txt", tmp_path):
        with pytest.raises(AttachmentMalformed):
            await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"x",
                                  attachments=(good, unreadable)))
    assert await snapshot(fr) == before
    assert files_under(fr.attachments.root) == []


async def test_the_disk_check_counts_transfers_already_promised(
        federation: Federation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    br = federation.nodes[BR]
    br.attachments.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(br.attachments.root).free
    size = free // 4  # each announced stream takes a quarter of the free space

    def huge(specs: list[AttachmentSpec]) -> list[AttachmentSpec]:
        return [dataclasses.replace(specs[0], size=size)]

    first = handmade(federation, tmp_path, {"a.bin": b"a"}, specs=huge)
    second = handmade(federation, tmp_path, {"b.bin": b"b"}, specs=huge)
    # One stream fits beside the margin with an eighth of the disk to spare; two do not.
    monkeypatch.setattr(attachment_files, "DISK_MARGIN", free - 3 * ciphertext_size(size) // 2)
    status, receipt = await post(federation, BR, first.record.envelope)
    rejection(status, receipt, first.record, "attachment.incomplete", 202)
    status, receipt = await post(federation, BR, second.record.envelope)
    rejection(status, receipt, second.record, "store.disk_full", 422)

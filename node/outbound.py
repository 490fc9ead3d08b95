"""Sending: seal an envelope, journal it, and deliver it until a verified receipt closes it.

The envelope is sealed once and journalled before the first attempt, so every retry sends the
same bytes and the receiver can answer a redelivery with the receipt it already issued. The
outbox survives a crash; the worker picks up where it stopped. A receipt closes an entry only
after its signature verifies against the receiver's key in the signed directory and it names
exactly the envelope, message id and parties that were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from keys.directory import Directory
from keys.keystore import KeyStore
from node.archive import ArchiveKey
from node.attachments import AttachmentFiles
from node.store import LogEntry, OutboundRecord, Store
from node.tls import peer_ssl
from protocol.checkpoint import Checkpoint
from protocol.encoding import Reader, frame
from protocol.envelope import MAX_LIFETIME, seal
from protocol.errors import (
    ApiBadRequest,
    EnvelopeLifetimeInvalid,
    LogError,
    RogatoryError,
    TransportBadResponse,
    TransportBatchUnsupported,
    TransportPinMismatch,
    TransportUnreachable,
)
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind, Priority
from protocol.log_entry import EntryType, encode_entry, verify_receipt_proof
from protocol.receipt import Receipt, parse_receipt

__all__ = ["DeliveryWorker", "Draft", "compose", "is_transient"]

log = logging.getLogger("rogatory.delivery")

T = TypeVar("T")
StoreCall = Callable[..., Awaitable[Any]]
CheckpointHook = Callable[[str, bytes], Coroutine[Any, Any, None]]
"""Called with (peer, tlog-proof) after every verified acceptance is recorded: witnessing."""

UPLOAD_PIECE = 1024 * 1024
VERIFY_RATE = 20e6  # bytes/s a slow receiver still decrypts and hashes attachments at
ENVELOPE_MEDIA_TYPE = "application/vnd.rogatory.envelope"
RECEIPT_MEDIA_TYPE = "application/vnd.rogatory.receipt"
BATCH_MEDIA_TYPE = "application/vnd.rogatory.envelopes"
RECEIPTS_MEDIA_TYPE = "application/vnd.rogatory.receipts"
MAX_BATCH = 64
MAX_BATCH_BYTES = 1024 * 1024  # bounds memory: concurrency x this is in flight
"""Envelopes per batch request: enough to amortise a round trip and an fsync, small enough
that one slow batch does not hold many messages back."""

TRANSIENT_CODES = frozenset({"envelope.clock_skew", "attachment.incomplete", "store.disk_full"})
"""Refusals that a later attempt with the same bytes can overcome; every other code is final."""


def is_transient(code: str) -> bool:
    return code in TRANSIENT_CODES or (code.startswith("transport.") and code != (
        "transport.body_too_large"
    ))


@dataclass(frozen=True)
class Draft:
    """What a caseworker asks to send, before it is sealed."""

    recipient: str
    kind: Kind
    content_type: str
    payload: bytes
    case: str = ""
    in_reply_to: str = ""
    priority: Priority = Priority.NORMAL
    lifetime: int = 7 * 24 * 3600
    override_reason: str = ""  # why an incomplete request package is sent all the same
    attachments: tuple[Path, ...] = ()  # files on the node's disk, sent beside the envelope


def sent_entry(record: OutboundRecord, sender: str, at: int) -> LogEntry:
    return EntryType.ENVELOPE_SENT.value, encode_entry(EntryType.ENVELOPE_SENT, {
        "envelope": record.envelope_hash, "id": record.message_id, "from": sender,
        "to": record.recipient, "kind": record.kind, "created": record.created,
        "expires": record.expires, "at": at,
    })


def receipt_received_entry(record: OutboundRecord, sender: str, receipt: Receipt,
                           at: int) -> LogEntry:
    """What the sender logs about the verified receipt that closed one of its envelopes."""
    return EntryType.RECEIPT_RECEIVED.value, encode_entry(EntryType.RECEIPT_RECEIVED, {
        "envelope": record.envelope_hash, "id": record.message_id, "from": sender,
        "to": record.recipient, "receipt": receipt.digest, "status": receipt.status.value,
        "code": receipt.code, "at": at,
    })


def compose(draft: Draft, *, authority: str, keystore: KeyStore, directory: Directory,
            archive: ArchiveKey, now: int, message_id: str = "",
            manifest: bytes = b"") -> OutboundRecord:
    """Seal a draft to the recipient's current prekey; the record is ready to be journalled.

    ``message_id`` and ``manifest`` come from encrypting the draft's attachments first: their
    streams are bound to the message id, and the manifest travels in the signed package.
    """
    if not 0 < draft.lifetime <= MAX_LIFETIME:
        raise EnvelopeLifetimeInvalid(f"lifetime must be 1..{MAX_LIFETIME} seconds")
    if draft.recipient == authority:
        raise ApiBadRequest("an authority cannot send to itself")
    prekey = directory.prekey_for(draft.recipient, now)
    header = EnvelopeHeader(
        id=message_id or os.urandom(16).hex(),
        kind=draft.kind,
        sender=authority,
        recipient=draft.recipient,
        sender_key=keystore.identity.key_id,
        recipient_prekey=prekey.id,
        suite=prekey.suite,
        created=now,
        expires=now + draft.lifetime,
        in_reply_to=draft.in_reply_to,
        case=draft.case,
        priority=draft.priority,
    )
    sealed = seal(header, draft.content_type, draft.payload,
                  sender_seed=keystore.identity.seed, recipient_public=prekey.public_raw,
                  manifest=manifest)
    return OutboundRecord(
        envelope_hash=sealed.hash,
        message_id=header.id,
        recipient=header.recipient,
        kind=header.kind.value,
        case_ref=header.case,
        in_reply_to=header.in_reply_to,
        priority=header.priority.value,
        created=header.created,
        expires=header.expires,
        envelope=sealed.data,
        archive=archive.seal(sealed.hash, sealed.package),
        state="queued",
        attempts=0,
        last_error="",
        receipt=None,
        delivered_at=None,
    )


class DeliveryWorker:
    """Drains the outbox: concurrent attempts, exponential backoff with jitter, expiry."""

    def __init__(
        self,
        *,
        authority: str,
        store: Store,
        db: StoreCall,
        directory: Callable[[], Directory],
        clock: Callable[[], float],
        retry_base: float,
        retry_max: float,
        concurrency: int = 16,
        request_timeout: float = 30.0,
        attachments: AttachmentFiles | None = None,
    ) -> None:
        self.authority = authority
        self.store = store
        self.db = db
        self._directory = directory
        self.clock = clock
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.concurrency = concurrency
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[str] = set()
        self._attempts: set[asyncio.Task[None]] = set()
        self.on_checkpoint: CheckpointHook | None = None
        self.attachments = attachments
        self.progress: dict[str, tuple[int, int]] = {}  # message id -> (bytes sent, total)
        self._no_batch: set[str] = set()  # peers that answered the batch route with 404

    def wake(self) -> None:
        """Called after something is queued, so it leaves now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=self.timeout,
            connector=aiohttp.TCPConnector(limit=self.concurrency),
        )
        self._task = asyncio.create_task(self._run(), name=f"delivery {self.authority}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop polling, let attempts in flight finish for ``grace`` seconds, cancel the rest.

        A cancelled attempt loses nothing (its entry stays in the outbox and is retried at the
        next start), but one that finishes saves the peer a redelivery and closes its
        connection cleanly.
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        in_flight = [t for t in self._attempts if not t.done()]
        if in_flight:
            await asyncio.wait(in_flight, timeout=grace)
        for task in in_flight:
            task.cancel()
        for task in in_flight:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def backoff(self, attempts: int) -> float:
        """Equal jitter: half the exponential delay fixed, half random, capped at retry_max."""
        delay = min(self.retry_max, self.retry_base * (2 ** min(attempts, 30)))
        return float(delay / 2 + random.uniform(0, delay / 2))

    async def _run(self) -> None:
        limit = asyncio.Semaphore(self.concurrency)
        while True:
            if limit.locked():  # every attempt slot busy: polling now would find nothing to do
                await limit.acquire()
                limit.release()
            self._wake.clear()
            now = self.clock()
            due = await self.db(self.store.due, now, self.concurrency * MAX_BATCH,
                                16 * 1024 * 1024, self.retry_max + 1.0,
                                frozenset(self._in_flight))
            for group in self._batches(due):  # due() skipped what is in flight
                self._in_flight.update(r.envelope_hash for r in group)
                await limit.acquire()
                job = self._attempt(group[0], limit) if len(group) == 1 \
                    else self._attempt_batch(group, limit)
                task = asyncio.create_task(job)
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            next_due = await self.db(self.store.next_due)
            wait = 1.0 if next_due is None else max(0.0, min(1.0, next_due - self.clock()))
            if due and wait == 0.0:
                wait = 0.01  # let attempts in flight progress before polling again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _batches(self, records: list[OutboundRecord]) -> list[list[OutboundRecord]]:
        """Due envelopes grouped per recipient into batches; attachments always go alone."""
        groups: dict[str, list[list[OutboundRecord]]] = {}
        out: list[list[OutboundRecord]] = []
        for record in records:
            alone = (record.recipient in self._no_batch or (self.attachments is not None
                     and bool(self.attachments.outgoing_files(record.message_id))))
            if alone:
                out.append([record])
                continue
            batches = groups.setdefault(record.recipient, [[]])
            size = sum(len(r.envelope) for r in batches[-1])
            if len(batches[-1]) == MAX_BATCH or (
                    batches[-1] and size + len(record.envelope) > MAX_BATCH_BYTES):
                batches.append([])
            batches[-1].append(record)
        for batches in groups.values():
            out.extend(batches)
        return out

    async def _attempt_batch(self, records: list[OutboundRecord],
                             limit: asyncio.Semaphore) -> None:
        try:
            await self._deliver_batch(records)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery of a batch of %d failed unexpectedly", len(records))
            for record in records:
                await self.db(self.store.record_retry, record.envelope_hash, "store.failed",
                              self.clock() + self.backoff(record.attempts))
        finally:
            for record in records:
                self._in_flight.discard(record.envelope_hash)
            limit.release()

    async def _deliver_batch(self, records: list[OutboundRecord]) -> None:
        """One request for many envelopes; each answered by its own verified receipt.

        The receipts that close envelopes are recorded in one transaction. An envelope whose
        receipt asks for something more (attachments) or is transient goes the single way.
        """
        now = self.clock()
        live = [r for r in records if now < r.expires]
        for record in records:
            if record not in live:
                await self.db(self.store.record_failure, record.envelope_hash,
                              "envelope.expired")
        if not live:
            return
        try:
            receipts = await self.post_batch(live)
        except RogatoryError as exc:
            if exc.code == "transport.batch_unsupported":
                self._no_batch.add(live[0].recipient)
            for record in live:
                retry_at = self.clock() + (0 if exc.code == "transport.batch_unsupported"
                                           else self.backoff(record.attempts))
                await self.db(self.store.record_retry, record.envelope_hash, exc.code, retry_at)
            self.wake()
            return
        at = int(self.clock())
        closing = []
        for record, receipt in zip(live, receipts, strict=True):
            if not receipt.accepted and is_transient(receipt.code):
                await self.db(self.store.record_retry, record.envelope_hash, receipt.code,
                              self.clock() + (0 if receipt.code == "attachment.incomplete"
                                              else self.backoff(record.attempts)))
                continue
            closing.append((record.envelope_hash, receipt.data, receipt.status.value,
                            receipt.code, at,
                            receipt_received_entry(record, self.authority, receipt, at)))
        if closing:
            await self.db(self.store.record_deliveries, closing)
        accepted = [r for r in receipts if r.accepted]
        log.info("delivered %d of a batch of %d to %s", len(accepted), len(live),
                 live[0].recipient)
        if accepted and self.on_checkpoint is not None:
            task = asyncio.create_task(self.on_checkpoint(live[0].recipient, accepted[-1].proof))
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)

    async def post_batch(self, records: list[OutboundRecord]) -> list[Receipt]:
        """POST framed envelopes to one peer; every receipt checked as ``post`` checks one."""
        assert self._session is not None, "start() the worker first"
        recipient = records[0].recipient
        peer = self._directory().record(recipient)
        url = peer.endpoint.rstrip("/") + "/v1/envelopes/batch"
        try:
            async with self._session.post(
                url, data=frame(*(r.envelope for r in records)),
                ssl=peer_ssl(peer.endpoint, peer.tls_fingerprint),
                headers={"Content-Type": BATCH_MEDIA_TYPE, "Accept": RECEIPTS_MEDIA_TYPE},
            ) as response:
                media, status, body = response.content_type, response.status, await response.read()
        except aiohttp.ServerFingerprintMismatch as exc:
            raise TransportPinMismatch(f"{recipient} at {url}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportUnreachable(f"{recipient} at {url}: {exc!r}") from exc
        if status in (404, 405, 413):  # no batch route, or a body limit below our batches
            raise TransportBatchUnsupported(f"{recipient} answers HTTP {status}")
        if media != RECEIPTS_MEDIA_TYPE:
            raise TransportBadResponse(f"HTTP {status} with {media!r} instead of receipts")
        try:
            reader = Reader(body, TransportBadResponse)
            parts = [reader.framed() for _ in records]
            reader.end()
        except RogatoryError as exc:
            raise TransportBadResponse(f"{recipient}: receipts not framed one per envelope "
                                       f"({exc.detail})") from exc
        return self._check_receipts(records, parts)

    def _check_receipts(self, records: list[OutboundRecord], parts: list[bytes],
                        ) -> list[Receipt]:
        """Every receipt of a batch checked as ``post`` checks one; the checkpoint they share
        is verified once."""
        opened: dict[tuple[bytes, str, bytes], Checkpoint] = {}
        return [self._check_receipt(record, part, opened) for record, part in
                zip(records, parts, strict=True)]

    async def _attempt(self, record: OutboundRecord, limit: asyncio.Semaphore) -> None:
        try:
            await self._deliver(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery of %s failed unexpectedly", record.message_id)
            await self.db(self.store.record_retry, record.envelope_hash, "store.failed",
                          self.clock() + self.backoff(record.attempts))
        finally:
            self._in_flight.discard(record.envelope_hash)
            limit.release()

    async def _deliver(self, record: OutboundRecord) -> None:
        now = self.clock()
        if now >= record.expires:
            log.warning("%s to %s expired undelivered", record.message_id, record.recipient)
            await self.db(self.store.record_failure, record.envelope_hash, "envelope.expired")
            return
        try:
            receipt = await self.post(record)
            if not receipt.accepted and receipt.code == "attachment.incomplete":
                total = await self.upload(record)
                # The receiver decrypts and checks every stream before it answers.
                receipt = await self.post(record, aiohttp.ClientTimeout(
                    total=None, sock_connect=30, sock_read=60 + total / VERIFY_RATE))
        except RogatoryError as exc:
            retry_at = self.clock() + self.backoff(record.attempts)
            log.info("delivery of %s to %s failed (%s); retry in %.1fs", record.message_id,
                     record.recipient, exc.code, retry_at - self.clock())
            await self.db(self.store.record_retry, record.envelope_hash, exc.code, retry_at)
            self.wake()
            return
        if not receipt.accepted and is_transient(receipt.code):
            await self.db(self.store.record_retry, record.envelope_hash, receipt.code,
                          self.clock() + self.backoff(record.attempts))
            return
        at = int(self.clock())
        await self.db(self.store.record_delivery, record.envelope_hash, receipt.data,
                      receipt.status.value, receipt.code, at,
                      receipt_received_entry(record, self.authority, receipt, at))
        if receipt.accepted:
            log.info("delivered %s to %s", record.message_id, record.recipient)
            if self.on_checkpoint is not None:
                # Witnessing the receiver's log fetches a consistency proof and is serialised
                # per peer; it runs beside delivery so it never holds up the next envelope.
                task = asyncio.create_task(self.on_checkpoint(record.recipient, receipt.proof))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
        else:
            log.warning("%s refused by %s: %s", record.message_id, record.recipient,
                        receipt.code)

    async def upload(self, record: OutboundRecord) -> int:
        """Send each attachment's ciphertext from the last byte the receiver holds.

        The receiver tells how much it has; an interrupted upload resumes there at the next
        attempt. Files are read in pieces, so memory stays flat whatever their size.
        """
        assert self._session is not None and self.attachments is not None
        files = self.attachments.outgoing_files(record.message_id)
        if not files:
            raise TransportBadResponse(f"{record.recipient} asks for attachments of "
                                       f"{record.message_id}, which has none here")
        peer = self._directory().record(record.recipient)
        ssl = peer_ssl(peer.endpoint, peer.tls_fingerprint)
        base = f"{peer.endpoint.rstrip('/')}/v1/attachments/{record.envelope_hash}"
        total = sum(f.stat().st_size for f in files)
        done = 0
        slow = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        try:
            for index, path in enumerate(files):
                size = path.stat().st_size
                async with self._session.get(f"{base}/{index}", ssl=ssl) as response:
                    state = await _transfer_state(response, record.recipient)
                offset = state["received"]
                if state["expected"] != size or offset > size:
                    raise TransportBadResponse(f"{record.recipient} expects {state['expected']} "
                                               f"bytes of attachment {index}, we hold {size}")
                done += offset
                self.progress[record.message_id] = (done, total)
                if offset == size:
                    continue
                async with self._session.put(
                    f"{base}/{index}", params={"offset": str(offset)}, ssl=ssl, timeout=slow,
                    data=self._read_from(path, offset, record.message_id, done, total),
                    headers={"Content-Type": "application/octet-stream"},
                ) as response:
                    state = await _transfer_state(response, record.recipient)
                if state["received"] != size:
                    raise TransportBadResponse(
                        f"{record.recipient} holds {state['received']} of {size} bytes of "
                        f"attachment {index} after the upload; resuming at the next attempt")
                done += size - offset
        except aiohttp.ServerFingerprintMismatch as exc:
            raise TransportPinMismatch(f"{record.recipient} at {base}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportUnreachable(f"{record.recipient} at {base}: {exc!r}") from exc
        return total

    async def _read_from(self, path: Path, offset: int, message_id: str, done: int,
                         total: int) -> AsyncIterator[bytes]:
        with path.open("rb") as file:
            file.seek(offset)
            while piece := await asyncio.to_thread(file.read, UPLOAD_PIECE):
                done += len(piece)
                self.progress[message_id] = (done, total)
                yield piece

    async def post(self, record: OutboundRecord,
                   timeout: aiohttp.ClientTimeout | None = None) -> Receipt:
        """One attempt: POST the envelope, verify the receipt that comes back."""
        assert self._session is not None, "start() the worker first"
        directory = self._directory()
        peer = directory.record(record.recipient)
        ssl = peer_ssl(peer.endpoint, peer.tls_fingerprint)
        url = peer.endpoint.rstrip("/") + "/v1/envelopes"
        try:
            async with self._session.post(
                url, data=record.envelope, ssl=ssl, timeout=timeout or self.timeout,
                headers={"Content-Type": ENVELOPE_MEDIA_TYPE, "Accept": RECEIPT_MEDIA_TYPE},
            ) as response:
                media = response.content_type
                body = await response.read()
                status = response.status
        except aiohttp.ServerFingerprintMismatch as exc:
            raise TransportPinMismatch(f"{record.recipient} at {url}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportUnreachable(f"{record.recipient} at {url}: {exc!r}") from exc
        if media != RECEIPT_MEDIA_TYPE:
            raise TransportBadResponse(f"HTTP {status} with {media!r} instead of a receipt")
        return self._check_receipt(record, body)

    def _check_receipt(self, record: OutboundRecord, body: bytes,
                       opened: dict[tuple[bytes, str, bytes], Checkpoint] | None = None,
                       ) -> Receipt:
        """The receipt must verify, name this envelope, and carry a valid log proof."""
        directory = self._directory()
        try:
            receipt = parse_receipt(body)
            receipt.verify(directory.receiver_key(record.recipient, receipt.receiver_key))
            if receipt.accepted or receipt.envelope_hash:
                receipt.check_names(envelope_hash=record.envelope_hash,
                                    message_id=record.message_id, sender=self.authority,
                                    receiver=record.recipient)
            elif receipt.receiver != record.recipient:
                # A refusal of a body never read in full cannot name it; it must still be
                # signed by the authority we called.
                raise TransportBadResponse("a refusal signed by another authority")
            if receipt.accepted:
                verify_receipt_proof(
                    receipt, directory.receiver_key(record.recipient, receipt.receiver_key),
                    opened=opened)
        except LogError:
            raise
        except TransportBadResponse:
            raise
        except RogatoryError as exc:
            raise TransportBadResponse(f"receipt from {record.recipient}: {exc.code}") from exc
        return receipt


async def _transfer_state(response: aiohttp.ClientResponse, peer: str) -> dict[str, int]:
    """The receiver's answer about one attachment: ``{"received": n, "expected": m}``."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        raise TransportBadResponse(f"{peer}: HTTP {response.status} without a JSON body") from None
    if response.status not in (200, 409) or not isinstance(body, dict):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise TransportBadResponse(f"{peer}: HTTP {response.status} {error.get('code', '')}")
    received, expected = body.get("received"), body.get("expected")
    if type(received) is not int or type(expected) is not int or not 0 <= received <= expected:
        raise TransportBadResponse(f"{peer}: a transfer state without sizes")
    return {"received": received, "expected": expected}

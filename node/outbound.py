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
import functools
import hashlib
import logging
import os
import random
from collections import Counter
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
from protocol.encoding import Reader, canonical_json, frame
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
PARTIAL_PER_PEER = 1
"""A batch short of MAX_BATCH waits while this many requests to its peer are unanswered."""
READY_BYTES = 16 * 1024 * 1024
"""Envelopes held in memory for the next batches, at most: the rest waits in the outbox."""

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
    by: str = "token:operator"  # who asks: "user:<name>" on the web, the token on the API
    idempotency_key: str = ""  # the caller's name for this submit, so a retry sends nothing new

    def digest(self) -> str:
        """What a retry under the same idempotency key must repeat: every field that shapes
        the message (the payload by its hash)."""
        return hashlib.sha256(canonical_json({
            "to": self.recipient, "kind": self.kind.value, "content_type": self.content_type,
            "payload": hashlib.sha256(self.payload).hexdigest(), "case": self.case,
            "in_reply_to": self.in_reply_to, "priority": self.priority.value,
            "lifetime": self.lifetime, "override_reason": self.override_reason,
            "attachments": [str(path) for path in self.attachments], "by": self.by,
        })).hexdigest()


@dataclass(frozen=True, slots=True)
class Override:
    """A request package sent although the checks before sending found fault with it.

    The reason stays in the case book in full; the log keeps its SHA-256, so the operator can
    no more rewrite a justification afterwards than erase the fact that one was needed.
    """

    reason: str
    gaps: int
    language_accepted: bool
    by: str

    def entry(self, record: OutboundRecord, at: int) -> LogEntry:
        return EntryType.CHECK_OVERRIDDEN.value, encode_entry(EntryType.CHECK_OVERRIDDEN, {
            "envelope": record.envelope_hash, "id": record.message_id, "to": record.recipient,
            "gaps": self.gaps, "language": "accepted" if self.language_accepted
            else "not-accepted", "reason": hashlib.sha256(self.reason.encode()).hexdigest(),
            "by": self.by, "at": at,
        })


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
    """Drains the outbox: batches per peer, concurrent attempts, backoff with jitter, expiry.

    A freshly journalled envelope is handed over in memory (``offer``) and leaves in the next
    batch to its peer; the outbox is polled for what memory does not hold: retries, a backlog
    found at start, what arrived while the worker was full. A batch short of ``MAX_BATCH``
    waits while a request to its peer is unanswered, so under a steady load envelopes gather
    into fewer, larger requests instead of each paying a request, a commit and a checkpoint.
    """

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
        self._in_flight: set[str] = set()  # ready or being attempted: never polled again
        self._attempts: set[asyncio.Task[None]] = set()
        self.on_checkpoint: CheckpointHook | None = None
        self.attachments = attachments
        self.progress: dict[str, tuple[int, int]] = {}  # message id -> (bytes sent, total)
        self._no_batch: set[str] = set()  # peers that answered the batch route with 404
        self._ready: dict[str, list[OutboundRecord]] = {}  # per peer, waiting for a batch
        self._ready_bytes = 0
        self._asking: dict[str, str] = {}  # first envelope of an unanswered request -> peer
        self._unanswered: Counter[str] = Counter()  # batch requests per peer
        self._running = 0  # attempts holding one of the ``concurrency`` slots
        self._more = False  # the last poll left due envelopes behind
        self._rescheduled = False  # a retry was scheduled since the last poll
        self._backlog = False  # envelopes wait in the outbox only: offers go there too

    def wake(self) -> None:
        """Poll the outbox now rather than at the next timer (something was queued or failed)."""
        self._wake.set()

    def offer(self, record: OutboundRecord, *, attachments: bool) -> None:
        """A journalled envelope, handed over so that it leaves without a poll of the outbox.

        The caller says whether it has attachments (it knows; the worker would look on disk).
        It is already durable: if memory is full, the worker is stopped, or it goes alone
        (attachments, a peer without batches), the poll finds it instead. Once memory has
        been full, every envelope goes through the outbox until the poll has caught up, so
        none overtakes those that waited there.
        """
        if record.envelope_hash in self._in_flight:
            return  # a poll found it first
        if self._full():
            self._backlog = True
        if self._task is None or self._backlog or self._alone(record, attachments):
            self.wake()
            return
        self._hand(record)
        self._dispatch(record.recipient)

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
        connection cleanly. Envelopes still waiting in memory stay in the outbox too.
        """
        task, self._task = self._task, None  # from here on nothing new is launched
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for records in self._ready.values():
            self._in_flight.difference_update(r.envelope_hash for r in records)
        self._ready.clear()
        self._ready_bytes = 0
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
        while True:
            self._wake.clear()
            self._rescheduled = False
            now = self.clock()
            later: float | None = None
            if not self._full() and self._running < self.concurrency:
                room = self.concurrency * MAX_BATCH - sum(map(len, self._ready.values()))
                room_bytes = READY_BYTES - self._ready_bytes
                due, later = await self.db(self._poll, now, room, room_bytes,
                                           frozenset(self._in_flight))
                self._more = (len(due) >= room
                              or sum(len(r.envelope) for r in due) >= room_bytes)
                self._backlog = self._backlog and self._more
                for record in due:
                    if record.envelope_hash in self._in_flight:
                        continue  # offered while the poll ran
                    if self._alone(record):
                        if self._running >= self.concurrency:
                            self._more = True
                            continue
                        self._in_flight.add(record.envelope_hash)
                        self._launch(record.recipient, [record], counted=False)
                    else:
                        self._hand(record)
                for peer in list(self._ready):
                    self._dispatch(peer)
            else:
                self._more = True  # a slot or room frees when an attempt ends: _finished
            wait = 1.0 if later is None else max(0.0, min(1.0, later - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _poll(self, now: float, limit: int, max_bytes: int, skip: frozenset[str],
              ) -> tuple[list[OutboundRecord], float | None]:
        """What is due now, and when the next retry is: one call to the store thread."""
        due = self.store.due(now, limit, max_bytes, self.retry_max + 1.0, skip)
        return due, self.store.next_due(after=now)

    def _full(self) -> bool:
        return (self._ready_bytes >= READY_BYTES
                or sum(map(len, self._ready.values())) >= self.concurrency * MAX_BATCH)

    def _hand(self, record: OutboundRecord) -> None:
        self._in_flight.add(record.envelope_hash)
        self._ready.setdefault(record.recipient, []).append(record)
        self._ready_bytes += len(record.envelope)

    def _dispatch(self, peer: str) -> None:
        """Send what is ready for ``peer``: every full batch, and the rest unless a request
        to the peer is still unanswered (it grows meanwhile)."""
        ready = self._ready.get(peer)
        while ready and self._task is not None and self._running < self.concurrency:
            if peer in self._no_batch:  # found out since these were handed over
                record = ready.pop(0)
                self._ready_bytes -= len(record.envelope)
                self._launch(peer, [record], counted=False)
                continue
            size, count = 0, 0
            for record in ready[:MAX_BATCH]:
                if count and size + len(record.envelope) > MAX_BATCH_BYTES:
                    break
                size += len(record.envelope)
                count += 1
            if count == len(ready) < MAX_BATCH and self._unanswered[peer] >= PARTIAL_PER_PEER:
                break
            batch, ready[:count] = ready[:count], []
            self._ready_bytes -= size
            self._launch(peer, batch, counted=True)
        if not ready:
            self._ready.pop(peer, None)

    def _launch(self, peer: str, records: list[OutboundRecord], *, counted: bool) -> None:
        self._running += 1
        if counted:
            self._unanswered[peer] += 1
            self._asking[records[0].envelope_hash] = peer
        job = self._attempt(records[0]) if len(records) == 1 else self._attempt_batch(records)
        task = asyncio.create_task(job)
        self._attempts.add(task)
        task.add_done_callback(functools.partial(self._finished, records[0].envelope_hash))

    def _answered(self, key: str) -> None:
        """The request that began with envelope ``key`` has its answer (or failed): a batch
        held back for its peer may go now, before the receipts are checked and recorded."""
        peer = self._asking.pop(key, None)
        if peer is None:
            return
        if self._unanswered[peer] > 1:
            self._unanswered[peer] -= 1
        else:
            del self._unanswered[peer]
        self._dispatch(peer)

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        self._attempts.discard(task)
        self._answered(key)  # if it never got as far as an answer
        self._running -= 1
        for peer in list(self._ready):
            self._dispatch(peer)
        if self._more or self._rescheduled:
            self.wake()

    async def _retry(self, record: OutboundRecord, code: str, delay: float) -> None:
        await self.db(self.store.record_retry, record.envelope_hash, code, self.clock() + delay)
        self._rescheduled = True  # the poll's timer may be later than this retry: _finished

    def _alone(self, record: OutboundRecord, attachments: bool | None = None) -> bool:
        """One envelope per request: it has attachments, or its peer takes no batches.
        ``attachments`` when the caller knows; otherwise the outgoing folder tells."""
        if record.recipient in self._no_batch:
            return True
        if attachments is None:
            attachments = self.attachments is not None and bool(
                self.attachments.outgoing_files(record.message_id))
        return attachments

    async def _attempt_batch(self, records: list[OutboundRecord]) -> None:
        try:
            await self._deliver_batch(records)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery of a batch of %d failed unexpectedly", len(records))
            for record in records:
                await self._retry(record, "store.failed", self.backoff(record.attempts))
        finally:
            for record in records:
                self._in_flight.discard(record.envelope_hash)

    async def _deliver_batch(self, records: list[OutboundRecord]) -> None:
        """One request for many envelopes; each answered by its own verified receipt.

        The receipts that close envelopes are recorded in one transaction. An envelope whose
        receipt asks for something more (attachments) or is transient goes the single way.
        """
        now = self.clock()
        live = [r for r in records if now < r.expires]
        for record in records:
            if now >= record.expires:
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
                await self._retry(record, exc.code, 0 if exc.code == "transport.batch_unsupported"
                                  else self.backoff(record.attempts))
            return
        at = int(self.clock())
        closing = []
        for record, receipt in zip(live, receipts, strict=True):
            if not receipt.accepted and is_transient(receipt.code):
                await self._retry(record, receipt.code, 0 if receipt.code == "attachment.incomplete"
                                  else self.backoff(record.attempts))
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
        finally:
            self._answered(records[0].envelope_hash)
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

    async def _attempt(self, record: OutboundRecord) -> None:
        try:
            await self._deliver(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery of %s failed unexpectedly", record.message_id)
            await self._retry(record, "store.failed", self.backoff(record.attempts))
        finally:
            self._in_flight.discard(record.envelope_hash)

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
            delay = self.backoff(record.attempts)
            log.info("delivery of %s to %s failed (%s); retry in %.1fs", record.message_id,
                     record.recipient, exc.code, delay)
            await self._retry(record, exc.code, delay)
            return
        if not receipt.accepted and is_transient(receipt.code):
            await self._retry(record, receipt.code, self.backoff(record.attempts))
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
        finally:
            self._answered(record.envelope_hash)
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

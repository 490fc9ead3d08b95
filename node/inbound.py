"""Taking an envelope in: check it, make it durable, and only then sign the receipt that says so.

The order is the whole point. An exact redelivery is answered with the receipt already issued
(never a second acceptance); anything refused gets a signed rejection and leaves the store as it
was; an acceptance is signed, then committed in one transaction with the message, the seen pair
and the receipt itself, and only after that commit is the receipt allowed to leave the node.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from keys.directory import Directory
from keys.keystore import KeyStore
from node.archive import ArchiveKey
from node.attachments import AttachmentFiles
from node.cases import Content
from node.store import InboundRecord, Store
from protocol.attachment import AttachmentSpec, parse_manifest
from protocol.case import Direction
from protocol.case_message import CaseMessage, check_content
from protocol.envelope import OpenedEnvelope, envelope_hash, open_envelope, parse_envelope
from protocol.errors import (
    AttachmentIncomplete,
    AttachmentMalformed,
    EnvelopeError,
    EnvelopeReplayed,
    RogatoryError,
    StoreDiskFull,
    TransportBodyTooLarge,
)
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind
from protocol.log_entry import EntryType, encode_entry, log_origin, received_entry
from protocol.receipt import Receipt, ReceiptStatus, sign_receipt
from protocol.suites import Suite

__all__ = ["InboundDesk", "Outcome", "Prepared", "http_status_for"]

log = logging.getLogger("rogatory.inbound")

_STATUS_BY_CODE = {
    "envelope.malformed": 400,
    "envelope.version_unsupported": 400,
    "envelope.kind_unknown": 400,
    "encoding.malformed": 400,
    "encoding.non_canonical": 400,
    "envelope.signature_invalid": 403,
    "envelope.unknown_sender": 403,
    "envelope.key_revoked": 403,
    "envelope.inner_signature_invalid": 403,
    "envelope.forwarded": 403,
    "envelope.header_mismatch": 403,
    "envelope.reflected": 403,
    "envelope.replayed": 409,
    "attachment.incomplete": 202,
    "transport.body_too_large": 413,
    "transport.body_too_slow": 408,
}


def http_status_for(code: str) -> int:
    """The HTTP status that carries a rejection; the receipt's code is what senders act on."""
    return _STATUS_BY_CODE.get(code, 422)


@dataclass(frozen=True)
class Outcome:
    """What to answer: the HTTP status and the signed receipt bytes."""

    status: int
    receipt: bytes
    accepted: bool
    duplicate: bool = False
    code: str = ""
    verify: tuple[AttachmentSpec, ...] = ()  # every attachment arrived: check them, then retry
    expect: tuple[AttachmentSpec, ...] = ()  # attachments still to come: check them as they do
    message_id: str = ""


@dataclass(frozen=True)
class Prepared:
    """An envelope that passed every check needing no database, ready to be committed."""

    data: bytes
    digest: str
    opened: OpenedEnvelope
    content: Content
    now: int


class InboundDesk:
    """The receiving side of one node. Synchronous: the node runs it on its store thread."""

    def __init__(
        self,
        *,
        authority: str,
        keystore: KeyStore,
        directory: Callable[[], Directory],
        store: Store,
        archive: ArchiveKey,
        clock: Callable[[], float],
        max_skew: int,
        attachments: AttachmentFiles | None = None,
    ) -> None:
        self.attachments = attachments
        self.authority = authority
        self.keystore = keystore
        self._directory = directory
        self.store = store
        self.archive = archive
        self.clock = clock
        self.max_skew = max_skew

    def _strongest_suite(self, now: int) -> Suite:
        current = self.keystore.prekeys.current(now)
        if not current:
            return Suite.HYBRID
        return max((p.suite for p in current), key=lambda suite: suite.strength)

    def _sign(self, status: ReceiptStatus, *, envelope: str, message_id: str, sender: str,
              received: int, code: str = "", detail: str = "",
              log_index: int | None = None) -> Receipt:
        return sign_receipt(
            status=status,
            envelope_hash=envelope,
            message_id=message_id,
            sender=sender,
            receiver=self.authority,
            receiver_key=self.keystore.identity.key_id,
            received=received,
            receiver_seed=self.keystore.identity.seed,
            code=code,
            detail=detail,
            log_index=log_index,
        )

    def reject(self, error: RogatoryError, data: bytes | None) -> Outcome:
        """A signed refusal naming as much of the envelope as could be read, and nothing stored."""
        now = int(self.clock())
        digest, message_id, sender = "", "", ""
        if data is not None:
            digest = envelope_hash(data)
            try:
                header = parse_envelope(data).header
                message_id, sender = header.id, header.sender
            except RogatoryError:
                pass
        receipt = self._sign(ReceiptStatus.REJECTED, envelope=digest, message_id=message_id,
                             sender=sender, received=now, code=error.code,
                             detail=error.message)
        log.info("refused envelope %s from %s: %s", digest or "-", sender or "-", error.code)
        return Outcome(http_status_for(error.code), receipt.data, False, code=error.code)

    def too_large(self, limit: int) -> Outcome:
        return self.reject(TransportBodyTooLarge(f"the limit is {limit} bytes"), None)

    def accept(self, data: bytes) -> Outcome:
        """All of taking an envelope in, on the store thread: an exact redelivery gets its
        receipt before any cryptography (a large batch is split instead: see ``open``)."""
        digest = envelope_hash(data)
        stored = self.store.receipt_for_inbound(digest)
        if stored is not None:
            return Outcome(200, stored, True, duplicate=True)
        opened = self.open(data)
        if isinstance(opened, Outcome):
            return opened
        return self.commit(opened)

    def open(self, data: bytes) -> Prepared | Outcome:
        """Every check that needs no database: signatures, decryption, the payload's schema.

        Pure CPU on values held in memory: the node runs it on its crypto threads for a large
        batch, while the store thread commits other envelopes, and on the store thread for a
        few, to spare the hops. The replay check needs the store and happens in ``commit``;
        an exact redelivery is recognised before this is called.
        """
        digest = envelope_hash(data)
        now = int(self.clock())
        try:
            opened = open_envelope(
                data,
                me=self.authority,
                now=now,
                senders=self._directory(),
                prekey=self.keystore.receiver_prekey,
                strongest_suite=self._strongest_suite(now),
                already_used=lambda sender, message_id: False,
                max_skew=self.max_skew,
            )
            content = check_content(opened.header.kind, opened.package.content_type,
                                    opened.package.payload)
        except RogatoryError as exc:
            return self.reject(exc, data)
        except Exception:
            log.exception("unexpected failure opening envelope %s", digest)
            return self.reject(EnvelopeError("the envelope could not be processed"), data)
        return Prepared(data, digest, opened, content, now)

    def commit(self, prepared: Prepared) -> Outcome:
        """On the store thread: dedup, replay, attachments, then the one durable commit."""
        data, digest, opened = prepared.data, prepared.digest, prepared.opened
        header = opened.header
        stored = self.store.receipt_for_inbound(digest)
        if stored is not None:
            return Outcome(200, stored, True, duplicate=True)
        now = int(self.clock())
        try:
            if self.store.is_seen(header.sender, header.id):
                raise EnvelopeReplayed(f"message id {header.id} from {header.sender}")
            if opened.package.manifest:
                waiting = self._attachments_waiting(opened, digest, now)
                if waiting is not None:
                    return waiting
        except RogatoryError as exc:
            return self.reject(exc, data)
        try:
            with self.store.transaction():
                receipt = self._commit([(opened, digest, prepared.content)], now)[0].data
        except sqlite3.IntegrityError:
            # Another request committed the same envelope, or the same id, first.
            stored = self.store.receipt_for_inbound(digest)
            if stored is not None:
                return Outcome(200, stored, True, duplicate=True)
            return self.reject(EnvelopeReplayed(f"message id {header.id}"), data)
        log.info("accepted %s %s from %s", header.kind.value, header.id, header.sender)
        return Outcome(200, receipt, True)

    def commit_many(self, batch: list[Prepared]) -> list[Outcome | None]:
        """Group commit: every envelope of a batch in one transaction and one fsync, with one
        checkpoint for all their receipts (``_commit``). ``None`` marks an envelope with
        attachments, which the caller takes in alone. If anything fails the whole transaction
        is undone and each envelope is committed on its own, so a batch never loses or
        half-stores an envelope.
        """
        outcomes: list[Outcome | None] = [None] * len(batch)
        staged: list[tuple[int, Prepared]] = []
        try:
            with self.store.transaction():
                stored = self.store.receipts_for_inbound([p.digest for p in batch])
                seen = self.store.seen_among([(p.opened.header.sender, p.opened.header.id)
                                              for p in batch])
                copies: dict[str, int] = {}  # envelope hash -> its first place in the batch
                repeats: list[tuple[int, int]] = []
                for i, prepared in enumerate(batch):
                    header = prepared.opened.header
                    pair = (header.sender, header.id)
                    if prepared.digest in stored:
                        outcomes[i] = Outcome(200, stored[prepared.digest], True, duplicate=True)
                    elif prepared.digest in copies:
                        repeats.append((i, copies[prepared.digest]))
                    elif pair in seen:
                        outcomes[i] = self.reject(EnvelopeReplayed(
                            f"message id {header.id} from {header.sender}"), prepared.data)
                    elif not prepared.opened.package.manifest:
                        staged.append((i, prepared))
                        seen.add(pair)
                        copies[prepared.digest] = i
                receipts = self._commit([(p.opened, p.digest, p.content) for _, p in staged],
                                        int(self.clock()))
                for (i, _), receipt in zip(staged, receipts, strict=True):
                    outcomes[i] = Outcome(200, receipt.data, True)
                for i, first in repeats:  # the same bytes twice: the same receipt twice
                    original = outcomes[first]
                    outcomes[i] = original if original is None else dataclasses.replace(
                        original, duplicate=True)
        except StoreDiskFull:
            raise  # one by one would meet the same full disk
        except (sqlite3.IntegrityError, RogatoryError) as exc:
            log.warning("group commit of %d envelopes undone (%s); one by one", len(batch), exc)
            return [self.commit(prepared) for prepared in batch]
        return outcomes

    def _attachments_waiting(self, opened: OpenedEnvelope, digest: str,
                             now: int) -> Outcome | None:
        """``None`` once every attachment has arrived and verified; else what to answer.

        Until then the envelope is neither stored nor receipted: the sender is told to upload
        (a signed, transient ``attachment.incomplete``), or the node verifies what arrived.
        """
        if self.attachments is None:
            raise AttachmentMalformed("this node takes no attachments")
        specs = parse_manifest(opened.package.manifest)
        header = opened.header
        self.attachments.expect(digest, header.sender, header.id, specs, now)
        state = self.attachments.transfer(digest)
        missing = [s for s in state if s["received"] < s["expected"]]
        if missing:
            have = sum(s["received"] for s in state)
            want = sum(s["expected"] for s in state)
            refused = self.reject(AttachmentIncomplete(
                f"{have} of {want} bytes of {len(state)} attachment(s) have arrived"),
                opened.envelope.data)
            return dataclasses.replace(refused, expect=specs, message_id=header.id)
        if all(s["verified"] for s in state):
            return None
        return Outcome(202, b"", False, code="attachment.verify", verify=specs,
                       message_id=header.id)

    def _commit(self, accepted: list[tuple[OpenedEnvelope, str, Content]],
                now: int) -> list[Receipt]:
        """Log the envelopes, sign their receipts with inclusion proofs, store all of it.

        Runs inside the caller's transaction: if anything fails, neither the messages, nor
        their log entries, nor the receipts exist, and nothing has been sent. The received
        entries are appended first, then one checkpoint covers them all and every receipt
        carries its proof against it; only then are the receipt entries appended.
        """
        audit = self.store.audit
        start = audit.size()
        signed = [self._sign(ReceiptStatus.ACCEPTED, envelope=digest, message_id=opened.header.id,
                             sender=opened.header.sender, received=now, log_index=start + n)
                  for n, (opened, digest, _) in enumerate(accepted)]
        indices = audit.append_many([(EntryType.ENVELOPE_RECEIVED.value, received_entry(s), now)
                                     for s in signed])
        assert indices == [s.log_index for s in signed]
        proofs = audit.proofs(indices, log_origin(self.authority), self.keystore.identity.seed,
                              now)
        receipts = [s.with_proof(proof.encode()) for s, proof in zip(signed, proofs, strict=True)]
        self._store_accepted([(opened, digest, receipt, content) for (opened, digest, content),
                              receipt in zip(accepted, receipts, strict=True)], now)
        return receipts

    def _store_accepted(self, accepted: list[tuple[OpenedEnvelope, str, Receipt, Content]],
                             now: int) -> None:
        """The receipt entries, in order, then the messages, seen pairs and receipts."""
        self.store.audit.append_many([(EntryType.RECEIPT_ISSUED.value, encode_entry(
            EntryType.RECEIPT_ISSUED,
            {"envelope": digest, "id": opened.header.id, "from": opened.header.sender,
             "to": self.authority, "receipt": receipt.digest, "at": now},
        ), now) for opened, digest, receipt, _ in accepted])
        self.store.accept_inbound_many([InboundRecord(
            envelope_hash=digest,
            message_id=opened.header.id,
            sender=opened.header.sender,
            kind=opened.header.kind.value,
            case_ref=opened.header.case,
            in_reply_to=opened.header.in_reply_to,
            priority=opened.header.priority.value,
            created=opened.header.created,
            expires=opened.header.expires,
            received_at=now,
            content_type=opened.package.content_type,
            archive=self.archive.seal(digest, opened.package.data),
            receipt=receipt.data,
            opened_at=None,
        ) for opened, digest, receipt, _ in accepted])
        for opened, _, _, content in accepted:
            if opened.header.case or isinstance(content, CaseMessage):
                self._track(opened, now, content)

    def _track(self, opened: OpenedEnvelope, now: int, content: Content) -> None:
        """Move the message's case; never raises, so the case cannot undo the acceptance."""
        header = opened.header
        try:
            with self.store.transaction():  # a savepoint: a failure here leaves the message
                if isinstance(content, CaseMessage):
                    self._track_spontaneous(header, content, now)
                if header.case:
                    self.store.cases.record(
                        case_ref=header.case, counterpart=header.sender,
                        message_id=header.id, kind=header.kind.value,
                        direction=Direction.RECEIVED, at=now, priority=header.priority.value,
                        content=content)
        except Exception:
            log.exception("case %s: %s %s not tracked", header.case, header.kind.value,
                          header.id)

    def _track_spontaneous(self, header: EnvelopeHeader, message: CaseMessage,
                           now: int) -> None:
        if header.kind is Kind.SPONTANEOUS_INFORMATION:
            self.store.spontaneous.record(
                message_id=header.id, counterpart=header.sender, direction="received",
                case_ref=header.case, conditions=message.conditions, at=now)
        elif header.kind is Kind.CONDITIONS_ANSWER:
            self.store.spontaneous.answer(
                message_id=header.in_reply_to, counterpart=header.sender, direction="sent",
                accepted=message["accepted"], answer_id=header.id, reason=message["reason"],
                at=now)

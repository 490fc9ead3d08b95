"""One authority's node: key store, store, directory, peer endpoint, local API, delivery worker.

Every store call runs on one dedicated thread. SQLite's connection is then only ever touched by
that thread, writes are serialised without locks of our own, and the event loop keeps answering
peers while a commit waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec, TypeVar

from aiohttp import web

from keys.directory import Directory, check_adoption, verify_directory
from keys.keystore import KeyStore
from node.archive import ArchiveKey
from node.attachments import (
    AttachmentFiles,
    LiveCheck,
    encrypt_file,
    read_plaintext,
    verify_file,
)
from node.audit_bundle import encode_bundle
from node.cases import Content
from node.config import NodeConfig, load_config, read_api_token, read_receiver_token
from node.inbound import InboundDesk, Outcome, Prepared
from node.local_api import (
    OPERATOR,
    RECEIVER,
    b64,
    inbound_json,
    local_application,
    outbound_json,
)
from node.log_api import log_routes
from node.outbound import (
    UPLOAD_PIECE,
    DeliveryWorker,
    Draft,
    Override,
    compose,
    sent_entry,
)
from node.peer_api import peer_application
from node.spontaneous import ACCEPTED
from node.store import InboundRecord, LogEntry, OutboundRecord, Store, full_disk_as_store_error
from node.tls import server_context
from node.users import Session
from node.witness import Alarm, Witness, WitnessStore
from protocol.attachment import (
    MAX_ATTACHMENTS,
    AttachmentSpec,
    encode_manifest,
    parse_manifest,
    safe_name,
)
from protocol.case import Direction
from protocol.case_message import CONTENT_TYPE as CASE_MESSAGE_TYPE
from protocol.case_message import (
    CaseMessage,
    check_content,
    encode_case_message,
    parse_case_message,
)
from protocol.checkpoint import parse_tlog_proof
from protocol.envelope import DEFAULT_MAX_SKEW, MAX_LIFETIME, envelope_hash, parse_package
from protocol.errors import (
    ApiBadRequest,
    ApiIdempotencyKeyReused,
    AttachmentError,
    AttachmentMalformed,
    CaseContentWithheld,
    ConfigError,
    PackageLanguageNotAccepted,
    RogatoryError,
    StoreNotFound,
    TransportBadResponse,
    WebLoginRequired,
)
from protocol.kinds import Kind, Priority
from protocol.log_entry import EntryType, encode_entry, log_origin, parse_entry
from protocol.request_package import Gap, RequestPackage, check_language, require_complete

__all__ = ["Node", "read_api_token", "read_receiver_token"]

INLINE_SEAL_BYTES = 64 * 1024
# Up to this many envelopes in a request are looked up, opened and committed in one call on
# the store thread. Each hop between threads wakes one, and on a machine that idles between
# requests a wake-up costs more than opening a few envelopes (PERFORMANCE.md, fifth round).
# A larger batch is opened on the crypto threads, side by side with the store's commits.
ONE_HOP_BATCH = 8
TRANSFER_HORIZON = MAX_LIFETIME + DEFAULT_MAX_SKEW
"""An attachment transfer older than this can no longer be completed: its envelope expired."""
SWEEP_INTERVAL = 3600.0

log = logging.getLogger("rogatory.node")
T = TypeVar("T")
P = ParamSpec("P")


class Journalled(NamedTuple):
    """A sealed message on its way into the journal, with what is recorded beside it."""

    record: OutboundRecord
    content: Content
    override: Override | None = None
    key: str = ""  # the caller's idempotency key
    digest: str = ""  # of the draft that used it

    @property
    def key_row(self) -> tuple[str, str, str, int] | None:
        """What ``Store.record_submit_keys`` keeps of the key, if the caller gave one."""
        if not self.key:
            return None
        return self.key, self.record.message_id, self.digest, self.record.created


class Node:
    def __init__(self, config: NodeConfig, keystore: KeyStore, passphrase: bytes, *,
                 clock: Callable[[], float] = time.time, api_token: str | None = None) -> None:
        self.config = config
        self.authority = config.authority
        self.keystore = keystore
        self.clock = clock
        self._passphrase = passphrase
        self._api_token = api_token if api_token is not None else read_api_token(config)
        self._receiver_token = read_receiver_token(config)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        # Opening envelopes runs here, a batch's worth per call, beside the store thread
        # instead of queueing in front of its commits: the signature checks release the GIL
        # (HPKE does not).
        self._crypto_threads = os.cpu_count() or 2
        self._crypto = ThreadPoolExecutor(max_workers=self._crypto_threads,
                                          thread_name_prefix="crypto")
        self.store = Store(config.database_path)
        users = self.store.users
        users.max_failures, users.lockout = config.web_max_failures, config.web_lockout
        users.idle = config.web_session_idle
        self.archive = ArchiveKey(keystore.storage_key)
        try:
            self._directory = self._load_directory()
            self._log_keys()
        except BaseException:
            self.store.close()
            self._executor.shutdown()
            self._crypto.shutdown()
            raise
        self.attachments = AttachmentFiles(config.home / "attachments", self.store.db)
        self.inbound = InboundDesk(
            authority=self.authority, keystore=keystore, directory=lambda: self._directory,
            store=self.store, archive=self.archive, clock=clock, max_skew=config.max_skew,
            attachments=self.attachments,
        )
        self.worker = DeliveryWorker(
            authority=self.authority, store=self.store, db=self.call,
            directory=lambda: self._directory, clock=clock,
            retry_base=config.retry_base, retry_max=config.retry_max,
            attachments=self.attachments,
        )
        self._upload_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._verifying: dict[str, asyncio.Future[AttachmentError | None]] = {}
        self._live: dict[str, dict[int, LiveCheck]] = {}
        self._queue_group: list[tuple[Journalled, asyncio.Future[None]]] = []
        self._committing = False  # a task is committing groups; submits join the next one
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.witness = Witness(
            authority=self.authority, seed=lambda: self.keystore.identity.seed,
            store=WitnessStore(self.store.db), db=self.call,
            directory=lambda: self._directory, clock=clock,
            interval=config.witness_interval,
            receipt_interval=config.receipt_check_interval,
        )
        self.worker.on_checkpoint = self._witness_receipt
        self._runners: list[web.AppRunner] = []
        self.peer_port = 0
        self.api_port = 0
        self.web_port = 0

    @classmethod
    def from_home(cls, home: Path, passphrase: bytes, **kwargs: Any) -> Node:
        config = load_config(home)
        return cls(config, KeyStore.open(config.keystore_path, passphrase), passphrase, **kwargs)

    # --- directory ------------------------------------------------------------------------

    def _verify(self, file: bytes) -> Directory:
        return verify_directory(file, self.config.secretariat_keys, self.config.threshold)

    def _load_directory(self) -> Directory:
        """The directory file, checked against the pinned keys and the newest one adopted."""
        path = self.config.directory_path
        try:
            directory = self._verify(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"no directory file at {path}") from None
        self._adopt(directory)
        latest = self.store.latest_directory()
        assert latest is not None
        return self._verify(latest[2]) if latest[0] != directory.serial else directory

    def _adopt(self, directory: Directory) -> bool:
        latest = self.store.latest_directory()
        check_adoption(None if latest is None else (latest[0], latest[1]), directory)
        if latest is not None and latest[0] == directory.serial:
            return False
        at = int(self.clock())
        self.store.adopt_directory(directory.serial, directory.digest, directory.file, at, (
            EntryType.DIRECTORY_ADOPTED.value,
            encode_entry(EntryType.DIRECTORY_ADOPTED,
                         {"serial": directory.serial, "digest": directory.digest, "at": at}),
        ))
        mine = directory.records.get(self.authority)
        if mine is None or mine.identity_key != self.keystore.identity.public_raw:
            log.warning("directory %d does not carry this node's current identity key",
                        directory.serial)
        elif any(self.keystore.receiver_prekey(p.prekey.id) is None for p in mine.prekeys):
            self.reload_keys()
        log.info("adopted directory serial %d (%s)", directory.serial, directory.digest[:16])
        return True

    def _log_keys(self) -> None:
        """Log the identity and private prekeys held, whenever they differ from the last entry."""
        fields = {"identity": self.keystore.identity.key_id,
                  "prekeys": sorted(p.id for p in self.keystore.prekeys)}
        row = self.store.db.execute(
            "SELECT entry FROM log_entries WHERE type = ? ORDER BY idx DESC LIMIT 1",
            [EntryType.KEYS_ROTATED.value],
        ).fetchone()
        if row is not None:
            _, last = parse_entry(bytes(row[0]))
            if {k: last[k] for k in fields} == fields:
                return
        at = int(self.clock())
        with self.store.transaction():
            self.store.audit.append(EntryType.KEYS_ROTATED.value, encode_entry(
                EntryType.KEYS_ROTATED, {**fields, "at": at}), at)

    def reload_keys(self) -> None:
        """Pick up prekeys rotated by ``rogatory keys rotate`` while this node was running."""
        self.keystore = KeyStore.open(self.config.keystore_path, self._passphrase)
        self._log_keys()
        if hasattr(self, "inbound"):
            self.inbound.keystore = self.keystore
        log.info("reloaded the key store: %d private prekeys", len(self.keystore.prekeys))

    @property
    def directory(self) -> Directory:
        return self._directory

    def _adopt_and_keep(self, directory: Directory) -> None:
        if self._adopt(directory):
            # The file on disk follows, so the node restarts from what it adopted.
            path = self.config.directory_path
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(directory.file)
            os.replace(tmp, path)

    async def adopt_directory(self, file: bytes) -> Directory:
        """Verify and adopt a newer directory (or the same one again); refuse anything older."""
        directory = self._verify(file)
        await self.call(self._adopt_and_keep, directory)
        self._directory = directory
        return directory

    # --- lifecycle ------------------------------------------------------------------------

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store operation on the store thread; a full disk comes back as
        ``store.disk_full``, whichever statement met it."""
        loop = asyncio.get_running_loop()
        with full_disk_as_store_error():
            return await loop.run_in_executor(self._executor,
                                              functools.partial(fn, *args, **kwargs))

    async def _site(self, app: web.Application, host: str, port: int,
                    tls: bool) -> int:
        # aiohttp closes a connection whose request head has not arrived within the keep-alive
        # timeout (and one idle that long between requests): the bound on slow headers.
        runner = web.AppRunner(app, access_log=None,
                               keepalive_timeout=self.config.header_timeout)
        await runner.setup()
        context = None
        if tls:
            context = server_context(self.config.cert_path, self.config.tls_key_path,
                                     self._passphrase)
        site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def start(self) -> None:
        if not self.config.tls:
            log.warning("%s: peer endpoint is plain HTTP; use only for debugging", self.authority)
        routes = log_routes(checkpoint=self.checkpoint, consistency=self._consistency,
                            inclusion=self._inclusion, witness_view=self._witness_view)
        routes += self._attachment_routes()
        peer = peer_application(accept=self._accept, accept_batch=self._accept_batch,
                                refuse=self._refuse,
                                too_large=self._too_large,
                                max_body=self.config.max_body,
                                body_timeout=self.config.body_timeout, routes=routes)
        self.peer_port = await self._site(peer, self.config.peer_host, self.config.peer_port,
                                          self.config.tls)
        local = local_application(self, self._api_token, self._receiver_token)
        self.api_port = await self._site(local, self.config.api_host, self.config.api_port,
                                         False)
        if self.config.web_enabled:
            from node.web.app import web_application

            self.web_port = await self._site(web_application(self), self.config.web_host,
                                             self.config.web_port, False)
        await self.worker.start()
        await self.witness.start()
        self._sweeper = asyncio.create_task(self._sweep_transfers())
        log.info("%s listening for peers on %s:%d, local API on %s:%d", self.authority,
                 self.config.peer_host, self.peer_port, self.config.api_host, self.api_port)

    async def quiesce(self) -> None:
        """Stop sending (witness rounds, deliveries) while still answering peers.

        Nodes that stop together quiesce first, so no delivery between them is cut off mid-way
        by its receiver going away.
        """
        self.witness.hurry()
        await self.worker.stop()  # first: its last deliveries still ask the witness to check
        await self.witness.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_transfers(self) -> None:
        """At start and every hour: forget attachment transfers past any envelope's lifetime."""
        while True:
            try:
                swept = await self.call(self.attachments.sweep, int(self.clock()),
                                        TRANSFER_HORIZON)
                if swept:
                    log.info("forgot %d unfinished attachment transfer(s) that no envelope can "
                             "complete any more", swept)
            except (RogatoryError, OSError, sqlite3.Error) as exc:
                log.warning("sweeping unfinished attachment transfers failed: %s", exc)
            await asyncio.sleep(SWEEP_INTERVAL)

    async def stop(self) -> None:
        await self.quiesce()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.call(self.store.close)
        self._executor.shutdown(wait=True)
        self._crypto.shutdown(wait=True)

    async def _accept(self, data: bytes) -> Outcome:
        # Looked up, opened and committed in one hop to the store thread (ONE_HOP_BATCH).
        outcome = await self.call(self.inbound.accept, data)
        if outcome.expect:
            await self._start_live_checks(envelope_hash(data), outcome)
        if not outcome.verify:
            return outcome
        # Every attachment has arrived: decrypt and check them off the store thread, then
        # take the envelope in as any other.
        digest = envelope_hash(data)
        # A retried POST (the sender's timeout is shorter than a multi-GiB check) waits on the
        # check already running rather than starting another.
        check = self._verifying.get(digest)
        if check is None:
            check = asyncio.ensure_future(self._verify_attachments(digest, outcome))
            self._verifying[digest] = check
            check.add_done_callback(lambda _: self._verifying.pop(digest, None))
        error = await asyncio.shield(check)
        if error is not None:
            return await self.call(self.inbound.reject, error, data)
        return await self.call(self.inbound.accept, data)

    async def _start_live_checks(self, digest: str, outcome: Outcome) -> None:
        """Check the streams of an announced transfer while they arrive (see ``LiveCheck``)."""
        if digest in self._live:
            return
        state = await self.call(self.attachments.transfer, digest)
        self._live[digest] = {
            row["index"]: LiveCheck(outcome.expect[row["index"]], outcome.message_id)
            for row in state if row["received"] == 0 and not row["verified"]}

    async def _fed_live_check(self, digest: str, index: int, offset: int, data: bytes,
                              complete: bool) -> None:
        checks = self._live.get(digest)
        check = checks.get(index) if checks else None
        if check is None or checks is None:
            return
        await asyncio.to_thread(check.feed, offset, data)
        if complete:
            await asyncio.to_thread(check.finish)

    async def _settle_live_checks(self, digest: str) -> None:
        """Once the bytes are on disk: if every stream passed as it arrived, it is verified."""
        checks = self._live.get(digest)
        if checks is None:
            return
        state = await self.call(self.attachments.transfer, digest)
        if not all(row["index"] in checks and checks[row["index"]].passed for row in state):
            return
        for row in state:
            path = self.attachments.incoming(digest, row["index"])
            if not await asyncio.to_thread(checks[row["index"]].on_disk, path):
                self._live.pop(digest, None)  # checked in full when the envelope comes back
                return
        await self.call(self.attachments.mark_verified, digest)
        self._live.pop(digest, None)

    async def _verify_attachments(self, digest: str,
                                  outcome: Outcome) -> AttachmentError | None:
        try:
            for spec in outcome.verify:
                await asyncio.to_thread(verify_file, self.attachments.incoming(digest,
                                                                                spec.index),
                                        spec, outcome.message_id)
        except AttachmentError as exc:
            log.warning("attachments of %s refused: %s", digest, exc)
            await self.call(self.attachments.discard, digest)
            return exc
        await self.call(self.attachments.mark_verified, digest)
        return None

    async def _accept_batch(self, envelopes: list[bytes]) -> list[Outcome]:
        """Several envelopes from one request, committed together: a few looked up, opened
        and committed in one hop to the store thread, more opened in parallel on the crypto
        threads meanwhile."""
        if len(envelopes) <= ONE_HOP_BATCH:
            results, done = await self.call(self._receive_many, envelopes)
        else:
            stored = await self.call(self._stored, envelopes)
            loop = asyncio.get_running_loop()
            fresh = [data for data, receipt in zip(envelopes, stored, strict=True)
                     if receipt is None]
            # One hop per crypto thread, not one per envelope: waking the loop costs too.
            share = -(-len(fresh) // self._crypto_threads) if fresh else 1
            parts = await asyncio.gather(*(
                loop.run_in_executor(self._crypto, self._open_many, fresh[i:i + share])
                for i in range(0, len(fresh), share)))
            results = _answered(stored, [item for part in parts for item in part])
            done = await self.call(self._commit_opened, results)
        committed = iter(done)
        outcomes: list[Outcome] = []
        for data, result in zip(envelopes, results, strict=True):
            if isinstance(result, Prepared):
                outcome = next(committed)
                # An envelope with attachments goes the way of a single one.
                single = outcome is None or outcome.verify or outcome.expect
                result = await self._accept(data) if single or outcome is None else outcome
            outcomes.append(result)
        return outcomes

    def _open_many(self, envelopes: list[bytes]) -> list[Prepared | Outcome]:
        return [self.inbound.open(data) for data in envelopes]

    def _stored(self, envelopes: list[bytes]) -> list[bytes | None]:
        """The receipt already issued for each envelope, if any (exact redeliveries)."""
        digests = [envelope_hash(data) for data in envelopes]
        issued = self.store.receipts_for_inbound(digests)
        return [issued.get(d) for d in digests]

    def _commit_opened(self, results: list[Outcome | Prepared]) -> list[Outcome | None]:
        prepared = [r for r in results if isinstance(r, Prepared)]
        return self.inbound.commit_many(prepared) if prepared else []

    def _receive_many(self, envelopes: list[bytes],
                      ) -> tuple[list[Outcome | Prepared], list[Outcome | None]]:
        """On the store thread, in one hop: a small batch looked up, opened and committed."""
        stored = self._stored(envelopes)
        results = _answered(stored, self._open_many(
            [data for data, receipt in zip(envelopes, stored, strict=True) if receipt is None]))
        return results, self._commit_opened(results)

    async def _refuse(self, error: RogatoryError, body: bytes | None) -> Outcome:
        """A signed refusal of a body that could not even be split into envelopes."""
        return await self.call(self.inbound.reject, error, body)

    async def _attachment_state(self, request: web.Request) -> web.Response:
        digest, index = request.match_info["envelope"], int(request.match_info["index"])
        try:
            expected = await self.call(self.attachments.expected, digest, index)
        except StoreNotFound as exc:
            return _peer_error(exc, 404)
        path = self.attachments.incoming(digest, index)
        received = path.stat().st_size if path.exists() else 0
        return web.json_response({"received": received, "expected": expected})

    async def _attachment_upload(self, request: web.Request) -> web.Response:
        """Append a piece of an attachment's ciphertext, from exactly where it stands.

        Only transfers that an envelope which passed every check has announced are taken, up to
        the size its signed manifest gives; anything else is refused before it is read.
        """
        digest, index = request.match_info["envelope"], int(request.match_info["index"])
        try:
            offset = int(request.query.get("offset", ""))
            expected = await self.call(self.attachments.expected, digest, index)
        except ValueError:
            return _peer_error(TransportBadResponse("offset must be an integer"), 400)
        except StoreNotFound as exc:
            return _peer_error(exc, 404)
        lock = self._upload_locks.setdefault((digest, index), asyncio.Lock())
        async with lock:
            path = self.attachments.incoming(digest, index)
            have = path.stat().st_size if path.exists() else 0
            if offset != have:
                return web.json_response({"received": have, "expected": expected}, status=409)
            written = 0
            with path.open("ab") as file:
                async for piece in request.content.iter_chunked(UPLOAD_PIECE):
                    piece = piece[:expected - have - written]
                    file.write(piece)
                    written += len(piece)
                    if digest in self._live:
                        await self._fed_live_check(digest, index, have + written - len(piece),
                                                   piece, have + written == expected)
                    if have + written == expected:
                        break
                file.flush()
                await asyncio.to_thread(os.fsync, file.fileno())
            if have + written == expected:
                await self._settle_live_checks(digest)
            if have + written == expected and lock is self._upload_locks.get((digest, index)):
                del self._upload_locks[(digest, index)]
        return web.json_response({"received": have + written, "expected": expected})

    def _attachment_routes(self) -> list[web.RouteDef]:
        path = "/v1/attachments/{envelope:[0-9a-f]{64}}/{index:[0-9]{1,3}}"
        return [web.get(path, self._attachment_state), web.put(path, self._attachment_upload)]

    async def _too_large(self) -> Outcome:
        return await self.call(self.inbound.too_large, self.config.max_body)

    # --- the audit log and witnessing -----------------------------------------------------

    def _sign_checkpoint(self) -> bytes:
        with self.store.transaction():
            return self.store.audit.sign(log_origin(self.authority),
                                         self.keystore.identity.seed, int(self.clock()))

    async def checkpoint(self) -> bytes:
        """A signed checkpoint of this node's log as it is now."""
        return await self.call(self._sign_checkpoint)

    async def _consistency(self, old: int, new: int) -> list[bytes]:
        return await self.call(self.store.audit.consistency, old, new)

    async def _inclusion(self, index: int, size: int) -> list[bytes]:
        return await self.call(self.store.audit.inclusion, index, size)

    async def _witness_view(self, authority: str) -> bytes | None:
        view = await self.call(self.witness.store.view, authority)
        return None if view is None else view[2]

    async def _witness_receipt(self, peer: str, proof: bytes) -> None:
        """After each exchange: the checkpoint in a verified receipt is checked like any other."""
        await self.witness.observe_newest(peer, parse_tlog_proof(proof).checkpoint,
                                          source=f"receipt from {peer}")

    async def export_bundle(self) -> bytes:
        """Everything an auditor needs, with the cosigned views peers hold of this log."""
        note = await self.checkpoint()

        def gather() -> tuple[list[bytes], list[bytes], list[bytes], list[bytes]]:
            return (self.store.directory_files(), self.store.audit.entries(),
                    self.store.receipts("issued"), self.store.receipts("received"))

        directories, entries, issued, received = await self.call(gather)
        witnessed = []
        for peer in self._directory.records:
            if peer != self.authority:
                try:
                    witnessed.append(await self.witness.fetch_view(peer, self.authority))
                except RogatoryError as exc:
                    log.info("no witnessed checkpoint from %s (%s)", peer, exc.code)
        return encode_bundle(
            authority=self.authority, directories=directories,
            entries=entries, checkpoint=note, witnessed=witnessed, receipts_issued=issued,
            receipts_received=received,
        )

    async def alarms(self) -> list[Alarm]:
        return await self.call(self.witness.store.alarms)

    # --- what the local API offers --------------------------------------------------------

    async def submit(self, draft: Draft) -> OutboundRecord:
        """Seal and journal; the worker delivers. Returns once the envelope is durable.

        The payload must meet its kind's schema; a request package must be complete unless the
        draft gives a reason to override; a message about a case must be a step its case
        allows; an answer to conditions must answer conditions still open. Otherwise nothing is
        queued.
        """
        digest = draft.digest() if draft.idempotency_key else ""
        if digest:
            earlier = await self._earlier_submit(draft.idempotency_key, digest)
            if earlier is not None:
                return earlier
        content = check_content(draft.kind, draft.content_type, draft.payload)
        override: Override | None = None
        if isinstance(content, RequestPackage):
            gaps = require_complete(content, override_reason=draft.override_reason or None)
            try:
                check_language(content,
                               self._directory.record(draft.recipient).languages)
                language_ok = True
            except PackageLanguageNotAccepted:
                if not draft.override_reason.strip():
                    raise
                language_ok = False
            if gaps or not language_ok:
                override = Override(draft.override_reason, len(gaps), language_ok, draft.by)
                log.warning("sending a request package with %d gaps%s: %s", len(gaps),
                            "" if language_ok else " in a language not accepted",
                            override.reason)
        message_id, manifest = "", b""
        try:
            if draft.attachments:
                message_id = os.urandom(16).hex()
                manifest = await asyncio.to_thread(self._encrypt_attachments, message_id,
                                                   draft.attachments)
            sealing = functools.partial(
                compose, draft, authority=self.authority, keystore=self.keystore,
                directory=self._directory, archive=self.archive, now=int(self.clock()),
                message_id=message_id, manifest=manifest)
            # A small message is sealed on the event loop: HPKE (the `cryptography` package)
            # holds the GIL, so a crypto thread bought no parallelism, and handing each submit
            # to one and back cost more CPU than the sealing (bench/exchange.py: the sender's
            # CPU per envelope fell by a quarter). A large one still goes to a thread, so the
            # loop never stalls on it.
            record = (sealing() if len(draft.payload) <= INLINE_SEAL_BYTES
                      else await asyncio.get_running_loop().run_in_executor(self._crypto,
                                                                            sealing))
            await self._queue_durably(Journalled(record, content, override,
                                                 draft.idempotency_key, digest))
        except BaseException as exc:
            if message_id:
                shutil.rmtree(self.attachments.outgoing(message_id, 0).parent,
                              ignore_errors=True)
            if digest and isinstance(exc, sqlite3.IntegrityError):
                # The same key in a submit journalled meanwhile: that one is the message.
                earlier = await self._earlier_submit(draft.idempotency_key, digest)
                if earlier is not None:
                    return earlier
            raise
        self.worker.offer(record, attachments=bool(draft.attachments))
        return record

    async def _earlier_submit(self, key: str, digest: str) -> OutboundRecord | None:
        """The message an idempotency key was first used for, if it was; a different draft
        under the same key is refused rather than sent or silently answered for."""
        earlier = await self.call(self.store.submitted, key)
        if earlier is None:
            return None
        message_id, first = earlier
        if first != digest:
            raise ApiIdempotencyKeyReused(
                f"the key {key!r} was used for message {message_id}, with other content")
        return await self.call(self.store.outbound_by_id, message_id)

    def _encrypt_attachments(self, message_id: str, files: tuple[Path, ...]) -> bytes:
        if len(files) > MAX_ATTACHMENTS:
            raise AttachmentMalformed(f"at most {MAX_ATTACHMENTS} attachments")
        names = [safe_name(Path(f).name) for f in files]
        if len(set(names)) != len(names):
            raise AttachmentMalformed("two attachments have the same name")
        specs = [encrypt_file(Path(f), self.attachments.outgoing(message_id, i),
                              message_id=message_id, index=i) for i, f in enumerate(files)]
        return encode_manifest(specs)

    async def _queue_durably(self, item: Journalled) -> None:
        """``_queue`` with group commit: submits that arrive together share one fsync.

        One group is committed at a time; while it is (or while it waits for the store thread,
        busy with receipts), the next gathers here. Each submit still returns only once its
        own envelope is durable, and fails alone if its step is refused.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue_group.append((item, future))
        if not self._committing:
            self._committing = True
            self._spawn(self._commit_queue_groups())
        await future

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit_queue_groups(self) -> None:
        try:
            while self._queue_group:
                group, self._queue_group = self._queue_group, []
                await self._commit_queue_group(group)
        except BaseException as exc:  # cancelled: the submits still waiting fail with it
            waiting, self._queue_group = self._queue_group, []
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self._committing = False

    async def _commit_queue_group(
            self, group: list[tuple[Journalled, asyncio.Future[None]]]) -> None:
        try:
            results = await self.call(self._queue_many, [item for item, _ in group])
        except BaseException as exc:  # the transaction itself failed: all of them did
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(group, results, strict=True):
            if future.done():
                continue
            if result is None:
                future.set_result(None)
            else:
                future.set_exception(result)

    def _queue_many(self, items: list[Journalled],
                    ) -> list[BaseException | None]:
        """Journal a group of submits in one transaction.

        Each case step runs in its own savepoint, so a refused step fails that submit alone
        and writes nothing; the envelopes whose step passed are then journalled in bulk (their
        rows and log entries, one statement per table). Should the bulk write fail, all of it
        is undone and each submit is journalled on its own, as ``_queue`` does, so one bad row
        fails only its own submit and nothing is stored half.
        """
        try:
            return self._queue_bulk(items)
        except sqlite3.Error as exc:
            log.warning("group journal of %d submits undone (%s); one by one", len(items), exc)
        results: list[BaseException | None] = []
        with self.store.transaction():
            for item in items:
                try:
                    self._queue(item)  # its own savepoint
                    results.append(None)
                except (RogatoryError, sqlite3.IntegrityError) as exc:
                    results.append(exc)  # this one refused; the others go on (a full disk not)
        return results

    def _queue_bulk(self, items: list[Journalled],
                    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        queued: list[tuple[OutboundRecord, float, tuple[LogEntry, ...]]] = []
        keys: list[tuple[str, str, str, int]] = []
        with self.store.transaction():
            for item in items:
                record, content, override = item.record, item.content, item.override
                # A savepoint for the step alone, where it has anything to write: a message
                # with no case and no conditions leaves the case book as it is.
                tracked = bool(record.case_ref) or isinstance(content, CaseMessage)
                try:
                    with self.store.transaction() if tracked else contextlib.nullcontext():
                        self._track_sent(record, content, override)
                except RogatoryError as exc:  # this one's step refused; a full disk is not
                    results.append(exc)
                    continue
                results.append(None)
                queued.append((record, self.clock(),
                               self._sent_entries(record, override, int(self.clock()))))
                if (row := item.key_row) is not None:
                    keys.append(row)
            self.store.queue_outbound_many(queued)
            if keys:
                self.store.record_submit_keys(keys)
        return results

    def _track_sent(self, record: OutboundRecord, content: Content,
                    override: Override | None) -> None:
        """The case step (and conditions) a message about to be sent takes; raises if refused."""
        kind = Kind.from_name(record.kind)
        if isinstance(content, CaseMessage) and kind is Kind.SPONTANEOUS_INFORMATION:
            self.store.spontaneous.record(
                message_id=record.message_id, counterpart=record.recipient,
                direction="sent", case_ref=record.case_ref,
                conditions=content.conditions, at=record.created)
        elif isinstance(content, CaseMessage) and kind is Kind.CONDITIONS_ANSWER:
            self.store.spontaneous.answer(
                message_id=record.in_reply_to, counterpart=record.recipient,
                direction="received", accepted=content["accepted"],
                answer_id=record.message_id, reason=content["reason"], at=record.created)
        self.store.cases.record(
            case_ref=record.case_ref, counterpart=record.recipient,
            message_id=record.message_id, kind=record.kind, direction=Direction.SENT,
            at=record.created, priority=record.priority, content=content,
            override_reason=override.reason if override else "", strict=True)

    def _queue(self, item: Journalled, opened: str = "") -> bool:
        """Journal one sealed message with everything it changes, in one transaction.

        With ``opened`` (the envelope hash of a received message), the message is a retrieval
        receipt and is queued only if this is the first opening of that message.
        """
        record, content, override = item.record, item.content, item.override
        with self.store.transaction():
            now = int(self.clock())
            if opened and not self.store.mark_opened(opened, now):
                return False
            self._track_sent(record, content, override)
            self.store.queue_outbound(record, self.clock(),
                                      *self._sent_entries(record, override, now))
            if (row := item.key_row) is not None:
                self.store.record_submit_keys([row])
        return True

    def _sent_entries(self, record: OutboundRecord, override: Override | None,
                      at: int) -> tuple[LogEntry, ...]:
        sent = sent_entry(record, self.authority, at)
        return (sent,) if override is None else (sent, override.entry(record, at))

    async def reply(self, case_ref: str, counterpart: str, kind: Kind,
                    fields: dict[str, Any],
                    attachments: tuple[Path, ...] = ()) -> OutboundRecord:
        """Say something about a case: the recipient, reply link and priority come from it.

        An acknowledgement that names no gaps names those this node found in the request, so
        the requesting authority learns at once what to complete (UNTOC art. 18(16)).
        """
        case = await self.case(case_ref, counterpart)
        if kind is Kind.ACKNOWLEDGEMENT and "gaps" not in fields:
            fields = {**fields, "gaps": [Gap.from_json(g) for g in case["gaps"]]
                      if case["role"] == "requested" else []}
        if kind is Kind.ADDITIONAL_INFORMATION_REQUEST and "gaps" not in fields:
            fields = {**fields, "gaps": []}
        message = CaseMessage.build(kind, **fields)
        last = next((e["message_id"] for e in reversed(case["timeline"])
                     if e["direction"] == "received" and e["kind"] != Kind.RETRIEVAL.value), "")
        return await self.submit(Draft(
            recipient=case["counterpart"], kind=kind, content_type=CASE_MESSAGE_TYPE,
            payload=encode_case_message(message), case=case_ref, in_reply_to=last,
            priority=Priority.URGENT if case["urgent"] else Priority.NORMAL,
            attachments=attachments))

    async def answer_conditions(self, message_id: str, *, accepted: bool,
                                reason: str = "") -> OutboundRecord:
        """Accept or decline the conditions of spontaneous information received."""
        inbound = await self.call(self.store.inbound_by_id, message_id)
        if inbound.kind != Kind.SPONTANEOUS_INFORMATION.value:
            raise ApiBadRequest(f"{message_id} is {inbound.kind}, not spontaneous information")
        message = CaseMessage.build(Kind.CONDITIONS_ANSWER, accepted=accepted, reason=reason)
        return await self.submit(Draft(
            recipient=inbound.sender, kind=Kind.CONDITIONS_ANSWER,
            content_type=CASE_MESSAGE_TYPE, payload=encode_case_message(message),
            case=inbound.case_ref, in_reply_to=message_id,
            priority=Priority.from_name(inbound.priority)))

    async def spontaneous(self) -> list[dict[str, Any]]:
        return await self.call(self.store.spontaneous.all)

    async def statistics(self) -> list[dict[str, Any]]:
        return await self.call(self.store.cases.statistics_rows)

    async def cases(self) -> list[dict[str, Any]]:
        return await self.call(self.store.cases.cases, int(self.clock()))

    async def case(self, case_ref: str, counterpart: str = "") -> dict[str, Any]:
        """One case with its timeline; the counterpart may be left out if only one has it."""
        if not counterpart:
            found = await self.call(self.store.cases.counterparts, case_ref)
            if len(found) > 1:
                raise ApiBadRequest(f"case {case_ref} is held with {', '.join(found)}; "
                                    "name one with ?with=AUTHORITY")
            counterpart = found[0] if found else ""
        return await self.call(self.store.cases.case, case_ref, counterpart, int(self.clock()))

    # --- the web interface's users -------------------------------------------------------

    async def sign_in(self, name: str, password: str) -> str:
        """Check a password and open a session; every attempt is in the audit log.

        The slow hash runs on a crypto thread so the store thread keeps committing meanwhile;
        the attempt is counted, logged and (on success) the session opened in one transaction.
        """
        users = self.store.users
        stored = await self.call(users.password_hash, name)
        good = await asyncio.get_running_loop().run_in_executor(
            self._crypto, users.verify_password, stored, password)

        def record() -> tuple[str, str]:
            now = int(self.clock())
            with self.store.transaction():
                user, outcome = users.record_attempt(name, good, now)
                self.store.audit.append(EntryType.USER_LOGIN.value, encode_entry(
                    EntryType.USER_LOGIN, {"user": user, "outcome": outcome, "at": now}), now)
                token = users.open_session(user, now) if outcome == "success" else ""
            return token, outcome

        token, outcome = await self.call(record)
        users.refuse(outcome)
        return token

    async def web_session(self, token: str) -> Session:
        def touch() -> Session | None:
            with self.store.transaction():
                return self.store.users.session(token, int(self.clock()))
        session = await self.call(touch)
        if session is None:
            raise WebLoginRequired("not signed in, or the session has ended")
        return session

    async def sign_out(self, token: str) -> None:
        def close() -> None:
            with self.store.transaction():
                self.store.users.close_session(token)
        await self.call(close)

    async def log_tail(self, count: int = 50) -> list[dict[str, Any]]:
        """The newest audit log entries, parsed, newest first: what the audit page lists."""
        def read() -> list[dict[str, Any]]:
            size = self.store.audit.size()
            start = max(0, size - count)
            shown = []
            for offset, entry in enumerate(self.store.audit.entries(start, size)):
                entry_type, fields = parse_entry(entry)
                shown.append({"index": start + offset, "type": entry_type.value, **fields})
            return shown[::-1]
        return await self.call(read)

    async def witnessed(self) -> list[dict[str, Any]]:
        """The peers' logs this node witnesses: the newest checkpoint it holds of each."""
        views = await self.call(self.witness.store.views)
        return [{"authority": a, "size": n, "root": r.hex(), "at": t} for a, n, r, t in views]

    async def read_message(self, message_id: str,
                           principal: str = OPERATOR, by: str = "") -> dict[str, Any]:
        """A message in either direction, with its payload from the archive.

        The first reading of a received message sends its sender a signed retrieval receipt.
        Spontaneous information whose conditions are not accepted shows only its conditions,
        except to the designated receiver. Every showing of a received message's content is
        in the audit log, with who was shown it (``by``: ``user:<name>``, else the token).
        """
        try:
            inbound = await self.call(self.store.inbound_by_id, message_id)
        except StoreNotFound:
            outbound = await self.call(self.store.outbound_by_id, message_id)
            package = parse_package(self.archive.open(outbound.envelope_hash, outbound.archive))
            sent, total = self.worker.progress.get(message_id, (0, 0))
            return {**outbound_json(outbound), "content_type": package.content_type,
                    "payload_b64": b64(package.payload),
                    "attachments": [spec.describe() for spec in _specs(package.manifest)],
                    "transfer": {"sent": sent, "total": total},
                    "retrieved_at": await self.call(self.store.retrieved_at,
                                                    outbound.recipient, message_id)}
        package = parse_package(self.archive.open(inbound.envelope_hash, inbound.archive))
        shown = {**inbound_json(inbound), "payload_b64": b64(package.payload),
                 "package_b64": b64(package.data),
                 "attachments": [spec.describe() for spec in _specs(package.manifest)]}
        if inbound.kind == Kind.SPONTANEOUS_INFORMATION.value:
            state = await self.call(self.store.spontaneous.state, message_id, inbound.sender)
            shown["conditions_state"] = state
            if state != ACCEPTED and principal != RECEIVER:
                message = parse_case_message(package.payload)
                return {**inbound_json(inbound), "withheld": True,
                        "conditions": message.conditions.to_json(),
                        "conditions_state": state}
        await self._log_opening(inbound, by or f"token:{principal}")
        if inbound.opened_at is None:
            await self._retrieval_receipt(inbound.envelope_hash, inbound.message_id,
                                          inbound.sender, inbound.case_ref, inbound.kind)
        return shown

    async def _log_opening(self, inbound: InboundRecord, by: str) -> None:
        def append() -> None:
            now = int(self.clock())
            with self.store.transaction():
                self.store.audit.append(EntryType.PACKAGE_OPENED.value, encode_entry(
                    EntryType.PACKAGE_OPENED,
                    {"envelope": inbound.envelope_hash, "id": inbound.message_id,
                     "from": inbound.sender, "by": by, "at": now}), now)
        await self.call(append)

    async def attachment(self, message_id: str, index: int, principal: str = OPERATOR,
                         by: str = "") -> tuple[AttachmentSpec, AsyncIterator[bytes]]:
        """An attachment's manifest entry and its plaintext, decrypted as it is read.

        Reading it is reading the message: withheld spontaneous information stays withheld,
        and the first reading sends the retrieval receipt.
        """
        shown = await self.read_message(message_id, principal, by)
        if shown.get("withheld"):
            raise CaseContentWithheld(f"{message_id}: accept its conditions first")
        if shown["direction"] == "in":
            inbound = await self.call(self.store.inbound_by_id, message_id)
            package = parse_package(self.archive.open(inbound.envelope_hash, inbound.archive))
            path = self.attachments.incoming(inbound.envelope_hash, index)
        else:
            outbound = await self.call(self.store.outbound_by_id, message_id)
            package = parse_package(self.archive.open(outbound.envelope_hash, outbound.archive))
            path = self.attachments.outgoing(message_id, index)
        specs = _specs(package.manifest)
        if not 0 <= index < len(specs):
            raise StoreNotFound(f"message {message_id} has no attachment {index}")
        chunks = read_plaintext(path, specs[index], message_id)

        async def stream() -> AsyncIterator[bytes]:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk

        return specs[index], stream()

    async def _retrieval_receipt(self, envelope: str, message_id: str, sender: str,
                                 case_ref: str, kind: str) -> None:
        """Mark the first opening and, in the same transaction, queue the evidence of it."""
        if kind == Kind.RETRIEVAL.value or not self.config.retrieval_receipts:
            await self.call(self.store.mark_opened, envelope, int(self.clock()))
            return
        now = int(self.clock())
        message = CaseMessage.build(Kind.RETRIEVAL, message_id=message_id, envelope=envelope,
                                    opened_at=now)
        try:
            record = compose(Draft(recipient=sender, kind=Kind.RETRIEVAL,
                                   content_type=CASE_MESSAGE_TYPE,
                                   payload=encode_case_message(message), case=case_ref,
                                   in_reply_to=message_id),
                             authority=self.authority, keystore=self.keystore,
                             directory=self._directory, archive=self.archive, now=now)
            if await self.call(self._queue, Journalled(record, message), envelope):
                self.worker.offer(record, attachments=False)
        except RogatoryError as exc:
            log.warning("no retrieval receipt for %s: %s", message_id, exc)
            await self.call(self.store.mark_opened, envelope, now)

    async def status(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "identity_key": self.keystore.identity.key_id,
            "directory_serial": self._directory.serial,
            "inbound": await self.call(self.store.count_inbound),
            "outbound": await self.call(self.store.outbound_states),
            "pending": await self.call(self.store.pending_count),
        }


def _answered(stored: list[bytes | None],
              opened: list[Outcome | Prepared]) -> list[Outcome | Prepared]:
    """In the batch's order: the receipt already issued where there is one, else what opening
    the envelope gave (``opened`` holds only those, in order)."""
    pending = iter(opened)
    return [Outcome(200, receipt, True, duplicate=True) if receipt is not None
            else next(pending) for receipt in stored]


def _peer_error(error: RogatoryError, status: int) -> web.Response:
    return web.json_response({"error": {"code": error.code, "message": error.message}},
                             status=status)


def _specs(manifest: bytes) -> tuple[AttachmentSpec, ...]:
    return parse_manifest(manifest) if manifest else ()

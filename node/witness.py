"""Witnessing peers' logs: fetch their checkpoints, check each is consistent, cosign, raise alarms.

Every node is a witness of every other node's log. It keeps the latest checkpoint it has seen
of each peer's log and accepts a newer one only with a consistency proof from the one before.
It also reads the checkpoints that *other* witnesses cosigned, so a log that shows two peers
different histories (a fork) is caught as soon as one witness sees the other's view. A smaller
latest checkpoint (a rollback), a same-size different root (a fork), a proof that does not
verify or a bad signature is an alarm: stored, logged, shown by ``rogatory audit alarms``, and
never cleared by the node itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import sqlite_utils

from keys.directory import Directory
from node.tls import peer_ssl
from protocol import merkle
from protocol.checkpoint import Checkpoint, cosign, open_checkpoint, with_signatures
from protocol.errors import (
    LogError,
    LogFork,
    LogProofInvalid,
    LogRollback,
    RogatoryError,
    TransportBadResponse,
    TransportPinMismatch,
    TransportUnreachable,
)
from protocol.log_entry import log_origin

__all__ = ["Alarm", "Witness", "witness_name"]

log = logging.getLogger("rogatory.witness")

StoreCall = Callable[..., Awaitable[Any]]
CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"


def witness_name(authority: str) -> str:
    """The key name under which an authority cosigns other logs' checkpoints."""
    return f"rogatory/witness/{authority}"


@dataclass(frozen=True)
class Alarm:
    id: int
    authority: str
    code: str
    detail: str
    source: str
    evidence: str
    at: int


class WitnessStore:
    """The witness's tables, in the node's SQLite file; used on the store thread."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        with db.atomic():
            db.table("witness_views").create(
                {"authority": str, "size": int, "root": bytes, "note": bytes, "at": int},
                pk="authority", not_null={"size", "root", "note"}, if_not_exists=True,
            )
            db.table("alarms").create(
                {"id": int, "authority": str, "code": str, "detail": str, "source": str,
                 "evidence": str, "at": int},
                pk="id", not_null={"authority", "code"}, if_not_exists=True,
            )

    def view(self, authority: str) -> tuple[int, bytes, bytes] | None:
        row = self.db.execute("SELECT size, root, note FROM witness_views WHERE authority = ?",
                              [authority]).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), bytes(row[2]))

    def views(self) -> list[tuple[str, int, bytes, int]]:
        """(authority, size, root, at) of every log this node witnesses, by authority."""
        rows = self.db.execute(
            "SELECT authority, size, root, at FROM witness_views ORDER BY authority")
        return [(str(a), int(n), bytes(r), int(t)) for a, n, r, t in rows.fetchall()]

    def remember(self, authority: str, checkpoint: Checkpoint, note: bytes, at: int) -> None:
        with self.db.atomic():
            self.db.table("witness_views").upsert(
                {"authority": authority, "size": checkpoint.size, "root": checkpoint.root,
                 "note": note, "at": at}, pk="authority",
            )

    def raise_alarm(self, authority: str, code: str, detail: str, source: str,
                    evidence: str, at: int) -> bool:
        """Store an alarm; the same evidence seen again (every round) is not stored twice."""
        seen = self.db.execute(
            "SELECT 1 FROM alarms WHERE authority = ? AND code = ? AND evidence = ?",
            [authority, code, evidence],
        ).fetchone()
        if seen is not None:
            return False
        with self.db.atomic():
            self.db.table("alarms").insert(
                {"authority": authority, "code": code, "detail": detail, "source": source,
                 "evidence": evidence, "at": at}
            )
        return True

    def alarms(self) -> list[Alarm]:
        rows = self.db.execute(
            "SELECT id, authority, code, detail, source, evidence, at FROM alarms ORDER BY id"
        ).fetchall()
        return [Alarm(int(r[0]), r[1], r[2], r[3] or "", r[4] or "", r[5] or "", int(r[6]))
                for r in rows]


class Witness:
    def __init__(
        self,
        *,
        authority: str,
        seed: Callable[[], bytes],
        store: WitnessStore,
        db: StoreCall,
        directory: Callable[[], Directory],
        clock: Callable[[], float],
        interval: float,
        receipt_interval: float = 0.0,
    ) -> None:
        self.authority = authority
        self._seed = seed
        self.store = store
        self.db = db
        self._directory = directory
        self.clock = clock
        self.interval = interval
        self.receipt_interval = receipt_interval
        self._hurry = asyncio.Event()  # stopping: check what waits now, not after the pause
        self._checked: dict[str, float] = {}  # peer -> when its last receipt check started
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._newest: dict[str, tuple[bytes, str]] = {}

    async def start(self) -> None:
        self._hurry.clear()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name=f"witness {self.authority}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.round()

    async def round(self) -> None:
        """Fetch every peer's latest checkpoint, and every other witness's view of it."""
        peers = [a for a in self._directory().records if a != self.authority]
        for peer in peers:
            try:
                await self.observe(peer, await self._get(peer, "/v1/log/checkpoint"),
                                   source=f"{peer} latest", latest=True)
            except RogatoryError as exc:
                log.info("witness: no checkpoint from %s (%s)", peer, exc.code)
            for other in peers:
                if other == peer:
                    continue
                try:
                    note = await self._get(other, f"/v1/witness/{peer}/checkpoint")
                except RogatoryError:
                    continue
                await self.observe(peer, note, source=f"cosigned by {other}")

    # --- checking one checkpoint ----------------------------------------------------------

    async def observe_newest(self, peer: str, note: bytes, *, source: str) -> None:
        """Like ``observe``, but a burst of receipts from one peer costs one check, not many.

        Each receipt carries a checkpoint; checking each would fetch a consistency proof per
        message. Only the newest one waiting is checked, and it covers the ones before it (a
        log consistent up to size n is consistent up to every size below n). While receipts
        keep coming, checks start at most every ``receipt_interval`` seconds: a steady stream
        then costs a few checks a second, not one per batch, and the newest checkpoint is
        still checked, at the latest one interval later (at once when the node stops).
        """
        running = peer in self._newest
        self._newest[peer] = (note, source)
        if running:  # the check under way picks this one up when it is done
            return
        loop = asyncio.get_running_loop()
        try:
            while True:
                pause = self._checked.get(peer, -math.inf) + self.receipt_interval - loop.time()
                if pause > 0 and not self._hurry.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry.wait(), pause)
                current = self._newest[peer]
                self._checked[peer] = loop.time()
                await self.observe(peer, current[0], source=current[1])
                if self._newest[peer] is current:
                    break
        finally:
            del self._newest[peer]

    def hurry(self) -> None:
        """Checks waiting out their pause run now: called before the node stops."""
        self._hurry.set()

    async def observe(self, peer: str, note: bytes, *, source: str,
                      latest: bool = False) -> None:
        """Check a checkpoint of ``peer``'s log against our view; cosign or raise an alarm."""
        lock = self._locks.setdefault(peer, asyncio.Lock())
        async with lock:
            try:
                await self._observe(peer, note, source, latest)
            except LogError as exc:
                await self._alarm(peer, exc, source, note)
            except RogatoryError as exc:
                # Unreachable peer or unknown authority: nothing proven either way; next round.
                log.info("witness: could not check %s's log from %s (%s)", peer, source,
                         exc.code)

    async def _observe(self, peer: str, note: bytes, source: str, latest: bool) -> None:
        record = self._directory().record(peer)
        checkpoint, _ = open_checkpoint(note, log_origin(peer), record.identity_key)
        previous = await self.db(self.store.view, peer)
        if previous is None:
            await self._cosign_and_keep(peer, checkpoint, note)
            return
        size, root, _ = previous
        if checkpoint.size == size:
            if checkpoint.root != root:
                raise LogFork(f"two roots for size {size}")
            return
        if checkpoint.size < size:
            if latest:
                raise LogRollback(f"latest checkpoint has size {checkpoint.size}, "
                                  f"{size} was seen before")
            proof = await self._consistency(peer, checkpoint.size, size)
            self._verify(peer, checkpoint.size, size, checkpoint.root, root, proof)
            return
        proof = await self._consistency(peer, size, checkpoint.size)
        self._verify(peer, size, checkpoint.size, root, checkpoint.root, proof)
        await self._cosign_and_keep(peer, checkpoint, note)

    @staticmethod
    def _verify(peer: str, old: int, new: int, old_root: bytes, new_root: bytes,
                proof: list[bytes]) -> None:
        try:
            merkle.verify_consistency(old, new, old_root, new_root, proof)
        except LogError as exc:
            raise LogFork(f"{peer}: checkpoints of size {old} and {new} are not consistent "
                          f"({exc.detail})") from exc

    async def _cosign_and_keep(self, peer: str, checkpoint: Checkpoint, note: bytes) -> None:
        at = int(self.clock())
        signature = cosign(checkpoint, witness_name(self.authority), self._seed(), at)
        cosigned = with_signatures(note, [signature])
        await self.db(self.store.remember, peer, checkpoint, cosigned, at)

    async def _alarm(self, peer: str, error: LogError, source: str, note: bytes) -> None:
        previous = await self.db(self.store.view, peer)
        evidence = "\n".join([
            "observed:", note.decode("utf-8", "replace"),
            "previous:", previous[2].decode("utf-8", "replace") if previous else "(none)",
        ])
        if await self.db(self.store.raise_alarm, peer, error.code, error.message, source,
                         evidence, int(self.clock())):
            log.error("ALARM %s on the log of %s (%s): %s", error.code, peer, source,
                      error.message)

    # --- HTTP -----------------------------------------------------------------------------

    async def _get(self, peer: str, path: str) -> bytes:
        assert self._session is not None, "start() the witness first"
        record = self._directory().record(peer)
        ssl = peer_ssl(record.endpoint, record.tls_fingerprint)
        url = record.endpoint.rstrip("/") + path
        try:
            async with self._session.get(url, ssl=ssl) as response:
                body = await response.read()
                if response.status != 200:
                    raise TransportBadResponse(f"{url}: HTTP {response.status}")
                return body
        except aiohttp.ServerFingerprintMismatch as exc:
            raise TransportPinMismatch(f"{peer} at {url}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportUnreachable(f"{peer} at {url}: {exc!r}") from exc

    async def fetch_view(self, witness: str, log_of: str) -> bytes:
        """The checkpoint of ``log_of``'s log as ``witness`` last cosigned it."""
        return await self._get(witness, f"/v1/witness/{log_of}/checkpoint")

    async def _consistency(self, peer: str, old: int, new: int) -> list[bytes]:
        body = await self._get(peer, f"/v1/log/consistency?old={old}&new={new}")
        try:
            return [base64.b64decode(line, validate=True)
                    for line in body.decode("ascii").splitlines() if line]
        except (ValueError, UnicodeDecodeError) as exc:
            raise LogProofInvalid(f"{peer} served an unreadable consistency proof") from exc

"""Attachment files on a node: encrypted as they are written, verified before anything counts.

Both sides keep only ciphertext: the sender encrypts each file into its outbox once (so a
resumed upload sends the same bytes from any offset), the receiver appends what arrives to one
file per attachment. The keys live in the signed package, which the node keeps sealed under its
storage key, so the files on disk are encrypted at rest by construction. Plaintext exists only
where a user exports it: written beside its final name, checked against the manifest's SHA-256,
then linked into place, so a file with the final name is always complete and never replaces
another.

The ``attachment_transfers`` table says, per envelope, what the receiver expects and whether it
has verified it; the envelope itself is only accepted (and receipted) once every attachment has
arrived and verified. Everything here is synchronous; the node runs it off the event loop.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from protocol.attachment import (
    CHUNK_SIZE,
    AttachmentSpec,
    Decryptor,
    encrypt_chunks,
    safe_name,
)
from protocol.errors import (
    AttachmentError,
    AttachmentExists,
    AttachmentMalformed,
    StoreDiskFull,
    StoreNotFound,
)

__all__ = ["AttachmentFiles", "LiveCheck", "encrypt_file", "export", "read_plaintext",
           "verify_file"]

READ_SIZE = 1024 * 1024
DISK_MARGIN = 256 * 1024 * 1024  # never fill the disk the database lives on


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pieces(path: Path, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    with path.open("rb") as file:
        while piece := file.read(size):
            yield piece


def encrypt_file(source: Path, target: Path, *, message_id: str, index: int,
                 name: str | None = None, media_type: str | None = None) -> AttachmentSpec:
    """Encrypt ``source`` into ``target`` in constant memory; the manifest entry for it."""
    name = safe_name(name if name is not None else source.name)
    if media_type is None:
        guessed, _ = mimetypes.guess_type(name)
        media_type = guessed or "application/octet-stream"
    if not source.is_file():
        raise AttachmentMalformed(f"{source} is not a readable file")
    key = os.urandom(32)
    digest = hashlib.sha256()
    size = 0

    def plaintext() -> Iterator[bytes]:
        nonlocal size
        for piece in _pieces(source):
            digest.update(piece)
            size += len(piece)
            yield piece

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    header, chunks = encrypt_chunks(key, message_id, index, plaintext())
    with partial.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    _fsync_dir(target.parent)
    return AttachmentSpec(index=index, name=name, media_type=media_type, size=size,
                          sha256=digest.hexdigest(), key=key, header=header)


def read_plaintext(path: Path, spec: AttachmentSpec, message_id: str) -> Iterator[bytes]:
    """The attachment's plaintext, chunk by chunk; raises at the end if it does not verify."""
    decryptor = Decryptor(spec, message_id)
    for piece in _pieces(path, READ_SIZE):
        yield from decryptor.feed(piece)
    yield from decryptor.finish()


def verify_file(path: Path, spec: AttachmentSpec, message_id: str) -> None:
    """Decrypt and check a received stream without keeping the plaintext anywhere."""
    for _ in read_plaintext(path, spec, message_id):
        pass


class LiveCheck:
    """Checks one stream as its bytes arrive, so its last byte is also the end of its check.

    Fed exactly the bytes appended to the file, in order, from byte 0; anything else (a resume
    after a restart, an offset it did not see) makes it give up, and the whole file is checked
    when the envelope comes back, as without it.
    """

    def __init__(self, spec: AttachmentSpec, message_id: str) -> None:
        self._decryptor = Decryptor(spec, message_id)
        self._ciphertext = hashlib.sha256()
        self.fed = 0
        self.failed = False
        self.passed = False

    def feed(self, offset: int, data: bytes) -> None:
        if self.failed or offset != self.fed:
            self.failed = True
            return
        self._ciphertext.update(data)
        try:
            for _ in self._decryptor.feed(data):
                pass
        except AttachmentError:
            self.failed = True
        self.fed += len(data)

    def on_disk(self, path: Path) -> bool:
        """The file holds exactly the bytes that passed: hashing is several times faster than
        decrypting, and catches a file changed or damaged between the check and the disk."""
        digest = hashlib.sha256()
        for piece in _pieces(path, READ_SIZE):
            digest.update(piece)
        return self.passed and digest.digest() == self._ciphertext.digest()

    def finish(self) -> bool:
        if not self.failed:
            try:
                for _ in self._decryptor.finish():
                    pass
                self.passed = True
            except AttachmentError:
                self.failed = True
        return self.passed


class AttachmentFiles:
    """Where a node keeps attachment ciphertext, and what it expects from each transfer."""

    def __init__(self, root: Path, db: sqlite_utils.Database) -> None:
        self.root = root
        self.db = db
        with db.atomic():
            db.table("attachment_transfers").create(
                {"envelope_hash": str, "idx": int, "sender": str, "message_id": str,
                 "expected": int, "verified": int, "created_at": int},
                pk=("envelope_hash", "idx"), if_not_exists=True)

    # --- sending ------------------------------------------------------------------------------

    def outgoing(self, message_id: str, index: int) -> Path:
        return self.root / "out" / message_id / f"{index}.ct"

    def outgoing_files(self, message_id: str) -> list[Path]:
        folder = self.root / "out" / message_id
        if not folder.is_dir():
            return []
        count = len([p for p in folder.iterdir() if p.suffix == ".ct"])
        return [self.outgoing(message_id, i) for i in range(count)]

    # --- receiving ----------------------------------------------------------------------------

    def incoming(self, envelope_hash: str, index: int) -> Path:
        return self.root / "in" / envelope_hash / f"{index}.ct"

    def expect(self, envelope_hash: str, sender: str, message_id: str,
               specs: tuple[AttachmentSpec, ...], now: int) -> None:
        """Register a transfer, once the envelope naming it has passed every check."""
        if self.transfer(envelope_hash):
            return
        needed = sum(spec.ciphertext_size for spec in specs)
        self.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        promised = sum(max(0, row["expected"] - row["received"])
                       for row in self._unfinished())
        if needed + promised + DISK_MARGIN > free:
            raise StoreDiskFull(f"{needed} bytes of attachments, {promised} bytes promised to "
                                f"other transfers, {free} bytes free")
        with self.db.atomic():
            for spec in specs:
                self.db.table("attachment_transfers").insert({
                    "envelope_hash": envelope_hash, "idx": spec.index, "sender": sender,
                    "message_id": message_id, "expected": spec.ciphertext_size,
                    "verified": 0, "created_at": now})
        self.incoming(envelope_hash, 0).parent.mkdir(parents=True, exist_ok=True)

    def transfer(self, envelope_hash: str) -> list[dict[str, int]]:
        """Per attachment: expected and received bytes, and whether it verified."""
        rows = self.db.execute(
            "SELECT idx, expected, verified FROM attachment_transfers WHERE envelope_hash = ? "
            "ORDER BY idx", [envelope_hash]).fetchall()
        out = []
        for index, expected, verified in rows:
            path = self.incoming(envelope_hash, index)
            received = path.stat().st_size if path.exists() else 0
            out.append({"index": index, "expected": expected, "received": received,
                        "verified": verified})
        return out

    def _unfinished(self) -> list[dict[str, int]]:
        """Transfers announced and not verified: the room they will still take."""
        rows = self.db.execute(
            "SELECT envelope_hash, idx, expected FROM attachment_transfers WHERE verified = 0"
        ).fetchall()
        out = []
        for digest, index, expected in rows:
            path = self.incoming(digest, index)
            out.append({"expected": expected,
                        "received": path.stat().st_size if path.exists() else 0})
        return out

    def expected(self, envelope_hash: str, index: int) -> int:
        row = self.db.execute(
            "SELECT expected FROM attachment_transfers WHERE envelope_hash = ? AND idx = ?",
            [envelope_hash, index]).fetchone()
        if row is None:
            raise StoreNotFound(f"no transfer of attachment {index} of {envelope_hash}")
        return int(row[0])

    def mark_verified(self, envelope_hash: str) -> None:
        with self.db.atomic():
            self.db.execute("UPDATE attachment_transfers SET verified = 1 "
                            "WHERE envelope_hash = ?", [envelope_hash])

    def sweep(self, now: int, horizon: int) -> int:
        """Forget the transfers no envelope can complete any more; return how many.

        A transfer registered more than ``horizon`` seconds ago (past any envelope's lifetime)
        whose envelope was never taken in is dead: the envelope would be refused as expired.
        Its bytes are useless, and the room promised to it is held against every new transfer.
        """
        rows = self.db.execute(
            "SELECT DISTINCT envelope_hash FROM attachment_transfers WHERE created_at < ? "
            "AND envelope_hash NOT IN (SELECT envelope_hash FROM messages_in)",
            [now - horizon]).fetchall()
        for (digest,) in rows:
            self.discard(digest)
        return len(rows)

    def discard(self, envelope_hash: str) -> None:
        """Forget a transfer that failed verification; the sender starts it again."""
        with self.db.atomic():
            self.db.execute("DELETE FROM attachment_transfers WHERE envelope_hash = ?",
                            [envelope_hash])
        shutil.rmtree(self.root / "in" / envelope_hash, ignore_errors=True)


def export(source: Path, spec: AttachmentSpec, message_id: str, folder: Path) -> Path:
    """Decrypt an attachment into ``folder`` under its safe name; never overwrite, never half.

    The plaintext goes to a hidden partial file first; only once the stream verified is it
    linked to its final name (``os.link`` fails rather than replace), then the partial removed.
    """
    final = folder / safe_name(spec.name)
    if final.exists():
        raise AttachmentExists(str(final))
    partial = folder / f".{final.name}.{os.getpid()}.part"
    try:
        with partial.open("xb") as out:
            for chunk in read_plaintext(source, spec, message_id):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(partial, final)
        except FileExistsError:
            raise AttachmentExists(str(final)) from None
        _fsync_dir(folder)
    finally:
        partial.unlink(missing_ok=True)
    return final

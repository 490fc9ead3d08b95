"""The node's append-only Merkle log, kept in the node's SQLite file.

Only perfect subtree hashes are stored (level, index), so an append writes at most log2(n) + 1
rows and any proof is computed from O(log n) of them fetched in one query; the tree is never
loaded into memory. Appends run inside the caller's transaction: a message and the log entry
that records it commit together or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import sqlite_utils

from protocol import merkle
from protocol.checkpoint import Checkpoint, TlogProof, sign_checkpoint
from protocol.errors import StoreNotFound

__all__ = ["AuditLog", "nodes_query"]

Key = tuple[int, int]


def nodes_query(count: int) -> str:
    """The lookup of ``count`` stored subtree hashes by (level, index).

    A join from the key list, not ``(level, idx) IN (VALUES ...)``: SQLite plans the IN form
    as a full scan of the table once there are two keys or more, the join as one primary-key
    search per key.
    """
    values = ",".join("(?,?)" for _ in range(count))
    return (f"SELECT n.level, n.idx, n.hash FROM (VALUES {values}) AS k "
            "JOIN log_nodes AS n ON n.level = k.column1 AND n.idx = k.column2")


class AuditLog:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        with db.atomic():
            db.table("log_entries").create(
                {"idx": int, "type": str, "entry": bytes, "leaf": bytes, "at": int},
                pk="idx", not_null={"type", "entry", "leaf", "at"}, if_not_exists=True,
            )
            db.table("log_nodes").create(
                {"level": int, "idx": int, "hash": bytes},
                pk=("level", "idx"), not_null={"hash"}, if_not_exists=True,
            )
            db.table("log_checkpoints").create(
                {"size": int, "note": bytes, "at": int},
                pk="size", not_null={"note"}, if_not_exists=True,
            )

    # --- reading --------------------------------------------------------------------------

    def size(self) -> int:
        row = self.db.execute("SELECT max(idx) FROM log_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def nodes(self, keys: Iterable[Key]) -> dict[Key, bytes]:
        """Fetch stored subtree hashes in one query."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        found: dict[Key, bytes] = {}
        # SQLite limits bound parameters; proofs need a few dozen keys, chunk for safety.
        for start in range(0, len(wanted), 400):
            chunk = wanted[start:start + 400]
            params = [v for key in chunk for v in key]
            rows = self.db.execute(nodes_query(len(chunk)), params)
            found.update({(int(lv), int(ix)): bytes(h) for lv, ix, h in rows.fetchall()})
        missing = [key for key in wanted if key not in found]
        if missing:
            raise StoreNotFound(f"log nodes missing: {missing[:4]}")
        return found

    def root(self, size: int | None = None) -> bytes:
        size = self.size() if size is None else size
        return merkle.root_from(size, self.nodes(merkle.root_keys(size)))

    def entry(self, index: int) -> bytes:
        row = self.db.execute("SELECT entry FROM log_entries WHERE idx = ?", [index]).fetchone()
        if row is None:
            raise StoreNotFound(f"no log entry {index}")
        return bytes(row[0])

    def entries(self, start: int = 0, end: int | None = None) -> list[bytes]:
        end = self.size() if end is None else end
        rows = self.db.execute(
            "SELECT entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", [start, end]
        )
        return [bytes(row[0]) for row in rows.fetchall()]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size,
                                      self.nodes(merkle.inclusion_keys(index, size)))

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return merkle.consistency_proof(
            old_size, new_size, self.nodes(merkle.consistency_keys(old_size, new_size))
        )

    def latest_checkpoint(self) -> bytes | None:
        row = self.db.execute(
            "SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else bytes(row[0])

    def checkpoint_at(self, size: int) -> bytes | None:
        row = self.db.execute("SELECT note FROM log_checkpoints WHERE size = ?",
                              [size]).fetchone()
        return None if row is None else bytes(row[0])

    # --- writing (inside the caller's transaction) ----------------------------------------

    def append(self, entry_type: str, entry: bytes, at: int) -> int:
        index = self.size()
        leaf = merkle.leaf_hash(entry)
        siblings = self.nodes(merkle.append_keys(index))
        with self.db.atomic():
            self.db.execute(
                "INSERT INTO log_entries (idx, type, entry, leaf, at) VALUES (?, ?, ?, ?, ?)",
                [index, entry_type, entry, leaf, at])
            self.db.conn.executemany(
                "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)",
                [(lv, ix, h) for (lv, ix), h in merkle.appended_nodes(index, leaf, siblings)])
        return index

    def append_many(self, items: Sequence[tuple[str, bytes, int]]) -> list[int]:
        """``append`` for several (type, entry, at) in order: the same rows, in bulk.

        The stored hashes the new leaves need are either written by this call (kept in memory
        as they are computed) or older, fetched in one lookup; the entries and the nodes are
        then inserted with one ``executemany`` each.
        """
        if not items:
            return []
        start = self.size()
        indices = range(start, start + len(items))
        older = {key for index in indices for key in merkle.append_keys(index)
                 if (key[1] + 1) << key[0] <= start}  # every leaf under it is already stored
        known = dict(self.nodes(older))
        entries: list[tuple[int, str, bytes, bytes, int]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for index, (entry_type, entry, at) in zip(indices, items, strict=True):
            leaf = merkle.leaf_hash(entry)
            entries.append((index, entry_type, entry, leaf, at))
            for key, value in merkle.appended_nodes(index, leaf, known):
                known[key] = value
                nodes.append((key[0], key[1], value))
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO log_entries (idx, type, entry, leaf, at) VALUES (?, ?, ?, ?, ?)",
                entries)
            self.db.conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)",
                                     nodes)
        return list(indices)

    def sign(self, origin: str, seed: bytes, at: int | None = None) -> bytes:
        """A signed checkpoint of the whole log now; reused if the size has not changed."""
        size = self.size()
        existing = self.checkpoint_at(size)
        if existing is not None:
            return existing
        note = sign_checkpoint(Checkpoint(origin, size, self.root(size)), origin, seed)
        self.db.execute("INSERT INTO log_checkpoints (size, note, at) VALUES (?, ?, ?)",
                        [size, note, int(time.time()) if at is None else at])
        return note

    def proofs(self, indices: Sequence[int], origin: str, seed: bytes,
               at: int) -> list[TlogProof]:
        """Index, inclusion proof and a signed checkpoint that covers it (C2SP tlog-proof), for
        several entries against one checkpoint, the hashes in one lookup.

        None asked, nothing signed: a batch of redeliveries must leave the store as it was.
        """
        if not indices:
            return []
        note = self.sign(origin, seed, at)
        size = self.size()
        known = self.nodes(merkle.inclusion_keys_many(indices, size))
        return [TlogProof(index=index, checkpoint=note, hashes=tuple(path))
                for index, path in zip(indices, merkle.inclusion_proofs(indices, size, known),
                                       strict=True)]

    def counts(self) -> Mapping[str, int]:
        rows = self.db.execute("SELECT type, count(*) FROM log_entries GROUP BY type")
        return {str(t): int(n) for t, n in rows.fetchall()}

"""RFC 9162 Merkle tree maths over stored perfect subtrees: pure, sans-IO, two-phase.

The tree is the one of RFC 9162 §2.1 (also C2SP ``merkle-tree``): leaves are
``SHA-256(0x00 || entry)``, interior nodes ``SHA-256(0x01 || left || right)``, and a tree of
``n > 1`` leaves splits at ``k``, the largest power of two below ``n``, so the left subtree is
always perfect and only nodes on the right edge can be incomplete.

A store keeps only *perfect* subtree hashes, addressed by ``Key = (level, index)``: the hash of
leaves ``[index * 2**level, (index + 1) * 2**level)``, level 0 being the leaf hashes. Such a node
never changes once its last leaf is appended, so an append writes at most ``log2(n) + 1`` rows.
Every RFC node the proofs need, including the incomplete nodes on the right edge, is computed
from the perfect subtrees that tile its leaf range, so nothing else is ever stored.

Every operation that reads the store is split in two, so this module needs no I/O at all:

1. ``*_keys(...)`` says which keys are needed (O(log n) of them, known before reading anything);
2. the caller fetches exactly those in one query and passes them as a mapping to the function
   that computes the result (``root_from``, ``inclusion_proof``, ``consistency_proof``,
   ``appended_nodes``). A key that is missing, or a stored hash that is not 32 bytes, is
   ``LogMalformed``.

Verification (``verify_inclusion``, ``verify_consistency``) follows RFC 9162 §2.1.3.2 and
§2.1.4.2 and raises ``LogProofInvalid`` for anything that does not prove the claim. Arguments
that are not non-negative integers, or index/size pairs that describe no tree, are
``LogMalformed`` when building; when verifying, a claim about a leaf outside the tree or a tree
that shrank is simply a proof that does not verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from protocol.errors import LogMalformed, LogProofInvalid

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Key",
    "append_keys",
    "appended_nodes",
    "consistency_keys",
    "consistency_proof",
    "inclusion_keys",
    "inclusion_keys_many",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "range_keys",
    "root_from",
    "root_keys",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

Key: TypeAlias = tuple[int, int]
"""A stored perfect subtree (level, index): leaves [index << level, (index + 1) << level)."""

HASH_SIZE = 32

_Range: TypeAlias = tuple[int, int]


def leaf_hash(entry: bytes) -> bytes:
    """The hash of one log entry as a leaf: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree, ``SHA-256("")``."""


# --- arguments ------------------------------------------------------------------------------


def _count(name: str, value: object) -> int:
    if type(value) is not int or value < 0:
        raise LogMalformed(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _position(index: object, size: object) -> tuple[int, int]:
    leaf, tree = _count("index", index), _count("size", size)
    if leaf >= tree:
        raise LogMalformed(f"leaf {leaf} is not in a tree of size {tree}")
    return leaf, tree


def _sizes(old_size: object, new_size: object) -> tuple[int, int]:
    old, new = _count("old_size", old_size), _count("new_size", new_size)
    if old > new:
        raise LogMalformed(f"a tree of size {old} cannot grow into one of size {new}")
    return old, new


def _split(size: int) -> int:
    """The largest power of two strictly below ``size`` (``size >= 2``): where RFC 9162 splits."""
    return 1 << ((size - 1).bit_length() - 1)


def _stored(nodes: Mapping[Key, bytes], key: Key) -> bytes:
    try:
        value = nodes[key]
    except KeyError:
        raise LogMalformed(f"log node {key} was not supplied") from None
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise LogMalformed(f"log node {key} is not a {HASH_SIZE}-byte hash")
    return value


# --- perfect subtrees -----------------------------------------------------------------------


def range_keys(start: int, end: int) -> list[Key]:
    """The perfect subtrees tiling leaves ``[start, end)``, left to right, largest aligned first.

    Each block is the largest one that starts at the current position, is aligned to its own
    size and does not run past ``end``; at most ``2 * log2(end - start) + 2`` blocks.
    """
    _count("start", start)
    _count("end", end)
    if start > end:
        raise LogMalformed(f"range [{start}, {end}) runs backwards")
    keys: list[Key] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _subtree_hash(start: int, end: int, nodes: Mapping[Key, bytes]) -> bytes:
    """RFC 9162 MTH(D[start:end]) for a node of the tree (``start`` aligned to ``>= end-start``).

    For such a node the RFC split (largest power of two below its size) is exactly the first
    block of ``range_keys``, and the rest is again such a node, so the hash is the right fold
    ``node(b0, node(b1, ... node(b[-2], b[-1])))`` over the tiling, not a left fold.
    """
    keys = range_keys(start, end)
    value = _stored(nodes, keys[-1])
    for key in reversed(keys[:-1]):
        value = node_hash(_stored(nodes, key), value)
    return value


def root_keys(size: int) -> list[Key]:
    """The stored subtrees whose right fold is the root of the tree of ``size`` leaves."""
    return range_keys(0, _count("size", size))


def root_from(size: int, nodes: Mapping[Key, bytes]) -> bytes:
    """The root of the tree of ``size`` leaves from the hashes named by ``root_keys(size)``."""
    if _count("size", size) == 0:
        return EMPTY_ROOT
    return _subtree_hash(0, size, nodes)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Reference MTH over a full list of leaf *hashes*, in O(n); for tests and offline checks."""
    # A stack of (leaf count, hash) of perfect subtrees with strictly decreasing counts.
    stack: list[tuple[int, bytes]] = []
    for position, leaf in enumerate(leaves):
        if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
            raise LogMalformed(f"leaf {position} is not a {HASH_SIZE}-byte hash")
        count, value = 1, leaf
        while stack and stack[-1][0] == count:
            left_count, left = stack.pop()
            count, value = left_count + count, node_hash(left, value)
        stack.append((count, value))
    if not stack:
        return EMPTY_ROOT
    _, root = stack[-1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


# --- appending ------------------------------------------------------------------------------


def append_keys(index: int) -> list[Key]:
    """The left siblings needed to complete the perfect parents that appending leaf ``index``
    finishes, bottom up: one per trailing 1 bit of ``index``."""
    _count("index", index)
    keys: list[Key] = []
    level = 0
    while (index >> level) & 1:
        keys.append((level, (index >> level) - 1))
        level += 1
    return keys


def appended_nodes(index: int, leaf: bytes, nodes: Mapping[Key, bytes]) -> list[tuple[Key, bytes]]:
    """What to store when the leaf hash ``leaf`` is appended at ``index``: ``(0, index)`` and
    every perfect parent it completes, bottom up; ``nodes`` holds ``append_keys(index)``."""
    _count("index", index)
    if not isinstance(leaf, bytes) or len(leaf) != HASH_SIZE:
        raise LogMalformed(f"the leaf hash must be {HASH_SIZE} bytes")
    written: list[tuple[Key, bytes]] = [((0, index), leaf)]
    value = leaf
    for level, sibling in append_keys(index):
        value = node_hash(_stored(nodes, (level, sibling)), value)
        written.append(((level + 1, index >> (level + 1)), value))
    return written


# --- inclusion ------------------------------------------------------------------------------


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    """The leaf ranges of the RFC 9162 PATH(index, D[size]) hashes, leaf to root."""
    siblings: list[_Range] = []
    low, high = 0, size
    while high - low > 1:
        middle = low + _split(high - low)
        if index < middle:
            siblings.append((middle, high))
            high = middle
        else:
            siblings.append((low, middle))
            low = middle
    siblings.reverse()
    return siblings


def inclusion_keys(index: int, size: int) -> set[Key]:
    """The stored subtrees ``inclusion_proof(index, size, ...)`` reads: at most 2*log2(size)."""
    return inclusion_keys_many([index], size)


def inclusion_keys_many(indices: Sequence[int], size: int) -> set[Key]:
    """The stored subtrees ``inclusion_proofs(indices, size, ...)`` reads."""
    ranges = {r for index in indices for r in _inclusion_ranges(*_position(index, size))}
    return {key for low, high in ranges for key in range_keys(low, high)}


def inclusion_proof(index: int, size: int, nodes: Mapping[Key, bytes]) -> list[bytes]:
    """RFC 9162 PATH(index, D[size]): sibling hashes from the leaf up to the root."""
    return inclusion_proofs([index], size, nodes)[0]


def inclusion_proofs(indices: Sequence[int], size: int,
                     nodes: Mapping[Key, bytes]) -> list[list[bytes]]:
    """``inclusion_proof`` for several leaves of one tree: what their paths share is hashed once.

    The receiver proves a whole batch of neighbouring entries against one checkpoint; their
    paths differ near the leaves and coincide above, where the unstored right-edge subtrees
    are the costly part to rebuild.
    """
    known: dict[_Range, bytes] = {}
    proofs: list[list[bytes]] = []
    for index in indices:
        leaf, tree = _position(index, size)
        path = []
        for low, high in _inclusion_ranges(leaf, tree):
            value = known.get((low, high))
            if value is None:
                value = known[(low, high)] = _subtree_hash(low, high, nodes)
            path.append(value)
        proofs.append(path)
    return proofs


# --- consistency ----------------------------------------------------------------------------


def _consistency_ranges(old: int, new: int) -> list[_Range]:
    """The leaf ranges of the RFC 9162 PROOF(old, D[new]) hashes (``0 < old < new``), in order."""
    parts: list[_Range] = []
    low, high, known, complete = 0, new, old, True
    while known != high - low:
        middle = low + _split(high - low)
        if low + known <= middle:
            parts.append((middle, high))
            high = middle
        else:
            parts.append((low, middle))
            known -= middle - low
            low, complete = middle, False
    if not complete:
        parts.append((low, high))
    parts.reverse()
    return parts


def consistency_keys(old_size: int, new_size: int) -> set[Key]:
    """The stored subtrees ``consistency_proof(old_size, new_size, ...)`` reads."""
    old, new = _sizes(old_size, new_size)
    if old in (0, new):
        return set()
    return {key for low, high in _consistency_ranges(old, new) for key in range_keys(low, high)}


def consistency_proof(old_size: int, new_size: int, nodes: Mapping[Key, bytes]) -> list[bytes]:
    """RFC 9162 PROOF(old_size, D[new_size]); empty when the sizes are equal or old_size is 0."""
    old, new = _sizes(old_size, new_size)
    if old in (0, new):
        return []
    return [_subtree_hash(low, high, nodes) for low, high in _consistency_ranges(old, new)]


# --- verification ---------------------------------------------------------------------------


def _hash_arg(name: str, value: object) -> bytes:
    if not isinstance(value, bytes):
        raise LogMalformed(f"{name} must be bytes")
    if len(value) != HASH_SIZE:
        raise LogProofInvalid(f"{name} is {len(value)} bytes, not a {HASH_SIZE}-byte hash")
    return value


def _proof_arg(proof: Sequence[bytes], expected: int) -> list[bytes]:
    if len(proof) != expected:
        raise LogProofInvalid(f"proof has {len(proof)} hashes, expected {expected}")
    return [_hash_arg(f"proof[{position}]", item) for position, item in enumerate(proof)]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash ``leaf`` is entry ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2. Raises ``LogProofInvalid`` unless the proof verifies.
    """
    leaf_index, tree = _count("index", index), _count("size", size)
    value = _hash_arg("leaf", leaf)
    expected_root = _hash_arg("root", root)
    if leaf_index >= tree:
        raise LogProofInvalid(f"leaf {leaf_index} is not in a tree of size {tree}")
    hashes = _proof_arg(proof, len(_inclusion_ranges(leaf_index, tree)))
    fn, sn = leaf_index, tree - 1
    for sibling in hashes:
        if sn == 0:
            raise LogProofInvalid("the proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            value = node_hash(value, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise LogProofInvalid("the proof is shorter than the path to the root")
    if value != expected_root:
        raise LogProofInvalid(f"leaf {leaf_index} does not lead to the root of size {tree}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the one of
    ``new_size`` with ``new_root``.

    RFC 9162 §2.1.4.2. Equal sizes need equal roots and an empty proof; an empty old tree needs
    ``old_root == EMPTY_ROOT`` and an empty proof. Raises ``LogProofInvalid`` otherwise.
    """
    old, new = _count("old_size", old_size), _count("new_size", new_size)
    first = _hash_arg("old_root", old_root)
    second = _hash_arg("new_root", new_root)
    if old > new:
        raise LogProofInvalid(f"the log shrank from {old} to {new} entries")
    if old == 0 and first != EMPTY_ROOT:
        raise LogProofInvalid("the root of the empty tree is SHA-256 of nothing")
    if old in (0, new):
        _proof_arg(proof, 0)
        if old == new and first != second:
            raise LogProofInvalid(f"two different roots for the tree of size {old}")
        return
    hashes = _proof_arg(proof, len(_consistency_ranges(old, new)))
    if old & (old - 1) == 0:  # the old tree is a subtree of the new one: its root is implied
        hashes.insert(0, first)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first_value = second_value = hashes[0]
    for item in hashes[1:]:
        if sn == 0:
            raise LogProofInvalid("the proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            first_value = node_hash(item, first_value)
            second_value = node_hash(item, second_value)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            second_value = node_hash(second_value, item)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise LogProofInvalid("the proof is shorter than the path to the root")
    if first_value != first:
        raise LogProofInvalid(f"the proof does not lead to the old root of size {old}")
    if second_value != second:
        raise LogProofInvalid(f"the proof does not lead to the new root of size {new}")

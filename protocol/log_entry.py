"""Audit log entries: what a node records about each thing it sent, received, receipted or adopted.

An entry is canonical JSON, hashed as an RFC 9162 leaf. It holds hashes and metadata, never a
payload, so a log can be handed to an auditor or a peer without disclosing case content. The
entry for an accepted envelope is built only from fields the receipt also carries, so the sender
can rebuild the exact leaf from the receipt and check the receiver's inclusion proof without
asking for anything else.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

from protocol import merkle
from protocol.checkpoint import Checkpoint, open_checkpoint, parse_tlog_proof
from protocol.encoding import canonical_json, parse_canonical_json
from protocol.errors import EncodingError, LogMalformed, LogProofInvalid
from protocol.header import AUTHORITY_ID, KEY_ID, MESSAGE_ID
from protocol.receipt import Receipt

__all__ = [
    "ENTRY_FIELDS",
    "USER_NAME",
    "EntryType",
    "encode_entry",
    "log_origin",
    "parse_entry",
    "received_entry",
    "verify_receipt_proof",
]

ENTRY_VERSION = 1
MAX_ENTRY = 4096
_HASH = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[a-z0-9_.]{0,64}")
_KINDS = re.compile(r"[a-z-]{1,40}")
USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A web user's login name; also the pattern a log entry checks, so names never need escaping."""
_READER = re.compile(r"(user|token):[a-z0-9][a-z0-9._-]{0,63}")
_LOGIN_USER = re.compile(r"|[a-z0-9][a-z0-9._-]{0,63}")  # empty: a name no account has
_OUTCOME = re.compile(r"success|failure|locked")
_LANGUAGE = re.compile(r"accepted|not-accepted")


class EntryType(enum.Enum):
    ENVELOPE_SENT = "envelope-sent"
    ENVELOPE_RECEIVED = "envelope-received"
    RECEIPT_ISSUED = "receipt-issued"
    RECEIPT_RECEIVED = "receipt-received"
    DIRECTORY_ADOPTED = "directory-adopted"
    KEYS_ROTATED = "keys-rotated"
    USER_LOGIN = "user-login"
    PACKAGE_OPENED = "package-opened"
    CHECK_OVERRIDDEN = "check-overridden"


def _time(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


_count = _time  # a number of things: the same bounds as a time


def _text(pattern: re.Pattern[str]) -> Any:
    return lambda value: isinstance(value, str) and pattern.fullmatch(value) is not None


def _key_ids(value: object) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) <= 256  # a tuple reads back a list
            and all(isinstance(v, str) and KEY_ID.fullmatch(v) for v in value))


_ENVELOPE = {
    "envelope": _text(_HASH),
    "id": _text(MESSAGE_ID),
    "from": _text(AUTHORITY_ID),
    "to": _text(AUTHORITY_ID),
}

ENTRY_FIELDS: dict[EntryType, dict[str, Any]] = {
    EntryType.ENVELOPE_SENT: {**_ENVELOPE, "kind": _text(_KINDS), "created": _time,
                              "expires": _time, "at": _time},
    EntryType.ENVELOPE_RECEIVED: {**_ENVELOPE, "received": _time},
    EntryType.RECEIPT_ISSUED: {**_ENVELOPE, "receipt": _text(_HASH), "at": _time},
    EntryType.RECEIPT_RECEIVED: {**_ENVELOPE, "receipt": _text(_HASH),
                                 "status": _text(re.compile("accepted|rejected")),
                                 "code": _text(_CODE), "at": _time},
    EntryType.DIRECTORY_ADOPTED: {"serial": _time, "digest": _text(_HASH), "at": _time},
    EntryType.KEYS_ROTATED: {"identity": _text(KEY_ID), "prekeys": _key_ids, "at": _time},
    EntryType.USER_LOGIN: {"user": _text(_LOGIN_USER), "outcome": _text(_OUTCOME),
                           "at": _time},
    EntryType.PACKAGE_OPENED: {"envelope": _text(_HASH), "id": _text(MESSAGE_ID),
                               "from": _text(AUTHORITY_ID), "by": _text(_READER),
                               "at": _time},
    EntryType.CHECK_OVERRIDDEN: {"envelope": _text(_HASH), "id": _text(MESSAGE_ID),
                                 "to": _text(AUTHORITY_ID), "gaps": _count,
                                 "language": _text(_LANGUAGE), "reason": _text(_HASH),
                                 "by": _text(_READER), "at": _time},
}
"""Every entry type and the exact fields it carries (besides ``v`` and ``type``), with checks."""


def encode_entry(entry_type: EntryType, fields: Mapping[str, Any]) -> bytes:
    """The canonical bytes of an entry; refuses a field set that ``parse_entry`` would refuse.

    The fields are checked as given, by the checks ``parse_entry`` runs, rather than by parsing
    the bytes back: every value an entry holds (a string, an integer, a list of strings) reads
    back from canonical JSON as exactly what was written, and both nodes encode entries for
    every message (reading them back was a third of the sender's receipt check).
    """
    body = {"v": ENTRY_VERSION, "type": entry_type.value, **fields}
    data = canonical_json(body)
    if len(data) > MAX_ENTRY:
        raise LogMalformed(f"entry larger than {MAX_ENTRY} bytes")
    if "v" in fields or "type" in fields:  # a caller overriding them: read back, as ever
        parse_entry(data)
        return data
    _check_fields(entry_type, dict(fields))
    return data


def parse_entry(data: bytes) -> tuple[EntryType, dict[str, Any]]:
    if len(data) > MAX_ENTRY:
        raise LogMalformed(f"entry larger than {MAX_ENTRY} bytes")
    try:
        body = parse_canonical_json(data)
    except EncodingError as exc:
        raise LogMalformed(f"entry: {exc.message}") from exc
    if not isinstance(body, dict) or body.get("v") != ENTRY_VERSION or body["v"] is True:
        raise LogMalformed("entry is not a version 1 object")
    try:
        entry_type = EntryType(body.get("type"))
    except ValueError:
        raise LogMalformed(f"unknown entry type {body.get('type')!r}") from None
    fields = {k: v for k, v in body.items() if k not in ("v", "type")}
    _check_fields(entry_type, fields)
    return entry_type, fields


def _check_fields(entry_type: EntryType, fields: dict[str, Any]) -> None:
    checks = ENTRY_FIELDS[entry_type]
    if set(fields) != set(checks):
        raise LogMalformed(f"{entry_type.value} entry fields {sorted(fields)}")
    for name, check in checks.items():
        if not check(fields[name]):
            raise LogMalformed(f"{entry_type.value} entry field {name!r} is malformed")


def received_entry(receipt: Receipt) -> bytes:
    """The receiver's log entry for an accepted envelope, rebuilt from its receipt alone."""
    return encode_entry(EntryType.ENVELOPE_RECEIVED, {
        "envelope": receipt.envelope_hash,
        "id": receipt.message_id,
        "from": receipt.sender,
        "to": receipt.receiver,
        "received": receipt.received,
    })


def log_origin(authority: str) -> str:
    """The name of an authority's log: its checkpoint origin and signed-note key name."""
    return f"rogatory/log/{authority}"


def verify_receipt_proof(receipt: Receipt, receiver_public: bytes, *,
                         opened: dict[tuple[bytes, str, bytes], Checkpoint] | None = None,
                         ) -> Checkpoint:
    """Check that an acceptance is recorded in the receiver's log; return the checkpoint.

    The leaf is rebuilt from the receipt, the checkpoint must be signed by the receiver's
    identity key under its log's name, and the inclusion proof must lead from the leaf at the
    receipt's ``log_index`` to the checkpoint's root.

    ``opened`` (the receipts of one batch, which share one signed checkpoint) keeps the
    checkpoints already verified, keyed by their exact bytes, log name and key: the same
    bytes under the same key verify the same way, so each distinct checkpoint is checked once.
    """
    if receipt.log_index is None or not receipt.proof:
        raise LogProofInvalid(f"acceptance from {receipt.receiver} without a log proof")
    proof = parse_tlog_proof(receipt.proof)
    if proof.index != receipt.log_index:
        raise LogProofInvalid(f"proof for index {proof.index}, receipt says {receipt.log_index}")
    name = log_origin(receipt.receiver)
    key = (proof.checkpoint, name, receiver_public)
    checkpoint = None if opened is None else opened.get(key)
    if checkpoint is None:
        checkpoint, _ = open_checkpoint(proof.checkpoint, name, receiver_public)
        if opened is not None:
            opened[key] = checkpoint
    merkle.verify_inclusion(merkle.leaf_hash(received_entry(receipt)), proof.index,
                            checkpoint.size, proof.hashes, checkpoint.root)
    return checkpoint

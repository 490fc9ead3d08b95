"""Audit bundles: everything an auditor needs to check a node's history offline, in one file.

The bundle carries the node's log entries, its latest signed checkpoint, the checkpoints its
peers cosigned as witnesses, every receipt it issued and received, and every directory it
adopted. ``verify_bundle`` needs nothing else but the federation's pinned secretariat keys: the
directories give the authorities' keys, the keys check the checkpoints and receipts, and the
entries are re-hashed into the tree those signatures commit to. Nothing in it is trusted
because the node says so.
"""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from keys.directory import Directory, verify_directory
from node.witness import witness_name
from protocol import merkle
from protocol.checkpoint import Checkpoint, open_checkpoint, verify_cosignature
from protocol.errors import LogMalformed, RogatoryError
from protocol.log_entry import (
    EntryType,
    log_origin,
    parse_entry,
    received_entry,
    verify_receipt_proof,
)
from protocol.note import ALG_ED25519, NoteSignature, key_hash, parse_note
from protocol.receipt import Receipt, parse_receipt

__all__ = ["BUNDLE_FORMAT", "Report", "encode_bundle", "verify_bundle"]

BUNDLE_FORMAT = "rogatory-audit-bundle/v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    """Strict base64: a string that is not the one encoding of its bytes is refused, so no
    byte of the bundle can change without changing what it says."""
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    data = base64.b64decode(text, validate=True)
    if _b64(data) != text:
        raise ValueError("non-canonical base64")
    return data


def encode_bundle(*, authority: str, directories: Sequence[bytes],
                  entries: Sequence[bytes], checkpoint: bytes, witnessed: Sequence[bytes],
                  receipts_issued: Sequence[bytes], receipts_received: Sequence[bytes]) -> bytes:
    return json.dumps({
        "format": BUNDLE_FORMAT,
        "authority": authority,
        "directories": [_b64(d) for d in directories],
        "entries": [_b64(e) for e in entries],
        "checkpoint": checkpoint.decode("utf-8"),
        "witnessed": [w.decode("utf-8") for w in witnessed],
        "receipts_issued": [_b64(r) for r in receipts_issued],
        "receipts_received": [_b64(r) for r in receipts_received],
    }, indent=1).encode() + b"\n"


@dataclass
class Report:
    """What the auditor reads: facts established, and every problem found."""

    authority: str = ""
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        verdict = ("VERIFIED: no problem found" if self.ok
                   else f"FAILED: {len(self.problems)} problem(s)")
        out = [f"Audit bundle of {self.authority or '?'}", *self.lines, ""]
        out += [f"PROBLEM: {p}" for p in self.problems]
        out.append(verdict)
        return "\n".join(out) + "\n"


class _Keys:
    """Every identity key each authority has had, across all adopted directories."""

    def __init__(self, directories: list[Directory]) -> None:
        self.by_authority: dict[str, dict[str, bytes]] = defaultdict(dict)
        for directory in directories:
            for authority, record in directory.records.items():
                self.by_authority[authority][record.identity_key_id] = record.identity_key
                for revoked in record.revoked:
                    self.by_authority[authority][revoked.key_id] = revoked.public_raw

    def of(self, authority: str) -> dict[str, bytes]:
        return self.by_authority.get(authority, {})


def _when(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _open_log_checkpoint(note: bytes, authority: str, keys: _Keys) -> Checkpoint:
    last: RogatoryError | None = None
    for public in keys.of(authority).values():
        try:
            return open_checkpoint(note, log_origin(authority), public)[0]
        except RogatoryError as exc:
            last = exc
    raise last or LogMalformed(f"no key known for {authority}")


def verify_bundle(data: bytes, secretariat_keys: Sequence[bytes], threshold: int) -> Report:
    report = Report()
    try:
        bundle = json.loads(data)
        if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
            raise ValueError("not a Rogatory audit bundle")
        authority = str(bundle["authority"])
        report.authority = authority
        if set(bundle) != {"format", "authority", "directories", "entries", "checkpoint",
                           "witnessed", "receipts_issued", "receipts_received"}:
            raise ValueError(f"unexpected members {sorted(bundle)}")
        raw_dirs = [_unb64(d) for d in bundle["directories"]]
        entries = [_unb64(e) for e in bundle["entries"]]
        note = str(bundle["checkpoint"]).encode("utf-8")
        witnessed = [str(w).encode("utf-8") for w in bundle["witnessed"]]
        issued = [_unb64(r) for r in bundle["receipts_issued"]]
        received = [_unb64(r) for r in bundle["receipts_received"]]
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(f"the bundle cannot be read: {exc}")
        return report

    directories = _check_directories(raw_dirs, secretariat_keys, threshold, report)
    if not directories:
        report.problems.append("no directory verifies with the pinned secretariat keys")
        return report
    keys = _Keys(directories)
    nodes, leaves, parsed = _check_entries(entries, report)
    checkpoint = _check_checkpoint(note, authority, keys, nodes, len(leaves), report)
    _check_witnesses(note, witnessed, authority, keys, nodes, len(leaves), checkpoint, report)
    _check_issued(issued, authority, keys, nodes, entries, parsed, report)
    _check_sent(parsed, received, keys, report)
    return report


def _check_directories(raw: list[bytes], pins: Sequence[bytes], threshold: int,
                       report: Report) -> list[Directory]:
    directories: list[Directory] = []
    for number, file in enumerate(raw, 1):
        try:
            directory = verify_directory(file, pins, threshold)
        except RogatoryError as exc:
            report.problems.append(f"directory #{number} does not verify: {exc}")
            continue
        if directories and directory.serial <= directories[-1].serial:
            report.problems.append(f"directory serial {directory.serial} adopted after "
                                   f"{directories[-1].serial}")
        directories.append(directory)
    if directories:
        report.lines.append(f"Directories: {len(directories)} verified with the pinned "
                            f"secretariat keys (serials "
                            f"{', '.join(str(d.serial) for d in directories)})")
    return directories


Parsed = list[tuple[EntryType | None, dict[str, Any]]]


def _check_entries(entries: list[bytes], report: Report,
                   ) -> tuple[dict[tuple[int, int], bytes], list[bytes], Parsed]:
    """Hash every entry into the tree and parse it once for the checks that follow."""
    nodes: dict[tuple[int, int], bytes] = {}
    leaves: list[bytes] = []
    parsed: Parsed = []
    counts: dict[str, int] = defaultdict(int)
    for index, entry in enumerate(entries):
        try:
            entry_type, fields = parse_entry(entry)
            counts[entry_type.value] += 1
            parsed.append((entry_type, fields))
        except RogatoryError as exc:
            report.problems.append(f"log entry {index} is malformed: {exc.message}")
            parsed.append((None, {}))
        leaf = merkle.leaf_hash(entry)
        siblings = {key: nodes[key] for key in merkle.append_keys(index)}
        nodes.update(dict(merkle.appended_nodes(index, leaf, siblings)))
        leaves.append(leaf)
    report.lines.append(f"Log entries: {len(entries)} ("
                        + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())) + ")")
    return nodes, leaves, parsed


def _root(nodes: dict[tuple[int, int], bytes], size: int, available: int) -> bytes | None:
    if size > available:
        return None
    return merkle.root_from(size, nodes)


def _check_checkpoint(note: bytes, authority: str, keys: _Keys,
                      nodes: dict[tuple[int, int], bytes], available: int,
                      report: Report) -> Checkpoint | None:
    try:
        checkpoint = _open_log_checkpoint(note, authority, keys)
    except RogatoryError as exc:
        report.problems.append(f"the log checkpoint is not signed by {authority}: {exc}")
        return None
    root = _root(nodes, checkpoint.size, available)
    if root is None:
        report.problems.append(f"the checkpoint covers {checkpoint.size} entries but the bundle "
                               f"holds {available}: entries are missing")
    elif root != checkpoint.root:
        report.problems.append("the entries do not hash to the signed checkpoint's root: an "
                               "entry was deleted, modified or reordered")
    else:
        report.lines.append(f"Checkpoint: size {checkpoint.size}, signed by {authority}, "
                            "matches the entries")
    if available > checkpoint.size:
        report.lines.append(f"  {available - checkpoint.size} entries after it are not yet "
                            "covered by a signed checkpoint")
    return checkpoint


def _check_witnesses(note: bytes, witnessed: list[bytes], authority: str, keys: _Keys,
                     nodes: dict[tuple[int, int], bytes], available: int,
                     checkpoint: Checkpoint | None, report: Report) -> None:
    """Every signature line must be the log's own or a listed authority's cosignature."""
    log_keys = keys.of(authority)
    for text in ([note] if checkpoint else []) + witnessed:
        try:
            seen = _open_log_checkpoint(text, authority, keys)
            signatures = parse_note(text).signatures
        except RogatoryError as exc:
            report.problems.append(f"a witnessed checkpoint does not verify: {exc}")
            continue
        for signature in signatures:
            if signature.name == log_origin(authority) and any(
                    signature.key_hash == key_hash(signature.name, ALG_ED25519, k)
                    for k in log_keys.values()):
                continue
            witness = _cosigner(seen, signature, authority, keys)
            if witness is None:
                report.problems.append(f"signature line by {signature.name!r} on a checkpoint "
                                       f"of size {seen.size} does not verify")
                continue
            name, at = witness
            if _root(nodes, seen.size, available) == seen.root:
                report.lines.append(f"Witness: {name} cosigned size {seen.size} at "
                                    f"{_when(at)}; consistent with the entries")
            else:
                report.problems.append(
                    f"{name} cosigned a checkpoint of size {seen.size} that these entries do "
                    "not produce: the log was rewritten or forked")


def _cosigner(seen: Checkpoint, signature: NoteSignature, authority: str,
              keys: _Keys) -> tuple[str, int] | None:
    for witness, witness_keys in keys.by_authority.items():
        if witness == authority or signature.name != witness_name(witness):
            continue
        for public in witness_keys.values():
            try:
                return witness, verify_cosignature(seen, signature, witness_name(witness),
                                                   public)
            except RogatoryError:
                continue
    return None


def _check_issued(issued: list[bytes], authority: str, keys: _Keys,
                  nodes: dict[tuple[int, int], bytes], entries: list[bytes], parsed: Parsed,
                  report: Report) -> None:
    own = keys.of(authority)
    digests = {fields.get("receipt") for kind, fields in parsed
               if kind is EntryType.RECEIPT_ISSUED}
    good = 0
    for number, data in enumerate(issued, 1):
        try:
            receipt = parse_receipt(data)
            receipt.verify(own[receipt.receiver_key])
            checkpoint = verify_receipt_proof(receipt, own[receipt.receiver_key])
        except (RogatoryError, KeyError) as exc:
            report.problems.append(f"issued receipt #{number} does not verify: {exc}")
            continue
        index = receipt.log_index
        assert index is not None
        if index >= len(entries) or entries[index] != received_entry(receipt):
            report.problems.append(f"issued receipt for {receipt.message_id}: log entry {index} "
                                   "is missing or altered")
        elif _root(nodes, checkpoint.size, len(entries)) != checkpoint.root:
            report.problems.append(f"issued receipt for {receipt.message_id}: its checkpoint "
                                   f"(size {checkpoint.size}) disagrees with the log")
        elif receipt.digest not in digests:
            report.problems.append(f"issued receipt for {receipt.message_id} is not logged")
        else:
            good += 1
    report.lines.append(f"Receipts issued: {good} of {len(issued)} verified, each with its log "
                        "entry and inclusion proof")


def _check_sent(parsed: Parsed, received: list[bytes], keys: _Keys, report: Report) -> None:
    receipts: dict[str, Receipt] = {}
    for number, data in enumerate(received, 1):
        try:
            receipt = parse_receipt(data)
        except RogatoryError as exc:
            report.problems.append(f"received receipt #{number} is malformed: {exc}")
            continue
        if receipt.envelope_hash:
            receipts[receipt.envelope_hash] = receipt
    logged = {fields["envelope"]: fields for kind, fields in parsed
              if kind is EntryType.RECEIPT_RECEIVED}
    sent = [fields for kind, fields in parsed if kind is EntryType.ENVELOPE_SENT]
    overrides = {fields["envelope"]: fields for kind, fields in parsed
                 if kind is EntryType.CHECK_OVERRIDDEN}
    report.lines.append(f"Messages sent: {len(sent)}, {len(overrides)} of them over the "
                        "checks before sending")
    for stray in overrides.keys() - {fields["envelope"] for fields in sent}:
        report.problems.append(f"an override is logged for {overrides[stray]['id']}, which "
                               "the log does not show as sent")
    for fields in sent:
        head = (f"  {_when(fields['at'])}  {fields['kind']} {fields['id']} to {fields['to']}"
                f"{_overridden(overrides.get(fields['envelope']))}: ")
        found = receipts.get(fields["envelope"])
        entry = logged.get(fields["envelope"])
        if found is None and entry is None:
            report.lines.append(head + "no receipt (not delivered yet, or lost)")
            continue
        if found is None or entry is None or entry["receipt"] != found.digest:
            report.problems.append(f"{fields['id']} to {fields['to']}: the logged receipt and "
                                   "the receipt in the bundle differ or one is missing")
            continue
        receipt = found
        peer_keys = keys.of(fields["to"])
        try:
            receipt.verify(peer_keys[receipt.receiver_key])
            receipt.check_names(envelope_hash=fields["envelope"], message_id=fields["id"],
                                sender=fields["from"], receiver=fields["to"])
            where = ""
            if receipt.accepted:
                proof_checkpoint = verify_receipt_proof(receipt, peer_keys[receipt.receiver_key])
                where = (f", in {fields['to']}'s log at index {receipt.log_index} "
                         f"(checkpoint size {proof_checkpoint.size})")
        except (RogatoryError, KeyError) as exc:
            report.problems.append(f"receipt for {fields['id']} from {fields['to']} does not "
                                   f"verify: {exc}")
            continue
        outcome = "accepted" if receipt.accepted else f"refused ({receipt.code})"
        report.lines.append(head + f"{outcome} at {_when(receipt.received)}, receipt verified"
                            + where)


def _overridden(override: dict[str, Any] | None) -> str:
    if override is None:
        return ""
    faults = [f"{override['gaps']} gap(s)"] if override["gaps"] else []
    if override["language"] != "accepted":
        faults.append("a language not accepted")
    return (f" (sent with {' and '.join(faults) or 'no fault found'} by {override['by']}, "
            f"reason SHA-256 {override['reason']})")

"""Per-call cost of the protocol parsers and encoders that a node runs for every envelope.

Single-threaded microbenchmark (timeit, best of several rounds) on realistic inputs built with
the protocol's own functions: an envelope header, an acceptance receipt carrying a tlog-proof
of 13 hashes against a checkpoint cosigned by two witnesses, and its envelope-received log
entry. No I/O and no threads, so it can run next to other work; ``--quick`` takes a few seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import timeit
from collections.abc import Callable

from protocol.checkpoint import (
    Checkpoint,
    TlogProof,
    cosign,
    parse_tlog_proof,
    sign_checkpoint,
    with_signatures,
)
from protocol.encoding import canonical_json, parse_canonical_json
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind, Priority
from protocol.log_entry import EntryType, encode_entry, log_origin, parse_entry, received_entry
from protocol.receipt import ReceiptStatus, parse_receipt, sign_receipt
from protocol.suites import Suite

NOW = 1_767_225_600


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"rogatory/bench/{label}".encode()).digest()


def _hex(label: str, size: int) -> str:
    return hashlib.sha256(label.encode()).hexdigest()[:size]


def inputs() -> dict[str, object]:
    header = EnvelopeHeader(
        id=_hex("id", 32), kind=Kind.REQUEST, sender="FR:MJ", recipient="BR:MJSP",
        sender_key=_hex("fk", 24), recipient_prekey=_hex("tk", 24), suite=Suite.HYBRID,
        created=NOW, expires=NOW + 86_400, in_reply_to=_hex("re", 32),
        case="FR-2026/0001 mutual assistance", priority=Priority.URGENT,
    )
    size, index = 5000, 4321
    checkpoint = Checkpoint(log_origin("BR:MJSP"), size, hashlib.sha256(b"root").digest())
    note = sign_checkpoint(checkpoint, log_origin("BR:MJSP"), _seed("log"))
    note = with_signatures(note, [cosign(checkpoint, f"witness/{w}", _seed(w), NOW)
                                  for w in ("FR:MJ", "KE:ODPP")])
    hashes = tuple(hashlib.sha256(bytes([i])).digest() for i in range(13))
    proof = TlogProof(index, hashes, note).encode()
    receipt = sign_receipt(
        status=ReceiptStatus.ACCEPTED, envelope_hash=_hex("env", 64), message_id=header.id,
        sender="FR:MJ", receiver="BR:MJSP", receiver_key=_hex("rk", 24), received=NOW,
        receiver_seed=_seed("identity"), log_index=index,
    ).with_proof(proof)
    return {"header": header, "header_bytes": header.encode(), "proof": proof,
            "receipt": receipt, "receipt_bytes": receipt.data,
            "entry": received_entry(receipt), "hashes": hashes, "note": note}


def cases(data: dict[str, object]) -> dict[str, Callable[[], object]]:
    header = data["header"]
    header_bytes = data["header_bytes"]
    proof = data["proof"]
    receipt = data["receipt"]
    receipt_bytes = data["receipt_bytes"]
    entry = data["entry"]
    hashes = data["hashes"]
    note = data["note"]
    assert isinstance(header, EnvelopeHeader) and isinstance(header_bytes, bytes)
    assert isinstance(proof, bytes) and isinstance(receipt_bytes, bytes)
    assert isinstance(entry, bytes) and isinstance(note, bytes) and isinstance(hashes, tuple)
    header_obj = header.to_json()
    return {
        "canonical_json(header)": lambda: canonical_json(header_obj),
        "parse_canonical_json(header)": lambda: parse_canonical_json(header_bytes),
        "EnvelopeHeader.decode": lambda: EnvelopeHeader.decode(header_bytes),
        "EnvelopeHeader.encode": header.encode,
        "Kind.from_name": lambda: Kind.from_name("spontaneous-information"),
        "parse_receipt(+proof)": lambda: parse_receipt(receipt_bytes),
        "parse_tlog_proof": lambda: parse_tlog_proof(proof),
        "TlogProof(...)": lambda: TlogProof(4321, hashes, note),
        "received_entry": lambda: received_entry(receipt),  # type: ignore[arg-type]
        "parse_entry": lambda: parse_entry(entry),
        "encode_entry(sent)": lambda: encode_entry(EntryType.ENVELOPE_SENT, {
            "envelope": _HASH, "id": header.id, "from": "FR:MJ", "to": "BR:MJSP",
            "kind": "request", "created": NOW, "expires": NOW + 86_400, "at": NOW}),
    }


_HASH = "ab" * 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    args = parser.parse_args(argv)
    rounds, seconds = (3, 0.1) if args.quick else (7, 0.3)
    for name, func in cases(inputs()).items():
        if args.only and args.only not in name:
            continue
        timer = timeit.Timer(func)
        number, _ = timer.autorange()
        number = max(1, int(number * seconds / 0.2))
        best = min(timer.repeat(rounds, number)) / number
        print(f"{name:32} {best * 1e6:9.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

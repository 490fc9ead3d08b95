"""Receipt v1: the receiver's signed statement that it accepted, or refused, an envelope.

Layout::

    receipt = "RGTR" %x01 frame(body) signature
    body    = canonical JSON, fields below
    signature = Ed25519(PAE("rogatory/v1/receipt", body)) by the receiver's identity key

An acceptance is non-repudiation of receipt: it names the exact envelope by hash and the time
the receiver took it in, and the receiver issues it only after the envelope is durable. A
refusal carries the stable error code so the sender knows whether to retry. A refusal for a body
that could not even be read in full names the envelope as the empty string.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from protocol.encoding import Reader, canonical_json, frame, parse_canonical_json, require_fields
from protocol.errors import (
    ERRORS_BY_CODE,
    EncodingError,
    ReceiptMalformed,
    ReceiptMismatch,
    ReceiptSignatureInvalid,
)
from protocol.header import AUTHORITY_ID, KEY_ID, MESSAGE_ID
from protocol.signing import LABELS, SIGNATURE_LENGTH, sign, verify

__all__ = [
    "RECEIPT_FIELDS",
    "Receipt",
    "ReceiptStatus",
    "parse_receipt",
    "sign_receipt",
]

MAGIC = b"RGTR"
WIRE_VERSION = 1
MAX_DETAIL = 256
MAX_BODY = 4096
MAX_PROOF = 16 * 1024
ENVELOPE_HASH = re.compile(r"[0-9a-f]{64}")
ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31}){1,3}")
RECEIPT_FIELDS = (
    "code",
    "detail",
    "envelope",
    "from",
    "id",
    "key",
    "received",
    "status",
    "to",
    "v",
)


class ReceiptStatus(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Receipt:
    """What the receiver signed. ``receiver`` is the signer; ``sender`` sent the envelope."""

    status: ReceiptStatus
    code: str
    envelope_hash: str
    message_id: str
    sender: str
    receiver: str
    receiver_key: str
    received: int
    detail: str = ""
    log_index: int | None = None
    data: bytes = b""
    body: bytes = b""
    signature: bytes = b""
    proof: bytes = b""

    @property
    def signed(self) -> bytes:
        """The receipt without the log proof that may follow it: what the signature covers."""
        return MAGIC + bytes([WIRE_VERSION]) + frame(self.body) + self.signature

    @property
    def digest(self) -> str:
        """SHA-256 of the signed receipt; what audit log entries name."""
        return hashlib.sha256(self.signed).hexdigest()

    def with_proof(self, proof: bytes) -> Receipt:
        """The same signed receipt followed by the receiver's log inclusion proof."""
        if self.log_index is None:
            raise ReceiptMalformed("only an acceptance with a log index carries a proof")
        if not proof or len(proof) > MAX_PROOF:
            raise ReceiptMalformed(f"a log proof is 1 to {MAX_PROOF} bytes")
        return self._completed(data=self.signed + frame(proof), body=self.body,
                               signature=self.signature, proof=proof)

    def _completed(self, *, data: bytes, body: bytes, signature: bytes,
                   proof: bytes) -> Receipt:
        """This receipt with its wire fields set. Written out rather than
        ``dataclasses.replace``, which costs twice as much; the receiver does it twice per
        envelope."""
        return Receipt(status=self.status, code=self.code, envelope_hash=self.envelope_hash,
                       message_id=self.message_id, sender=self.sender, receiver=self.receiver,
                       receiver_key=self.receiver_key, received=self.received,
                       detail=self.detail, log_index=self.log_index, data=data, body=body,
                       signature=signature, proof=proof)

    @property
    def accepted(self) -> bool:
        return self.status is ReceiptStatus.ACCEPTED

    def to_json(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "status": self.status.value,
            "code": self.code,
            "envelope": self.envelope_hash,
            "id": self.message_id,
            "from": self.sender,
            "to": self.receiver,
            "key": self.receiver_key,
            "received": self.received,
            "detail": self.detail,
        } | ({} if self.log_index is None else {"log_index": self.log_index})

    def verify(self, receiver_public: bytes) -> Receipt:
        """Check the signature with the receiver's key (looked up by ``receiver_key``)."""
        if not verify(receiver_public, LABELS["receipt"], self.body, self.signature):
            raise ReceiptSignatureInvalid(f"receipt from {self.receiver}")
        return self

    def check_names(
        self, *, envelope_hash: str, message_id: str, sender: str, receiver: str
    ) -> None:
        """Refuse a receipt that is genuine but about some other envelope or party."""
        expected = (envelope_hash, message_id, sender, receiver)
        actual = (self.envelope_hash, self.message_id, self.sender, self.receiver)
        if expected != actual:
            raise ReceiptMismatch(f"receipt names {actual}, expected {expected}")


def _well_formed(body: dict[str, Any], *, signing: bool = False) -> None:
    def text(name: str, pattern: re.Pattern[str], empty_ok: bool) -> None:
        value = body[name]
        if not isinstance(value, str):
            raise ReceiptMalformed(f"field {name!r} must be a string")
        if not (empty_ok and value == "") and pattern.fullmatch(value) is None:
            raise ReceiptMalformed(f"field {name!r} is malformed")

    status = body["status"]
    if status not in ("accepted", "rejected"):
        raise ReceiptMalformed(f"status {status!r}")
    rejected = status == "rejected"
    text("envelope", ENVELOPE_HASH, rejected)
    text("id", MESSAGE_ID, rejected)
    text("from", AUTHORITY_ID, rejected)
    text("to", AUTHORITY_ID, False)
    text("key", KEY_ID, False)
    code = body["code"]
    if not isinstance(code, str):
        raise ReceiptMalformed("field 'code' must be a string")
    if rejected != (code != ""):
        raise ReceiptMalformed(f"code {code!r} does not fit status {status!r}")
    if rejected and ERROR_CODE.fullmatch(code) is None:
        raise ReceiptMalformed(f"code {code!r} is not an error code")
    if rejected and signing and code not in ERRORS_BY_CODE:
        # Parsers accept any well-formed code so that a newer peer's refusal stays readable,
        # but this implementation only ever signs the codes it defines.
        raise ReceiptMalformed(f"code {code!r} is not one of this implementation's codes")
    detail = body["detail"]
    if not isinstance(detail, str) or len(detail) > MAX_DETAIL:
        raise ReceiptMalformed("detail must be a string of at most 256 characters")
    received = body["received"]
    if isinstance(received, bool) or not isinstance(received, int) or received < 0:
        raise ReceiptMalformed("received must be a non-negative integer")


def sign_receipt(
    *,
    status: ReceiptStatus,
    envelope_hash: str,
    message_id: str,
    sender: str,
    receiver: str,
    receiver_key: str,
    received: int,
    receiver_seed: bytes,
    code: str = "",
    detail: str = "",
    log_index: int | None = None,
) -> Receipt:
    """Build and sign a receipt; the result's ``data`` is what goes on the wire."""
    unsigned = Receipt(
        status=status,
        code=code,
        envelope_hash=envelope_hash,
        message_id=message_id,
        sender=sender,
        receiver=receiver,
        receiver_key=receiver_key,
        received=received,
        detail=detail[:MAX_DETAIL],
        log_index=log_index,
    )
    body_obj = unsigned.to_json()
    _well_formed(body_obj, signing=True)
    body = canonical_json(body_obj)
    signature = sign(receiver_seed, LABELS["receipt"], body)
    data = MAGIC + bytes([WIRE_VERSION]) + frame(body) + signature
    if len(body) > MAX_BODY or not _log_index_fits(body_obj):
        return parse_receipt(data)  # refuses it, with the error a reader would give
    # Everything else ``parse_receipt`` checks was checked above on the values written,
    # which canonical JSON reads back unchanged; the receiver signs one receipt per envelope.
    return unsigned._completed(data=data, body=body, signature=signature, proof=b"")


def _log_index_fits(body: dict[str, Any]) -> bool:
    """A log index comes with acceptances only, and is a JSON-safe non-negative integer."""
    if "log_index" not in body:
        return True
    log_index = body["log_index"]
    return (body["status"] == "accepted" and type(log_index) is int
            and 0 <= log_index < 2**53)


def parse_receipt(data: bytes) -> Receipt:
    """Parse a receipt's structure. The signature is checked by ``Receipt.verify``."""
    reader = Reader(data, ReceiptMalformed)
    if reader.fixed(4) != MAGIC:
        raise ReceiptMalformed("not a Rogatory receipt (bad magic)")
    if reader.fixed(1)[0] != WIRE_VERSION:
        raise ReceiptMalformed("unsupported receipt version")
    body = reader.framed(limit=MAX_BODY)
    signature = reader.fixed(SIGNATURE_LENGTH)
    trailing = reader.remaining() > 0
    proof = reader.framed(limit=MAX_PROOF) if trailing else b""
    if trailing and not proof:
        raise ReceiptMalformed("an empty log-proof frame; leave it out instead")
    reader.end()
    try:
        obj = parse_canonical_json(body)
    except EncodingError as exc:
        raise ReceiptMalformed(exc.message) from exc
    if not isinstance(obj, dict):
        raise ReceiptMalformed("body is not a JSON object")
    version = obj.get("v")
    if type(version) is not int or version != WIRE_VERSION:  # `true == 1` in Python
        raise ReceiptMalformed(f"body version {version!r}")
    with_index = "log_index" in obj
    require_fields(obj, (*RECEIPT_FIELDS, "log_index") if with_index else RECEIPT_FIELDS,
                   ReceiptMalformed)
    _well_formed(obj)
    log_index = obj.get("log_index")
    if not _log_index_fits(obj):
        raise ReceiptMalformed("log_index must be a non-negative integer, on acceptances only")
    if proof and not with_index:
        raise ReceiptMalformed("a log proof follows only an acceptance with a log index")
    return Receipt(
        status=ReceiptStatus(obj["status"]),
        code=obj["code"],
        envelope_hash=obj["envelope"],
        message_id=obj["id"],
        sender=obj["from"],
        receiver=obj["to"],
        receiver_key=obj["key"],
        received=obj["received"],
        detail=obj["detail"],
        log_index=log_index,
        data=bytes(data),
        body=body,
        signature=signature,
        proof=proof,
    )

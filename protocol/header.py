"""The envelope header: the routing facts every node checks before it decrypts anything.

The header is canonical JSON with exactly the fields below, every one required; a decoder
refuses unknown, missing or wrongly typed fields and any non-canonical spelling, so the header
bytes that were signed are the only bytes that can mean this header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocol.encoding import canonical_json, parse_canonical_json, require_fields
from protocol.errors import (
    EncodingError,
    EnvelopeMalformed,
    EnvelopeVersionUnsupported,
)
from protocol.kinds import Kind, Priority
from protocol.suites import Suite

__all__ = [
    "AUTHORITY_ID",
    "HEADER_FIELDS",
    "KEY_ID",
    "MAX_HEADER_BYTES",
    "MESSAGE_ID",
    "VERSION",
    "EnvelopeHeader",
    "is_authority_id",
]

VERSION = 1
MAX_HEADER_BYTES = 4096
AUTHORITY_ID = re.compile(r"[A-Z]{2}:[A-Z0-9][A-Z0-9_-]{0,31}")
MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
KEY_ID = re.compile(r"[0-9a-f]{24}")
CASE_REF = re.compile(r"[\x20-\x7e]{0,128}")
HEADER_FIELDS = (
    "case",
    "created",
    "expires",
    "from",
    "from_key",
    "id",
    "in_reply_to",
    "kind",
    "priority",
    "suite",
    "to",
    "to_key",
    "v",
)


def is_authority_id(value: object) -> bool:
    """`CC:NAME`: ISO 3166 alpha-2 country code, a colon, then up to 32 of A-Z 0-9 - _."""
    return isinstance(value, str) and AUTHORITY_ID.fullmatch(value) is not None


def _string(obj: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = obj[name]
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise EnvelopeMalformed(f"header field {name!r} is malformed")
    return value


def _time(obj: dict[str, Any], name: str) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnvelopeMalformed(f"header field {name!r} must be a non-negative integer")
    return value


@dataclass(frozen=True)
class EnvelopeHeader:
    """Who sends what kind of message to whom, sealed to which prekey, valid when."""

    id: str
    kind: Kind
    sender: str
    recipient: str
    sender_key: str
    recipient_prekey: str
    suite: Suite
    created: int
    expires: int
    in_reply_to: str = ""
    case: str = ""
    priority: Priority = Priority.NORMAL

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "id": self.id,
            "kind": self.kind.value,
            "from": self.sender,
            "to": self.recipient,
            "from_key": self.sender_key,
            "to_key": self.recipient_prekey,
            "suite": self.suite.value,
            "created": self.created,
            "expires": self.expires,
            "in_reply_to": self.in_reply_to,
            "case": self.case,
            "priority": self.priority.value,
        }

    def encode(self) -> bytes:
        """The canonical bytes; refuses a header that ``decode`` would refuse.

        The checks ``decode`` runs are run on the values written rather than on the bytes
        parsed back: a header holds only strings and integers, which canonical JSON reads
        back exactly as written, and every envelope sealed pays for this.
        """
        obj = self.to_json()
        data = canonical_json(obj)
        if len(data) > MAX_HEADER_BYTES:
            raise EnvelopeMalformed(f"header larger than {MAX_HEADER_BYTES} bytes")
        EnvelopeHeader._checked(obj)
        return data

    @classmethod
    def decode(cls, data: bytes) -> EnvelopeHeader:
        if len(data) > MAX_HEADER_BYTES:
            raise EnvelopeMalformed(f"header larger than {MAX_HEADER_BYTES} bytes")
        try:
            obj = parse_canonical_json(data)
        except EncodingError as exc:
            raise EnvelopeMalformed(f"header: {exc.message}") from exc
        if not isinstance(obj, dict):
            raise EnvelopeMalformed("header is not a JSON object")
        return cls._checked(obj)

    @classmethod
    def _checked(cls, obj: dict[str, Any]) -> EnvelopeHeader:
        version = obj.get("v")
        if type(version) is not int or version != VERSION:  # `true == 1` in Python
            raise EnvelopeVersionUnsupported(f"header version {version!r}")
        try:
            require_fields(obj, HEADER_FIELDS, EnvelopeMalformed)
        except EnvelopeMalformed as exc:
            raise EnvelopeMalformed(f"header {exc.detail}") from exc
        suite_name = obj["suite"]
        if not isinstance(suite_name, str):
            raise EnvelopeMalformed("header field 'suite' must be a string")
        header = cls(
            id=_string(obj, "id", MESSAGE_ID),
            kind=Kind.from_name(obj["kind"]),
            sender=_string(obj, "from", AUTHORITY_ID),
            recipient=_string(obj, "to", AUTHORITY_ID),
            sender_key=_string(obj, "from_key", KEY_ID),
            recipient_prekey=_string(obj, "to_key", KEY_ID),
            suite=Suite.from_name(suite_name),
            created=_time(obj, "created"),
            expires=_time(obj, "expires"),
            in_reply_to=obj["in_reply_to"] if obj["in_reply_to"] == "" else _string(
                obj, "in_reply_to", MESSAGE_ID
            ),
            case=_string(obj, "case", CASE_REF),
            priority=Priority.from_name(obj["priority"]),
        )
        return header

"""Case messages: what the answers to a request say, in a form both nodes can act on.

A request travels as a request package; everything said about it afterwards (the
acknowledgement with the requested authority's own reference, a question and its answer, a
postponement, a partial or final outcome, a refusal with its grounds, a withdrawal), and
spontaneous information with its conditions and the answer to them, travels as a case message:
canonical JSON under ``CONTENT_TYPE``, one schema per kind. Free text would do for a human
reader, but the nodes must know whether an outcome is final, on which grounds a request was
refused (UNTOC art. 18(23) requires reasons; CTOC/COP/2010 §26 asks for them to be counted), and
whether the conditions of spontaneous information were accepted before they show its content.

The body is canonical JSON so that a second implementation produces the same bytes for the
same message, and an unknown, missing or wrongly typed field is refused rather than guessed at.
The kind inside the body must equal the envelope header's kind, so a body cannot be replayed
under another kind.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from protocol.encoding import canonical_json, parse_canonical_json
from protocol.errors import CaseMessageMalformed, EncodingError, PackageMalformed, RogatoryError
from protocol.kinds import Kind
from protocol.request_package import CONTENT_TYPE as REQUEST_CONTENT_TYPE
from protocol.request_package import Gap, RequestPackage, parse_request

__all__ = [
    "CONTENT_TYPE",
    "KINDS",
    "MAX_CASE_MESSAGE_BYTES",
    "REFUSAL_GROUNDS",
    "SCHEMAS",
    "STRUCTURED_KINDS",
    "VERSION",
    "CaseMessage",
    "Conditions",
    "check_content",
    "encode_case_message",
    "parse_case_message",
]

CONTENT_TYPE: Final = "application/vnd.rogatory.case-message.v1+json"
VERSION: Final = 1
MAX_CASE_MESSAGE_BYTES: Final = 4 * 1024 * 1024
MAX_TEXT: Final = 65_536
MAX_ITEMS: Final = 100

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Grounds on which assistance or extradition may be refused, from the instruments the
# directory names as legal bases. Bank secrecy (UNTOC art. 18(8)) and fiscal matters
# (art. 18(22), art. 16(15)) are deliberately absent: those instruments forbid refusing on them.
REFUSAL_GROUNDS: Final[Mapping[str, str]] = MappingProxyType({
    "not-in-conformity": "the request does not conform to the treaty (UNTOC art. 18(21)(a))",
    "sovereignty-security-ordre-public": "execution would prejudice sovereignty, security, "
                                         "ordre public or other essential interests "
                                         "(UNTOC art. 18(21)(b))",
    "domestic-law-prohibits": "domestic law prohibits the action for a similar offence at home "
                              "(UNTOC art. 18(21)(c))",
    "contrary-to-legal-system": "granting it would be contrary to the legal system of the "
                                "requested State (UNTOC art. 18(21)(d))",
    "dual-criminality": "the conduct is not an offence in the requested State "
                        "(UNTOC art. 18(9), art. 16(1))",
    "discrimination": "substantial grounds to believe the request aims to prosecute or punish "
                      "on account of sex, race, religion, nationality, ethnic origin or "
                      "political opinions (UNTOC art. 16(14))",
    "political-offence": "the offence is regarded as political (Model Treaty on Extradition "
                         "art. 3(a))",
    "nationality": "the person sought is a national of the requested State "
                   "(UNTOC art. 16(10))",
    "ne-bis-in-idem": "final judgment already rendered for the same offence (Model Treaty on "
                      "Extradition art. 3(d))",
    "death-penalty": "the offence carries the death penalty and no assurance was given "
                     "(Model Treaty on Extradition art. 4(d))",
    "lapse-of-time": "prosecution or punishment is barred by lapse of time (Model Treaty on "
                     "Extradition art. 3(e))",
    "insufficient-information": "the information supplied is insufficient and was not "
                                "completed in time (UNTOC art. 18(16))",
    "other": "another ground, stated in the explanation",
})


@dataclass(frozen=True)
class Conditions:
    """What spontaneous information may be used for, and who may see it before acceptance.

    UNTOC art. 18(5): the receiving authority complies with a request that the information
    remain confidential or with restrictions on its use; it must be able to refuse the
    conditions, so they are answered before the content is released.
    """

    confidential: bool
    use_restrictions: tuple[str, ...]
    designated_receiver: str

    def to_json(self) -> dict[str, Any]:
        return {
            "confidential": self.confidential,
            "designated_receiver": self.designated_receiver,
            "use_restrictions": list(self.use_restrictions),
        }


# --- field readers -----------------------------------------------------------------------------


def _text(value: object, name: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise CaseMessageMalformed(f"{name} must be a string")
    if len(value) > MAX_TEXT:
        raise CaseMessageMalformed(f"{name} is longer than {MAX_TEXT} characters")
    bad = _CONTROL.search(value)
    if bad:
        raise CaseMessageMalformed(f"{name} contains control character U+{ord(bad.group()):04X}")
    if required and not value.strip():
        raise CaseMessageMalformed(f"{name} must not be blank")
    return value


def _texts(value: object, name: str, *, required: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise CaseMessageMalformed(f"{name} must be a list")
    if len(value) > MAX_ITEMS:
        raise CaseMessageMalformed(f"{name} has more than {MAX_ITEMS} entries")
    items = tuple(_text(item, f"{name}[{i}]", required=True) for i, item in enumerate(value))
    if required and not items:
        raise CaseMessageMalformed(f"{name} must name at least one")
    return items


def _flag(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise CaseMessageMalformed(f"{name} must be true or false")
    return value


def _date(value: object, name: str) -> str:
    text = _text(value, name)
    if not text:
        return text
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        datetime.date.fromisoformat(text)
    except ValueError:
        raise CaseMessageMalformed(f"{name} must be a date YYYY-MM-DD or empty") from None
    return text


def _grounds(value: object, name: str) -> tuple[str, ...]:
    grounds = _texts(value, name, required=True)
    for ground in grounds:
        if ground not in REFUSAL_GROUNDS:
            raise CaseMessageMalformed(
                f"{name}: unknown ground {ground!r}; known: {', '.join(REFUSAL_GROUNDS)}")
    if len(set(grounds)) != len(grounds):
        raise CaseMessageMalformed(f"{name} names a ground twice")
    return grounds


def _gaps(value: object, name: str) -> tuple[Gap, ...]:
    if not isinstance(value, list) or len(value) > 1_000:
        raise CaseMessageMalformed(f"{name} must be a list of at most 1000 gaps")
    try:
        return tuple(Gap.from_json(item) for item in value)
    except RogatoryError as exc:
        raise CaseMessageMalformed(f"{name}: {exc.detail or exc.message}") from exc


def _draft(value: object, name: str) -> RequestPackage | None:
    if value is None:
        return None
    try:
        draft = RequestPackage.from_json(value)
    except RogatoryError as exc:
        raise CaseMessageMalformed(f"{name}: {exc.detail or exc.message}") from exc
    if draft.to_json() != value:  # one message, one encoding: no field left to be filled in
        raise CaseMessageMalformed(
            f"{name} must give every field of its form, blank where unknown, as "
            "`rogatory request template` writes them")
    return draft


def _conditions(value: object, name: str) -> Conditions:
    if not isinstance(value, dict) or set(value) != {
            "confidential", "designated_receiver", "use_restrictions"}:
        raise CaseMessageMalformed(
            f"{name} must be an object with confidential, designated_receiver and "
            "use_restrictions")
    return Conditions(
        confidential=_flag(value["confidential"], f"{name}.confidential"),
        use_restrictions=_texts(value["use_restrictions"], f"{name}.use_restrictions"),
        designated_receiver=_text(value["designated_receiver"], f"{name}.designated_receiver",
                                  required=True),
    )


def _hex(pattern: re.Pattern[str], what: str) -> Callable[[object, str], str]:
    def read(value: object, name: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise CaseMessageMalformed(f"{name} must be {what}")
        return value
    return read


def _time(value: object, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise CaseMessageMalformed(f"{name} must be a non-negative integer (Unix seconds)")
    return value


def _required_text(value: object, name: str) -> str:
    return _text(value, name, required=True)


def _optional_text(value: object, name: str) -> str:
    return _text(value, name)


def _required_texts(value: object, name: str) -> tuple[str, ...]:
    return _texts(value, name, required=True)


Reader = Callable[[object, str], Any]

# kind -> field -> reader. Every field is required on the wire (empty text where it does not
# apply), so a message has exactly one encoding.
SCHEMAS: Final[Mapping[Kind, Mapping[str, Reader]]] = MappingProxyType({
    Kind.ACKNOWLEDGEMENT: {"reference": _required_text, "gaps": _gaps, "note": _optional_text},
    Kind.STATUS: {"text": _required_text},
    Kind.ADDITIONAL_INFORMATION_REQUEST: {"questions": _required_texts, "gaps": _gaps},
    Kind.ADDITIONAL_INFORMATION: {"text": _required_text},
    Kind.POSTPONEMENT: {"until": _date, "reason": _required_text},
    Kind.OUTCOME: {"final": _flag, "summary": _required_text},
    Kind.REFUSAL: {"grounds": _grounds, "explanation": _required_text},
    Kind.WITHDRAWAL: {"reason": _required_text},
    Kind.CONSULTATION: {"text": _required_text, "draft": _draft},
    Kind.SPONTANEOUS_INFORMATION: {"conditions": _conditions, "information": _required_text},
    Kind.CONDITIONS_ANSWER: {"accepted": _flag, "reason": _optional_text},
    Kind.RETRIEVAL: {"message_id": _hex(_HEX32, "a message id (32 hex digits)"),
                     "envelope": _hex(_HEX64, "an envelope hash (64 hex digits)"),
                     "opened_at": _time},
})
KINDS: Final[frozenset[Kind]] = frozenset(SCHEMAS)

# Kinds that mean nothing without their structure: a node refuses them in any other format.
STRUCTURED_KINDS: Final[frozenset[Kind]] = frozenset({
    Kind.SPONTANEOUS_INFORMATION, Kind.CONDITIONS_ANSWER, Kind.RETRIEVAL})


@dataclass(frozen=True)
class CaseMessage:
    """A parsed case message: its kind and its fields, checked against the kind's schema."""

    kind: Kind
    fields: Mapping[str, Any]

    @classmethod
    def build(cls, kind: Kind, **fields: Any) -> CaseMessage:
        """Check ``fields`` as if they had been received, so no invalid message is ever built."""
        message = _read({"v": VERSION, "kind": kind.value, **_to_wire(fields)})
        encode_case_message(message)  # and within the size limit
        return message

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind.value, **_to_wire(dict(self.fields))}

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    @property
    def final(self) -> bool:
        """For an outcome, whether it ends the case; any other kind is not an outcome."""
        return self.kind is Kind.OUTCOME and bool(self.fields["final"])

    @property
    def conditions(self) -> Conditions:
        value = self.fields.get("conditions")
        if not isinstance(value, Conditions):
            raise CaseMessageMalformed(f"{self.kind.value} carries no conditions")
        return value


def _to_wire(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Conditions | Gap | RequestPackage):
            value = value.to_json()
        elif isinstance(value, tuple | list):
            value = [v.to_json() if isinstance(v, Gap) else v for v in value]
        out[name] = value
    return out


def _read(value: object) -> CaseMessage:
    if not isinstance(value, dict):
        raise CaseMessageMalformed("a case message is a JSON object")
    version = value.get("v")
    if type(version) is not int or version != VERSION:
        raise CaseMessageMalformed(f"case message version {version!r}; this node reads v1")
    name = value.get("kind")
    kind = next((k for k in SCHEMAS if k.value == name), None)
    if kind is None:
        raise CaseMessageMalformed(
            f"kind {name!r} has no case message schema; a request travels as a request package")
    schema = SCHEMAS[kind]
    given = set(value) - {"v", "kind"}
    missing, unknown = sorted(set(schema) - given), sorted(given - set(schema))
    if missing or unknown:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else [])
        raise CaseMessageMalformed(f"{kind.value}: " + "; ".join(problems))
    return CaseMessage(kind, MappingProxyType(
        {field: read(value[field], field) for field, read in schema.items()}))


def parse_case_message(data: bytes, *, kind: Kind | None = None) -> CaseMessage:
    """Read a case message; with ``kind``, also require it to be the envelope's kind."""
    if not isinstance(data, bytes):
        raise CaseMessageMalformed("a case message is bytes")
    if len(data) > MAX_CASE_MESSAGE_BYTES:
        raise CaseMessageMalformed(f"larger than {MAX_CASE_MESSAGE_BYTES} bytes")
    try:
        value = parse_canonical_json(data)
    except EncodingError as exc:
        raise CaseMessageMalformed(f"not canonical JSON: {exc.detail or exc.message}") from exc
    message = _read(value)
    if kind is not None and message.kind is not kind:
        raise CaseMessageMalformed(
            f"the body says {message.kind.value} but the envelope is {kind.value}")
    return message


def encode_case_message(message: CaseMessage) -> bytes:
    """The canonical bytes that travel in the envelope."""
    data = canonical_json(message.to_json())
    parse_case_message(data, kind=message.kind)
    return data


def check_content(kind: Kind, content_type: str,
                  payload: bytes) -> CaseMessage | RequestPackage | None:
    """What a payload says, checked against its kind; ``None`` for free text or a document.

    Both nodes run this: the sender before it seals, so a caseworker learns at once; the
    receiver before it accepts, so a malformed message gets a signed refusal and stores nothing.
    """
    if content_type == CONTENT_TYPE:
        return parse_case_message(payload, kind=kind)
    if kind in STRUCTURED_KINDS:
        raise CaseMessageMalformed(f"{kind.value} must travel as {CONTENT_TYPE}")
    if content_type == REQUEST_CONTENT_TYPE:
        if kind is not Kind.REQUEST:
            raise PackageMalformed(f"a request package travels in a request, not a {kind.value}")
        return parse_request(payload)
    return None

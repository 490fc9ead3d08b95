"""Case messages: one canonical JSON schema per envelope kind, and nothing else accepted.

Every kind has a valid example in ``VALID``; each test mutates one thing about it and expects
``case.message_malformed``, or round-trips it and expects the very same bytes and fields.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.case_message import (
    _CONTROL,
    CONTENT_TYPE,
    KINDS,
    MAX_CASE_MESSAGE_BYTES,
    MAX_ITEMS,
    MAX_TEXT,
    REFUSAL_GROUNDS,
    SCHEMAS,
    STRUCTURED_KINDS,
    VERSION,
    CaseMessage,
    Conditions,
    encode_case_message,
    parse_case_message,
)
from protocol.encoding import canonical_json
from protocol.envelope import MAX_CONTENT_TYPE
from protocol.errors import CaseError, CaseMessageMalformed, EncodingError
from protocol.kinds import Kind
from protocol.request_package import (
    Gap,
    RequestPackage,
    check_completeness,
    template,
)

CODE = "case.message_malformed"

MESSAGE_ID = "0123456789abcdef" * 2
ENVELOPE = "0123456789abcdef" * 4

VALID: dict[Kind, dict[str, Any]] = {
    Kind.ACKNOWLEDGEMENT: {"reference": "XB-MOJ-2026/0042", "gaps": (), "note": ""},
    Kind.STATUS: {"text": "The bank has been ordered to produce the statements."},
    Kind.ADDITIONAL_INFORMATION_REQUEST: {
        "questions": ("Which accounts, by number?", "Over which period?"), "gaps": ()},
    Kind.ADDITIONAL_INFORMATION: {"text": "Accounts 1234 and 5678, from 2024-01 to 2025-06."},
    Kind.POSTPONEMENT: {"until": "2026-03-01",
                        "reason": "Execution would interfere with an ongoing investigation."},
    Kind.OUTCOME: {"final": True, "summary": "Statements attached; the request is executed."},
    Kind.REFUSAL: {"grounds": ("dual-criminality",),
                   "explanation": "The conduct is not an offence under our law."},
    Kind.WITHDRAWAL: {"reason": "The proceedings were discontinued."},
    Kind.CONSULTATION: {"text": "Would a request in this form be acceptable?", "draft": None},
    Kind.SPONTANEOUS_INFORMATION: {
        "conditions": Conditions(confidential=True, use_restrictions=("intelligence only",),
                                 designated_receiver="Financial investigation unit"),
        "information": "A transfer of EUR 2m is planned for Friday."},
    Kind.CONDITIONS_ANSWER: {"accepted": True, "reason": ""},
    Kind.RETRIEVAL: {"message_id": MESSAGE_ID, "envelope": ENVELOPE, "opened_at": 1_767_225_600},
}

ALL_KINDS = sorted(SCHEMAS, key=lambda k: k.value)
ALL_FIELDS = [(kind, field) for kind in ALL_KINDS for field in SCHEMAS[kind]]

REQUIRED_TEXTS = [
    (Kind.ACKNOWLEDGEMENT, "reference"),
    (Kind.STATUS, "text"),
    (Kind.ADDITIONAL_INFORMATION, "text"),
    (Kind.POSTPONEMENT, "reason"),
    (Kind.OUTCOME, "summary"),
    (Kind.REFUSAL, "explanation"),
    (Kind.WITHDRAWAL, "reason"),
    (Kind.CONSULTATION, "text"),
    (Kind.SPONTANEOUS_INFORMATION, "information"),
]
OPTIONAL_TEXTS = [(Kind.ACKNOWLEDGEMENT, "note"), (Kind.CONDITIONS_ANSWER, "reason")]
ALL_TEXTS = [*REQUIRED_TEXTS, *OPTIONAL_TEXTS, (Kind.POSTPONEMENT, "until")]

CONTROL_CHARACTERS = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85",
                      "\x9f"]


def valid(kind: Kind) -> CaseMessage:
    return CaseMessage.build(kind, **VALID[kind])


def _json(value: Any) -> Any:
    """A field value as it travels: Conditions, Gap and RequestPackage by their JSON."""
    if isinstance(value, Conditions | Gap | RequestPackage):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    return value


def wire(kind: Kind, /, **changes: Any) -> dict[str, Any]:
    """The JSON value of the valid example of ``kind``, with ``changes`` applied."""
    value = valid(kind).to_json()
    value.update({name: _json(new) for name, new in changes.items()})
    return value


def without(kind: Kind, *names: str) -> dict[str, Any]:
    value = wire(kind)
    for name in names:
        del value[name]
    return value


def refused(value: object, *, kind: Kind | None = None) -> CaseMessageMalformed:
    """``value`` (bytes, or a JSON value to encode canonically) is refused as malformed."""
    data = value if isinstance(value, bytes) else canonical_json(value)
    with pytest.raises(CaseMessageMalformed) as caught:
        parse_case_message(data, kind=kind)
    assert caught.value.code == CODE
    return caught.value


def field_refused(kind: Kind, **changes: Any) -> None:
    """Refused when received, and when built locally from the same fields."""
    refused(wire(kind, **changes), kind=kind)
    fields = {**VALID[kind], **changes}
    with pytest.raises(CaseMessageMalformed) as caught:
        CaseMessage.build(kind, **fields)
    assert caught.value.code == CODE


def accepted(kind: Kind, **changes: Any) -> CaseMessage:
    """Accepted when received and when built, the two agreeing, and re-encoded identically."""
    data = canonical_json(wire(kind, **changes))
    message = parse_case_message(data, kind=kind)
    assert encode_case_message(message) == data
    assert CaseMessage.build(kind, **{**VALID[kind], **changes}) == message
    return message


# --- the tables --------------------------------------------------------------------------------


def test_every_kind_but_request_has_a_schema_and_an_example() -> None:
    assert set(VALID) == KINDS == set(SCHEMAS)
    assert set(Kind) - {Kind.REQUEST} == KINDS
    assert Kind.REQUEST not in KINDS
    for kind in KINDS:
        assert set(VALID[kind]) == set(SCHEMAS[kind]), kind


def test_structured_kinds_are_kinds() -> None:
    assert STRUCTURED_KINDS <= KINDS
    assert Kind.REQUEST not in STRUCTURED_KINDS
    assert {Kind.SPONTANEOUS_INFORMATION, Kind.CONDITIONS_ANSWER, Kind.RETRIEVAL} \
        == STRUCTURED_KINDS


def test_the_content_type_fits_an_envelope_header() -> None:
    assert CONTENT_TYPE.isascii()
    assert len(CONTENT_TYPE) <= MAX_CONTENT_TYPE
    assert CONTENT_TYPE.endswith(".v1+json")
    assert VERSION == 1


def test_the_error_is_a_case_error_with_its_code() -> None:
    error = refused(b"[]")
    assert isinstance(error, CaseError)
    assert str(error).startswith(f"{CODE}: ")


def test_refusal_grounds_leave_out_what_untoc_forbids() -> None:
    assert "bank-secrecy" not in REFUSAL_GROUNDS
    assert "fiscal-matters" not in REFUSAL_GROUNDS
    assert "other" in REFUSAL_GROUNDS
    for ground, meaning in REFUSAL_GROUNDS.items():
        assert ground == ground.strip().lower() and " " not in ground
        assert meaning.strip()


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_a_valid_message_round_trips(kind: Kind) -> None:
    message = valid(kind)
    assert message.kind is kind
    data = encode_case_message(message)
    again = parse_case_message(data, kind=kind)
    assert again == message
    assert dict(again.fields) == dict(message.fields)
    assert encode_case_message(again) == data
    assert parse_case_message(data) == message  # without the envelope's kind too
    for name in SCHEMAS[kind]:
        assert again[name] == message[name]
    assert set(again.fields) == set(SCHEMAS[kind])


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_the_encoding_is_canonical_json_with_version_and_kind(kind: Kind) -> None:
    message = valid(kind)
    data = encode_case_message(message)
    assert data == canonical_json(message.to_json())
    value = json.loads(data)
    assert value["v"] == 1 and type(value["v"]) is int
    assert value["kind"] == kind.value
    assert set(value) == {"v", "kind", *SCHEMAS[kind]}
    assert json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8") == data
    assert data.startswith(b"{") and data.endswith(b"}") and b"\n" not in data


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_fields_are_read_back_as_given(kind: Kind) -> None:
    message = valid(kind)
    for name, value in VALID[kind].items():
        assert message[name] == value, name


def test_text_may_hold_tabs_newlines_and_any_script() -> None:
    scripts = "\u0391\u03b8\u03ae\u03bd\u03b1 — 東京 — القاهرة — emoji 🧾 — \u2028 end"
    text = f"Line one\n\tLine two\r\n{scripts}"
    message = accepted(Kind.STATUS, text=text)
    assert message["text"] == text
    data = encode_case_message(message)
    assert b"Line one\\n\\tLine two\\r\\n" + scripts.encode("utf-8") in data  # no \\u


def test_messages_compare_by_kind_and_fields() -> None:
    assert valid(Kind.STATUS) == valid(Kind.STATUS)
    assert valid(Kind.STATUS) != CaseMessage.build(Kind.STATUS, text="other")
    assert valid(Kind.STATUS) != CaseMessage.build(Kind.ADDITIONAL_INFORMATION,
                                                   **VALID[Kind.STATUS])
    with pytest.raises(TypeError):
        valid(Kind.STATUS).fields["text"] = "changed"  # type: ignore[index]


# --- final -------------------------------------------------------------------------------------


def test_only_a_final_outcome_is_final() -> None:
    assert accepted(Kind.OUTCOME, final=True).final is True
    assert accepted(Kind.OUTCOME, final=False).final is False
    for kind in KINDS - {Kind.OUTCOME}:
        assert valid(kind).final is False, kind
    assert CaseMessage.build(Kind.CONDITIONS_ANSWER, accepted=True, reason="").final is False


# --- refusal grounds ---------------------------------------------------------------------------


@pytest.mark.parametrize("ground", sorted(REFUSAL_GROUNDS))
def test_every_refusal_ground_is_accepted(ground: str) -> None:
    assert accepted(Kind.REFUSAL, grounds=(ground,))["grounds"] == (ground,)


def test_several_grounds_keep_their_order() -> None:
    grounds = tuple(reversed(list(REFUSAL_GROUNDS)))
    assert accepted(Kind.REFUSAL, grounds=grounds)["grounds"] == grounds


@pytest.mark.parametrize("ground", [
    "bank-secrecy", "fiscal-matters", "Dual-Criminality", "dual criminality",
    " dual-criminality", "dual-criminality ", "", "   ", "unknown",
])
def test_an_unknown_ground_is_refused(ground: str) -> None:
    field_refused(Kind.REFUSAL, grounds=(ground,))
    field_refused(Kind.REFUSAL, grounds=("dual-criminality", ground))


def test_a_refusal_names_at_least_one_ground_and_none_twice() -> None:
    field_refused(Kind.REFUSAL, grounds=())
    field_refused(Kind.REFUSAL, grounds=("dual-criminality", "dual-criminality"))
    field_refused(Kind.REFUSAL, grounds=("nationality", "other", "nationality"))
    field_refused(Kind.REFUSAL, grounds=("other",) * (MAX_ITEMS + 1))


def test_a_refusal_without_an_explanation_is_refused() -> None:
    field_refused(Kind.REFUSAL, explanation="")
    field_refused(Kind.REFUSAL, explanation=" \n")


# --- the envelope of the body: version, kind, shape ---------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_a_missing_field_is_refused(kind: Kind) -> None:
    for name in SCHEMAS[kind]:
        assert name in str(refused(without(kind, name), kind=kind))
        with pytest.raises(CaseMessageMalformed):
            CaseMessage.build(kind, **{k: v for k, v in VALID[kind].items() if k != name})
    refused(without(kind, *SCHEMAS[kind]), kind=kind)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_an_unknown_field_is_refused(kind: Kind) -> None:
    for extra in ("extra", "Text", "comment", "final" if kind is not Kind.OUTCOME else "note"):
        assert extra in str(refused(wire(kind, **{extra: ""}), kind=kind))
        with pytest.raises(CaseMessageMalformed):
            CaseMessage.build(kind, **VALID[kind], **{extra: ""})


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_every_field_refuses_an_object(kind: Kind) -> None:
    for name in SCHEMAS[kind]:
        field_refused(kind, **{name: {}})
        field_refused(kind, **{name: {"v": 1}})


@pytest.mark.parametrize("version", [2, 0, -1, True, False, "1", None, [1], {"v": 1}])
def test_only_version_1_is_read(version: object) -> None:
    refused(wire(Kind.STATUS, v=version))


def test_a_missing_version_is_refused() -> None:
    refused(without(Kind.STATUS, "v"))
    refused(b'{"kind":"status","text":"x","v":1.0}')


@pytest.mark.parametrize("name", ["request", "bogus", "Status", "STATUS", " status", "",
                                  None, 1, True, ["status"], {"kind": "status"}])
def test_a_kind_without_a_schema_is_refused(name: object) -> None:
    refused(wire(Kind.STATUS, kind=name))


def test_a_missing_kind_is_refused() -> None:
    refused(without(Kind.STATUS, "kind"))
    refused({"v": 1})
    refused({})


def test_a_request_body_is_not_a_case_message() -> None:
    refused({"v": 1, "kind": "request", "form": "mla"})
    refused({**template("mla"), "kind": "request"})


@pytest.mark.parametrize("value", [[], [wire(Kind.STATUS)], "status", 1, 0, True, None, ""])
def test_a_body_that_is_not_an_object_is_refused(value: object) -> None:
    refused(value)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.value)
def test_the_body_kind_must_be_the_envelope_kind(kind: Kind) -> None:
    data = encode_case_message(valid(kind))
    assert parse_case_message(data, kind=kind) == valid(kind)
    for other in set(Kind) - {kind}:
        error = refused(data, kind=other)
        assert kind.value in str(error) and other.value in str(error)


# --- canonical bytes only ----------------------------------------------------------------------


def _noncanonical_spellings(value: dict[str, Any]) -> list[bytes]:
    canonical = canonical_json(value)
    text = canonical.decode("utf-8")
    reversed_keys = dict(sorted(value.items(), reverse=True))
    return [
        json.dumps(value, sort_keys=True).encode(),  # ", " and ": "
        json.dumps(value, sort_keys=True, indent=1).encode(),
        json.dumps(reversed_keys, separators=(",", ":"), ensure_ascii=False).encode(),
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(),
        canonical + b"\n",
        b" " + canonical,
        b"\xef\xbb\xbf" + canonical,  # a byte order mark
        text.replace('"v":1', '"v":1.0').encode(),
        text.replace('"v":1', '"v":1e0').encode(),
        text.replace('"v":1', '"v":01').encode(),
        text.replace('"kind":', '"k\\u0069nd":').encode(),
        text.replace("{", '{"v":1,', 1).encode(),  # a duplicate key
        canonical.decode("utf-8").encode("utf-16"),
    ]


@pytest.mark.parametrize("kind", [Kind.STATUS, Kind.SPONTANEOUS_INFORMATION, Kind.RETRIEVAL],
                         ids=lambda k: k.value)
def test_non_canonical_json_is_refused(kind: Kind) -> None:
    value = wire(kind)
    if kind is Kind.STATUS:
        value["text"] = "Überweisung — é"  # so that \\u escapes differ from UTF-8
    canonical = canonical_json(value)
    assert parse_case_message(canonical, kind=kind).kind is kind
    spellings = [data for data in _noncanonical_spellings(value) if data != canonical]
    assert len(spellings) >= 12
    for data in spellings:
        refused(data, kind=kind)


@pytest.mark.parametrize("data", [
    b"", b" ", b"{", b"}", b"null", b"nul", b"\xff\xfe", b"\x00", b"NaN", b"Infinity",
    b'{"v":NaN}', b"[" * 100_000, b"[" * 40 + b"]" * 40,
    b'{"kind":"retrieval","v":1,"opened_at":' + (b"9" * 5000) + b"}",
    b'{"envelope":"' + ENVELOPE.encode() + b'","kind":"retrieval","message_id":"'
    + MESSAGE_ID.encode() + b'","opened_at":9007199254740992,"v":1}',
    b'{"kind":"status","text":"\\ud800","v":1}',
    b'{"kind":"status","text":"\xed\xa0\x80","v":1}',
    '{"kind":"status","text":"x","v":1,"\u00e9":""}'.encode(),
], ids=lambda d: repr(d[:24]))
def test_bytes_that_are_not_canonical_json_are_refused(data: bytes) -> None:
    refused(data)


def test_a_body_over_the_size_limit_is_refused_before_it_is_read() -> None:
    refused(b" " * (MAX_CASE_MESSAGE_BYTES + 1))
    filler = "x" * (MAX_CASE_MESSAGE_BYTES + 1)
    refused(canonical_json(wire(Kind.STATUS, text=filler)))


def test_a_message_whose_encoding_is_over_the_size_limit_cannot_be_sent() -> None:
    questions = tuple(f"{i:03d}" + "q" * (MAX_TEXT - 3) for i in range(MAX_ITEMS))
    value = wire(Kind.ADDITIONAL_INFORMATION_REQUEST, questions=list(questions))
    data = canonical_json(value)
    assert len(data) > MAX_CASE_MESSAGE_BYTES
    refused(data)
    with pytest.raises(CaseMessageMalformed):
        encode_case_message(
            CaseMessage.build(Kind.ADDITIONAL_INFORMATION_REQUEST, questions=questions, gaps=()))


# --- text fields -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), REQUIRED_TEXTS, ids=lambda x: getattr(x, "value", x))
def test_required_text_must_not_be_blank(kind: Kind, name: str) -> None:
    for blank in ("", " ", "\n", "\t \r\n", "\u3000"):
        field_refused(kind, **{name: blank})
    assert accepted(kind, **{name: " x "})[name] == " x "


@pytest.mark.parametrize(("kind", "name"), OPTIONAL_TEXTS, ids=lambda x: getattr(x, "value", x))
def test_optional_text_may_be_empty(kind: Kind, name: str) -> None:
    assert accepted(kind, **{name: ""})[name] == ""
    assert accepted(kind, **{name: "  "})[name] == "  "
    assert accepted(kind, **{name: "a note"})[name] == "a note"


@pytest.mark.parametrize(("kind", "name"), ALL_TEXTS, ids=lambda x: getattr(x, "value", x))
def test_text_must_be_a_string(kind: Kind, name: str) -> None:
    for value in (1, 0, True, False, None, ["x"], [], 20260101):
        field_refused(kind, **{name: value})


@pytest.mark.parametrize(("kind", "name"), ALL_TEXTS, ids=lambda x: getattr(x, "value", x))
def test_text_with_a_control_character_is_refused(kind: Kind, name: str) -> None:
    for char in CONTROL_CHARACTERS:
        error = refused(wire(kind, **{name: f"ok{char}ok"}), kind=kind)
        assert f"U+{ord(char):04X}" in str(error)
        with pytest.raises(CaseMessageMalformed):
            CaseMessage.build(kind, **{**VALID[kind], name: f"ok{char}ok"})
    with pytest.raises(CaseMessageMalformed):  # a lone surrogate never reaches the wire
        CaseMessage.build(kind, **{**VALID[kind], name: "ok\ud800ok"})


@pytest.mark.parametrize(("kind", "name"), [*REQUIRED_TEXTS, *OPTIONAL_TEXTS],
                         ids=lambda x: getattr(x, "value", x))
def test_text_longer_than_max_text_is_refused(kind: Kind, name: str) -> None:
    assert len(accepted(kind, **{name: "é" * MAX_TEXT})[name]) == MAX_TEXT
    field_refused(kind, **{name: "x" * (MAX_TEXT + 1)})


# --- lists -------------------------------------------------------------------------------------


def test_questions_are_a_non_empty_list_of_non_blank_texts() -> None:
    kind = Kind.ADDITIONAL_INFORMATION_REQUEST
    assert accepted(kind, questions=("one?",))["questions"] == ("one?",)
    for bad in ((), ("",), (" ",), ("ok", ""), (1,), (None,), (["nested"],), ("a\x00",),
                ("x" * (MAX_TEXT + 1),)):
        field_refused(kind, questions=bad)
    field_refused(kind, questions="one?")


def test_lists_hold_at_most_max_items() -> None:
    kind = Kind.ADDITIONAL_INFORMATION_REQUEST
    at_limit = tuple(f"q{i}" for i in range(MAX_ITEMS))
    assert accepted(kind, questions=at_limit)["questions"] == at_limit
    field_refused(kind, questions=(*at_limit, "one more"))
    restrictions = tuple(f"r{i}" for i in range(MAX_ITEMS))
    assert accepted(
        Kind.SPONTANEOUS_INFORMATION,
        conditions=Conditions(False, restrictions, "FIU"),
    ).conditions.use_restrictions == restrictions
    field_refused(Kind.SPONTANEOUS_INFORMATION,
                  conditions=Conditions(False, (*restrictions, "more"), "FIU"))


def test_gaps_hold_at_most_a_thousand() -> None:
    gap = Gap("summary_of_facts", "missing: a summary", "it matters")
    assert len(accepted(Kind.ACKNOWLEDGEMENT, gaps=(gap,) * 1000)["gaps"]) == 1000
    field_refused(Kind.ACKNOWLEDGEMENT, gaps=(gap,) * 1001)


@pytest.mark.parametrize("kind", [Kind.ACKNOWLEDGEMENT, Kind.ADDITIONAL_INFORMATION_REQUEST],
                         ids=lambda k: k.value)
def test_a_malformed_gap_is_refused(kind: Kind) -> None:
    good = {"field": "a", "message": "b", "why": "c"}
    bad: object
    for bad in ("gaps", None, {}, [None], ["gap"], [[]], [{"field": "a"}],
                [{**good, "extra": ""}], [{**good, "field": 1}], [{**good, "why": None}],
                [{**good, "message": "m\x00"}], [{**good, "why": "x" * (MAX_TEXT + 1)}]):
        refused(wire(kind, gaps=bad), kind=kind)


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("until", ["2026-02-28", "2024-02-29", "2000-02-29", "0001-01-01",
                                   "9999-12-31", ""])
def test_postponement_until_is_a_date_or_empty(until: str) -> None:
    assert accepted(Kind.POSTPONEMENT, until=until)["until"] == until


@pytest.mark.parametrize("until", [
    "2026-02-30", "2025-02-29", "1900-02-29", "2026-13-01", "2026-00-10", "2026-01-00",
    "2026-01-32", "0000-01-01", "20260101", "2026-1-01", "2026-01-1", "26-01-01",
    "2026/01/01", "2026-01-01T00:00", "2026-01-01Z", " 2026-01-01", "2026-01-01 ",
    "2026-01-01\n", "\uff12\uff10\uff12\uff16-01-01", "2026-W01-1", "2026-001",
    "+2026-01-01", " ", "soon",
])
def test_postponement_until_refuses_anything_but_a_date(until: str) -> None:
    field_refused(Kind.POSTPONEMENT, until=until)


# --- acknowledgement of an incomplete request ----------------------------------------------------


def test_an_acknowledgement_names_the_gaps_of_an_incomplete_request() -> None:
    package = RequestPackage.from_json(template("mla"))
    gaps = check_completeness(package)
    assert gaps
    message = CaseMessage.build(Kind.ACKNOWLEDGEMENT, reference="XB-1", gaps=tuple(gaps),
                                note="Please complete the request.")
    data = encode_case_message(message)
    again = parse_case_message(data, kind=Kind.ACKNOWLEDGEMENT)
    assert again == message
    assert list(again["gaps"]) == gaps
    assert all(isinstance(gap, Gap) for gap in again["gaps"])
    assert json.loads(data)["gaps"] == [gap.to_json() for gap in gaps]
    assert encode_case_message(again) == data


def test_gaps_of_an_additional_information_request_round_trip() -> None:
    gaps = tuple(check_completeness(RequestPackage.from_json(template("extradition"))))
    message = accepted(Kind.ADDITIONAL_INFORMATION_REQUEST, gaps=[g.to_json() for g in gaps])
    assert message["gaps"] == gaps


def test_build_takes_the_list_that_check_completeness_returns() -> None:
    gaps = check_completeness(RequestPackage.from_json(template("mla")))
    message = CaseMessage.build(Kind.ACKNOWLEDGEMENT, reference="XB-1", gaps=gaps, note="")
    assert list(message["gaps"]) == gaps


# --- consultation ------------------------------------------------------------------------------


def test_a_consultation_carries_a_draft_request() -> None:
    draft = RequestPackage.from_json(template("mla", measures=("taking-evidence",)))
    message = accepted(Kind.CONSULTATION, draft=draft)
    assert message["draft"] == draft
    assert isinstance(message["draft"], RequestPackage)
    assert json.loads(encode_case_message(message))["draft"] == draft.to_json()
    assert accepted(Kind.CONSULTATION, draft=draft.to_json())["draft"] == draft


def test_a_consultation_may_carry_no_draft() -> None:
    message = accepted(Kind.CONSULTATION, draft=None)
    assert message["draft"] is None
    assert json.loads(encode_case_message(message))["draft"] is None


@pytest.mark.parametrize("draft", [
    {"v": 1, "form": "letters-rogatory"},
    {**template("mla"), "form": "letters-rogatory"},
    {**template("mla"), "v": 2},
    {**template("mla"), "unknown": ""},
    {"form": "mla"},
    {"v": 1},
    {},
    [],
    "mla",
    1,
    True,
])
def test_a_malformed_draft_is_refused(draft: object) -> None:
    error = refused(wire(Kind.CONSULTATION, draft=draft), kind=Kind.CONSULTATION)
    assert "draft" in str(error)
    with pytest.raises(CaseMessageMalformed):
        CaseMessage.build(Kind.CONSULTATION, text="x", draft=draft)


def test_a_draft_has_one_encoding() -> None:
    data = canonical_json({"v": 1, "kind": "consultation", "text": "t",
                           "draft": {"v": 1, "form": "mla"}})
    with pytest.raises(CaseMessageMalformed):
        parse_case_message(data)
    full = canonical_json({"v": 1, "kind": "consultation", "text": "t",
                           "draft": template("mla")})
    assert encode_case_message(parse_case_message(full)) == full


# --- spontaneous information and its conditions ----------------------------------------------


def test_spontaneous_information_carries_its_conditions() -> None:
    message = valid(Kind.SPONTANEOUS_INFORMATION)
    conditions = message.conditions
    assert conditions == VALID[Kind.SPONTANEOUS_INFORMATION]["conditions"]
    assert conditions.confidential is True
    assert conditions.use_restrictions == ("intelligence only",)
    assert conditions.designated_receiver == "Financial investigation unit"
    assert json.loads(encode_case_message(message))["conditions"] == {
        "confidential": True, "designated_receiver": "Financial investigation unit",
        "use_restrictions": ["intelligence only"]}
    plain = Conditions(False, (), "FIU")
    assert accepted(Kind.SPONTANEOUS_INFORMATION, conditions=plain).conditions == plain
    assert accepted(Kind.SPONTANEOUS_INFORMATION,
                    conditions=plain.to_json()).conditions == plain


def test_conditions_have_exactly_their_three_fields() -> None:
    good = Conditions(True, ("a",), "FIU").to_json()
    bad: object
    for bad in (
        {k: v for k, v in good.items() if k != "confidential"},
        {k: v for k, v in good.items() if k != "designated_receiver"},
        {k: v for k, v in good.items() if k != "use_restrictions"},
        {**good, "expires": ""},
        {},
        None,
        [],
        "confidential",
        True,
    ):
        field_refused(Kind.SPONTANEOUS_INFORMATION, conditions=bad)


def test_conditions_fields_are_checked() -> None:
    good = Conditions(True, ("a",), "FIU").to_json()
    for change in (
        {"designated_receiver": ""},
        {"designated_receiver": "  "},
        {"designated_receiver": None},
        {"designated_receiver": 1},
        {"designated_receiver": "F\x00IU"},
        {"designated_receiver": "x" * (MAX_TEXT + 1)},
        {"confidential": "true"},
        {"confidential": 1},
        {"confidential": None},
        {"use_restrictions": "none"},
        {"use_restrictions": None},
        {"use_restrictions": [""]},
        {"use_restrictions": [1]},
    ):
        refused(wire(Kind.SPONTANEOUS_INFORMATION, conditions={**good, **change}))


@pytest.mark.parametrize("kind", [k for k in ALL_KINDS if k is not Kind.SPONTANEOUS_INFORMATION],
                         ids=lambda k: k.value)
def test_other_kinds_carry_no_conditions(kind: Kind) -> None:
    with pytest.raises(CaseMessageMalformed) as caught:
        _ = valid(kind).conditions
    assert caught.value.code == CODE


def test_a_conditions_answer_is_a_flag_and_a_reason() -> None:
    assert accepted(Kind.CONDITIONS_ANSWER, accepted=False, reason="cannot restrict use")[
        "accepted"] is False
    bad: object
    for bad in ("yes", "true", 1, 0, None, []):
        field_refused(Kind.CONDITIONS_ANSWER, accepted=bad)


# --- flags -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false", 1, 0, None, [], ""])
def test_outcome_final_must_be_a_boolean(value: object) -> None:
    field_refused(Kind.OUTCOME, final=value)


# --- retrieval ---------------------------------------------------------------------------------


def test_retrieval_fields_in_range_are_accepted() -> None:
    for opened_at in (0, 1, 2**53 - 1):
        assert accepted(Kind.RETRIEVAL, opened_at=opened_at)["opened_at"] == opened_at
    assert accepted(Kind.RETRIEVAL, message_id="f" * 32, envelope="0" * 64)["envelope"] \
        == "0" * 64


@pytest.mark.parametrize("message_id", [
    MESSAGE_ID.upper(), MESSAGE_ID[:-1], MESSAGE_ID + "0", "g" * 32, "", " " + MESSAGE_ID[1:],
    MESSAGE_ID[:-1] + "\n", ENVELOPE, 1, None, True, [MESSAGE_ID],
])
def test_retrieval_message_id_is_32_lowercase_hex(message_id: object) -> None:
    field_refused(Kind.RETRIEVAL, message_id=message_id)


@pytest.mark.parametrize("envelope", [
    ENVELOPE.upper(), ENVELOPE[:-1], ENVELOPE + "0", "g" * 64, "", MESSAGE_ID,
    ENVELOPE[:-1] + "\n", "0x" + ENVELOPE[2:], 1, None, False, [ENVELOPE],
])
def test_retrieval_envelope_is_64_lowercase_hex(envelope: object) -> None:
    field_refused(Kind.RETRIEVAL, envelope=envelope)


@pytest.mark.parametrize("opened_at", [-1, -(2**53 - 1), True, False, "1767225600", None, [],
                                       "0"])
def test_retrieval_opened_at_is_a_non_negative_integer(opened_at: object) -> None:
    field_refused(Kind.RETRIEVAL, opened_at=opened_at)


def test_retrieval_opened_at_beyond_the_safe_integers_is_refused() -> None:
    with pytest.raises(CaseMessageMalformed):
        CaseMessage.build(Kind.RETRIEVAL, message_id=MESSAGE_ID, envelope=ENVELOPE,
                          opened_at=2**53)
    with pytest.raises(EncodingError):
        canonical_json(wire(Kind.RETRIEVAL, opened_at=2**53))


# --- properties --------------------------------------------------------------------------------


def _clean(text: str) -> bool:
    return _CONTROL.search(text) is None


any_text = st.text(max_size=40).filter(_clean)
some_text = st.text(min_size=1, max_size=40).filter(lambda t: _clean(t) and bool(t.strip()))
grounds = st.lists(st.sampled_from(sorted(REFUSAL_GROUNDS)), min_size=1, unique=True)


def _round_trips(kind: Kind, fields: dict[str, Any]) -> None:
    message = CaseMessage.build(kind, **fields)
    data = encode_case_message(message)
    again = parse_case_message(data, kind=kind)
    assert again == message
    assert encode_case_message(again) == data
    for name, value in fields.items():
        assert again[name] == value


@settings(max_examples=150, deadline=None)
@given(some_text)
def test_any_clean_status_text_round_trips(text: str) -> None:
    _round_trips(Kind.STATUS, {"text": text})


@settings(max_examples=150, deadline=None)
@given(st.booleans(), some_text)
def test_any_clean_outcome_round_trips(final: bool, summary: str) -> None:
    _round_trips(Kind.OUTCOME, {"final": final, "summary": summary})
    assert CaseMessage.build(Kind.OUTCOME, final=final, summary=summary).final is final


@settings(max_examples=150, deadline=None)
@given(grounds, some_text)
def test_any_clean_refusal_round_trips(chosen: list[str], explanation: str) -> None:
    _round_trips(Kind.REFUSAL, {"grounds": tuple(chosen), "explanation": explanation})


@settings(max_examples=100, deadline=None)
@given(some_text, any_text, st.lists(some_text, max_size=5).map(tuple))
def test_any_clean_acknowledgement_and_question_round_trip(
        reference: str, note: str, questions: tuple[str, ...]) -> None:
    _round_trips(Kind.ACKNOWLEDGEMENT, {"reference": reference, "gaps": (), "note": note})
    if questions:
        _round_trips(Kind.ADDITIONAL_INFORMATION_REQUEST, {"questions": questions, "gaps": ()})


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_accepted_exactly_when_it_is_clean(text: str) -> None:
    try:
        message = CaseMessage.build(Kind.STATUS, text=text)
    except CaseMessageMalformed as exc:
        assert exc.code == CODE
        assert not _clean(text) or not text.strip()
    else:
        assert _clean(text) and text.strip()
        assert parse_case_message(encode_case_message(message)) == message


@settings(max_examples=100, deadline=None)
@given(any_text, st.sampled_from(CONTROL_CHARACTERS), any_text)
def test_a_control_character_anywhere_is_refused(before: str, char: str, after: str) -> None:
    text = f"x{before}{char}{after}"
    refused(wire(Kind.STATUS, text=text))
    refused(wire(Kind.CONDITIONS_ANSWER, reason=text))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_message_or_case_message_malformed(data: bytes) -> None:
    try:
        message = parse_case_message(data)
    except CaseMessageMalformed as exc:
        assert exc.code == CODE
    else:
        assert isinstance(message, CaseMessage)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

_FIELD_NAMES = sorted({name for schema in SCHEMAS.values() for name in schema})
KIND_NAMES = st.sampled_from([k.value for k in Kind]) | JSON_VALUES
MESSAGE_LIKE = st.fixed_dictionaries(
    {"v": st.just(1) | JSON_VALUES, "kind": KIND_NAMES},
    optional={name: JSON_VALUES for name in _FIELD_NAMES},
)


def _canonical_bytes(value: Any) -> bytes:
    """canonical_json where it can; json.dumps in the same style where it cannot (big integers,
    non-ASCII keys), so the parser meets those too."""
    try:
        return canonical_json(value)
    except EncodingError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")


def _only_case_message_malformed(data: bytes, kind: Kind | None = None) -> None:
    try:
        message = parse_case_message(data, kind=kind)
    except CaseMessageMalformed as exc:
        assert exc.code == CODE
    else:
        assert isinstance(message, CaseMessage)
        assert kind is None or message.kind is kind
        assert parse_case_message(encode_case_message(message)) == message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES | MESSAGE_LIKE)
def test_arbitrary_json_gives_a_message_or_case_message_malformed(value: Any) -> None:
    _only_case_message_malformed(_canonical_bytes(value))
    _only_case_message_malformed(json.dumps(value).encode("utf-8"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_FIELDS), JSON_VALUES)
def test_any_value_in_any_field_gives_a_message_or_case_message_malformed(
        where: tuple[Kind, str], new: Any) -> None:
    kind, name = where
    _only_case_message_malformed(_canonical_bytes(wire(kind, **{name: new})), kind)
    try:
        CaseMessage.build(kind, **{**VALID[kind], name: new})
    except CaseMessageMalformed as exc:
        assert exc.code == CODE

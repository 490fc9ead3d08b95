"""Request packages: the schema of each form of cooperation, and the completeness check.

The complete examples in ``examples/requests/`` are the fixtures: each must pass, and blanking
any one of its essential fields must be reported at that field's JSON path with a reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.envelope import MAX_CONTENT_TYPE
from protocol.errors import (
    PackageError,
    PackageIncomplete,
    PackageLanguageNotAccepted,
    PackageMalformed,
    PackageSchemaUnknown,
    RogatoryError,
)
from protocol.request_package import (
    COMMON_FIELDS,
    CONTENT_TYPE,
    FORM_FIELDS,
    FORMS,
    MAX_ITEMS,
    MAX_PACKAGE_BYTES,
    MAX_TEXT,
    MEASURES,
    Field,
    FieldType,
    Gap,
    RequestPackage,
    check_completeness,
    check_language,
    encode_request,
    fields_for,
    parse_request,
    require_complete,
    template,
)

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / "requests"
MEASURE_FIELDS = {m.type: m.fields for m in MEASURES}


def example(name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    return value


def package(value: dict[str, Any]) -> RequestPackage:
    return RequestPackage.from_json(value)


def gap_fields(value: dict[str, Any]) -> list[str]:
    return [gap.field for gap in check_completeness(package(value))]


def code_of(value: object) -> str:
    with pytest.raises(PackageError) as caught:
        RequestPackage.from_json(value)
    return caught.value.code


def set_path(value: dict[str, Any], path: str, new: object) -> None:
    """Set ``a.b[2].c`` inside a JSON value."""
    tokens = [int(t) if t.isdigit() else t for t in re.findall(r"[^.\[\]]+", path)]
    target: Any = value
    for token in tokens[:-1]:
        target = target[token]
    target[tokens[-1]] = new


def blank_of(field: Field) -> object:
    return {FieldType.FLAG: None, FieldType.TEXTS: [], FieldType.CHOICES: [],
            FieldType.OBJECTS: []}.get(field.type, "")


def element_fields(field: Field, item: dict[str, Any]) -> tuple[Field, ...]:
    return field.fields + (MEASURE_FIELDS.get(item.get("type", ""), ()) if field.variants
                           else ())


def essential_paths(fields: tuple[Field, ...], holder: dict[str, Any], root: dict[str, Any],
                    path: str = "") -> Iterator[tuple[str, Field]]:
    """Every field the schema tables call essential in this package, with its JSON path."""
    for field in fields:
        where = f"{path}.{field.name}" if path else field.name
        value = holder[field.name]
        if field.type is FieldType.OBJECT:
            if field.applies(holder, root):
                yield from essential_paths(field.fields, value, root, where)
            continue
        if field.essential(holder, root):
            yield where, field
        if field.type is FieldType.OBJECTS:
            for i, item in enumerate(value):
                yield from essential_paths(element_fields(field, item), item, root,
                                           f"{where}[{i}]")


# --- complete packages of every form ---------------------------------------------------------


def test_content_type_is_a_printable_token_for_the_envelope() -> None:
    assert CONTENT_TYPE == "application/vnd.rogatory.request.v1+json"
    assert CONTENT_TYPE.isascii() and CONTENT_TYPE.isprintable() and " " not in CONTENT_TYPE
    assert len(CONTENT_TYPE) <= MAX_CONTENT_TYPE


def test_there_is_one_complete_example_per_form() -> None:
    names = {path.stem for path in EXAMPLES.glob("*.json")}
    assert names == {*FORMS, "mla-incomplete"}
    assert set(FORM_FIELDS) == set(FORMS)


@pytest.mark.parametrize("form", FORMS)
def test_a_complete_package_of_each_form_passes(form: str) -> None:
    data = (EXAMPLES / f"{form}.json").read_bytes()
    request = parse_request(data)
    assert request.form == form
    assert check_completeness(request) == []
    assert require_complete(request, override_reason=None) == []
    assert request.reference
    assert request.language == "en"


def test_the_mla_example_asks_for_the_measures_of_article_18() -> None:
    request = parse_request((EXAMPLES / "mla.json").read_bytes())
    assert request.measure_types == ("documents-and-records", "search-seizure-freezing",
                                     "taking-evidence", "videoconference", "tracing-proceeds")
    assert request.urgent
    assert request.legal_basis.startswith("United Nations Convention against Transnational")
    assert len(request.offences) == 2


def test_measures_cover_article_18_3_and_the_videoconference() -> None:
    articles = [m.article for m in MEASURES]
    assert articles == [f"UNTOC art. 18(3)({letter})" for letter in "abcdefghi"] + [
        "UNTOC art. 18(18)"]


def test_the_incomplete_example_lacks_account_numbers_and_the_penalty() -> None:
    gaps = check_completeness(parse_request((EXAMPLES / "mla-incomplete.json").read_bytes()))
    assert [g.field for g in gaps] == ["offences[0].maximum_penalty", "measures[0].accounts"]
    assert all(g.message.startswith("missing: ") and g.why for g in gaps)


# --- every essential field, missing --------------------------------------------------------


def _blanking_cases() -> Iterator[tuple[str, str, Field]]:
    for form in FORMS:
        value = package(example(form)).to_json()
        for path, field in essential_paths(fields_for(form), value, value):
            if not path.endswith(".type"):  # a measure's type selects its other fields
                yield form, path, field


BLANKING = list(_blanking_cases())


def test_the_blanking_cases_cover_every_form_and_the_key_measure_fields() -> None:
    paths = {(form, path) for form, path, _ in BLANKING}
    assert {form for form, _ in paths} == set(FORMS)
    assert len(BLANKING) > 120
    for expected in ("measures[0].accounts", "measures[0].period.from", "measures[0].period.to",
                     "measures[1].place", "measures[1].objects", "measures[1].dual_criminality",
                     "measures[2].questions", "measures[3].person",
                     "measures[3].proposed_date", "measures[4].property",
                     "offences[1].maximum_penalty", "persons[2].nationality",
                     "urgency.reason", "urgency.deadline", "confidentiality.details",
                     "legal_basis.instrument", "requesting_authority.reference", "language"):
        assert ("mla", expected) in paths, expected
    assert ("extradition", "warrant.issued_by") in paths
    assert ("confiscation", "order.final") in paths
    assert ("transfer-of-sentenced-persons", "consent") in paths


@pytest.mark.parametrize(("form", "path", "field"), BLANKING,
                         ids=[f"{form}:{path}" for form, path, _ in BLANKING])
def test_each_essential_field_missing_is_reported_with_its_path_and_why(
        form: str, path: str, field: Field) -> None:
    value = package(example(form)).to_json()
    set_path(value, path, blank_of(field))
    gaps = check_completeness(package(value))
    reported = {gap.field: gap for gap in gaps}
    assert path in reported
    gap = reported[path]
    assert gap.message == f"missing: {field.label}"
    assert gap.why == field.why and gap.why.strip()
    # Nothing else goes missing, except the role a form needs when a role is blanked.
    assert {g.field for g in gaps} <= {path, "persons"}


@pytest.mark.parametrize("form", FORMS)
def test_a_field_left_out_reads_as_blank_and_is_reported(form: str) -> None:
    value = example(form)
    del value["language"]
    del value["requesting_authority"]["reference"]
    assert gap_fields(value) == ["language", "requesting_authority.reference"]


def test_every_why_is_one_sentence() -> None:
    whys: list[str] = []

    def collect(fields: tuple[Field, ...]) -> None:
        for field in fields:
            if field.why:
                whys.append(field.why)
            collect(field.fields)

    collect(COMMON_FIELDS)
    for fields in FORM_FIELDS.values():
        collect(fields)
    for measure in MEASURES:
        collect(measure.fields)
    for form in FORMS:
        whys.extend(g.why for g in check_completeness(package(template(form))))
    assert len(whys) > 80
    for why in whys:
        assert why.endswith(".") and why[0].isupper(), why
        assert not re.search(r"[.!?] [A-Z]", why), f"more than one sentence: {why}"
        assert len(why) <= 260, why


# --- the rules the tables cannot show by themselves ------------------------------------------


def mla_with(*measures: dict[str, Any]) -> dict[str, Any]:
    value = example("mla")
    value["measures"] = [dict(m) for m in measures]
    return value


def test_bank_records_need_accounts_and_a_period_other_records_do_not() -> None:
    records = {"type": "documents-and-records", "description": "statements",
               "category": "bank", "holder": "Banco", "records": ["statements"]}
    assert gap_fields(mla_with(records)) == [
        "measures[0].accounts", "measures[0].period.from", "measures[0].period.to"]
    assert gap_fields(mla_with({**records, "accounts": ["BR15 0001"],
                                "period": {"from": "2024-01-01", "to": ""}})) == [
        "measures[0].period.to"]
    assert gap_fields(mla_with({**records, "category": "corporate"})) == []


def test_seizure_and_freezing_need_the_dual_criminality_statement_a_search_does_not() -> None:
    base = {"type": "search-seizure-freezing", "description": "search the office",
            "place": "Rua 1, São Paulo", "objects": ["ledgers"]}
    assert gap_fields(mla_with({**base, "actions": ["search"]})) == []
    for actions in (["seizure"], ["search", "freezing"]):
        assert gap_fields(mla_with({**base, "actions": actions})) == [
            "measures[0].dual_criminality"]
    assert gap_fields(mla_with({"type": "search-seizure-freezing", "description": "x",
                                "actions": ["search"]})) == [
        "measures[0].place", "measures[0].objects"]


def test_service_of_documents_needs_the_address_but_no_facts_or_offences() -> None:
    service = {"type": "service-of-documents", "description": "serve the summons",
               "person": "Maria Testemunha", "documents": ["summons of 3 June 2025"]}
    value = mla_with(service)
    value["summary_of_facts"] = ""
    value["offences"] = []
    assert gap_fields(value) == ["measures[0].address"]
    # Art. 18(15)(c) spares facts only for a request that asks for nothing but service.
    value["measures"].append({"type": "other-assistance", "description": "x"})
    assert gap_fields(value) == ["summary_of_facts", "offences", "measures[0].address"]


def test_videoconference_needs_the_witness_and_a_proposed_date() -> None:
    assert gap_fields(mla_with({"type": "videoconference", "description": "hear her"})) == [
        "measures[0].person", "measures[0].proposed_date"]


def test_tracing_needs_the_property_and_every_measure_a_description() -> None:
    assert gap_fields(mla_with({"type": "tracing-proceeds"})) == [
        "measures[0].description", "measures[0].property"]
    assert gap_fields(mla_with({"type": "", "description": "something"})) == [
        "measures[0].type"]
    assert gap_fields(mla_with()) == ["measures"]


def test_urgency_needs_a_reason_and_a_date() -> None:
    value = example("mla")
    value["urgency"] = {"urgent": True, "reason": "", "deadline": ""}
    assert gap_fields(value) == ["urgency.reason", "urgency.deadline"]
    value["urgency"] = {"urgent": False, "reason": "", "deadline": "2025-09-01"}
    assert gap_fields(value) == ["urgency.reason"]
    value["urgency"] = {"urgent": False, "reason": "", "deadline": ""}
    assert gap_fields(value) == []


def test_confidentiality_must_be_stated_and_explained() -> None:
    value = example("mla")
    value["confidentiality"] = {"required": None, "details": ""}
    assert gap_fields(value) == ["confidentiality.required"]
    value["confidentiality"] = {"required": True, "details": "  "}
    assert gap_fields(value) == ["confidentiality.details"]
    value["confidentiality"] = {"required": False, "details": ""}
    assert gap_fields(value) == []


def test_extradition_needs_the_person_sought_and_the_documents_for_its_basis() -> None:
    value = example("extradition")
    value["persons"][0]["role"] = "suspect"
    gaps = check_completeness(package(value))
    assert [g.field for g in gaps] == ["persons"]
    assert "person-sought" in gaps[0].message and gaps[0].why
    value = example("extradition")
    value["basis"] = "enforcement"
    assert gap_fields(value) == [
        "judgment.court", "judgment.date", "judgment.reference", "judgment.sentence",
        "judgment.remaining", "judgment.enforceable", "in_absentia"]
    value["judgment"] = {"court": "Cour d'assises de Paris", "date": "2024-01-10",
                         "reference": "24/1", "sentence": "8 years", "remaining": "7 years",
                         "enforceable": True}
    value["in_absentia"] = True
    assert gap_fields(value) == ["defence_rights"]


def test_transfer_of_sentenced_persons_needs_consent_and_a_final_judgment() -> None:
    value = example("transfer-of-sentenced-persons")
    value["consent"] = False
    value["judgment"]["final"] = False
    gaps = check_completeness(package(value))
    assert [(g.field, g.message) for g in gaps] == [
        ("judgment.final", "the judgment is not final"),
        ("consent", "the sentenced person has not consented")]
    value["persons"][0]["role"] = "other"
    assert "persons" in gap_fields(value)


def test_transfer_of_proceedings_needs_a_suspect_or_accused() -> None:
    value = example("transfer-of-proceedings")
    value["persons"][0]["role"] = "accused"
    assert gap_fields(value) == []
    value["persons"] = []
    assert gap_fields(value) == ["persons"]


def test_confiscation_needs_what_its_action_needs() -> None:
    value = example("confiscation")
    value["order"]["final"] = False
    assert gap_fields(value) == ["order.final"]
    value["action"] = "identify-trace-freeze-seize"
    assert gap_fields(value) == ["actions_requested"]  # the order no longer matters
    value["property"] = []
    assert gap_fields(value) == ["property", "actions_requested"]


# --- override -----------------------------------------------------------------------------


def test_an_incomplete_request_is_refused_unless_a_reason_is_given() -> None:
    request = parse_request((EXAMPLES / "mla-incomplete.json").read_bytes())
    for reason in (None, "", "   \n"):
        with pytest.raises(PackageIncomplete) as caught:
            require_complete(request, override_reason=reason)
        assert caught.value.code == "package.incomplete"
        assert "offences[0].maximum_penalty" in caught.value.detail
        assert "measures[0].accounts" in caught.value.detail
        assert "\n" not in str(caught.value)
    gaps = require_complete(request, override_reason="Accounts known only after freezing; "
                            "agreed by phone with DRCI on 2 June")
    assert [g.field for g in gaps] == ["offences[0].maximum_penalty", "measures[0].accounts"]


def test_an_override_reason_must_be_text_of_bounded_length() -> None:
    request = parse_request((EXAMPLES / "mla-incomplete.json").read_bytes())
    for reason in ("x" * 4097, 42):
        with pytest.raises(PackageMalformed):
            require_complete(request, override_reason=reason)  # type: ignore[arg-type]
    assert len(require_complete(request, override_reason="x" * 4096)) == 2


def test_a_complete_request_needs_no_reason_and_ignores_one() -> None:
    request = parse_request((EXAMPLES / "mla.json").read_bytes())
    assert require_complete(request, override_reason=None) == []
    assert require_complete(request, override_reason="not needed") == []


def test_the_error_names_the_first_fields_and_counts_the_rest() -> None:
    with pytest.raises(PackageIncomplete) as caught:
        require_complete(package(template("transfer-of-sentenced-persons")),
                         override_reason=None)
    detail = caught.value.detail
    assert detail.startswith("28 essential field(s) missing: language, ")
    assert detail.endswith(" and 16 more")


# --- language -------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "accepted", "ok"), [
    ("en", ["fr", "en"], True),
    ("EN", ["en"], True),
    ("pt-BR", ["pt", "es"], True),
    ("pt", ["pt-BR"], False),
    ("en", ["fr", "es"], False),
    ("en", [], True),
    ("", [], True),
    ("", ["en"], False),
    ("eng", ["en"], False),
])
def test_the_language_must_be_one_the_recipient_accepts(language: str, accepted: list[str],
                                                        ok: bool) -> None:
    value = example("mla")
    value["language"] = language
    request = package(value)
    if ok:
        check_language(request, accepted)
    else:
        with pytest.raises(PackageLanguageNotAccepted) as caught:
            check_language(request, accepted)
        assert caught.value.code == "package.language_not_accepted"
        assert ", ".join(accepted) in caught.value.detail


# --- structure: malformed and unknown -------------------------------------------------------


MALFORMED_EDITS: list[tuple[str, object]] = [
    ("language", 5),
    ("language", "English"),
    ("language", None),
    ("requesting_authority", "FR:MJ"),
    ("requesting_authority.authority", "france"),
    ("requesting_authority.name", ["a"]),
    ("summary_of_facts", "facts \x00 hidden"),
    ("summary_of_facts", "x" * (MAX_TEXT + 1)),
    ("offences", {"name": "fraud"}),
    ("offences[0]", "fraud"),
    ("offences[0].maximum_penalty", 10),
    ("persons[0].role", "ringleader"),
    ("persons[0].date_of_birth", "1984-02-30"),
    ("persons[0].date_of_birth", "29/02/1984"),
    ("persons[0].date_of_birth", "1984-2-9"),
    ("urgency.urgent", "yes"),
    ("urgency.urgent", 1),
    ("confidentiality.required", "true"),
    ("annexes", "the order"),
    ("annexes", ["the order", ""]),
    ("annexes", ["x"] * (MAX_ITEMS + 1)),
    ("measures[0].accounts", "BR15 0000"),
    ("measures[0].category", "crypto"),
    ("measures[0].period", ["2024-01-01", "2025-01-01"]),
    ("measures[1].actions", ["freezing", "freezing"]),
    ("measures[1].actions", ["arrest"]),
    ("measures[0].type", 7),
]


@pytest.mark.parametrize(("path", "bad"), MALFORMED_EDITS,
                         ids=[f"{p}={str(b)[:20]!r}" for p, b in MALFORMED_EDITS])
def test_wrong_types_are_malformed(path: str, bad: object) -> None:
    value = example("mla")
    set_path(value, path, bad)
    assert code_of(value) == "package.malformed"


@pytest.mark.parametrize("where", ["", "requesting_authority", "offences[0]", "measures[0]"])
def test_unknown_fields_are_malformed(where: str) -> None:
    value = example("mla")
    target: Any = value
    for token in re.findall(r"[^.\[\]]+", where):
        target = target[int(token) if token.isdigit() else token]
    target["note"] = "not in the schema"
    with pytest.raises(PackageMalformed) as caught:
        RequestPackage.from_json(value)
    assert "note" in caught.value.detail


@pytest.mark.parametrize("value", [
    {"v": 1, "form": "mla", "x\n" * 10_000: 1},
    {"v": 1, "form": "m\nla" * 10_000},
    {"v": 1, "form": "mla", "language": "e\nn" * 10_000},
    {"v": 1, "form": "mla", "persons": [{"role": "\n" * 10_000}]},
    {"v": 1, "form": "mla", "measures": [{"type": "\n" * 10_000}]},
])
def test_error_details_are_one_short_line_whatever_the_input(value: dict[str, Any]) -> None:
    with pytest.raises(PackageError) as caught:
        RequestPackage.from_json(value)
    assert "\n" not in str(caught.value) and len(caught.value.detail) <= 256


def test_a_field_of_another_measure_is_malformed() -> None:
    assert code_of(mla_with({"type": "taking-evidence", "accounts": ["BR15"]})) == (
        "package.malformed")
    assert code_of(mla_with({"type": "", "person": "x"})) == "package.malformed"


@pytest.mark.parametrize("data", [
    b"",
    b"\xff\xfe{}",
    b"[]",
    b'"mla"',
    b'{"v":1,"form":"mla","language":"en","language":"fr"}',
    b'{"v":1.0,"form":"mla"}',
    b'{"v":1,"form":"mla","measures":[{"type":"other-assistance","description":NaN}]}',
    b'{"v":1,"form":"mla","summary_of_facts":"\\ud800"}',
    b'{"form":"mla"}',
    b'{"v":1}',
    b'{"v":"1","form":"mla"}',
    b'{"v":true,"form":"mla"}',
    b'{"v":1,"form":["mla"]}',
    b"[" * 100_000,
    b'{"v":1,"form":"mla","language":"' + b"1" * 5000 + b'"}',
    b'{"v":1,"form":"mla","persons":' + b"9" * 5000 + b"}",
])
def test_bytes_that_are_not_a_package_are_malformed(data: bytes) -> None:
    with pytest.raises(PackageMalformed):
        parse_request(data)


def test_oversized_and_non_bytes_input_is_malformed() -> None:
    with pytest.raises(PackageMalformed):
        parse_request(b" " * (MAX_PACKAGE_BYTES + 1))
    with pytest.raises(PackageMalformed):
        parse_request("{}")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [
    {"v": 1, "form": "mutual-assistance"},
    {"v": 1, "form": ""},
    {"v": 2, "form": "mla"},
    {"v": 0, "form": "mla"},
    {"v": 2, "form": "mla", "field_of_version_2": {"x": 1}},  # the version is read first
    {"v": 1, "form": "mla", "measures": [{"type": "interception-of-communications"}]},
])
def test_unknown_forms_versions_and_measures_are_schema_unknown(value: dict[str, Any]) -> None:
    assert code_of(value) == "package.schema_unknown"
    with pytest.raises(PackageSchemaUnknown):
        parse_request(json.dumps(value).encode())


def test_the_constructor_accepts_only_the_canonical_encoding() -> None:
    request = package(example("mla"))
    assert RequestPackage(request.body) == request
    pretty = json.dumps(request.to_json(), indent=2).encode()
    assert parse_request(pretty) == request  # any spacing parses ...
    with pytest.raises(PackageMalformed):
        RequestPackage(pretty)  # ... but only one encoding is the package
    with pytest.raises(PackageMalformed):
        RequestPackage(b'{"form":"mla","v":1}')  # canonical JSON, but not every field


def test_the_encoding_writes_every_field_and_parses_back() -> None:
    request = RequestPackage.from_json({"v": 1, "form": "extradition"})
    data = encode_request(request)
    value = json.loads(data)
    assert set(value) == {"v", "form", *(f.name for f in fields_for("extradition"))}
    assert value["urgency"] == {"urgent": None, "reason": "", "deadline": ""}
    assert parse_request(data) == request
    assert request.to_json() is not request.to_json()


def test_gaps_travel_as_json() -> None:
    gaps = check_completeness(parse_request((EXAMPLES / "mla-incomplete.json").read_bytes()))
    assert [Gap.from_json(g.to_json()) for g in gaps] == gaps
    with pytest.raises(PackageMalformed):
        Gap.from_json({"field": "x", "message": "y"})


# --- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_the_template_parses_and_lists_what_to_fill_in(form: str) -> None:
    skeleton = template(form)
    assert skeleton["v"] == 1 and skeleton["form"] == form
    request = RequestPackage.from_json(skeleton)
    gaps = check_completeness(request)
    assert gaps and "language" in [g.field for g in gaps]
    assert json.loads(json.dumps(skeleton)) == skeleton


def test_the_mla_template_has_each_measure_with_its_own_fields() -> None:
    skeleton = template("mla", measures=[m.type for m in MEASURES])
    assert [m["type"] for m in skeleton["measures"]] == [m.type for m in MEASURES]
    records = skeleton["measures"][5]
    assert records["accounts"] == [] and records["period"] == {"from": "", "to": ""}
    fields = [g.field for g in check_completeness(RequestPackage.from_json(skeleton))]
    assert "measures[5].accounts" not in fields  # the category is not chosen yet
    assert {"measures[5].category", "measures[9].proposed_date"} <= set(fields)
    assert template("mla")["measures"] == [{"type": "", "description": "", "procedure": ""}]


def test_templates_of_unknown_forms_or_measures_are_refused() -> None:
    for call in (lambda: template("letters-rogatory"),
                 lambda: template("mla", measures=["wiretap"]),
                 lambda: template("extradition", measures=["taking-evidence"])):
        with pytest.raises(PackageSchemaUnknown):
            call()


# --- properties ---------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)
FILLED = TEXT.filter(lambda s: bool(s.strip()))


def value_of(field: Field) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind is FieldType.TEXT:
        return TEXT
    if kind is FieldType.TEXTS:
        return st.lists(FILLED, max_size=3)
    if kind is FieldType.DATE:
        return st.just("") | st.dates().map(lambda d: d.isoformat())
    if kind is FieldType.FLAG:
        return st.none() | st.booleans()
    if kind is FieldType.CHOICE:
        return st.sampled_from(("", *field.choices))
    if kind is FieldType.CHOICES:
        return st.lists(st.sampled_from(field.choices), unique=True)
    if kind is FieldType.LANGUAGE:
        return st.sampled_from(("", "en", "fr", "pt-BR", "zh-Hant-TW"))
    if kind is FieldType.AUTHORITY:
        return st.just("") | st.from_regex(r"[A-Z]{2}:[A-Z0-9][A-Z0-9_-]{0,31}", fullmatch=True)
    if kind is FieldType.OBJECT:
        return obj(field.fields)
    if field.variants:
        measure = st.sampled_from(["", *MEASURE_FIELDS]).flatmap(
            lambda kind: obj(tuple(f for f in field.fields if f.name != "type")
                + MEASURE_FIELDS.get(kind, ())).map(
                lambda m, kind=kind: {"type": kind, **m}))  # type: ignore[misc]
        return st.lists(measure, max_size=3)
    return st.lists(obj(field.fields), max_size=2)


def obj(fields: tuple[Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of the schema, with any field left out (it then reads as blank)."""
    return st.fixed_dictionaries({}, optional={f.name: value_of(f) for f in fields})


packages = st.sampled_from(FORMS).flatmap(
    lambda form: obj(fields_for(form)).map(lambda v, form=form: {"v": 1, "form": form, **v}))


def contained(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and contained(v, whole[k]) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and len(part) == len(whole) and all(
            contained(a, b) for a, b in zip(part, whole, strict=True))
    return bool(part == whole)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packages)
def test_round_trip_of_generated_packages(value: dict[str, Any]) -> None:
    request = RequestPackage.from_json(value)
    data = encode_request(request)
    assert parse_request(data) == request
    assert encode_request(parse_request(data)) == data
    assert parse_request(json.dumps(value, indent=1, ensure_ascii=True).encode()) == request
    assert contained(value, request.to_json())  # nothing given is lost or changed
    for gap in check_completeness(request):
        assert gap.field and gap.message and gap.why


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_rogatory_errors(data: bytes) -> None:
    try:
        parse_request(data)
    except RogatoryError as exc:
        assert isinstance(exc, PackageError), exc


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield (*path, i)
            yield from _paths(item, (*path, i))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*FORMS, "mla-incomplete"]), st.data(), JSON_VALUES)
def test_any_value_anywhere_in_a_package_raises_only_package_errors(
        name: str, data: st.DataObject, new: Any) -> None:
    value = example(name)
    path = data.draw(st.sampled_from(list(_paths(value))))
    target: Any = value
    for token in path[:-1]:
        target = target[token]
    target[path[-1]] = new
    try:
        encoded = json.dumps(value).encode()
    except ValueError:
        return
    for attempt in (lambda: RequestPackage.from_json(copy.deepcopy(value)),
                    lambda: parse_request(encoded)):
        try:
            check_completeness(attempt())
        except RogatoryError as exc:
            assert isinstance(exc, PackageError), exc

"""The request form drawn from the package schema, and a posted form read back into a package.

A browser posts what the widgets draw: each input under its widget's path, a textarea's lines
joined with CRLF, a flag's radio as yes/no/"", checked checkboxes once each in the order drawn,
and each list's hidden ``count:<path>``. Whatever package the form was filled from must come
back unchanged, for every form and every kind of MLA measure.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from node.web.request_form import MAX_ENTRIES, Widget, package_from_form, widgets
from protocol.header import AUTHORITY_ID
from protocol.request_package import (
    FORMS,
    MEASURES,
    Field,
    FieldType,
    RequestPackage,
    check_completeness,
    fields_for,
    template,
)

F = FieldType
INPUTS = {t.value for t in FieldType} - {F.OBJECT.value, F.OBJECTS.value}
STRUCTURE = {"group", "end", "list", "end-list", "entry", "end-entry"}
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# What a caseworker can type: no control characters (the package refuses them) and, for a
# one-per-line list, no line separators: U+2028/U+2029 split a line as str.splitlines() sees it.
_TYPED = st.characters(exclude_categories=("Cc", "Cs"))
_LINE = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
TEXT = st.text(_TYPED, max_size=40).map(str.strip)
LINE = st.text(_LINE, min_size=1, max_size=30).map(str.strip).filter(bool)
DATE = st.one_of(st.just(""), st.dates(min_value=datetime.date(1000, 1, 1))
                 .map(datetime.date.isoformat))
LANGUAGE = st.one_of(st.just(""), st.from_regex(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}",
                                                fullmatch=True))
AUTHORITY = st.one_of(st.just(""), st.from_regex(AUTHORITY_ID, fullmatch=True))


def value_of(spec: Field) -> st.SearchStrategy[Any]:
    kind = spec.type
    if kind is F.TEXT:
        return TEXT
    if kind is F.TEXTS:
        return st.lists(LINE, max_size=3)
    if kind is F.DATE:
        return DATE
    if kind is F.FLAG:
        return st.sampled_from((True, False, None))
    if kind is F.CHOICE:
        return st.sampled_from(("", *spec.choices))
    if kind is F.CHOICES:
        # Checkboxes come back in the order they are drawn, the schema's.
        return st.sets(st.sampled_from(spec.choices)).map(
            lambda chosen: [c for c in spec.choices if c in chosen])
    if kind is F.LANGUAGE:
        return LANGUAGE
    if kind is F.AUTHORITY:
        return AUTHORITY
    if kind is F.OBJECT:
        return object_of(spec.fields)
    if spec.variants:
        return st.lists(measure_of(spec), max_size=3)
    return st.lists(object_of(spec.fields), max_size=3)


def object_of(fields: Sequence[Field]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.name: value_of(f) for f in fields})


def measure_of(spec: Field) -> st.SearchStrategy[dict[str, Any]]:
    """One MLA measure: its type decides which fields it has (none of its own when blank)."""
    def of_type(kind: str) -> st.SearchStrategy[dict[str, Any]]:
        variant = next((v.fields for v in spec.variants if v.type == kind), ())
        return object_of(spec.fields + variant).map(lambda m: {**m, "type": kind})

    return st.sampled_from(("", *(v.type for v in spec.variants))).flatmap(of_type)


def packages(form: str) -> st.SearchStrategy[dict[str, Any]]:
    return object_of(fields_for(form)).map(
        lambda rest: RequestPackage.from_json({"v": 1, "form": form, **rest}).to_json())


def posted(form: str, value: Mapping[str, Any], **extra: str) -> MultiDictProxy[str]:
    """What a browser posts for the form drawn from ``value``."""
    data: MultiDict[str] = MultiDict({"csrf": "token", "form": form, "to": "BR:MJSP"})
    for w in widgets(form, value):
        assert w.kind in INPUTS | STRUCTURE, w.kind
        if w.kind == "list":
            data.add(f"count:{w.path}", str(w.count))
        elif w.kind in STRUCTURE:
            continue
        elif w.kind == "texts":
            data.add(w.path, "\r\n".join(w.value or []))
        elif w.kind == "flag":
            data.add(w.path, {True: "yes", False: "no", None: ""}[w.value])
        elif w.kind == "choices":
            for choice in w.choices:
                if choice in (w.value or []):
                    data.add(w.path, choice)
        else:
            data.add(w.path, w.value or "")
    for name, text in extra.items():
        data.add(name, text)
    return MultiDictProxy(data)


def read_back(form: str, data: MultiDictProxy[str]) -> dict[str, Any]:
    return RequestPackage.from_json(package_from_form(form, data)).to_json()


def lists_in(form: str, value: Mapping[str, Any]) -> list[Widget]:
    return [w for w in widgets(form, value) if w.kind == "list"]


BUTTON_FORMS = list(FORMS)


def at(value: Any, path: str) -> Any:
    """The value at a gap-style path such as ``measures[1].period``."""
    for part in path.split("."):
        name, _, index = part.partition("[")
        value = value[name]
        if index:
            value = value[int(index.rstrip("]"))]
    return value


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@SETTINGS
@given(data=st.data())
def test_a_package_survives_the_form(form: str, data: st.DataObject) -> None:
    value = data.draw(packages(form))
    assert read_back(form, posted(form, value)) == value


@pytest.mark.parametrize("measures", [[m.type] for m in MEASURES]
                         + [[m.type for m in MEASURES]])
@SETTINGS
@given(data=st.data())
def test_a_filled_in_mla_template_survives_the_form(measures: list[str],
                                                   data: st.DataObject) -> None:
    """The template the form starts from, with random text typed into every text input."""
    value = template("mla", measures=measures)

    def fill(fields: Sequence[Field], holder: dict[str, Any]) -> None:
        for spec in fields:
            if spec.type is F.TEXT:
                holder[spec.name] = data.draw(TEXT)
            elif spec.type is F.TEXTS:
                holder[spec.name] = data.draw(st.lists(LINE, max_size=3))
            elif spec.type is F.OBJECT:
                fill(spec.fields, holder[spec.name])
            elif spec.type is F.OBJECTS:
                for item in holder[spec.name]:
                    variant = next((v.fields for v in spec.variants
                                    if v.type == item.get("type")), ())
                    fill(spec.fields + variant, item)

    fill(fields_for("mla"), value)
    expected = RequestPackage.from_json(value).to_json()
    assert [m["type"] for m in expected["measures"]] == measures
    assert read_back("mla", posted("mla", expected)) == expected


@pytest.mark.parametrize("form", FORMS)
def test_a_blank_template_survives_the_form(form: str) -> None:
    value = RequestPackage.from_json(template(form)).to_json()
    assert read_back(form, posted(form, value)) == value


# --- gaps point at inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@SETTINGS
@given(data=st.data())
def test_every_gap_names_a_widget_that_shows_it(form: str, data: st.DataObject) -> None:
    value = data.draw(packages(form))
    gaps = check_completeness(RequestPackage.from_json(value))
    drawn = widgets(form, value, gaps)
    showing = {(w.path, w.gap) for w in drawn
               if w.kind in INPUTS or w.kind == "list"}
    for gap in gaps:
        assert any(path == gap.field for path, _ in showing), gap.field
        # The gap's message is drawn next to its input (one message per path at most).
        shown = {text for path, text in showing if path == gap.field}
        assert shown and shown <= {g.message for g in gaps if g.field == gap.field}
    # And no input claims a gap that is not there.
    assert {path for path, text in showing if text} == {g.field for g in gaps}


@pytest.mark.parametrize("form", FORMS)
def test_a_blank_form_shows_its_gaps(form: str) -> None:
    value = RequestPackage.from_json(template(form)).to_json()
    gaps = check_completeness(RequestPackage.from_json(value))
    assert gaps, "a blank package is incomplete"
    names = {w.path for w in widgets(form, value, gaps)}
    assert {g.field for g in gaps} <= names


# --- add and remove ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", BUTTON_FORMS)
@SETTINGS
@given(data=st.data())
def test_add_appends_one_blank_entry(form: str, data: st.DataObject) -> None:
    value = data.draw(packages(form))
    target = data.draw(st.sampled_from(lists_in(form, value)))
    before = at(value, target.path)
    after = at(read_back(form, posted(form, value, _action=f"add:{target.path}")), target.path)
    assert len(after) == len(before) + 1
    assert after[:-1] == before
    added = after[-1]
    assert all(v in ("", [], None) or isinstance(v, dict) for v in added.values()), added


@pytest.mark.parametrize("form", BUTTON_FORMS)
@SETTINGS
@given(data=st.data())
def test_remove_drops_exactly_that_entry(form: str, data: st.DataObject) -> None:
    value = data.draw(packages(form))
    candidates = [w for w in lists_in(form, value) if w.count]
    if not candidates:
        # Make sure there is something to remove.
        value = RequestPackage.from_json(template(form)).to_json()
        candidates = lists_in(form, value)
    target = data.draw(st.sampled_from(candidates))
    before = at(value, target.path)
    index = data.draw(st.integers(0, len(before) - 1))
    action = f"remove:{target.path}[{index}]"
    after = at(read_back(form, posted(form, value, _action=action)), target.path)
    assert after == before[:index] + before[index + 1:]


def test_other_lists_are_untouched_by_an_add() -> None:
    value = RequestPackage.from_json(template("extradition")).to_json()
    after = read_back("extradition", posted("extradition", value, _action="add:offences"))
    assert len(after["offences"]) == len(value["offences"]) + 1
    assert after["persons"] == value["persons"]


def test_no_schema_field_takes_a_name_the_form_itself_posts() -> None:
    reserved = {"csrf", "form", "to", "_action", "override_reason", "attachments"}
    clashes = sorted((form, w.path) for form in FORMS
                     for w in widgets(form, template(form)) if w.path in reserved)
    assert clashes == []


def test_a_list_stops_growing_at_its_limit() -> None:
    value = RequestPackage.from_json(template("extradition")).to_json()
    value["offences"] = value["offences"] * MAX_ENTRIES
    after = read_back("extradition", posted("extradition", value, _action="add:offences"))
    assert len(after["offences"]) == MAX_ENTRIES


@pytest.mark.parametrize("count", ["-3", "x", "", "1e9"])
def test_a_forged_count_is_bounded(count: str) -> None:
    value = RequestPackage.from_json(template("extradition")).to_json()
    data = MultiDict(posted("extradition", value))
    data.popall("count:offences")
    data.add("count:offences", count)
    after = read_back("extradition", MultiDictProxy(data))
    assert len(after["offences"]) <= MAX_ENTRIES

"""PROTOCOL.md must keep up with the code: every code, label, field, kind, suite and vector."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protocol.case import ACTORS, TRANSITIONS
from protocol.case_message import REFUSAL_GROUNDS, SCHEMAS
from protocol.encoding import b64decode
from protocol.envelope import DEFAULT_MAX_SKEW, MAX_CONTENT_TYPE, MAX_LIFETIME
from protocol.errors import ERRORS_BY_CODE
from protocol.header import HEADER_FIELDS, MAX_HEADER_BYTES
from protocol.kinds import Kind
from protocol.receipt import MAX_BODY, MAX_DETAIL, RECEIPT_FIELDS
from protocol.signing import LABELS
from protocol.suites import Suite

ROOT = Path(__file__).resolve().parent.parent.parent
SPEC = (ROOT / "PROTOCOL.md").read_text(encoding="utf-8")
VECTORS = sorted((ROOT / "tests" / "vectors").glob("*.json"))


def section(number: int) -> str:
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", SPEC, re.M | re.S)
    assert match, f"section {number} missing"
    return match.group(0)


def table_first_column(text: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", text, re.M))


def test_error_table_lists_exactly_the_codes() -> None:
    assert table_first_column(section(9)) == set(ERRORS_BY_CODE)


def test_case_message_tables_list_every_kind_and_ground() -> None:
    tables = table_first_column(section(14))
    assert {kind.value for kind in SCHEMAS} | set(REFUSAL_GROUNDS) == tables


def test_the_case_lifecycle_tables_are_the_code() -> None:
    text = section(15)
    rows = set(re.findall(r"^\| `([a-z-]+)` \| `([a-z-]+)` \| `([a-z-]+)` \|$", text, re.M))
    assert rows == {(state.value, step.value, after.value)
                    for state, steps in TRANSITIONS.items() for step, after in steps.items()}
    actors = dict(re.findall(r"^\| `([a-z-]+)` \| ([a-z ]+) \|$", text, re.M))
    assert actors == {kind.value: "either side" if len(roles) > 1
                      else f"{next(iter(roles)).value} side" for kind, roles in ACTORS.items()}


def test_every_label_is_in_the_label_table() -> None:
    assert table_first_column(section(3)) == set(LABELS.values())


def test_header_table_lists_exactly_the_fields() -> None:
    header_table = section(6).split("### 6.2")[0]
    assert table_first_column(header_table) == set(HEADER_FIELDS)


def test_receipt_table_lists_exactly_the_fields() -> None:
    receipt_table = section(8).split("### 8.2")[1].split("### 8.3")[0]
    assert table_first_column(receipt_table) == {*RECEIPT_FIELDS, "log_index"}


def test_kinds_and_suites_are_named() -> None:
    for kind in Kind:
        assert f"`{kind.value}`" in section(6)
    assert table_first_column(section(5)) >= {suite.value for suite in Suite}


@pytest.mark.parametrize(
    "number",
    [MAX_LIFETIME, DEFAULT_MAX_SKEW, MAX_HEADER_BYTES, MAX_CONTENT_TYPE, MAX_DETAIL, MAX_BODY],
)
def test_limits_are_stated(number: int) -> None:
    assert str(number) in SPEC


def test_every_vector_file_is_listed() -> None:
    listed = set(re.findall(r"`([a-z0-9-]+\.json)`", section(11)))
    assert listed == {path.name for path in VECTORS}


def test_header_example_is_the_vectors() -> None:
    vector = json.loads((ROOT / "tests" / "vectors" / "header-example.json").read_text())
    header = b64decode(vector["header_b64"]).decode("ascii")
    assert f"\n{header}\n" in SPEC
    assert f"one line, {len(header)} bytes" in SPEC

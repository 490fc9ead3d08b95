"""SECURITY.md names a test for every property and every attack; a claim without one, or naming a
test that does not exist, fails the suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def _property_rows() -> list[str]:
    text = (ROOT / "SECURITY.md").read_text("utf-8")
    return [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]


def _attack_rows() -> list[str]:
    """The rows of the attack table: the tests are in its third column, like the properties."""
    text = (ROOT / "SECURITY.md").read_text("utf-8")
    section = text.split("## Attack table", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row for row in rows[1:] if not row.startswith("|---")]  # no header, no rule


def _claims() -> list[str]:
    return [*_property_rows(), *_attack_rows()]


def test_every_property_names_at_least_one_test() -> None:
    rows = _property_rows()
    assert len(rows) >= 15
    assert len(_attack_rows()) >= 15
    for row in _claims():
        assert re.search(r"`[^`]*\.py", row.split("|")[3]), f"no test named in: {row[:80]}"


def test_every_named_test_exists() -> None:
    for row in _claims():
        current: Path | None = None
        for reference in re.findall(r"`([^`]+)`", row.split("|")[3]):
            file_part, _, name = reference.partition("::")
            if file_part:
                current = TESTS / file_part
                assert current.exists(), f"SECURITY.md names missing file {file_part}"
            if name:
                assert current is not None, f"{reference} has no file before it"
                assert name in _test_names(current), f"SECURITY.md names missing test {reference}"

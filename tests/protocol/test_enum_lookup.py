"""``from_name`` looks kinds, priorities and suites up in a table; the answers are the scan's.

The scan below (compare each member's value with the name) is what ``from_name`` did before
the table; every name, known or not, and every odd type must give the same member or the same
error class, code and message.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest

from protocol.errors import (
    EnvelopeKindUnknown,
    EnvelopeMalformed,
    EnvelopeSuiteUnsupported,
    RogatoryError,
)
from protocol.kinds import Kind, Priority
from protocol.suites import Suite


class _SameAsEverything:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


class _Text(str):
    pass


REFUSALS: dict[Any, Any] = {
    Kind: lambda name: EnvelopeKindUnknown(f"kind {name!r}"),
    Priority: lambda name: EnvelopeMalformed(
        f"priority {name!r} is neither 'normal' nor 'urgent'"),
    Suite: lambda name: EnvelopeSuiteUnsupported(f"unknown suite {name!r}"),
}


def _reference(enum_type: type[enum.Enum], name: object) -> tuple[str, Any]:
    for member in enum_type:
        if member.value == name:
            return "member", member
    error = REFUSALS[enum_type](name)
    return "error", (type(error), error.code, error.detail)


def _outcome(enum_type: Any, name: object) -> tuple[str, Any]:
    try:
        return "member", enum_type.from_name(name)
    except RogatoryError as exc:
        return "error", (type(exc), exc.code, exc.detail)


NAMES: list[object] = [
    "", "request", "REQUEST", "request ", "normal", "urgent", "Urgent", "status",
    "x25519-hkdfsha256-chacha20poly1305", "mlkem768x25519-hkdfsha256-chacha20poly1305",
    "retrieval", "unknown-kind", None, 0, 1, True, b"request", ["request"], {"request": 1},
    _Text("request"), _Text("urgent"), _Text("nope"), _SameAsEverything(),
    *(member.value for enum_type in (Kind, Priority, Suite) for member in enum_type),
    *(member for enum_type in (Kind, Priority, Suite) for member in enum_type),
]


@pytest.mark.parametrize("enum_type", [Kind, Priority, Suite])
@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_from_name_gives_what_the_scan_gave(enum_type: Any, name: object) -> None:
    assert _outcome(enum_type, name) == _reference(enum_type, name)


def test_refusal_codes() -> None:
    assert _outcome(Kind, "nope")[1][1] == "envelope.kind_unknown"
    assert _outcome(Priority, "nope")[1][1] == "envelope.malformed"
    assert _outcome(Suite, "nope")[1][1] == "envelope.suite_unsupported"

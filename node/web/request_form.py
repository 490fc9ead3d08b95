"""The request form: a request package's schema as HTML form fields, and form fields back.

The form is generated from the schema tables of ``protocol.request_package``, so it can never
ask for a field the package does not have nor miss one it gained. Every input is named by the
field's JSON path as the completeness check reports it (``offences[0].name``), so a gap points
at its input without a lookup table. A list of objects carries its length in a hidden
``count:<path>`` input; "add" and "remove" buttons change it and the form is drawn again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiDictProxy

from protocol.request_package import (
    MEASURES,
    Field,
    FieldType,
    Gap,
    fields_for,
)

__all__ = ["ACTION", "Widget", "package_from_form", "widgets"]

F = FieldType
MAX_ENTRIES = 50
ACTION = "_action"
"""The buttons' name: no schema path starts with an underscore, so a field cannot shadow it."""
RESERVED = frozenset({"csrf", "form", "to", ACTION, "override_reason", "attachments"})


@dataclass
class Widget:
    """One thing the template draws: an input, or the start or end of a group."""

    kind: str  # a FieldType value, or the start or end of a group, list or list entry
    path: str = ""
    label: str = ""
    why: str = ""
    value: Any = None
    choices: tuple[str, ...] = ()
    gap: str = ""
    count: int = 0
    removable: bool = False
    refresh: bool = False  # changing it redraws the form (a measure's type)
    depth: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _element_fields(spec: Field, item: Mapping[str, Any]) -> tuple[Field, ...]:
    if not spec.variants:
        return spec.fields
    kind = item.get("type", "")
    variant = next((v for v in spec.variants if v.type == kind), None)
    return spec.fields + (variant.fields if variant else ())


def widgets(form: str, value: Mapping[str, Any], gaps: Sequence[Gap] = ()) -> list[Widget]:
    """The widgets of a form of ``form`` filled with ``value`` (a package's JSON)."""
    missing = {gap.field: gap.message for gap in gaps}
    out: list[Widget] = []

    def walk(fields: Sequence[Field], holder: Mapping[str, Any], path: str, depth: int) -> None:
        for spec in fields:
            where = _join(path, spec.name)
            current = holder.get(spec.name)
            if spec.type is F.OBJECT:
                out.append(Widget("group", where, spec.label, spec.why, depth=depth))
                walk(spec.fields, current or {}, where, depth + 1)
                out.append(Widget("end", where, depth=depth))
                continue
            if spec.type is F.OBJECTS:
                items = list(current or [])
                out.append(Widget("list", where, spec.label, spec.why, count=len(items),
                                  gap=missing.get(where, ""), depth=depth))
                for i, item in enumerate(items):
                    element = f"{where}[{i}]"
                    out.append(Widget("entry", element, f"{spec.label} {i + 1}",
                                      removable=True, depth=depth + 1))
                    walk(_element_fields(spec, item), item, element, depth + 2)
                    out.append(Widget("end-entry", element, depth=depth + 1))
                out.append(Widget("end-list", where, count=len(items), depth=depth))
                continue
            out.append(Widget(spec.type.value, where, spec.label, spec.why, current,
                              spec.choices, missing.get(where, ""),
                              refresh=bool(path) and spec.name == "type"
                              and any(m.type in spec.choices for m in MEASURES),
                              depth=depth))

    walk(fields_for(form), value, "", 0)
    assert not {w.path for w in out} & RESERVED, "a schema field shadows a form control"
    return out


def _lines(text: str) -> str:
    """Browsers post line breaks as CRLF; packages keep LF, like every other sender."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _one(data: MultiDictProxy[Any], name: str) -> str:
    raw = data.get(name, "")
    return raw if isinstance(raw, str) else ""


def package_from_form(form: str, data: MultiDictProxy[Any]) -> dict[str, Any]:
    """The package JSON a posted form describes, with any add or remove applied.

    Values are taken as typed; ``RequestPackage.from_json`` then checks them like any other
    package (a bad date is ``package.malformed`` with its path).
    """
    action = _one(data, ACTION)

    def read(fields: Sequence[Field], path: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for spec in fields:
            where = _join(path, spec.name)
            kind = spec.type
            if kind is F.OBJECT:
                result[spec.name] = read(spec.fields, where)
            elif kind is F.OBJECTS:
                try:
                    count = max(0, min(int(_one(data, f"count:{where}") or "0"), MAX_ENTRIES))
                except ValueError:
                    count = 0
                items = []
                for i in range(count):
                    element = f"{where}[{i}]"
                    if action == f"remove:{element}":
                        continue
                    base = read(spec.fields, element)
                    items.append({**base, **read(_element_fields(spec, base), element)})
                if action == f"add:{where}" and count < MAX_ENTRIES:
                    items.append(read(spec.fields, f"{where}[new]"))
                result[spec.name] = items
            elif kind is F.TEXTS:
                text = _lines(_one(data, where))
                result[spec.name] = [line.strip() for line in text.split("\n") if line.strip()]
            elif kind is F.CHOICES:
                result[spec.name] = [v for v in dict.fromkeys(data.getall(where, []))
                                     if isinstance(v, str) and v]
            elif kind is F.FLAG:
                flag = _one(data, where)
                result[spec.name] = {"yes": True, "no": False}.get(flag)
            else:
                result[spec.name] = _lines(_one(data, where)).strip()
        return result

    return {"v": 1, "form": form, **read(fields_for(form), "")}

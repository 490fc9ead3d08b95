"""encode_entry checks the fields as given; it must refuse exactly what reading back refuses."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import canonical_json
from protocol.errors import RogatoryError
from protocol.log_entry import ENTRY_FIELDS, ENTRY_VERSION, EntryType, encode_entry, parse_entry

VALID: dict[str, Any] = {
    "envelope": "ab" * 32, "id": "0123456789abcdef0123456789abcdef", "from": "FR:MJ",
    "to": "BR:MJSP", "kind": "request", "created": 1_700_000_000, "expires": 1_700_600_000,
    "at": 1_700_000_001, "received": 1_700_000_002, "receipt": "cd" * 32,
    "status": "accepted", "code": "envelope.expired", "serial": 3, "digest": "ef" * 32,
    "identity": "0" * 24, "prekeys": ["1" * 24, "2" * 24], "user": "ana.silva",
    "outcome": "failure", "by": "user:ana.silva", "gaps": 2, "language": "not-accepted",
    "reason": "01" * 32,
}

values = st.one_of(
    st.sampled_from(list(VALID.values())),
    st.text(max_size=70), st.integers(min_value=-(2**60), max_value=2**60), st.booleans(),
    st.none(), st.lists(st.text(max_size=30), max_size=3),
    st.tuples(st.sampled_from(["1" * 24, "x"])), st.text(min_size=4000, max_size=4100),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def read_back(entry_type: EntryType, fields: dict[str, Any]) -> bytes:
    """What encode_entry did before: encode, then refuse what parse_entry refuses."""
    data = canonical_json({"v": ENTRY_VERSION, "type": entry_type.value, **fields})
    parse_entry(data)
    return data


def outcome(call: Any, *args: Any) -> tuple[str, str, bytes]:
    try:
        return ("ok", "", call(*args))
    except RogatoryError as exc:
        return (type(exc).__name__, exc.message, b"")


@settings(max_examples=600)
@given(st.sampled_from(list(EntryType)), st.data())
def test_encode_entry_refuses_exactly_what_reading_back_refuses(entry_type: EntryType,
                                                                 data: st.DataObject) -> None:
    names = list(ENTRY_FIELDS[entry_type])
    fields = {name: VALID[name] for name in names}
    for name in data.draw(st.lists(st.sampled_from(names), max_size=3)):
        fields[name] = data.draw(values)
    if data.draw(st.booleans()):
        fields.pop(data.draw(st.sampled_from(names)))
    if data.draw(st.integers(0, 5)) == 0:
        fields[data.draw(st.sampled_from(["extra", "v", "type", "at"]))] = data.draw(values)
    assert outcome(encode_entry, entry_type, fields) == outcome(read_back, entry_type, fields)


def test_every_valid_entry_type_encodes_and_reads_back() -> None:
    for entry_type, checks in ENTRY_FIELDS.items():
        fields = {name: VALID[name] for name in checks}
        data = encode_entry(entry_type, fields)
        assert parse_entry(data) == (entry_type, fields)

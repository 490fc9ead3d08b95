"""Message kinds and priorities of protocol version 1.

The kind travels in the clear header because the receiving node routes on it (a receipt is due
for every kind, a business acknowledgement only for some); everything about the content stays
inside the encryption. The full lifecycle of a case is defined here so that the case-tracking
layer never needs a new protocol version to add a step.
"""

from __future__ import annotations

import enum

from protocol.errors import EnvelopeKindUnknown, EnvelopeMalformed

__all__ = ["Kind", "Priority"]


class Kind(enum.Enum):
    REQUEST = "request"
    ACKNOWLEDGEMENT = "acknowledgement"
    ADDITIONAL_INFORMATION_REQUEST = "additional-information-request"
    ADDITIONAL_INFORMATION = "additional-information"
    STATUS = "status"
    OUTCOME = "outcome"
    REFUSAL = "refusal"
    POSTPONEMENT = "postponement"
    WITHDRAWAL = "withdrawal"
    SPONTANEOUS_INFORMATION = "spontaneous-information"
    CONDITIONS_ANSWER = "conditions-answer"
    CONSULTATION = "consultation"
    RETRIEVAL = "retrieval"

    @classmethod
    def from_name(cls, name: object) -> Kind:
        found = _KINDS.get(name) if type(name) is str else None
        if found is not None:
            return found
        for kind in cls:
            if kind.value == name:
                return kind
        raise EnvelopeKindUnknown(f"kind {name!r}")


class Priority(enum.Enum):
    NORMAL = "normal"
    URGENT = "urgent"

    @classmethod
    def from_name(cls, name: object) -> Priority:
        found = _PRIORITIES.get(name) if type(name) is str else None
        if found is not None:
            return found
        for priority in cls:
            if priority.value == name:
                return priority
        raise EnvelopeMalformed(f"priority {name!r} is neither 'normal' nor 'urgent'")


# Header decoding looks a kind and a priority up for every envelope; iterating an Enum and
# reading ``.value`` costs microseconds. Anything but an exact str keeps the equality scan.
_KINDS: dict[str, Kind] = {kind.value: kind for kind in Kind}
_PRIORITIES: dict[str, Priority] = {priority.value: priority for priority in Priority}

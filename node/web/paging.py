"""Pages of the interface's lists, filtered as they are read.

A central authority's inbox grows by thousands of messages a year. A list page reads the rows
once, newest first, counts them and the ones the filters keep, and holds only the rows of the
page asked for, so the page costs one pass over the index and one page of memory, however long
the history is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PAGE_SIZE", "Page", "page_number"]

PAGE_SIZE = 100


def page_number(query: Mapping[str, str]) -> int:
    """The page asked for, from 1; anything that is not a positive number is the first page."""
    text = query.get("page", "").strip()
    return int(text) if text.isdigit() and 0 < int(text) < 10**9 else 1


@dataclass
class Page:
    """The rows of one page of a filtered list, and how many rows there are in all."""

    number: int
    size: int = PAGE_SIZE
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0  # every row read
    matched: int = 0  # the rows the filters kept

    def offer(self, row: dict[str, Any], kept: bool) -> None:
        self.total += 1
        if not kept:
            return
        if (self.number - 1) * self.size <= self.matched < self.number * self.size:
            self.rows.append(row)
        self.matched += 1

    @property
    def first(self) -> int:
        """The position of the page's first row among those kept, from 1 (0 on an empty page)."""
        return (self.number - 1) * self.size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def pages(self) -> int:
        return max(1, -(-self.matched // self.size))

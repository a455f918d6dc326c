"""One page of results: what a query hands to a view, with no HTTP in it.

A page past the end raises ``PageOutOfRange``; the views turn it into a 404
(``myapp.web.pagination``), so services never raise HTTP exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

PER_PAGE = 20


class PageOutOfRange(LookupError):
    """A page number past the last page; the message says which pages exist."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int
    total: int
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    def check_exists(self) -> Page[T]:
        """Raise PageOutOfRange for a page past the end (page 1 always exists, even empty)."""
        if self.number > self.pages:
            raise PageOutOfRange(f"There is no page {self.number}; the last is {self.pages}.")
        return self


def offset_for(number: int, per_page: int = PER_PAGE) -> int:
    return (number - 1) * per_page

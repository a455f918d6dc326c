"""Page numbers from the query string, and one page of results."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound

T = TypeVar("T")

PER_PAGE = 20
# ASCII digits only: str.isdigit() also accepts "²" and "①", which int() rejects.
_PAGE = re.compile(r"[1-9][0-9]{0,5}", re.ASCII)


def page_number(params: Mapping[str, str]) -> int:
    """``?page=N`` as a positive int; anything else is a 400, not a 500."""
    raw = params.get("page", "1")
    if not _PAGE.fullmatch(raw):
        raise HTTPBadRequest("page must be a whole number from 1 to 999999.")
    return int(raw)


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
        """A page past the end is a 404 (page 1 always exists, even empty)."""
        if self.number > self.pages:
            raise HTTPNotFound(f"There is no page {self.number}; the last is {self.pages}.")
        return self


def offset_for(number: int, per_page: int = PER_PAGE) -> int:
    return (number - 1) * per_page

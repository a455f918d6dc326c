"""Page numbers from the query string, and pages past the end as 404s.

The page itself (``Page``) is in ``myapp.data.paging``: services build it
without knowing about HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound

from myapp.data.paging import PageOutOfRange

T = TypeVar("T")

# ASCII digits only: str.isdigit() also accepts "²" and "①", which int() rejects.
_PAGE = re.compile(r"[1-9][0-9]{0,5}", re.ASCII)


def page_number(params: Mapping[str, str]) -> int:
    """``?page=N`` as a positive int; anything else is a 400, not a 500."""
    raw = params.get("page", "1")
    if not _PAGE.fullmatch(raw):
        raise HTTPBadRequest("page must be a whole number from 1 to 999999.")
    return int(raw)


def page_or_404(fetch: Callable[[], T]) -> T:
    """``fetch()``, with a page past the end (``PageOutOfRange``) as a 404."""
    try:
        return fetch()
    except PageOutOfRange as exc:
        raise HTTPNotFound(str(exc)) from None

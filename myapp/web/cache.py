"""A small in-process cache of rendered public pages.

A view opts in with ``@view_config(..., page_cache=True)``. For
``myapp.page_cache_seconds`` (0 turns it off; production.ini uses a few
seconds) an anonymous GET of the same URL is answered from memory, without
touching the database or the template engine. Like a CDN in front of PyPI,
it trades a few seconds of staleness for throughput; with several processes
each keeps its own copy, so a change shows everywhere within that time.

Only 200 responses to requests without a session cookie are stored, so
nothing personal is ever cached or served to someone else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from myapp.security import SESSION_COOKIE


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    content_type: str
    charset: str | None
    expires: float


class PageCache:
    """URL -> rendered page, bounded in size and age; thread-safe."""

    def __init__(self, seconds: float, max_entries: int = 2000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._pages: OrderedDict[str, CachedPage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedPage | None:
        page = self._pages.get(key)
        if page is None or page.expires < time.monotonic():
            return None
        return page

    def put(self, key: str, response: Response) -> None:
        page = CachedPage(response.body, response.content_type, response.charset, time.monotonic() + self.seconds)
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_entries:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (call after a write that pages must show at once)."""
        with self._lock:
            self._pages.clear()


def _cacheable(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and SESSION_COOKIE not in request.cookies


def page_cache(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """View deriver for the ``page_cache=True`` view option."""
    cache: PageCache | None = info.registry.get("page_cache")
    if not info.options.get("page_cache") or cache is None or cache.seconds <= 0:
        return view

    def cached_view(context: Any, request: Request) -> Any:
        if not _cacheable(request):
            return view(context, request)
        key = f"{request.host}{request.path_qs}"
        page = cache.get(key)
        if page is not None:
            response = request.response
            response.body = page.body
            response.content_type = page.content_type
            response.charset = page.charset
            response.headers["X-Page-Cache"] = "hit"
            return response
        response = view(context, request)
        if response.status_code == 200:
            cache.put(key, response)
        return response

    return cached_view


page_cache.options = ("page_cache",)  # type: ignore[attr-defined]


def includeme(config: Configurator) -> None:
    seconds = float(config.get_settings().get("myapp.page_cache_seconds", 0) or 0)
    config.registry["page_cache"] = PageCache(seconds)
    config.add_view_deriver(page_cache)

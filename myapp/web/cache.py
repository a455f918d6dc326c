"""A small in-process cache of rendered public pages.

A view opts in with ``@view_config(..., page_cache=True)``. For
``myapp.page_cache_seconds`` (0 turns it off; production.ini uses a few
seconds) an anonymous GET of the same URL is answered from memory by a tween
that sits above pyramid_tm: no transaction, no routing, no database, no
template. Like a CDN in front of PyPI, it trades a few seconds of staleness
for throughput; with several processes each keeps its own copy, so a change
shows everywhere within that time.

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
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response

from myapp.security import SESSION_COOKIE

CACHEABLE = "myapp.page_cache"  # environ flag set by views that opted in
_COOKIE_PREFIX = SESSION_COOKIE + "="


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    headerlist: tuple[tuple[str, str], ...]
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
        # Only the entity headers: per-response ones (cookies, dates) are not replayed.
        headers = tuple((k, v) for k, v in response.headerlist if k.lower() in ("content-type", "content-language"))
        page = CachedPage(response.body, headers, time.monotonic() + self.seconds)
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_entries:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (call after a write that pages must show at once)."""
        with self._lock:
            self._pages.clear()


def _key(environ: dict[str, Any]) -> str | None:
    """The cache key for an anonymous GET/HEAD, else None."""
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD") or _COOKIE_PREFIX in environ.get("HTTP_COOKIE", ""):
        return None
    return f"{environ.get('HTTP_HOST', '')}{environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}"


def page_cache_tween_factory(handler: Callable[[Request], Response], registry: Registry) -> Callable:
    cache: PageCache = registry["page_cache"]
    if cache.seconds <= 0:
        return handler

    def tween(request: Request) -> Response:
        key = _key(request.environ)
        if key is None:
            return handler(request)
        page = cache.get(key)
        if page is not None:
            return Response(body=page.body, headerlist=[*page.headerlist, ("X-Page-Cache", "hit")])
        response = handler(request)
        if response.status_code == 200 and request.environ.get(CACHEABLE) and not response.headers.get("Set-Cookie"):
            cache.put(key, response)
        return response

    return tween


def page_cache(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """View deriver for ``page_cache=True``: marks the request as cacheable."""
    if not info.options.get("page_cache"):
        return view

    def mark(context: Any, request: Request) -> Any:
        request.environ[CACHEABLE] = True
        return view(context, request)

    return mark


page_cache.options = ("page_cache",)  # type: ignore[attr-defined]


def includeme(config: Configurator) -> None:
    seconds = float(config.get_settings().get("myapp.page_cache_seconds", 0) or 0)
    config.registry["page_cache"] = PageCache(seconds)
    config.add_view_deriver(page_cache)
    # Above the transaction manager: a hit needs no transaction at all.
    config.add_tween("myapp.web.cache.page_cache_tween_factory", over="pyramid_tm.tm_tween_factory")

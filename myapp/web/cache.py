"""A small in-process cache of rendered public pages.

A view opts in with ``@view_config(..., page_cache=True)``, or with the names
of the query parameters it reads: ``page_cache=("q", "page")``. For
``myapp.page_cache_seconds`` (0 turns it off; production.ini uses a few
seconds) an anonymous GET of the same page is answered from memory by a tween
that sits above pyramid_tm: no transaction, no routing, no database, no
template. Like a CDN in front of PyPI, it trades a few seconds of staleness
for throughput; with several processes each keeps its own copy, so a change
shows everywhere within that time.

What makes it safe against hostile clients:

* The key is a tuple of the validated request's parts (scheme, the Host that
  ``myapp.web.guard`` has checked against the allowed hosts, path, the
  parsed query, and the ``Accept`` header, since a page that negotiates its
  format differs by it), never a string glued from raw headers.
* A page is stored only when the request's query holds nothing but the
  parameters the view declared, each once; anything else is rendered and not
  kept, so junk parameters cannot fill the cache.
* The cache is bounded in bytes (``myapp.page_cache_bytes``) as well as in
  time; expired pages are dropped as new ones arrive.
* Only 200 responses to requests without a session cookie or credentials are
  stored (and none a view marked ``private`` or ``no-store``), so nothing
  personal is ever cached or served to someone else. A private index
  (``myapp.read_access = authenticated``) caches no page at all.

And what browsers and shared caches (a CDN, a proxy) may keep, which the
``cache_headers`` tween decides for every response: pages of a private index
and pages for a signed-in visitor (a session cookie or an ``Authorization``
header) are ``no-store``, so that no cache keeps them and the Back button
after signing out asks the server again; files of a private index are
``private`` (see ``myapp.web.files``); both say ``Vary: Cookie,
Authorization``, since the answer depends on them. Public pages for
anonymous visitors, public files and the static assets keep their caching.

No stale reads, even with several processes: a domain package may register a
function under ``PAGE_CACHE_VERSION`` (the package index registers its
highest serial, one indexed read). A page is served from memory only while
that version is the one it was rendered under, so the request after a
change, in any process, renders the page again.

That read is cheap, but it is I/O, and under load every I/O call in the hit
path waits for the GIL. ``myapp.page_cache_check_seconds`` (default 0: every
hit) lets a process reuse the version it read for that long; a write request
that succeeds in a process makes its next request read it again, so a
process never serves a page older than its own writes, and others catch up
within that time. production.ini uses 0.05 s.
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

from myapp.security import read_access

CACHEABLE = "myapp.page_cache"  # environ key: the query parameters the view reads
PRIVATE_INDEX = "myapp.private_index"  # registry: True when only signed-in users may read
CREDENTIALS = ("Cookie", "Authorization")  # what a personal answer varies by
PAGE_CACHE_VERSION = "myapp.page_cache_version"  # registry: () -> a value that changes when any page may
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_ENTRY_OVERHEAD = 400  # bytes of Python objects around each stored page, roughly

# scheme, host, path, query, Accept (pages that negotiate differ by it).
CacheKey = tuple[str, str, str, tuple[tuple[str, str], ...], str]


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    headerlist: tuple[tuple[str, str], ...]
    expires: float
    size: int
    version: object = None


class PageCache:
    """Key -> rendered page, bounded in bytes and age; thread-safe.

    Every page lives the same number of seconds, so insertion order is expiry
    order: the oldest entry is both the first to expire and the first to
    evict when the byte budget is reached.
    """

    def __init__(self, seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.bytes = 0
        self._pages: OrderedDict[CacheKey, CachedPage] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: CacheKey, version: object = None) -> CachedPage | None:
        page = self._pages.get(key)
        if page is None or page.expires < time.monotonic() or page.version != version:
            return None
        return page

    def put(self, key: CacheKey, response: Response, version: object = None) -> None:
        # Only the entity headers: per-response ones (cookies, dates) are not replayed.
        headers = tuple((k, v) for k, v in response.headerlist if k.lower() in ("content-type", "content-language"))
        body = response.body
        size = len(body) + sum(len(k) + len(v) for k, v in headers) + _key_size(key) + _ENTRY_OVERHEAD
        if size > self.max_bytes // 8:  # one page never takes a large share of the budget
            return
        now = time.monotonic()
        page = CachedPage(body, headers, now + self.seconds, size, version)
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._pages[key] = page
            self.bytes += size
            while self._pages:
                oldest = next(iter(self._pages.values()))
                if oldest.expires >= now and self.bytes <= self.max_bytes:
                    break
                self.bytes -= self._pages.popitem(last=False)[1].size

    def clear(self) -> None:
        """Forget everything (call after a write that pages must show at once)."""
        with self._lock:
            self._pages.clear()
            self.bytes = 0


def _key_size(key: CacheKey) -> int:
    scheme, host, path, query, accept = key
    return len(scheme) + len(host) + len(path) + len(accept) + sum(len(k) + len(v) for k, v in query)


def cache_key(request: Request, session_cookie: str) -> CacheKey | None:
    """The key for an anonymous GET/HEAD, else None (never cached): a request
    with a session cookie (signed in, or holding a CSRF token) or credentials
    is never answered from, nor stored in, the cache."""
    environ = request.environ
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD") or _personal(environ, session_cookie):
        return None
    try:
        query = tuple(sorted(request.GET.items()))
    except UnicodeDecodeError:
        return None  # the view answers 400
    return (request.scheme, request.host, environ.get("PATH_INFO", ""), query, environ.get("HTTP_ACCEPT", ""))


def _personal(environ: dict[str, Any], session_cookie: str) -> bool:
    """The request carries a session cookie or credentials: its answer may be someone's own."""
    return session_cookie in environ.get("HTTP_COOKIE", "") or "HTTP_AUTHORIZATION" in environ


def _storable(request: Request, key: CacheKey, response: Response) -> bool:
    wanted = request.environ.get(CACHEABLE)
    if wanted is None or response.status_code != 200 or "Set-Cookie" in response.headers:
        return False
    if response.cache_control.private or response.cache_control.no_store:
        return False
    names = [name for name, _ in key[3]]
    return len(names) == len(set(names)) and set(names) <= wanted


def page_cache_tween_factory(handler: Callable[[Request], Response], registry: Registry) -> Callable:
    cache: PageCache = registry["page_cache"]
    if cache.seconds <= 0:
        return handler
    session_cookie = registry.settings["myapp.session_cookie_name"] + "="
    check_every = float(registry.settings.get("myapp.page_cache_check_seconds", 0) or 0)
    last: dict[str, Any] = {"read": float("-inf"), "version": None}  # races between threads are harmless

    def current_version() -> object:
        version_of = registry.get(PAGE_CACHE_VERSION)
        if version_of is None:
            return None
        now = time.monotonic()
        if now - last["read"] >= check_every:
            last["version"], last["read"] = version_of(), now
        return last["version"]

    def tween(request: Request) -> Response:
        key = cache_key(request, session_cookie)
        if key is None:
            response = handler(request)
            if request.method not in ("GET", "HEAD") and response.status_code < 400:
                last["read"] = float("-inf")  # this process wrote: its next request reads the version
            return response
        try:
            # Read before rendering: a change made meanwhile makes this page stale at once.
            version = current_version()
        except Exception:  # the database is down: the view answers (503), nothing is cached
            return handler(request)
        page = cache.get(key, version)
        if page is not None:
            return Response(body=page.body, headerlist=[*page.headerlist, ("X-Page-Cache", "hit")])
        response = handler(request)
        if _storable(request, key, response):
            cache.put(key, response, version)
        return response

    return tween


def cache_headers_tween_factory(handler: Callable[[Request], Response], registry: Registry) -> Callable:
    """``Cache-Control`` and ``Vary`` for what depends on who asks (see above)."""
    private_index: bool = registry[PRIVATE_INDEX]
    session_cookie = registry.settings["myapp.session_cookie_name"] + "="

    def tween(request: Request) -> Response:
        response = handler(request)
        if not (private_index or _personal(request.environ, session_cookie)) or _is_static(request):
            return response
        control = response.cache_control
        if not (control.private or control.no_store):
            if control.public and not private_index:
                return response  # a public file: the same bytes for anyone
            response.headers["Cache-Control"] = "no-store"  # (WebOb's setter fails once the header was read)
        response.vary = tuple(dict.fromkeys([*(response.vary or ()), *CREDENTIALS]))
        return response

    return tween


def _is_static(request: Request) -> bool:
    """The site's own CSS, script and icons: the same for everyone, on any index."""
    route = request.matched_route
    return route is not None and route.name.startswith("__static")


def page_cache(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """View deriver for ``page_cache=True`` or ``page_cache=(param, ...)``:
    marks the request as cacheable, with the query parameters the view reads."""
    option = info.options.get("page_cache")
    if not option:
        return view
    params = frozenset(() if option is True else option)

    def mark(context: Any, request: Request) -> Any:
        request.environ[CACHEABLE] = params
        return view(context, request)

    return mark


page_cache.options = ("page_cache",)  # type: ignore[attr-defined]


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    seconds = float(settings.get("myapp.page_cache_seconds", 0) or 0)
    config.registry[PRIVATE_INDEX] = read_access(settings) != "public"
    if config.registry[PRIVATE_INDEX]:
        seconds = 0  # a private index caches no page: none may reach someone not signed in
    max_bytes = int(settings.get("myapp.page_cache_bytes", DEFAULT_MAX_BYTES))
    config.registry["page_cache"] = PageCache(seconds, max_bytes)
    config.add_view_deriver(page_cache)
    # Below the guard (keys use the Host it has checked), above the transaction
    # manager (a hit needs no transaction at all).
    config.add_tween(
        "myapp.web.cache.page_cache_tween_factory",
        under="myapp.web.guard.request_guard_tween_factory",
        over="pyramid_tm.tm_tween_factory",
    )
    config.add_tween(
        "myapp.web.cache.cache_headers_tween_factory",
        under="myapp.web.guard.request_guard_tween_factory",
        over="myapp.web.cache.page_cache_tween_factory",
    )

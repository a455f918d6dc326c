"""A small in-process cache of rendered public pages.

A view opts in with ``@view_config(..., page_cache=True)``, or with the names
of the query parameters it reads: ``page_cache=("q", "page")``. For
``myapp.page_cache_seconds`` (0 turns it off; production.ini uses a few
seconds) an anonymous GET of the same page is answered from memory, before
Pyramid makes a request object (``CachedPages.answer``, run by the execution
policy; the tween above pyramid_tm stores what it renders): no transaction,
no routing, no tween, no database, no template. Like a CDN in front of PyPI,
it trades a few seconds of staleness for throughput; with several processes
each keeps its own copy, so a change shows everywhere within that time.

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
from pyramid.interfaces import IExecutionPolicy
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import default_execution_policy
from webob.request import BaseRequest

from myapp.security import read_access, security_headers

CACHEABLE = "myapp.page_cache"  # environ key: the query parameters the view reads
PRIVATE_INDEX = "myapp.private_index"  # registry: True when only signed-in users may read
CREDENTIALS = ("Cookie", "Authorization")  # what a personal answer varies by
PAGE_CACHE_VERSION = "myapp.page_cache_version"  # registry: () -> a value that changes when any page may
CACHED_PAGES = "myapp.cached_pages"  # registry: CachedPages
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


def cache_key(environ: dict[str, Any], host: str, session_cookie: str) -> CacheKey | None:
    """The key for an anonymous GET/HEAD to ``host`` (the Host the guard
    accepts, normalized), else None (never cached): a request with a session
    cookie (signed in, or holding a CSRF token) or credentials is never
    answered from, nor stored in, the cache. The query is read as the view
    reads it (WebOb's parsing, which Pyramid's request then reuses)."""
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD") or _personal(environ, session_cookie):
        return None
    try:
        query = tuple(sorted(BaseRequest(environ).GET.items()))
    except UnicodeDecodeError:
        return None  # the view answers 400
    return (environ["wsgi.url_scheme"], host, environ.get("PATH_INFO", ""), query, environ.get("HTTP_ACCEPT", ""))


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


class CachedPages:
    """The page cache's reads, shared by its two doors: the execution policy,
    which answers a hit from the WSGI environ before Pyramid makes a request
    object, opens a request context, makes the body seekable for a retry or
    runs a tween (about half of a hit's time in the app, in a profile); and
    the tween, which renders and stores a miss.

    The policy answers only what the rest of the pipeline would answer the
    same way: an anonymous GET or HEAD whose Host the guard accepts, without a
    ``Range`` header (the guard refuses a malformed one), whose key is a page
    stored from a request that passed every check with that same key. It adds
    the security headers the outermost tween would (``security.HEADERS``)."""

    def __init__(self, registry: Registry) -> None:
        # Here, not at the top: guard imports files, which imports this module.
        from myapp.web.guard import allowed_hosts, valid_host

        self.registry = registry
        self.cache: PageCache = registry["page_cache"]
        settings = registry.settings
        self.session_cookie = settings["myapp.session_cookie_name"] + "="
        self.check_every = float(settings.get("myapp.page_cache_check_seconds", 0) or 0)
        self.allowed = allowed_hosts(settings)
        self.valid_host = valid_host
        self.headers = tuple(security_headers(settings).items())
        self._last: dict[str, Any] = {"read": float("-inf"), "version": None}  # races between threads are harmless

    def version(self) -> object:
        """What the pages depend on, read at most every ``check_every`` seconds."""
        version_of = self.registry.get(PAGE_CACHE_VERSION)
        if version_of is None:
            return None
        now = time.monotonic()
        last = self._last
        if now - last["read"] >= self.check_every:
            last["version"], last["read"] = version_of(), now
        return last["version"]

    def wrote(self) -> None:
        """This process changed something: its next request reads the version."""
        self._last["read"] = float("-inf")

    def hit(self, page: CachedPage, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return Response(body=page.body, headerlist=[*page.headerlist, ("X-Page-Cache", "hit"), *headers])

    def answer(self, environ: dict[str, Any]) -> Response | None:
        """The stored page for this request, if there is one (the execution policy's door)."""
        if "HTTP_RANGE" in environ:
            return None
        host = self.valid_host(environ.get("HTTP_HOST", ""), self.allowed)
        key = cache_key(environ, host, self.session_cookie) if host is not None else None
        if key is None:
            return None
        try:
            page = self.cache.get(key, self.version())
        except Exception:  # the database is down: the view answers (503)
            return None
        return None if page is None else self.hit(page, self.headers)


def page_cache_tween_factory(handler: Callable[[Request], Response], registry: Registry) -> Callable:
    cache: PageCache = registry["page_cache"]
    if cache.seconds <= 0:
        return handler
    pages: CachedPages = registry[CACHED_PAGES]

    def tween(request: Request) -> Response:
        key = cache_key(request.environ, request.host, pages.session_cookie)
        if key is None:
            response = handler(request)
            if request.method not in ("GET", "HEAD") and response.status_code < 400:
                pages.wrote()
            return response
        try:
            # Read before rendering: a change made meanwhile makes this page stale at once.
            version = pages.version()
        except Exception:  # the database is down: the view answers (503), nothing is cached
            return handler(request)
        page = cache.get(key, version)
        if page is not None:  # one the execution policy did not answer (a Range header)
            return pages.hit(page)
        response = handler(request)
        if _storable(request, key, response):
            cache.put(key, response, version)
        return response

    return tween


def _answer_hits_first(registry: Registry) -> None:
    """Wrap the execution policy (pyramid_retry's) so that a page-cache hit is
    answered before it runs."""
    pages: CachedPages = registry[CACHED_PAGES]
    policy = registry.queryUtility(IExecutionPolicy, default=default_execution_policy)

    def answer_hits_first(environ: dict[str, Any], router: Any) -> Any:
        return pages.answer(environ) or policy(environ, router)

    registry.registerUtility(answer_hits_first, IExecutionPolicy)


def cache_headers_tween_factory(handler: Callable[[Request], Response], registry: Registry) -> Callable:
    """``Cache-Control`` and ``Vary`` for what depends on who asks (see above)."""
    private_index: bool = registry[PRIVATE_INDEX]
    session_cookie = registry.settings["myapp.session_cookie_name"] + "="

    def tween(request: Request) -> Response:
        response = handler(request)
        if not (private_index or _personal(request.environ, session_cookie)) or _is_static(request):
            return response
        # The raw headers, not WebOb's parsed properties: this runs on every
        # response of a private index, and most carry neither header yet.
        headers = response.headers
        directives = _directive_names(headers.get("Cache-Control", ""))
        if not directives & _KEPT_PRIVATE:
            if "public" in directives and not private_index:
                return response  # a public file: the same bytes for anyone
            headers["Cache-Control"] = "no-store"
        vary = headers.get("Vary")
        names = [name.strip() for name in vary.split(",") if name.strip()] if vary else []
        headers["Vary"] = ", ".join(dict.fromkeys([*names, *CREDENTIALS]))
        return response

    return tween


_KEPT_PRIVATE = frozenset(("private", "no-store"))


def _directive_names(cache_control: str) -> set[str]:
    """The directives' names in a ``Cache-Control`` value (``max-age=60`` -> ``max-age``)."""
    return {part.partition("=")[0].strip().lower() for part in cache_control.split(",")} if cache_control else set()


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
    config.registry[CACHED_PAGES] = CachedPages(config.registry)
    config.add_view_deriver(page_cache)
    if seconds > 0:
        # After pyramid_retry has set its execution policy (in the same commit).
        config.action(("myapp.web.cache.hits",), lambda: _answer_hits_first(config.registry), order=10)
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

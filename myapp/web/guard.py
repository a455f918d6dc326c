"""The first thing every request meets, before any cache, routing or view:
it refuses what no page can answer, and drops what must be ignored.

* A ``Host`` that is missing or not this site: 400. The Host ends up in redirects that
  WebOb makes absolute and in the page cache's key, so a forged one must
  never get that far. The accepted Host is written back normalized.
* An absurdly long URL: 414.
* A malformed byte range (``Range: bytes=-``): 416. Ranges we do not serve
  (other units, several ranges) are dropped, as RFC 9110 allows.
* Conditional headers whose date is not a date: dropped, as RFC 9110
  requires (WebOb's parser would raise on some while sending a static file).
* NUL or other text no database can store in the path, query string, form
  fields or basic-auth credentials: 400 (``storable.py``).

It is also the last line of defence: an error that escaped the exception
views (a commit that failed, an exception view that failed in turn) gets the
site's own error page, a 503 with ``Retry-After`` when the database failed,
instead of the server's bare 500.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPException,
    HTTPRequestRangeNotSatisfiable,
    HTTPRequestURITooLong,
)
from pyramid.request import Request
from pyramid.response import Response
from pyramid.settings import aslist

from myapp.web.files import http_date, parse_range
from myapp.web.storable import unstorable_input

HOSTS_ENV = "MYAPP_ALLOWED_HOSTS"
# Development's default: the site answers only when called by a local name.
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_MAX_URL_BYTES = 8192
_DATE_HEADERS = ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")

# RFC 3986 reg-name as DNS uses it (letters, digits, hyphens; dot-separated labels),
# an IPv4 address, or a bracketed IPv6 literal; then an optional ASCII port.
_HOST = re.compile(
    r"(?P<name>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?"
    r"|\[[0-9a-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII | re.IGNORECASE,
)


def allowed_hosts(settings: dict[str, Any]) -> tuple[str, ...]:
    """``MYAPP_ALLOWED_HOSTS`` from the environment, else ``myapp.allowed_hosts``:
    names (``pypi.example.com``), addresses, or ``.example.com`` for a domain and
    every name under it. Ports are not part of an entry."""
    raw = os.environ.get(HOSTS_ENV) or settings.get("myapp.allowed_hosts")
    hosts = tuple(h.strip("[]").lower().rstrip(".") for h in aslist(raw or "", flatten=True)) if raw else ()
    return hosts or DEFAULT_ALLOWED_HOSTS


def valid_host(header: str, allowed: tuple[str, ...]) -> str | None:
    """The Host header normalized (lower case, no trailing dot), if it names
    this site; else None. A port is kept; it must be a real port number."""
    if len(header) > 260:
        return None
    match = _HOST.fullmatch(header)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        return None
    name = match["name"].lower().rstrip(".")
    bare = name.strip("[]")
    for entry in allowed:
        if bare == entry or (entry.startswith(".") and (bare.endswith(entry) or bare == entry[1:])):
            return name if match["port"] is None else f"{name}:{match['port']}"
    return None


def _refusal(environ: dict[str, Any], allowed: tuple[str, ...], max_url: int) -> HTTPException | None:
    """What is wrong with the request, if anything; fixes what may be ignored."""
    # Without a Host, WebOb would make redirects absolute with the server's own
    # idea of its name (waitress: "waitress.invalid"); HTTP/1.1 requires one anyway.
    host = valid_host(environ.get("HTTP_HOST", ""), allowed)
    if host is None:
        return HTTPBadRequest("This site does not answer to that host name.")
    environ["HTTP_HOST"] = host
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > max_url:
        return HTTPRequestURITooLong(f"Addresses are limited to {max_url} bytes.")
    for name in _DATE_HEADERS:
        if name in environ and http_date(environ[name]) is None:
            del environ[name]
    if "HTTP_RANGE" in environ:
        try:
            wanted = parse_range(environ["HTTP_RANGE"])
        except ValueError:
            return HTTPRequestRangeNotSatisfiable("The Range header is not a valid byte range.")
        if_range = environ.get("HTTP_IF_RANGE", "").strip()
        bad_if_range = if_range and not if_range.startswith(('"', "W/")) and http_date(if_range) is None
        if wanted is None or bad_if_range:  # a range we ignore, or a validator that cannot match
            environ.pop("HTTP_RANGE")
            environ.pop("HTTP_IF_RANGE", None)
    return None


def _unstorable(request: Request) -> HTTPException | None:
    """NUL or a lone surrogate anywhere a view may take text from: a 400 here,
    on every database, instead of a 500 from PostgreSQL later."""
    reason = unstorable_input(request)
    if reason is None:
        return None
    # Answered as anonymous: the error page must not look the credentials up (no
    # transaction is open down here, and they may be what holds the NUL).
    for header in ("HTTP_AUTHORIZATION", "HTTP_COOKIE"):
        request.environ.pop(header, None)
    return HTTPBadRequest(reason)


def request_guard_tween_factory(handler: Callable[[Request], Response], registry: Any) -> Callable:
    settings = registry.settings
    allowed = allowed_hosts(settings)
    max_url = int(settings.get("myapp.max_url_bytes", DEFAULT_MAX_URL_BYTES))

    def tween(request: Request) -> Response:
        refusal = _refusal(request.environ, allowed, max_url) or _unstorable(request)
        if refusal is not None:
            # The site's own error page; this tween is below the security headers.
            return request.invoke_exception_view((type(refusal), refusal, None))
        try:
            return handler(request)
        except Exception:
            # The exception views set request.exception: pyramid_retry still runs
            # a transient failure (SQLite locked, a serialization failure) again.
            return request.invoke_exception_view(sys.exc_info())

    return tween


def includeme(config: Configurator) -> None:
    config.add_tween(
        "myapp.web.guard.request_guard_tween_factory", under="myapp.security.security_headers_tween_factory"
    )

"""Health check, and the site's own error pages."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken, PredicateMismatch
from pyramid.httpexceptions import HTTPException, HTTPMovedPermanently, HTTPNotFound
from pyramid.interfaces import IRoutesMapper
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import FileResponse, Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.settings import asbool
from pyramid.view import exception_view_config, notfound_view_config, view_config
from sqlalchemy.exc import DBAPIError, OperationalError

from myapp.data import database_accepts_writes, database_answers, schema_problem, will_retry

log = logging.getLogger(__name__)

# PostgreSQL's "cannot execute ... in a read-only transaction" (a standby, or
# default_transaction_read_only): the database is there but takes no writes.
READ_ONLY_SQLSTATE = "25006"
# registry: {name: check}; each domain adds what it needs (the package index: its file store).
# A check answers ("ok" or what is wrong, extra facts to show beside it).
HEALTH_CHECKS = "health_checks"
# Registry: {name: report(request) -> dict}, added by domain packages (the
# proxy's upstream state); shown in /health's answer, informational (they do
# not fail the check: the site serves without them).
HEALTH_REPORTS = "web.health_reports"
CSRF_MESSAGE = "This form has expired or did not come from this site. Reload the page and try again."


@view_config(route_name="health", renderer="json", permission=NO_PERMISSION_REQUIRED)
def health(request: Request) -> dict[str, Any]:
    """What the site needs to work: a database that answers, with the schema
    this code expects (and, with ``myapp.health_write_check``, that accepts a
    write), and what the domains add to ``registry[HEALTH_CHECKS]`` (a store
    for files that answers). 503 with the reasons if not."""
    settings = request.registry.settings
    db = request.dbsession
    checks: dict[str, str] = {"database": "ok" if database_answers(db) else "unavailable"}
    if checks["database"] == "ok":
        checks["schema"] = schema_problem(db.connection()) or "ok"
        if asbool(settings.get("myapp.health_write_check", False)):
            checks["write"] = "ok" if database_accepts_writes(db) else "refused"
    facts: dict[str, Any] = {}
    for name, check in request.registry.get(HEALTH_CHECKS, {}).items():
        checks[name], extra = check()
        facts.update(extra)
    healthy = all(value == "ok" for value in checks.values())
    if not healthy:
        request.response.status = 503
        log.warning("health check failed: %s", ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok"))
    reports = {name: report(request) for name, report in request.registry.get(HEALTH_REPORTS, {}).items()}
    return {"status": "ok" if healthy else "error", **checks, **facts, **reports}


ROBOTS = """User-agent: *
Disallow: /account/
Disallow: /manage/
Disallow: /admin/
Disallow: /search
"""


@view_config(route_name="robots", permission=NO_PERMISSION_REQUIRED)
def robots(request: Request) -> Response:
    return Response(ROBOTS, content_type="text/plain", cache_control="public, max-age=86400")


@view_config(route_name="favicon", permission=NO_PERMISSION_REQUIRED)
def favicon(request: Request) -> Response:
    """Browsers ask for /favicon.ico whatever a page says (the simple pages say nothing)."""
    path = Path(__file__).resolve().parent.parent / "static" / "favicon.svg"
    response = FileResponse(str(path), request=request, content_type="image/svg+xml")
    response.cache_control = "public, max-age=86400"
    return response


def error_page(request: Request, status: int, title: str, message: str, *, path: str | None = None) -> Response:
    """The site's own error page, for views that answer an error themselves
    (``path``: the address that was not found, shown escaped).
    A server error's page asks nothing of the database (which may be why it
    failed): its header leaves out who is signed in."""
    response = render_to_response(
        "myapp:templates/error.jinja2",
        {"status": status, "title": title, "message": message, "path": path, "plain_header": status >= 500},
        request=request,
    )
    response.status = status
    return response


def _with_slash(request: Request) -> str | None:
    """``/project/flask`` -> ``/project/flask/`` when a page lives there.

    Pyramid's own append_slash also matches the static route's ``*subpath``
    and would redirect every missing asset; only patterns that end in a
    slash are considered here.
    """
    path = request.path_info
    if path.endswith("/") or request.method not in ("GET", "HEAD"):
        return None
    for route in request.registry.getUtility(IRoutesMapper).get_routes():
        if route.pattern.endswith("/") and route.match(path + "/") is not None:
            return _relative_location(path + "/", request.query_string)
    return None


def _relative_location(path: str, query: str) -> str:
    """A Location on this site whatever the request held: percent-encoded
    (no CR/LF can reach the header) and never ``//host`` (protocol-relative)."""
    location = "/" + quote(path, safe="/!$&'()*+,;=:@~").lstrip("/")
    if query:
        # The raw query is latin-1 text of the bytes sent; keep its escapes, encode the rest.
        location += "?" + quote(query.encode("latin-1"), safe="/?!$&'()*+,;=:@~%")
    return location


@notfound_view_config()
def not_found(exc: HTTPNotFound, request: Request) -> Response:
    location = _with_slash(request)
    if location is not None:
        return HTTPMovedPermanently(location=location)
    if _says_only_where(exc, request):
        return error_page(request, 404, "Not found", "We couldn't find that page.", path=request.path_info)
    return error_page(request, 404, "Not found", exc.detail)


def _says_only_where(exc: HTTPNotFound, request: Request) -> bool:
    """Pyramid's own 404s (no route or view matched, no such static file) carry
    the address or a developer's note, not a reason a visitor can use; a
    view's own 404 says what is missing ("There is no project called ...")."""
    detail = exc.detail or ""
    return not detail or detail == request.path_info or request.url in detail or isinstance(exc, PredicateMismatch)


@exception_view_config(HTTPException)
def http_error(exc: HTTPException, request: Request) -> Response:
    """Every other HTTP error raised by a view, in the site's own page."""
    if exc.status_code < 400:  # redirects are responses, not errors
        return exc
    # A CSRF failure's own detail is for developers, not for the person at the form.
    message = CSRF_MESSAGE if isinstance(exc, BadCSRFOrigin | BadCSRFToken) else exc.detail or exc.explanation
    response = error_page(request, exc.status_code, exc.title, message)
    for name in ("Allow", "Content-Range", "Location", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


@exception_view_config(UnicodeDecodeError)
def bad_encoding(exc: UnicodeDecodeError, request: Request) -> Response:
    """Non-UTF-8 bytes in the path or query string are the client's fault."""
    return error_page(request, 400, "Bad request", "The address is not valid UTF-8.")


def _logged_retry(request: Request, exc: BaseException) -> bool:
    """If pyramid_retry will run the request again, say so (no traceback: the
    failure is transient) and return True; the caller logs a final failure."""
    if not will_retry(request, exc):
        return False
    log.warning("retrying %s %s after %r", request.method, request.environ.get("PATH_INFO"), exc)
    return True


@exception_view_config(DBAPIError)
def database_unavailable(exc: DBAPIError, request: Request) -> Response:
    """The database refused or dropped us (down, overloaded, read-only, a
    serialization failure that outlived its retries): a 503 the client may
    retry, not a 500. (SQLite's "attempt to write a readonly database" is an
    OperationalError; PostgreSQL's read-only transaction is not.)"""
    read_only = getattr(exc.orig, "sqlstate", None) == READ_ONLY_SQLSTATE
    if not exc.connection_invalidated and not isinstance(exc, OperationalError) and not read_only:
        return server_error(exc, request)
    if not _logged_retry(request, exc):
        log.error(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.environ.get("PATH_INFO"),
            type(exc.orig).__name__,
            exc.orig,
        )
    response = error_page(
        request, 503, "Service unavailable", "The site is temporarily unavailable. Please try again in a moment."
    )
    response.headers["Retry-After"] = "5"
    return response


DISK_FULL = "The index has no room for this file now; try again later or tell its operator."


def is_disk_full(exc: BaseException) -> bool:
    """No room in a filesystem (ENOSPC, or a quota: EDQUOT): the server's fault, not the request's."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@exception_view_config(OSError)
def storage_full(exc: OSError, request: Request) -> Response:
    """A full disk (found as late as the commit, when stored files are put in
    place) is a 507 that says so; any other OSError is a server error."""
    if not is_disk_full(exc):
        return server_error(exc, request)
    log.error("no room to write on %s %s: %s", request.method, request.environ.get("PATH_INFO"), exc)
    return error_page(request, 507, "Insufficient storage", DISK_FULL)


@exception_view_config(Exception)
def server_error(exc: Exception, request: Request) -> Response:
    if not _logged_retry(request, exc):
        log.exception("unhandled error on %s %s", request.method, request.environ.get("PATH_INFO"))
    return error_page(request, 500, "Server error", "Something went wrong on our side; it has been logged.")

"""Home page, health check, and the site's own error pages."""

from __future__ import annotations

import logging
from typing import Any

from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken
from pyramid.httpexceptions import HTTPException, HTTPMovedPermanently, HTTPNotFound
from pyramid.interfaces import IRoutesMapper
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, notfound_view_config, view_config
from sqlalchemy.exc import DBAPIError, OperationalError

from myapp.data import database_answers, will_retry
from myapp.packaging import services

log = logging.getLogger(__name__)

CSRF_MESSAGE = "This form has expired or did not come from this site. Reload the page and try again."


@view_config(route_name="home", renderer="myapp:templates/home.jinja2", page_cache=True)
def home(request: Request) -> dict[str, Any]:
    db = request.dbsession
    return {"counts": services.counts(db), "recent": services.recently_updated(db)}


@view_config(route_name="health", renderer="json")
def health(request: Request) -> dict[str, Any]:
    if not database_answers(request.dbsession):
        request.response.status = 503
        return {"status": "error", "database": "unavailable"}
    return {"status": "ok", "database": "ok"}


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    response = render_to_response(
        "myapp:templates/error.jinja2",
        {"status": status, "title": title, "message": message},
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
            return request.application_url + path + "/" + (f"?{request.query_string}" if request.query_string else "")
    return None


@notfound_view_config()
def not_found(exc: HTTPNotFound, request: Request) -> Response:
    location = _with_slash(request)
    if location is not None:
        return HTTPMovedPermanently(location=location)
    return _error_page(request, 404, "Not found", exc.detail or "There is nothing at this address.")


@exception_view_config(HTTPException)
def http_error(exc: HTTPException, request: Request) -> Response:
    """Every other HTTP error raised by a view, in the site's own page."""
    if exc.status_code < 400:  # redirects are responses, not errors
        return exc
    # A CSRF failure's own detail is for developers, not for the person at the form.
    message = CSRF_MESSAGE if isinstance(exc, BadCSRFOrigin | BadCSRFToken) else exc.detail or exc.explanation
    response = _error_page(request, exc.status_code, exc.title, message)
    for name in ("Allow", "Location", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


@exception_view_config(UnicodeDecodeError)
def bad_encoding(exc: UnicodeDecodeError, request: Request) -> Response:
    """Non-UTF-8 bytes in the path or query string are the client's fault."""
    return _error_page(request, 400, "Bad request", "The address is not valid UTF-8.")


def _logged_retry(request: Request, exc: BaseException) -> bool:
    """If pyramid_retry will run the request again, say so (no traceback: the
    failure is transient) and return True; the caller logs a final failure."""
    if not will_retry(request, exc):
        return False
    log.warning("retrying %s %s after %r", request.method, request.environ.get("PATH_INFO"), exc)
    return True


@exception_view_config(DBAPIError)
def database_unavailable(exc: DBAPIError, request: Request) -> Response:
    """The database refused or dropped us (down, overloaded, a serialization
    failure that outlived its retries): a 503 the client may retry, not a 500."""
    if not exc.connection_invalidated and not isinstance(exc, OperationalError):
        return server_error(exc, request)
    if not _logged_retry(request, exc):
        log.error(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.environ.get("PATH_INFO"),
            type(exc.orig).__name__,
            exc.orig,
        )
    response = _error_page(
        request, 503, "Service unavailable", "The site is temporarily unavailable. Please try again in a moment."
    )
    response.headers["Retry-After"] = "5"
    return response


@exception_view_config(Exception)
def server_error(exc: Exception, request: Request) -> Response:
    if not _logged_retry(request, exc):
        log.exception("unhandled error on %s %s", request.method, request.environ.get("PATH_INFO"))
    return _error_page(request, 500, "Server error", "Something went wrong on our side; it has been logged.")

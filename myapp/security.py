"""Secure defaults for every view: signed session cookie, CSRF, allowed
methods, a guard that refuses requests for other hosts and absurd URLs, and
security headers on every response."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPBadRequest, HTTPException, HTTPMethodNotAllowed, HTTPRequestURITooLong
from pyramid.request import Request
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool, aslist

SESSION_COOKIE = "myapp_session"
SECRET_ENV = "MYAPP_SECRET"  # noqa: S105 - the variable's name, not a secret
HOSTS_ENV = "MYAPP_ALLOWED_HOSTS"
DEFAULT_METHODS = ("GET", "HEAD")
# Development's default: the site answers only when called by a local name.
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_MAX_URL_BYTES = 8192

# RFC 3986 reg-name as DNS uses it (letters, digits, hyphens; dot-separated labels),
# an IPv4 address, or a bracketed IPv6 literal; then an optional ASCII port.
_HOST = re.compile(
    r"(?P<name>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?"
    r"|\[[0-9a-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?",
    re.ASCII | re.IGNORECASE,
)

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def session_secret(settings: dict[str, Any]) -> str:
    """``MYAPP_SECRET`` from the environment, else ``myapp.secret`` from the ini."""
    secret = os.environ.get(SECRET_ENV) or settings.get("myapp.secret") or ""
    if len(secret) < 16:
        raise ConfigurationError(
            f"Set {SECRET_ENV} in the environment (or myapp.secret in the ini) to a random string "
            "of at least 16 characters; it signs the session cookie."
        )
    return secret


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


def request_guard_tween_factory(handler: Callable[[Request], Response], registry: Any) -> Callable:
    """Refuse, before any cache, routing or view, what no page can answer:
    a ``Host`` that is not this site (400: it would build links and cache keys
    for another host) and absurdly long URLs (414).

    The accepted Host is written back normalized, so everything below (URLs
    WebOb makes absolute, the page cache's key) sees only a configured name.
    """
    settings = registry.settings
    allowed = allowed_hosts(settings)
    max_url = int(settings.get("myapp.max_url_bytes", DEFAULT_MAX_URL_BYTES))

    def refuse(request: Request, exc: HTTPException) -> Response:
        # The site's own error page, still below the security-headers tween.
        return request.invoke_exception_view((type(exc), exc, None))

    def tween(request: Request) -> Response:
        environ = request.environ
        if "HTTP_HOST" in environ:  # HTTP/1.0 clients may omit it; then SERVER_NAME (ours) is used
            host = valid_host(environ["HTTP_HOST"], allowed)
            if host is None:
                return refuse(request, HTTPBadRequest("This site does not answer to that host name."))
            environ["HTTP_HOST"] = host
        if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > max_url:
            return refuse(request, HTTPRequestURITooLong(f"Addresses are limited to {max_url} bytes."))
        return handler(request)

    return tween


def require_methods(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """View deriver: a view answers GET/HEAD only, unless it says otherwise.

    ``@view_config(..., require_methods=["POST"])`` opts in to other methods;
    ``require_methods=False`` turns the check off (exception views).
    """
    methods = info.options.get("require_methods", DEFAULT_METHODS)
    if info.exception_only or methods is False:
        return view
    allowed = frozenset(methods)

    def wrapped(context: Any, request: Request) -> Any:
        if request.method not in allowed:
            raise HTTPMethodNotAllowed(headers={"Allow": ", ".join(sorted(allowed))})
        return view(context, request)

    return wrapped


require_methods.options = ("require_methods",)  # type: ignore[attr-defined]


def security_headers_tween_factory(handler: Callable[[Request], Response], registry: Any) -> Callable:
    settings = registry.settings
    # The debug toolbar's own pages need inline scripts: exempt them only where it is installed.
    toolbar = "pyramid_debugtoolbar" in aslist(settings.get("pyramid.includes", ""))
    csp = settings.get("myapp.csp", DEFAULT_CSP)
    hsts = asbool(settings.get("myapp.hsts", False))
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "interest-cohort=()",
    }
    if hsts:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"

    if csp:
        headers["Content-Security-Policy"] = csp
    names = {name.lower() for name in headers}

    def tween(request: Request) -> Response:
        response = handler(request)
        present = {name.lower() for name, _ in response.headerlist} & names
        if toolbar and request.environ.get("PATH_INFO", "").startswith("/_debug_toolbar"):
            present.add("content-security-policy")
        response.headerlist.extend((k, v) for k, v in headers.items() if k.lower() not in present)
        return response

    return tween


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    config.set_session_factory(
        SignedCookieSessionFactory(
            session_secret(settings),
            cookie_name=SESSION_COOKIE,
            httponly=True,
            samesite="Lax",
            secure=asbool(settings.get("myapp.secure_cookies", True)),
        )
    )
    config.set_default_csrf_options(require_csrf=True)
    # Before the CSRF check, so a wrong method is a 405, not a CSRF 400.
    config.add_view_deriver(require_methods, under="secured_view", over="csrf_view")
    # Every response gets the headers, the guard's refusals included.
    config.add_tween("myapp.security.security_headers_tween_factory")
    config.add_tween(
        "myapp.security.request_guard_tween_factory", under="myapp.security.security_headers_tween_factory"
    )

"""Secure defaults for every view: signed session cookie, CSRF, allowed
methods, and security headers on every response. (Refusing requests for
other hosts, absurd URLs and malformed headers is ``myapp.web.guard``.)"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPMethodNotAllowed
from pyramid.request import Request
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory
from pyramid.settings import asbool, aslist

SESSION_COOKIE = "myapp_session"
SECRET_ENV = "MYAPP_SECRET"  # noqa: S105 - the variable's name, not a secret
DEFAULT_METHODS = ("GET", "HEAD")

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
    # Outermost: every response gets the headers (myapp.web.guard's refusals included).
    config.add_tween("myapp.security.security_headers_tween_factory")

"""Secure defaults for every view: signed session cookie, CSRF, allowed
methods, and security headers on every response. (Refusing requests for
other hosts, absurd URLs and malformed headers is ``myapp.web.guard``.)"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPMethodNotAllowed
from pyramid.request import Request
from pyramid.response import Response
from pyramid.session import BaseCookieSessionFactory, JSONSerializer
from pyramid.settings import asbool, aslist
from webob.cookies import SignedSerializer

SESSION_COOKIE = "myapp_session"  # production.ini: "__Host-myapp_session" (HTTPS only, this host only)
SESSION_SECONDS = 12 * 3600  # a session idle this long ends
STRONG_SECRET_LENGTH = 32
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "placeholder", "your-secret", "secret-here", "example")
SECRET_ENV = "MYAPP_SECRET"  # noqa: S105 - the variable's name, not a secret
DEFAULT_METHODS = ("GET", "HEAD")
FORM_METHODS = ("GET", "HEAD", "POST")  # a page whose form posts back to it

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class Permission(StrEnum):
    """Every permission a view may require, in one place: a typo in a view's
    ``permission=`` is then an AttributeError at start-up, never a silent
    grant or denial. ACLs (``accounts.policy``, ``packaging.context``) grant them."""

    VIEW = "view"  # read the index (everyone, or members of a private index)
    ACCOUNT = "account"  # one's own account pages (anyone signed in)
    ADMIN = "admin"  # the site's administration
    MANAGE = "manage"  # a project's settings and collaborators (its owners)
    UPLOAD = "upload"  # add files to a project, yank (its owners and maintainers)


class SettingsError(ConfigurationError):
    """A setting the operator must fix; ``myapp.main`` reports it in one line."""


def app_secret(settings: dict[str, Any]) -> str:
    """``MYAPP_SECRET`` from the environment, else ``myapp.secret`` from the ini.

    With ``myapp.require_strong_secret`` (production.ini) it must be 32
    characters or more and not look like a placeholder."""
    secret = os.environ.get(SECRET_ENV) or settings.get("myapp.secret") or ""
    strict = asbool(settings.get("myapp.require_strong_secret", False))
    minimum = STRONG_SECRET_LENGTH if strict else 16
    how = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if len(secret) < minimum:
        raise SettingsError(
            f"Set {SECRET_ENV} in the environment (or myapp.secret in the ini) to a random string "
            f"of at least {minimum} characters ({how})."
        )
    if strict and any(word in secret.lower() for word in PLACEHOLDER_WORDS):
        raise SettingsError(f"{SECRET_ENV} looks like a placeholder; set it to a random string ({how}).")
    return secret


READ_ACCESS_ENV = "MYAPP_READ_ACCESS"
READ_ACCESS = ("public", "authenticated")


def read_access(settings: dict[str, Any]) -> str:
    """Who may read the index: ``public`` (anyone) or ``authenticated``
    (signed in, or HTTP basic auth), from ``MYAPP_READ_ACCESS`` or ``myapp.read_access``."""
    value = (os.environ.get(READ_ACCESS_ENV) or settings.get("myapp.read_access") or "public").strip().lower()
    if value not in READ_ACCESS:
        raise SettingsError(f"myapp.read_access must be one of {', '.join(READ_ACCESS)}, not {value!r}.")
    return value


REGISTRATION_ENV = "MYAPP_REGISTRATION"
REGISTRATION = ("open", "invite", "closed")


def registration(settings: dict[str, Any]) -> str:
    """Who may create an account: ``open`` (anyone), ``invite`` (only with an
    admin's invitation) or ``closed`` (nobody; admins use ``myapp-adduser``),
    from ``MYAPP_REGISTRATION`` or ``myapp.registration``. A private index is
    closed unless it says otherwise: an open door would let anyone read it."""
    default = "closed" if read_access(settings) == "authenticated" else "open"
    value = (os.environ.get(REGISTRATION_ENV) or settings.get("myapp.registration") or default).strip().lower()
    if value not in REGISTRATION:
        raise SettingsError(f"myapp.registration must be one of {', '.join(REGISTRATION)}, not {value!r}.")
    return value


def basic_auth_text(header: str) -> str | None:
    """The decoded ``username:password`` of an ``Authorization: Basic`` header,
    or None if the header is not basic auth or not base64 of UTF-8."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError
        return None


def derived_secret(settings: dict[str, Any], purpose: str) -> str:
    """A key for one use (sessions, signed links), derived from the app secret,
    so that no two uses share a key."""
    return hmac.new(app_secret(settings).encode(), purpose.encode(), hashlib.sha256).hexdigest()


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


def security_headers(settings: dict[str, Any]) -> dict[str, str]:
    """The headers every response gets (the page cache adds them to its hits too)."""
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
    return headers


class _Verbatim:
    """The bytes as they are: ``SignedSerializer`` then signs or verifies only."""

    def dumps(self, appstruct: bytes) -> bytes:
        return appstruct

    def loads(self, bstruct: bytes) -> bytes:
        return bstruct


class RememberedSignatures:
    """The session cookie's serializer: what ``SignedCookieSessionFactory``
    builds (HMAC-SHA512 under pyramid's salt, JSON inside; the same cookies),
    remembering the cookie values it has verified.

    Checking a cookie is a pure function of its bytes (a forged or altered one
    fails, and a failure is never remembered), but it was about 40 µs of every
    signed-in request: base64, the HMAC, then the payload. So the verified
    payload of the last ``size`` cookie values is kept, and each request still
    decodes its own copy of the JSON (a session is changed in place)."""

    def __init__(self, secret: str, size: int = 4096) -> None:
        self._signed = SignedSerializer(secret, "pyramid.session.", "sha512", serializer=_Verbatim())
        self._json = JSONSerializer()
        self._verified = functools.lru_cache(maxsize=size)(self._signed.loads)

    def loads(self, bstruct: bytes) -> Any:
        return self._json.loads(self._verified(bstruct))

    def dumps(self, appstruct: Any) -> bytes:
        return self._signed.dumps(self._json.dumps(appstruct))


def security_headers_tween_factory(handler: Callable[[Request], Response], registry: Any) -> Callable:
    settings = registry.settings
    # The debug toolbar's own pages need inline scripts: exempt them only where it is installed.
    toolbar = "pyramid_debugtoolbar" in aslist(settings.get("pyramid.includes", ""))
    headers = security_headers(settings)
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
    cookie_name = settings.setdefault("myapp.session_cookie_name", SESSION_COOKIE)
    config.set_session_factory(
        BaseCookieSessionFactory(
            RememberedSignatures(derived_secret(settings, "session")),
            cookie_name=cookie_name,
            httponly=True,
            samesite="Lax",
            secure=asbool(settings.get("myapp.secure_cookies", True)),
            timeout=SESSION_SECONDS,
            reissue_time=300,
        )
    )
    config.set_default_csrf_options(require_csrf=True)
    # Before the CSRF check, so a wrong method is a 405, not a CSRF 400.
    config.add_view_deriver(require_methods, under="secured_view", over="csrf_view")
    # Outermost: every response gets the headers (myapp.web.guard's refusals included).
    config.add_tween("myapp.security.security_headers_tween_factory")

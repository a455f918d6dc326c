"""Credentials by channel: which credentials a request may use depends on
the route it reached.

* **Tool routes** (``BASIC_AUTH_ROUTES``: ``/simple/``, ``/files/``,
  ``/pypi/…/json``, ``/legacy/``, ``/api/…``) take HTTP basic auth: a username
  and password, or ``__token__`` and an API token. Those that only read (GET)
  also take the session cookie, so a signed-in browser can download a file;
  those that change something (POST) take basic auth only, and refuse a
  browser's cross-site request before looking at any credential (a browser
  that saved basic credentials replays them after a 401, whichever site
  made the request).
* **Every other page** takes the session cookie only. A request there that
  carries an ``Authorization`` header is refused, so a token or a password
  sent as basic auth can never open a form, read its CSRF token, or change an
  account.
* A present but wrong ``Authorization`` header is a 401, never a fall-back to
  the session cookie.

What a basic-auth password costs: a failure counts against the same database
throttles as the sign-in form (per account and per client address), which
are consulted before any hash is computed, and is kept in the account's
history. Outcomes of recent checks are remembered in memory
(``RecentChecks``), so pip's dozens of requests for one install cost one
argon2id hash, and a repeated wrong guess costs none. A token is read from
the database on every request, unless ``myapp.token_check_seconds`` lets a
process trust a token it found live for that long (``RecentTokens``), and
a signed-in session's account (``RecentAccounts``). The
checks read on a session of their own when the request would write: on
SQLite a writing request's session begins with ``BEGIN IMMEDIATE``, and a
request whose credentials fail must never hold the write lock.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPBadRequest, HTTPClientError, HTTPException, HTTPUnauthorized
from pyramid.request import Request
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from myapp.accounts import reads, services
from myapp.accounts.models import User
from myapp.accounts.passwords import MAX_LENGTH, verify_password, waste_time_like_a_check
from myapp.data import SAFE_METHODS, write_after_response
from myapp.security import basic_auth_text
from myapp.web.bounded import BoundedMap

# Registry: names of routes that tools call; refusals there are 401 + WWW-Authenticate, not a login page.
BASIC_AUTH_ROUTES = "myapp.basic_auth_routes"
TOKEN_USERNAME = "__token__"  # noqa: S105 - the username that says "the password is a token"
CHALLENGE = 'Basic realm="myapp", charset="UTF-8"'
REFUSED = "_credentials_refused"  # request attribute: why the Authorization header was not accepted
TOOLS_ONLY = (
    "This page takes a browser sign-in only. HTTP basic auth (a password or an API token) works for "
    "the tool routes: /simple/, /files/, /pypi/…/json, /legacy/ and /api/."
)
WRONG_CREDENTIALS = "Wrong credentials: use a username and password, or __token__ and a live API token."


class TooManyAttempts(HTTPBadRequest):
    code = 429
    title = "Too Many Requests"
    explanation = "Too many attempts. Wait a while and try again."


class CrossSiteRefused(HTTPClientError):
    """403, but not ``HTTPForbidden``: the forbidden view turns that into a
    401 challenge on tool routes, and a browser answers a challenge by
    replaying the credentials it saved."""

    code = 403
    title = "Forbidden"
    explanation = "A page on another site may not make this request."


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic`` header."""
    decoded = basic_auth_text(request.headers.get("Authorization", ""))
    if decoded is None:
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def is_tool_route(request: Request) -> bool:
    route = request.matched_route
    return route is not None and route.name in request.registry.get(BASIC_AUTH_ROUTES, ())


def cross_site(request: Request) -> bool:
    """Whether a browser says this request was made by another site's page.

    ``Sec-Fetch-Site`` (every current browser sends it) must be ``same-origin``
    or ``none`` (typed by the user); ``same-site`` is another origin too (a
    sibling subdomain, another port). Without it, an ``Origin`` must be this
    site's. Tools (twine, uv, curl) send neither."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin.strip())
    # The host, not the scheme: behind a TLS proxy the app may see http for an https page.
    return parts.scheme not in ("http", "https") or parts.netloc.lower() != request.host.lower()


def unauthorized(message: str = WRONG_CREDENTIALS) -> HTTPUnauthorized:
    return HTTPUnauthorized(message, headers={"WWW-Authenticate": CHALLENGE})


# -- remembered checks ----------------------------------------------------------------


class RecentChecks:
    """Outcomes of recent password checks, in this process's memory only:
    pip sends the credentials with every request, and an argon2id check costs
    about 0.3 s of CPU and 64 MiB.

    A key holds everything whose change must end a remembered outcome at
    once: the account's id, password hash and session generation (a new
    password, a reset, disabling the account change them) and an HMAC of the
    password under a key that never leaves this process (the password itself
    is not kept). A name with no account is keyed by the name, so repeating a
    guess costs no hash whether or not the name exists. Bounded in entries
    (the oldest go first) and in age."""

    def __init__(self, seconds: float = 300, size: int = 4096) -> None:
        self.seconds = seconds
        self.size = size
        self._secret = os.urandom(32)
        self._outcomes: OrderedDict[tuple[Any, ...], tuple[bool, float]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, login: str, user: User | reads.Login | None, password: str) -> tuple[Any, ...]:
        mac = hmac.new(self._secret, password.encode(), hashlib.sha256).digest()
        if user is None:
            return ("name", login.lower(), mac)
        return ("user", user.id, user.password_hash, user.session_generation, mac)

    def get(self, key: tuple[Any, ...]) -> bool | None:
        with self._lock:
            found = self._outcomes.get(key)
            if found is None or found[1] < time.monotonic():
                return None
            return found[0]

    def put(self, key: tuple[Any, ...], ok: bool) -> None:
        with self._lock:
            self._outcomes.pop(key, None)
            self._outcomes[key] = (ok, time.monotonic() + self.seconds)
            while len(self._outcomes) > self.size:
                self._outcomes.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._outcomes.clear()


class RecentTokens:
    """Tokens this process found live in the last ``seconds``, so that pip's
    requests on a private index do not each read the token (that read is most
    of what a token adds to a request: a private simple page was about 0.7 of
    the anonymous one with it, 0.9 without).

    What that trusts: a token revoked, expired or whose account was disabled
    may still be honoured for up to ``seconds`` by a process that checked it
    just before (``myapp.token_check_seconds``: 0, the default, reads on every
    request; production.ini trusts a check for one second). A process forgets
    every token after any request of its own that may have changed something
    (``forget``), so one that revokes a token refuses it at once. Only live
    tokens are kept, never a refusal: a wrong token always reads and always
    counts against the address's attempts. A trusted token is not held back
    by its address's attempts either: only its exact secret finds it, and a
    guess cannot be that. Keyed by an HMAC of the token under a key that
    never leaves the process; bounded in bytes."""

    _ENTRY_BYTES = 400  # key, grant and account objects, roughly

    def __init__(
        self, seconds: float, max_bytes: int = 1024 * 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._secret = os.urandom(32)
        self._grants: BoundedMap[reads.TokenGrant] = BoundedMap(max_bytes, seconds, clock)

    def key(self, value: str) -> bytes | None:
        """What a token is kept under; None when no token is trusted (0 seconds: every request reads)."""
        return hmac.new(self._secret, value.encode(), hashlib.sha256).digest() if self.seconds > 0 else None

    def get(self, key: bytes | None) -> reads.TokenGrant | None:
        return self._grants.get(key) if key is not None and self.seconds > 0 else None

    def put(self, key: bytes | None, grant: reads.TokenGrant) -> None:
        if key is not None and self.seconds > 0:  # its last use is written by the request that read it
            self._grants.put(key, replace(grant, use_is_stale=False), self._ENTRY_BYTES)

    def forget(self) -> None:
        """Forget every token (after a write request: ``SecurityPolicy._forget_recent``)."""
        self._grants.clear()


# -- accounts a process trusts for a moment ----------------------------------------------------

# Moves whenever this process changes a user through the ORM (every change to what an
# Account holds is an attribute set on a User: services, views, scripts), at the flush and
# again once committed: an account read in between, before the commit, is not trusted after it.
_changes = itertools.count()
_epoch = next(_changes)
_CHANGED = "myapp.accounts_changed"  # session.info: a user changed in this transaction


def _account_changed() -> None:
    global _epoch
    _epoch = next(_changes)


@event.listens_for(User, "after_update")
def _user_updated(mapper: Any, connection: Any, user: User) -> None:
    _account_changed()
    session = object_session(user)
    if session is not None:
        session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        _account_changed()


class RecentAccounts:
    """Accounts this process read for a signed-in session in the last
    ``seconds`` (``myapp.token_check_seconds``, as for tokens): under load
    that read, with its hand-over of the GIL, was most of what signing in
    adds to a page (0.79-0.85 of the anonymous page with it, 0.85-0.94
    without, in alternating rounds).

    What that trusts: an account disabled, or a session ended (signing out
    elsewhere, a new password), by another process may be honoured for up to
    ``seconds`` here. A change this process makes is seen at once: any
    change to a user through the ORM moves ``_epoch`` (at the flush and at
    the commit), and an account kept under an older epoch is read again. The
    session cookie naming the account is signed, and its generation is
    still compared with the account's on every request."""

    _ENTRY_BYTES = 300

    def __init__(
        self, seconds: float, max_bytes: int = 1024 * 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._accounts: BoundedMap[tuple[int, reads.Account]] = BoundedMap(max_bytes, seconds, clock)

    def get(self, user_id: int) -> reads.Account | None:
        if self.seconds <= 0:
            return None
        kept = self._accounts.get(user_id)
        return kept[1] if kept is not None and kept[0] == _epoch else None

    def read(self, user_id: int, read: Callable[[int], reads.Account | None]) -> reads.Account | None:
        """The kept account, else ``read(user_id)`` (kept if active)."""
        found = self.get(user_id)
        if found is not None:
            return found
        epoch = _epoch  # as before the read: a change during it leaves the entry stale, never trusted
        found = read(user_id)
        if found is not None and found.is_active and self.seconds > 0:
            self._accounts.put(user_id, (epoch, found), self._ENTRY_BYTES)
        return found

    def forget(self) -> None:
        """Forget every account (after a write request, as tokens are)."""
        self._accounts.clear()


# -- checking basic auth ----------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """The account a username and password name, as read when they were checked."""

    account: reads.Account


@contextmanager
def _reading(request: Request) -> Iterator[Session]:
    """A session to check credentials on. A reading request's own; for a
    writing request a short one of its own, that only reads: the request's
    session would take SQLite's write lock before the first query."""
    if request.method in SAFE_METHODS:
        yield request.dbsession
        return
    with request.registry["dbsession_factory"]() as db:
        yield db


def check_basic_auth(
    request: Request, recent: RecentChecks, tokens: RecentTokens
) -> Verified | reads.TokenGrant | HTTPException:
    """The account the request's basic auth names (a token: the token and its
    account), or the refusal to answer."""
    credentials = basic_credentials(request)
    if credentials is None:
        return unauthorized("The Authorization header must be HTTP basic auth.")
    username, password = credentials
    if username == TOKEN_USERNAME:
        return _check_token(request, password, tokens)
    return _check_password(request, username, password, recent)


def _check_password(request: Request, login: str, password: str, recent: RecentChecks) -> Verified | HTTPException:
    """twine sends the password with every file: read on a raw connection
    (``reads``) like a token, with no ORM session and no transaction; the
    outcome of the hash itself is remembered (``RecentChecks``)."""
    address = request.client_addr
    checks = services.login_checks(login, address)
    bind = request.registry["dbsession_factory"].kw["bind"]
    if not reads.logins_allowed(bind, checks):  # before any hash: a throttled guess costs the server a read
        with _reading(request) as db:  # how long to wait: the throttles' own answer
            wait = services.retry_after(db, checks)
        if wait is not None:
            return TooManyAttempts(headers={"Retry-After": str(wait)})
    found = reads.login(bind, login)
    ok = False
    if len(password) <= MAX_LENGTH:  # a longer one is no account's, and costs no hash
        key = recent.key(login, found, password)
        remembered = recent.get(key)
        if remembered is None:
            remembered = _password_matches(found, password)
            recent.put(key, remembered)  # not on a hit: an outcome lasts its time, however often used
        ok = remembered
    # A password alone would get around a second factor: such users use tokens.
    if ok and found is not None and found.account.is_active and not found.has_two_factor:
        return Verified(found.account)
    _after_response(request, lambda s: services.record_failed_login(s, login, address, via="basic auth"))
    return unauthorized()


def _password_matches(found: reads.Login | None, password: str) -> bool:
    """As ``services.password_matches``: as slow for no account as for a wrong password."""
    if found is None:
        waste_time_like_a_check(password)
        return False
    return verify_password(found.password_hash, password)


def _check_token(request: Request, value: str, tokens: RecentTokens) -> reads.TokenGrant | HTTPException:
    """pip sends its token with every request: checked on a raw connection
    (``reads``), with no ORM session and no transaction, and so taking no
    write lock for a writing request either; or found among those this
    process has just checked (``RecentTokens``)."""
    key = tokens.key(value)
    trusted = tokens.get(key)
    if trusted is not None:
        return trusted
    # Only the address is counted: the name is always __token__, and counting it
    # would let anyone lock every token out.
    throttle, address = services.LOGIN_BY_ADDRESS, request.client_addr or ""
    bind = request.registry["dbsession_factory"].kw["bind"]
    check = reads.token_check(bind, value, throttle.scope, address, throttle.limit, throttle.window)
    if check.attempts_reached:  # refused before the token counts, right or wrong
        with _reading(request) as db:  # how long to wait: the throttle's own answer
            wait = services.retry_after(db, ((throttle, address),))
        if wait is not None:
            return TooManyAttempts(headers={"Retry-After": str(wait)})
    grant = check.grant
    if grant is None:
        _after_response(request, lambda s: services.count_attempts(s, ((throttle, address),)))
        return unauthorized()
    tokens.put(key, grant)
    return grant


def _after_response(request: Request, work: Callable[[Session], object]) -> None:
    # In a transaction of its own: the refused request keeps nothing, and takes no write lock.
    write_after_response(request, work, what="a failed sign-in")


# -- the view deriver -------------------------------------------------------------------


def credentials_by_channel(view: Callable[..., Any], info: Any) -> Callable[..., Any]:
    """View deriver, outside the permission check: refuses a cross-site change
    through a tool route, an ``Authorization`` header on a page (which takes
    the session only), and wrong or throttled basic auth on a tool route."""
    if info.exception_only:
        return view

    def wrapped(context: Any, request: Request) -> Any:
        tool = is_tool_route(request)
        if tool and request.method not in SAFE_METHODS and cross_site(request):
            raise CrossSiteRefused()
        if "Authorization" in request.headers:
            if not tool:
                # No challenge: a browser would prompt for credentials this page never takes.
                raise HTTPUnauthorized(TOOLS_ONLY)
            if request.identity is None:
                raise getattr(request, REFUSED, None) or unauthorized()
        return view(context, request)

    return wrapped

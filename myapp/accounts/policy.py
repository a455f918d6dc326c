"""Who is asking, and may they: Pyramid 2's security policy for the site.

A request is made by a user when either

* its session (the signed cookie) names the user and the session
  generation the user still has (logout, a password change or disabling the
  account bump it, so a copied cookie dies everywhere at once); or
* it carries HTTP basic auth: a username (or email) and password (not for
  users with two-factor sign-in), or ``__token__`` and an API token. Tools
  (pip, twine) use this.

Which of the two a request may use depends on its route: see
``myapp.accounts.channels`` (basic auth on tool routes only, the session on
pages and on reading tool routes, never one instead of the other).

Permissions come from ACLs: the root grants ``view`` (every page's default
permission) to everyone, or only to members (``MEMBERS``: active, with a
verified email) when ``myapp.read_access = authenticated``; ``account`` to
anyone signed in and ``admin`` to administrators; a project's context adds
its roles. A token scoped to one project is good for that project's context
only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.request import Request
from pyramid.security import Denied

from myapp.accounts import channels, reads, services

# Where they were defined before; other packages import them from here.
from myapp.accounts.channels import BASIC_AUTH_ROUTES as BASIC_AUTH_ROUTES
from myapp.accounts.channels import basic_credentials as basic_credentials
from myapp.accounts.models import User
from myapp.accounts.reads import Account, TokenGrant
from myapp.data import SAFE_METHODS, write_after_response
from myapp.security import Permission

SESSION_KEY = "auth"
ADMINS = "group:admins"
# Active accounts with a verified email: the readers of a private index.
MEMBERS = "group:members"


class Identity:
    """Who is asking: the account, and the API token they authenticated with
    (if they did). ``user``, the account's ORM object in the request's
    session, is loaded when first used: a page that only shows the username,
    or a tool route that only reads, opens no session for it."""

    def __init__(
        self,
        account: Account,
        token: TokenGrant | None = None,
        *,
        user: User | None = None,
        load_user: Callable[[], User | None] | None = None,
    ) -> None:
        self.account = account
        self.token = token
        if user is not None:
            self.__dict__["user"] = user
        self._load_user = load_user

    @classmethod
    def of(cls, user: User) -> Identity:
        return cls(Account.of(user), user=user)

    @cached_property
    def user(self) -> User:
        user = self._load_user() if self._load_user is not None else None
        if user is None:  # accounts are disabled, never deleted: not expected
            raise LookupError(f"user {self.account.id} has gone")
        return user

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def principals(self) -> list[str]:
        account = self.account
        found = [f"user:{account.id}"]
        if account.is_admin:
            found.append(ADMINS)
        if account.is_active and account.email_verified:
            found.append(MEMBERS)
        return found


READERS = "myapp.readers"  # registry: who may view, Everyone or MEMBERS


def site_acl(request: Request) -> list[tuple[Any, ...]]:
    """The entries every context starts with."""
    return [
        (Allow, request.registry[READERS], Permission.VIEW),
        (Allow, Authenticated, Permission.ACCOUNT),
        (Allow, ADMINS, (Permission.ADMIN, Permission.VIEW)),
    ]


class Root:
    """The site's default context."""

    def __init__(self, request: Request) -> None:
        self.request = request

    @property
    def __acl__(self) -> list[tuple[Any, ...]]:
        return site_acl(self.request)


class SecurityPolicy:
    def __init__(self, token_seconds: float = 0) -> None:
        self.recent_checks = channels.RecentChecks()
        self.recent_tokens = channels.RecentTokens(token_seconds)
        self.recent_accounts = channels.RecentAccounts(token_seconds)

    def identity(self, request: Request) -> Identity | None:
        # Once per request (on the request, not its environ: a retried request
        # is a new request with a new database session), and only once routed:
        # the route decides which credentials count.
        if not hasattr(request, "_identity"):
            if request.method not in SAFE_METHODS and self.recent_tokens.seconds > 0:
                # Once it has committed (a revoked token, a disabled account): trust nothing read before.
                request.add_finished_callback(self._forget_recent)
            request._identity = self._identify(request)
        return request._identity

    def _forget_recent(self, request: Request) -> None:
        self.recent_tokens.forget()
        self.recent_accounts.forget()

    def _identify(self, request: Request) -> Identity | None:
        tool = channels.is_tool_route(request)
        if "Authorization" in request.headers:
            # On a page the header is refused (channels.credentials_by_channel); on
            # a tool route it is the only credential: wrong is wrong, not "try the cookie".
            return self._basic_auth_identity(request) if tool else None
        if tool and request.method not in SAFE_METHODS:
            return None  # changes through tool routes take credentials sent on purpose, never a cookie
        return self._session_identity(request)

    def _session_identity(self, request: Request) -> Identity | None:
        auth = request.session.get(SESSION_KEY)
        if not isinstance(auth, dict) or not isinstance(auth.get("uid"), int):
            return None
        user_id: int = auth["uid"]
        bind = request.registry["dbsession_factory"].kw["bind"]
        account = self.recent_accounts.read(user_id, lambda uid: reads.account(bind, uid))
        if account is None or not account.is_active or account.session_generation != auth.get("gen"):
            request.session.invalidate()  # a session from before a logout: drop it
            return None
        return Identity(account, load_user=lambda: services.get_user(request.dbsession, user_id))

    def _basic_auth_identity(self, request: Request) -> Identity | None:
        verified = channels.check_basic_auth(request, self.recent_checks, self.recent_tokens)
        if isinstance(verified, TokenGrant):  # read as committed now, with its account
            if verified.use_is_stale:
                token_id = verified.id
                used = "a token's last use"
                write_after_response(request, lambda s: services.mark_token_used(s, token_id), what=used)
            user_id = verified.account.id
            return Identity(verified.account, verified, load_user=lambda: services.get_user(request.dbsession, user_id))
        if not isinstance(verified, channels.Verified):
            setattr(request, channels.REFUSED, verified)
            return None
        # Read as committed now, like a token: the ORM user only if a view uses it.
        account = verified.account
        return Identity(account, load_user=lambda: services.get_user(request.dbsession, account.id))

    def authenticated_userid(self, request: Request) -> int | None:
        identity = self.identity(request)
        return None if identity is None else identity.account.id

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        identity = self.identity(request)
        if identity is not None and identity.token is not None and identity.token.package_id is not None:
            package = getattr(context, "package", None)
            if package is None or package.id != identity.token.package_id:
                return Denied("This API token is limited to another project.")
        principals = [Everyone] if identity is None else [Everyone, Authenticated, *identity.principals]
        return ACLHelper().permits(context, principals, permission)

    def remember(self, request: Request, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        """Sign ``userid`` (a ``User``) in: a brand-new session, so nothing
        from before (a planted session, its CSRF token) survives."""
        user: User = userid
        request.session.invalidate()
        request.session[SESSION_KEY] = {"uid": user.id, "gen": user.session_generation}
        request.session.new_csrf_token()
        request._identity = Identity.of(user)
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        request.session.invalidate()
        request._identity = None
        return []


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``: never another
    host, whatever the browser would make of it (``//host``, ``/\\host``,
    ``https:``, tabs and newlines that browsers strip, encoded variants)."""
    if not target or len(target) > 2000 or not target.startswith("/"):
        return default
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in target) or not target.isascii():
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return default
    return target

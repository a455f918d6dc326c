"""What the security policy reads on every request that carries credentials,
on a raw connection (``myapp.data.ReadProbe``): no ORM session, no
transaction, the latest committed rows, so a logout, a revoked token or a
disabled account in any process counts on the very next request.

* the account a session cookie names (``account``);
* the API token a basic-auth password is, with its account, and whether the
  address has used up its attempts (``token_check``, one statement);
* the account a basic-auth username (or email) names, with its password hash
  (``login``), and whether its two throttles allow a check (``logins_allowed``):
  twine sends the password with every file it uploads.

A page that shows only the username, or a tool route that only reads, then
needs no ORM session at all for who is asking; ``Identity.user`` loads the
account's ORM object when a view uses it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from myapp.accounts.models import User
from myapp.accounts.services import TOKEN_PREFIX, token_digest
from myapp.data import ReadProbe
from myapp.data.meta import stored_time, utcnow

# A token's last use is written at most this often (a write per pip request
# would take SQLite's write lock each time); the tokens page shows it to the minute.
TOKEN_USE_PRECISION = timedelta(minutes=1)

Bind = Engine | Connection


@dataclass(frozen=True)
class Account:
    """What every request of a signed-in user needs of the account: enough
    for the permission check and the page header."""

    id: int
    username: str
    is_admin: bool
    is_active: bool
    email_verified: bool
    session_generation: int

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(user.id, user.username, user.is_admin, user.is_active, user.email_verified, user.session_generation)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Account:
        id_, username, is_admin, is_active, email_verified, generation = row
        return cls(id_, username, bool(is_admin), bool(is_active), bool(email_verified), generation)


@dataclass(frozen=True)
class TokenGrant:
    """A live API token: whose it is, what it may touch, and whether its last
    use is old enough to be written again."""

    id: int
    package_id: int | None
    account: Account
    use_is_stale: bool


# Account.from_row's columns, in its order.
_ACCOUNT = ReadProbe(
    "SELECT u.id, u.username, u.is_admin, u.is_active, u.email_verified, u.session_generation FROM users u "
    "WHERE u.id = :id"
)
# The address's attempts, and the token with its account if there is one: one row always
# (a token is checked on every pip request; two statements were a fifth of a private simple page).
_TOKEN = ReadProbe(
    "SELECT a.n, t.id, t.digest, t.package_id, (t.last_used IS NULL OR t.last_used < :stale), "
    "u.id, u.username, u.is_admin, u.is_active, u.email_verified, u.session_generation "
    "FROM (SELECT count(*) AS n FROM throttle_events WHERE scope = :scope AND key = :key AND created > :since) a "
    "LEFT JOIN (api_tokens t JOIN users u ON u.id = t.user_id) "
    "ON t.public_id = :public_id AND t.revoked IS NULL AND (t.expires IS NULL OR t.expires > :now)"
)


@dataclass(frozen=True)
class Login:
    """An account as a password check needs it: what ``RecentChecks.key`` keys
    an outcome by (id, password hash, session generation), and the account."""

    account: Account
    password_hash: str
    has_two_factor: bool

    @property
    def id(self) -> int:
        return self.account.id

    @property
    def session_generation(self) -> int:
        return self.account.session_generation


# Account.from_row's columns, then the password hash and whether a second factor is set.
_LOGIN_COLUMNS = (
    "SELECT u.id, u.username, u.is_admin, u.is_active, u.email_verified, u.session_generation, "
    "u.password_hash, u.totp_secret IS NOT NULL FROM users u "
)
_LOGIN_BY_USERNAME = ReadProbe(_LOGIN_COLUMNS + "WHERE lower(u.username) = :login")
_LOGIN_BY_EMAIL = ReadProbe(_LOGIN_COLUMNS + "WHERE lower(u.email) = :login")
# Both throttles a password attempt counts against (by name, by address), in one statement.
_TWO_ATTEMPTS = ReadProbe(
    "SELECT (SELECT count(*) FROM throttle_events WHERE scope = :scope1 AND key = :key1 AND created > :since1), "
    "(SELECT count(*) FROM throttle_events WHERE scope = :scope2 AND key = :key2 AND created > :since2)"
)


def account(bind: Bind, user_id: int) -> Account | None:
    row = _ACCOUNT.row(bind, id=user_id)
    return None if row is None else Account.from_row(row)


@dataclass(frozen=True)
class TokenCheck:
    """Whether the address has used up its attempts (the throttle's own check
    then says how long to wait), and the live token the value is, if any."""

    attempts_reached: bool
    grant: TokenGrant | None


def token_check(bind: Bind, value: str, scope: str, key: str, limit: int, window: timedelta) -> TokenCheck:
    """The live token (not revoked, not expired, its account active) with this
    value, as ``services.find_token`` finds it, and ``key``'s attempts within
    ``window`` against ``limit``: one statement."""
    prefix, _, rest = value.partition("-")
    public_id, _, secret = rest.partition("-")
    if prefix != TOKEN_PREFIX or not public_id or not secret:
        public_id = ""  # no token's: the row then has the attempts alone
    now = utcnow()
    times = {"now": stored_time(now), "stale": stored_time(now - TOKEN_USE_PRECISION)}
    row = _TOKEN.row(bind, scope=scope, key=key, since=stored_time(now - window), public_id=public_id, **times)
    if row is None:  # pragma: no cover - the attempts' count always makes a row
        return TokenCheck(False, None)
    reached = row[0] >= limit
    if row[1] is None or not hmac.compare_digest(row[2], token_digest(secret)):
        return TokenCheck(reached, None)
    grant = TokenGrant(row[1], row[3], Account.from_row(row[5:]), bool(row[4]))
    return TokenCheck(reached, grant if grant.account.is_active else None)


def login(bind: Bind, value: str) -> Login | None:
    """The account whose username (or, with an ``@``, email) is ``value``,
    whatever its case, as ``services.find_user_by_login`` finds it."""
    probe = _LOGIN_BY_EMAIL if "@" in value else _LOGIN_BY_USERNAME
    row = probe.row(bind, login=value.lower())
    return None if row is None else Login(Account.from_row(row[:6]), row[6], bool(row[7]))


def logins_allowed(bind: Bind, checks: tuple[tuple[Any, str], ...]) -> bool:
    """Whether neither of a password attempt's two throttles (``services.login_checks``:
    ``Throttle`` and key) has reached its limit (if one has, the throttle's own check
    says how long to wait)."""
    (first, key1), (second, key2) = checks
    now = utcnow()
    row = _TWO_ATTEMPTS.row(
        bind,
        scope1=first.scope,
        key1=key1,
        since1=stored_time(now - first.window),
        scope2=second.scope,
        key2=key2,
        since2=stored_time(now - second.window),
    )
    return row is None or (row[0] < first.limit and row[1] < second.limit)

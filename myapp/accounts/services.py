"""Queries and changes about accounts. Views call these; they never build SQL.

Every function takes the session first, like ``myapp.packaging.services``.
Changes are flushed, never committed: the request's transaction decides.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from myapp.accounts.models import ApiToken, EventTag, Invitation, RecoveryCode, ThrottleEvent, User, UserEvent
from myapp.accounts.passwords import hash_password, needs_rehash, verify_password, waste_time_like_a_check
from myapp.data.meta import utcnow

TOKEN_PREFIX = "myapp"  # noqa: S105 - the public start of every token
RECOVERY_CODES = 10
INVITATION_DAYS = 7
SELF_SERVICE_DAYS = 3  # as long as an email verification link


# -- users ------------------------------------------------------------------------


def get_user(db: Session, user_id: int) -> User | None:
    return db.get(User, user_id)


def find_user(db: Session, username: str) -> User | None:
    """By username, whatever its case."""
    return db.scalar(select(User).where(func.lower(User.username) == username.lower()))


def find_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.email) == email.lower()))


def find_user_by_login(db: Session, login: str) -> User | None:
    """By username, or by email when ``login`` has an ``@``."""
    return find_user_by_email(db, login) if "@" in login else find_user(db, login)


def create_user(
    db: Session, *, username: str, email: str, password: str, is_admin: bool = False, ip_address: str | None = None
) -> User:
    user = User(username=username, email=email, password_hash=hash_password(password), is_admin=is_admin)
    db.add(user)
    db.flush()
    record_event(db, user, EventTag.REGISTERED, ip_address)
    return user


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s. As slow for no user as for a wrong
    password, so timing does not tell which names exist."""
    if user is None:
        waste_time_like_a_check(password)
        return False
    return verify_password(user.password_hash, password)


def authenticate(db: Session, login: str, password: str) -> User | None:
    """The active user with this username (or email) and password, else None.
    Takes the same time whether or not the user exists. A hash made with old
    parameters is replaced."""
    user = find_user_by_login(db, login)
    if user is None or not password_matches(user, password) or not user.is_active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def end_sessions(user: User) -> None:
    """Every session the user has, in every process, stops working."""
    user.session_generation += 1


def set_password(db: Session, user: User, password: str, tag: EventTag, ip_address: str | None) -> None:
    """A new password: other sessions end, and reset links made before die."""
    user.password_hash = hash_password(password)
    user.password_changed = utcnow()
    end_sessions(user)
    record_event(db, user, tag, ip_address)


def set_email(db: Session, user: User, email: str, ip_address: str | None) -> None:
    old = user.email
    user.email, user.email_verified = email, False
    record_event(db, user, EventTag.EMAIL_CHANGED, ip_address, old=old, new=email)


def set_active(db: Session, user: User, active: bool, *, by: User, ip_address: str | None) -> None:
    user.is_active = active
    if not active:
        end_sessions(user)
    record_event(db, user, EventTag.ENABLED if active else EventTag.DISABLED, ip_address, by=by.username)


def all_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(func.lower(User.username))))


# -- events -----------------------------------------------------------------------


def record_event(db: Session, user: User, tag: EventTag, ip_address: str | None, **detail: Any) -> UserEvent:
    event = UserEvent(user_id=user.id, tag=tag, ip_address=ip_address, detail=detail)
    db.add(event)
    return event


def recent_events(db: Session, user: User, limit: int = 50) -> list[UserEvent]:
    stmt = select(UserEvent).where(UserEvent.user_id == user.id).order_by(UserEvent.id.desc()).limit(limit)
    return list(db.scalars(stmt))


# -- throttle ---------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` attempts per key within ``window``, counted in the database."""

    scope: str
    limit: int = 10
    window: timedelta = timedelta(minutes=15)

    def retry_after(self, db: Session, key: str) -> int | None:
        """Seconds until another attempt is allowed, or None if it is now."""
        since = utcnow() - self.window
        count, oldest = db.execute(
            select(func.count(), func.min(ThrottleEvent.created)).where(
                ThrottleEvent.scope == self.scope, ThrottleEvent.key == key, ThrottleEvent.created > since
            )
        ).one()
        if count < self.limit:
            return None
        return max(1, int((oldest + self.window - utcnow()).total_seconds()) + 1)

    def count(self, db: Session, key: str) -> None:
        """One more attempt; attempts older than the window are forgotten."""
        db.execute(
            delete(ThrottleEvent).where(
                ThrottleEvent.scope == self.scope,
                ThrottleEvent.key == key,
                ThrottleEvent.created <= utcnow() - self.window,
            )
        )
        db.add(ThrottleEvent(scope=self.scope, key=key[:255]))
        db.flush()


# Password guesses, wherever they come from (the sign-in form, HTTP basic auth),
# count against the same two limits: per account and per client address.
LOGIN_BY_USER = Throttle("login-user")
LOGIN_BY_ADDRESS = Throttle("login-address")


def retry_after(db: Session, checks: tuple[tuple[Throttle, str], ...]) -> int | None:
    """Seconds until every one of ``checks`` allows another attempt, or None if they do now."""
    waits = [wait for throttle, key in checks if (wait := throttle.retry_after(db, key)) is not None]
    return max(waits, default=None)


def count_attempts(db: Session, checks: tuple[tuple[Throttle, str], ...]) -> None:
    """One more attempt against each of ``checks``."""
    for throttle, key in checks:
        throttle.count(db, key)


def login_checks(login: str, address: str | None) -> tuple[tuple[Throttle, str], ...]:
    """The throttles a password attempt for ``login`` from ``address`` counts against."""
    return ((LOGIN_BY_USER, login.lower()), (LOGIN_BY_ADDRESS, address or ""))


def record_failed_login(db: Session, login: str, address: str | None, **detail: Any) -> None:
    """A wrong password for ``login``: counted by both throttles, and kept in
    the account's history if there is such an account."""
    count_attempts(db, login_checks(login, address))
    user = find_user_by_login(db, login)
    if user is not None:
        record_event(db, user, EventTag.LOGIN_FAILED, address, **detail)


# -- API tokens -------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_digest(secret: str) -> str:
    """What is stored of an API token's secret."""
    return _digest(secret)


def create_token(
    db: Session,
    user: User,
    name: str,
    *,
    package_id: int | None = None,
    expires: datetime | None = None,
    ip_address: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its value, which is shown once and never stored."""
    public_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    token = ApiToken(
        public_id=public_id, digest=_digest(secret), user_id=user.id, name=name, package_id=package_id, expires=expires
    )
    db.add(token)
    db.flush()
    record_event(db, user, EventTag.TOKEN_CREATED, ip_address, token=name)
    return token, f"{TOKEN_PREFIX}-{public_id}-{secret}"


def find_token(db: Session, value: str) -> ApiToken | None:
    """The live token (not revoked, not expired, its user active) with this value."""
    prefix, _, rest = value.partition("-")
    public_id, _, secret = rest.partition("-")
    if prefix != TOKEN_PREFIX or not public_id or not secret:
        return None
    token = db.scalar(select(ApiToken).where(ApiToken.public_id == public_id))
    if token is None or not hmac.compare_digest(token.digest, _digest(secret)):
        return None
    if token.revoked is not None or (token.expires is not None and token.expires <= utcnow()):
        return None
    return token if token.user.is_active else None


def tokens_of(db: Session, user: User) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(None)).order_by(ApiToken.id)
    return list(db.scalars(stmt))


def revoke_token(db: Session, user: User, token_id: int, ip_address: str | None) -> ApiToken | None:
    token = db.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked.is_(None))
    )
    if token is not None:
        token.revoked = utcnow()
        record_event(db, user, EventTag.TOKEN_REVOKED, ip_address, token=token.name)
    return token


def mark_token_used(db: Session, token_id: int) -> None:
    db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used=utcnow()))


# -- two-factor recovery codes ------------------------------------------------------


def add_two_factor(db: Session, user: User, secret: str, step: int, ip_address: str | None) -> list[str]:
    """Turn two-factor sign-in on with a confirmed secret; returns the recovery codes."""
    user.totp_secret, user.totp_last_step = secret, step
    record_event(db, user, EventTag.TWO_FACTOR_ADDED, ip_address)
    return new_recovery_codes(db, user)


def remove_two_factor(db: Session, user: User, ip_address: str | None) -> None:
    user.totp_secret, user.totp_last_step = None, None
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    record_event(db, user, EventTag.TWO_FACTOR_REMOVED, ip_address)


def new_recovery_codes(db: Session, user: User) -> list[str]:
    """Ten fresh single-use codes (the old ones stop working), shown once."""
    db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [secrets.token_hex(8) for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(user_id=user.id, digest=_digest(code)) for code in codes)
    db.flush()
    return codes


def use_recovery_code(db: Session, user: User, code: str, ip_address: str | None) -> bool:
    """Spend one unused code; True if ``code`` was one."""
    digest = _digest(code.strip().lower().replace(" ", "").replace("-", ""))
    spent = db.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.digest == digest, RecoveryCode.used.is_(None))
        .values(used=utcnow())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_event(db, user, EventTag.RECOVERY_CODE_USED, ip_address)
    return True


def unused_recovery_codes(db: Session, user: User) -> int:
    stmt = select(func.count()).where(RecoveryCode.user_id == user.id, RecoveryCode.used.is_(None))
    return db.scalar(stmt) or 0


# -- invitations ------------------------------------------------------------------------


def create_invitation(
    db: Session,
    email: str,
    *,
    by: User | None,
    days: int = INVITATION_DAYS,
    self_service: bool = False,
    ip_address: str | None = None,
) -> tuple[Invitation, str]:
    """A new invitation for ``email`` and the secret for its link, which is
    sent once and never stored. Earlier pending invitations for the same
    address are revoked: one live link per person. ``by`` is None from the
    command line and for ``self_service`` (asked for on the register page)."""
    now = utcnow()
    revoke_pending_invitations(db, email)
    secret = secrets.token_urlsafe(32)
    invitation = Invitation(
        digest=_digest(secret),
        email=email,
        invited_by_id=by.id if by else None,
        expires=now + timedelta(days=days),
        self_service=self_service,
    )
    db.add(invitation)
    db.flush()
    if by is not None:
        record_event(db, by, EventTag.INVITATION_SENT, ip_address, email=email)
    return invitation, secret


def revoke_pending_invitations(db: Session, email: str) -> None:
    """No pending link for ``email`` works any more."""
    db.execute(
        update(Invitation)
        .where(
            func.lower(Invitation.email) == email.lower(), Invitation.used_at.is_(None), Invitation.revoked.is_(None)
        )
        .values(revoked=utcnow())
    )


def find_invitation(db: Session, secret: str) -> Invitation | None:
    """The pending (unused, unrevoked, unexpired) invitation whose link carries ``secret``."""
    if not secret or len(secret) > 100:
        return None
    invitation = db.scalar(select(Invitation).where(Invitation.digest == _digest(secret)))
    return invitation if invitation is not None and invitation.state(utcnow()) == "pending" else None


def use_invitation(db: Session, invitation: Invitation) -> bool:
    """Spend the invitation; True for the one transaction that does. The
    conditional UPDATE is the lock: on PostgreSQL a concurrent one waits for
    this transaction and then matches no row; SQLite has one writer at a time."""
    now = utcnow()
    spent = db.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.used_at.is_(None),
            Invitation.revoked.is_(None),
            Invitation.expires > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return False
    invitation.used_at = now
    return True


def revoke_invitation(db: Session, invitation_id: int, *, by: User, ip_address: str | None) -> Invitation | None:
    """Revoke a pending invitation (None if there is no such pending one)."""
    invitation = db.get(Invitation, invitation_id)
    if invitation is None or invitation.state(utcnow()) != "pending":
        return None
    invitation.revoked = utcnow()
    record_event(db, by, EventTag.INVITATION_REVOKED, ip_address, email=invitation.email)
    return invitation


def recent_invitations(db: Session, limit: int = 200) -> list[Invitation]:
    return list(db.scalars(select(Invitation).order_by(Invitation.id.desc()).limit(limit)))

"""People: users, what happened to their accounts, API tokens, two-factor
recovery codes, and the throttle's counts. (A user's roles on projects are
``myapp.packaging.models.Role``: packaging builds on accounts, not the reverse.)"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, false, func, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from myapp.data.meta import Base, UTCDateTime, str_enum, utcnow

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class User(Base):
    """An account. Usernames and emails are unique whatever their case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    password_hash: Mapped[str] = mapped_column(String(255))
    password_changed: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Every signed-in session carries the generation it began in; logout, a
    # password change and disabling the account bump it, so copies of old
    # cookies stop working at once, in every process.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The last TOTP time step accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list[UserEvent]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True, order_by="desc(UserEvent.id)"
    )

    @property
    def has_two_factor(self) -> bool:
        return self.totp_secret is not None

    def __repr__(self) -> str:
        return f"<User {self.username!r}>"


Index("uq_users_username_lower", func.lower(User.username), unique=True)
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class EventTag(enum.StrEnum):
    """What happened to an account (shown on /account, kept for operators)."""

    LOGIN = "login"
    LOGIN_FAILED = "login failed"
    LOGOUT = "logout"
    REGISTERED = "registered"
    # Someone tried to register with this account's address (its owner is told by mail).
    REGISTRATION_ATTEMPTED = "registration attempted"
    INVITATION_SENT = "invitation sent"
    INVITATION_REVOKED = "invitation revoked"
    EMAIL_VERIFIED = "email verified"
    EMAIL_CHANGED = "email changed"
    PASSWORD_CHANGED = "password changed"  # noqa: S105 - an event name
    PASSWORD_RESET_REQUESTED = "password reset requested"  # noqa: S105 - an event name
    PASSWORD_RESET = "password reset"  # noqa: S105 - an event name
    TWO_FACTOR_ADDED = "two-factor added"
    TWO_FACTOR_REMOVED = "two-factor removed"
    RECOVERY_CODE_USED = "recovery code used"
    TOKEN_CREATED = "token created"  # noqa: S105 - an event name
    TOKEN_REVOKED = "token revoked"  # noqa: S105 - an event name
    ROLE_ADDED = "role added"
    ROLE_CHANGED = "role changed"
    ROLE_REMOVED = "role removed"
    DISABLED = "disabled"
    ENABLED = "enabled"
    CONFIRM_FAILED = "confirmation failed"  # sudo mode: a wrong password or code


class UserEvent(Base):
    __tablename__ = "user_events"
    __table_args__ = (Index("ix_user_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tag: Mapped[EventTag] = mapped_column(str_enum(EventTag, 40))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Small, non-secret facts: a token's name, a project, the old address.
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    user: Mapped[User] = relationship(back_populates="events")


class ApiToken(Base):
    """A named credential for tools (``__token__`` + the token in HTTP basic
    auth). Only a SHA-256 digest of its secret part is kept: the token is 256
    random bits, so a fast hash is as safe as a slow one and costs nothing
    per request."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The token's public part, for lookup: myapp-<public_id>-<secret>.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # None: the whole account; else only this project (packages.id).
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class RecoveryCode(Base):
    """One of a user's single-use two-factor recovery codes (a digest of it)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    used: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ThrottleEvent(Base):
    """One counted attempt (a failed login, a reset request, a wrong code),
    kept in the database so that every app process shares the count."""

    __tablename__ = "throttle_events"
    __table_args__ = (Index("ix_throttle_events_scope_key_created", "scope", "key", "created"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invitation(Base):
    """A link to register with one address: an administrator's invitation, or
    (``self_service``, when registration is open) the one mailed to whoever
    asked to join with that address. Only a SHA-256 digest of the link's
    secret is kept (256 random bits: a fast hash is as safe as a slow one).
    Good once, until ``expires``, unless revoked."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime)
    self_service: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])
    used_by: Mapped[User | None] = relationship(foreign_keys=[used_by_id])

    def state(self, now: datetime) -> str:
        """``used``, ``revoked``, ``expired`` or ``pending``."""
        if self.used_at is not None:
            return "used"
        if self.revoked is not None:
            return "revoked"
        return "expired" if self.expires <= now else "pending"


# Registering with an address revokes its pending links: found whatever the case.
Index("ix_invitations_email_lower", func.lower(Invitation.email))

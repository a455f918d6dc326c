"""Signed, time-limited links in emails (itsdangerous).

A link carries a small signed payload; it is good until it expires and only
while what it was made for still holds: a password-reset link names a digest
of the user's current password hash, so it dies once used and whenever the
password changes; a verification link names the address it verifies.
"""

from __future__ import annotations

import hashlib
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from myapp.accounts.models import User

RESET_SECONDS = 3600
VERIFY_SECONDS = 3 * 24 * 3600


class LinkSigner:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=purpose)

    def _sign(self, purpose: str, payload: dict[str, Any]) -> str:
        return self._serializer(purpose).dumps(payload)

    def _load(self, purpose: str, token: str, max_age: int) -> dict[str, Any] | None:
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age)
        except BadSignature:  # also SignatureExpired
            return None
        return payload if isinstance(payload, dict) else None

    # -- password reset -------------------------------------------------------

    @staticmethod
    def _password_mark(user: User) -> str:
        return hashlib.sha256(user.password_hash.encode()).hexdigest()[:20]

    def reset_token(self, user: User) -> str:
        return self._sign("reset-password", {"uid": user.id, "pw": self._password_mark(user)})

    def reset_user_id(self, token: str) -> tuple[int, str] | None:
        """``(user id, password mark)`` from a live reset token."""
        payload = self._load("reset-password", token, RESET_SECONDS)
        if payload is None or not isinstance(payload.get("uid"), int) or not isinstance(payload.get("pw"), str):
            return None
        return payload["uid"], payload["pw"]

    def reset_matches(self, user: User, mark: str) -> bool:
        return mark == self._password_mark(user)

    # -- email verification ---------------------------------------------------

    def verify_token(self, user: User) -> str:
        return self._sign("verify-email", {"uid": user.id, "email": user.email})

    def verified_address(self, token: str) -> tuple[int, str] | None:
        payload = self._load("verify-email", token, VERIFY_SECONDS)
        if payload is None or not isinstance(payload.get("uid"), int) or not isinstance(payload.get("email"), str):
            return None
        return payload["uid"], payload["email"]

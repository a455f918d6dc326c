"""Password hashing (argon2id, via argon2-cffi) and strength rules (zxcvbn).

``argon2.PasswordHasher``'s defaults are RFC 9106's second recommendation:
argon2id, 64 MiB, 3 passes, 4 lanes, above OWASP's floor (19 MiB, 2 passes).
A hash made with other parameters is replaced at the next sign-in.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; this only bounds the work per request
MIN_SCORE = 3  # zxcvbn: 0 (guessable in a few tries) .. 4 (very unguessable)

hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher.check_needs_rehash(password_hash)


@functools.cache
def _dummy_hash(by: PasswordHasher) -> str:
    return by.hash("a password that no one has")


def waste_time_like_a_check(password: str) -> None:
    """Verify against a hash no password matches: an unknown user costs the
    same time as a wrong password, so timing does not tell which names exist."""
    verify_password(_dummy_hash(hasher), password)


def password_problem(password: str, *, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why ``password`` may not be used, or None. ``user_inputs`` (username,
    email) count against it, as zxcvbn does."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    result = zxcvbn(password[:100], user_inputs=[u for u in user_inputs if u])
    if result["score"] < MIN_SCORE:
        advice = result["feedback"]["warning"] or "It is too easy to guess."
        return f"{advice.rstrip('.')}. Try a few unrelated words, or let a password manager make one."
    return None

"""Time-based one-time passwords (pyotp) and the QR code that carries the
secret to an authenticator app (segno, as inline SVG: no script, no request)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

import pyotp
import segno
from markupsafe import Markup

from myapp.accounts.models import User

ISSUER = "myapp"
# Accept the previous and next 30-second code too: phones' clocks drift.
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_code_svg(uri: str) -> Markup:
    # segno writes the SVG itself from the URI's bits; nothing user-controlled is markup.
    # A viewBox and no fixed size, so CSS scales it to its box; a white quiet zone
    # of 4 modules, as the QR standard asks (scanners struggle with less).
    svg = segno.make(uri, error="m").svg_inline(border=4, omitsize=True, light="#fff", title="Two-factor set-up code")
    return Markup(svg)  # noqa: S704  # nosec B704


def matching_step(secret: str, code: str, *, after: int | None = None, now: float | None = None) -> int | None:
    """The time step whose code is ``code`` (within the drift), if it is later
    than ``after``: a code is accepted once, never replayed."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(datetime.now(UTC) if now is None else datetime.fromtimestamp(now, UTC))
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def accept_code(user: User, code: str) -> bool:
    """Check a code from the user's app and remember its step."""
    if user.totp_secret is None:
        return False
    step = matching_step(user.totp_secret, code, after=user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True

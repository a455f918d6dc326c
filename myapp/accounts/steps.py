"""What the account views share: a form bound to the request, a failed
form's 400, the throttles around a guess, the second factor, and signing in.

``views``, ``membership`` (registering) and ``confirm`` (sudo mode) all use
these; none of them is a view.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPForbidden, HTTPSeeOther
from pyramid.request import Request
from pyramid.security import NO_PERMISSION_REQUIRED, remember
from wtforms import Form

from myapp.accounts import services, sudo, two_factor
from myapp.accounts.channels import TooManyAttempts
from myapp.accounts.forms import FormData
from myapp.accounts.models import EventTag, User
from myapp.accounts.policy import safe_next
from myapp.accounts.services import Throttle
from myapp.data import write_after_response
from myapp.data.meta import utcnow

TWO_FACTOR_BY_USER = Throttle("two-factor-user")
# Signing in (and out, and recovering) must work for those who may not read yet.
PUBLIC = NO_PERMISSION_REQUIRED


def signed_in_user(request: Request) -> User:
    identity = request.identity
    if identity is None:  # views with permission=Permission.ACCOUNT never get here anonymously
        raise HTTPForbidden()
    return identity.user


def bound_form(request: Request, cls: type[Form], **kwargs: Any) -> Form:
    return cls(FormData(request.POST) if request.method == "POST" else None, **kwargs)


def failed(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    request.response.status = 400
    return values


def check_throttles(request: Request, *checks: tuple[Throttle, str]) -> None:
    wait = services.retry_after(request.dbsession, checks)
    if wait is not None:
        raise TooManyAttempts(headers={"Retry-After": str(wait)})


def count_attempts(request: Request, *checks: tuple[Throttle, str]) -> None:
    """Count failed attempts even though the request itself keeps nothing."""

    write_after_response(request, lambda db: services.count_attempts(db, checks), what="a throttle count")


def second_factor_accepted(request: Request, user: User, code: str) -> bool:
    """A code from the authenticator app, or an unused recovery code (which is then used up)."""
    return two_factor.accept_code(user, code) or services.use_recovery_code(
        request.dbsession, user, code, request.client_addr
    )


def sign_in(request: Request, user: User, came_from: str | None) -> HTTPSeeOther:
    user.last_login = utcnow()
    services.record_event(request.dbsession, user, EventTag.LOGIN, request.client_addr)
    remember(request, user)
    sudo.mark_confirmed(request, user)  # signing in is a confirmation
    return HTTPSeeOther(location=safe_next(came_from, request.route_path("account")))

"""The sudo-mode page: give the password (and a code, with two-factor
sign-in on) again, then go back to what you were doing (``myapp.accounts.sudo``
decides which views ask for it).

Wrong answers count against the same throttles as signing in, and are
recorded in the account's security history.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPForbidden, HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from myapp.accounts import services, sudo
from myapp.accounts.forms import ConfirmForm
from myapp.accounts.models import EventTag
from myapp.accounts.passwords import verify_password
from myapp.accounts.policy import safe_next
from myapp.accounts.steps import (
    TWO_FACTOR_BY_USER,
    bound_form,
    check_throttles,
    count_attempts,
    failed,
    second_factor_accepted,
)
from myapp.data import write_after_response
from myapp.security import FORM_METHODS, Permission


@view_config(
    route_name="account.confirm",
    renderer="myapp:templates/accounts/confirm.jinja2",
    permission=Permission.ACCOUNT,
    require_methods=FORM_METHODS,
)
def confirm(request: Request) -> Any:
    if not sudo.signed_in_session(request):
        raise HTTPForbidden("Sign in with the form on the login page first: only a signed-in session can confirm.")
    user = request.identity.user
    target = safe_next(request.params.get("next"), request.route_path("account"))
    form = bound_form(request, ConfirmForm)
    minutes = max(1, round(request.registry.settings[sudo.SECONDS_SETTING] / 60))
    values = {"form": form, "next": target, "two_factor": user.has_two_factor, "minutes": minutes}
    if request.method != "POST":
        return values
    checks = list(services.login_checks(user.username, request.client_addr))
    if user.has_two_factor:
        checks.append((TWO_FACTOR_BY_USER, str(user.id)))
    check_throttles(request, *checks)
    if not (form.validate() and verify_password(user.password_hash, form.password.data)):
        form.password.errors = ["That is not your password."]
    elif user.has_two_factor and not second_factor_accepted(request, user, form.code.data or ""):
        form.code.errors = ["That code is not right (or was already used)."]
    else:
        sudo.mark_confirmed(request, user)
        return HTTPSeeOther(location=target)
    count_attempts(request, *checks)
    user_id, address = user.id, request.client_addr

    def record(db: Any) -> None:
        found = services.get_user(db, user_id)
        if found is not None:
            services.record_event(db, found, EventTag.CONFIRM_FAILED, address)

    write_after_response(request, record, what="a failed confirmation")
    return failed(request, values)

"""Register, sign in (with a second factor), sign out, recover, and manage
one's own account. Views are thin: forms check input, ``services`` change
things, templates show them.

A form that fails answers 400 with the messages beside its fields (and what
was typed, except passwords); nothing the request did is kept, except what
must be (throttle counts and failed sign-ins), which ``write_after_response``
records in a transaction of its own.
"""

from __future__ import annotations

from typing import Any

from pyramid.authorization import ACLDenied
from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden, HTTPFound, HTTPNotFound, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import Denied, forget, remember
from pyramid.view import forbidden_view_config, view_config
from wtforms import Form

from myapp.accounts import services, sudo, two_factor
from myapp.accounts.forms import (
    AppCodeForm,
    ChangeEmailForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    FormData,
    LoginForm,
    ResetPasswordForm,
    TwoFactorForm,
)
from myapp.accounts.links import LinkSigner
from myapp.accounts.mail import send_mail
from myapp.accounts.models import EventTag, User
from myapp.accounts.passwords import verify_password
from myapp.accounts.policy import BASIC_AUTH_ROUTES, MEMBERS, safe_next
from myapp.accounts.recovery import request_reset
from myapp.accounts.services import Throttle
from myapp.accounts.steps import (
    PUBLIC,
    TWO_FACTOR_BY_USER,
    bound_form,
    check_throttles,
    count_attempts,
    failed,
    second_factor_accepted,
    sign_in,
    signed_in_user,
)
from myapp.data import write_after_response
from myapp.data.meta import utcnow
from myapp.security import FORM_METHODS, Permission
from myapp.web.views import error_page

RESET_BY_USER = Throttle("reset-user")
RESET_BY_ADDRESS = Throttle("reset-address")
PENDING_KEY = "pending-2fa"  # session: who passed the password step, waiting for a code
PENDING_SECONDS = 300
SETUP_KEY = "setup-2fa"  # session: the secret being set up, until the first code confirms it


def _links(request: Request) -> LinkSigner:
    return request.registry["link_signer"]


@forbidden_view_config()
def forbidden(exc: HTTPForbidden, request: Request) -> Response:
    """Tools (routes in ``BASIC_AUTH_ROUTES``): 401 asking for basic auth, or
    403 with the reason. People: sign in first, then come back; or, signed
    in, a 403 page."""
    route = request.matched_route.name if request.matched_route else None
    result = getattr(exc, "result", None)
    refused = not_a_member(request, getattr(result, "permission", None))  # signed in, not yet verified
    if refused is not None:
        return refused
    # Our own denials say why (a token's scope); an ACL's says how the ACL is built: not shown.
    denial = str(result) if isinstance(result, Denied) and not isinstance(result, ACLDenied) else "You may not do that."
    if route in request.registry.get(BASIC_AUTH_ROUTES, ()):
        if request.identity is None:
            response = error_page(
                request,
                401,
                "Unauthorized",
                "Sign in with HTTP basic auth: a username and password, or __token__ and an API token.",
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="myapp", charset="UTF-8"'
            return response
        return error_page(request, 403, "Forbidden", denial)
    if request.identity is None and request.method in ("GET", "HEAD"):
        return HTTPSeeOther(location=request.route_path("account.login", _query={"came_from": request.path_qs}))
    return error_page(request, 403, "Forbidden", denial)


def _send_verification(request: Request, user: User) -> None:
    token = _links(request).verify_token(user)
    send_mail(request, user, "verify", link=request.route_url("account.verify", _query={"token": token}))


def not_a_member(request: Request, permission: str | None) -> Response | None:
    """For a signed-in user refused ``view`` for want of membership (an
    unverified address): a page saying to verify it (for tools, a 403 saying
    so). None when that is not why."""
    identity = request.identity
    if identity is None or permission != Permission.VIEW or MEMBERS in identity.principals:
        return None
    route = request.matched_route.name if request.matched_route else None
    message = f"Only members with a verified email address may read this index. Verify {identity.user.email} first."
    if route in request.registry.get(BASIC_AUTH_ROUTES, ()):
        return error_page(request, 403, "Forbidden", message)
    response = render_to_response("myapp:templates/accounts/verify_first.jinja2", {"user": identity.user}, request)
    response.status = 403
    response.cache_control = "no-store"
    return response


@view_config(
    route_name="account.login",
    permission=PUBLIC,
    renderer="myapp:templates/accounts/login.jinja2",
    require_methods=FORM_METHODS,
)
def login(request: Request) -> Any:
    came_from = request.params.get("came_from", "")
    form = bound_form(request, LoginForm)
    values = {"form": form, "came_from": safe_next(came_from, ""), "notices": request.session.pop_flash("login")}
    if request.method != "POST":
        return values
    if not form.validate():
        return failed(request, values)
    db = request.dbsession
    check_throttles(request, *services.login_checks(form.username.data, request.client_addr))
    user = services.authenticate(db, form.username.data, form.password.data)
    if user is None:
        _record_failed_login(request, form.username.data)
        form.password.errors = ["Wrong username or password."]
        return failed(request, values)
    if user.has_two_factor:
        request.session[PENDING_KEY] = {"uid": user.id, "gen": user.session_generation, "at": utcnow().timestamp()}
        return HTTPSeeOther(location=request.route_path("account.two_factor", _query={"came_from": came_from}))
    return sign_in(request, user, came_from)


def _record_failed_login(request: Request, login: str) -> None:
    address = request.client_addr
    write_after_response(request, lambda db: services.record_failed_login(db, login, address), what="a failed sign-in")


@view_config(
    route_name="account.two_factor",
    permission=PUBLIC,
    renderer="myapp:templates/accounts/two_factor_login.jinja2",
    require_methods=FORM_METHODS,
)
def two_factor_login(request: Request) -> Any:
    """The second step of signing in: a code from the app, or a recovery code."""
    pending = request.session.get(PENDING_KEY)
    db = request.dbsession
    user = services.get_user(db, pending["uid"]) if isinstance(pending, dict) else None
    fresh = isinstance(pending, dict) and utcnow().timestamp() - pending.get("at", 0) < PENDING_SECONDS
    if user is None or not fresh or not user.is_active or user.session_generation != pending.get("gen"):
        request.session.pop(PENDING_KEY, None)
        return HTTPSeeOther(location=request.route_path("account.login"))
    came_from = request.params.get("came_from", "")
    form = bound_form(request, TwoFactorForm)
    values = {"form": form, "came_from": safe_next(came_from, "")}
    if request.method != "POST":
        return values
    checks = ((TWO_FACTOR_BY_USER, str(user.id)),)
    check_throttles(request, *checks)
    code = (form.code.data or "") if form.validate() else ""
    if not second_factor_accepted(request, user, code):
        count_attempts(request, *checks)
        form.code.errors = ["That code is not right (or was already used)."]
        return failed(request, values)
    return sign_in(request, user, came_from)


@view_config(route_name="account.logout", permission=PUBLIC, require_methods=["POST"])
def logout(request: Request) -> Any:
    identity = request.identity
    if identity is not None:
        # Every copy of every session of this user stops working, everywhere.
        services.end_sessions(identity.user)
        services.record_event(request.dbsession, identity.user, EventTag.LOGOUT, request.client_addr)
    forget(request)
    return HTTPSeeOther(location=request.route_path("home"))


@view_config(route_name="account", renderer="myapp:templates/accounts/account.jinja2", permission=Permission.ACCOUNT)
def account(request: Request) -> dict[str, Any]:
    return _account_page(request)


def _account_page(request: Request, **forms: Form) -> dict[str, Any]:
    user = signed_in_user(request)
    return {
        "user": user,
        "password_form": forms.get("password_form") or ChangePasswordForm(),
        "email_form": forms.get("email_form") or ChangeEmailForm(),
        "events": services.recent_events(request.dbsession, user),
        "notices": request.session.pop_flash("account"),
    }


def _current_password_given(form: Form, user: User) -> bool:
    """Changes to the account itself ask for the password again."""
    if verify_password(user.password_hash, form.current_password.data or ""):
        return True
    form.current_password.errors = ["That is not your current password."]
    return False


@view_config(
    route_name="account.password",
    renderer="myapp:templates/accounts/account.jinja2",
    permission=Permission.ACCOUNT,
    require_methods=["POST"],
    confirm=True,
)
def change_password(request: Request) -> Any:
    user = signed_in_user(request)
    form = ChangePasswordForm(FormData(request.POST))
    form.user_inputs = (user.username, user.email)
    if not all([form.validate(), _current_password_given(form, user)]):  # both run: every message shows
        return failed(request, _account_page(request, password_form=form))
    services.set_password(request.dbsession, user, form.password.data, EventTag.PASSWORD_CHANGED, request.client_addr)
    remember(request, user)  # this session goes on (with the new generation); all others end
    sudo.mark_confirmed(request, user)  # it gave the current password just now
    request.session.flash("Your password was changed. Every other session has been signed out.", "account")
    return HTTPSeeOther(location=request.route_path("account"))


@view_config(
    route_name="account.email",
    renderer="myapp:templates/accounts/account.jinja2",
    permission=Permission.ACCOUNT,
    require_methods=["POST"],
    confirm=True,
)
def change_email(request: Request) -> Any:
    user = signed_in_user(request)
    db = request.dbsession
    form = ChangeEmailForm(FormData(request.POST))
    valid = all([form.validate(), _current_password_given(form, user)])  # both run: every message shows
    other = services.find_user_by_email(db, form.email.data) if form.email.data else None
    if other is not None and other.id != user.id:
        form.email.errors = [*form.email.errors, "An account with that email already exists."]
        valid = False
    if not valid:
        return failed(request, _account_page(request, email_form=form))
    old = user.email
    services.set_email(db, user, form.email.data, request.client_addr)
    send_mail(request, user, "email_changed", to=old, new=user.email)
    _send_verification(request, user)
    request.session.flash(f"We sent a link to {user.email} to verify it.", "account")
    return HTTPSeeOther(location=request.route_path("account"))


@view_config(route_name="account.verify", permission=PUBLIC, renderer="myapp:templates/accounts/message.jinja2")
def verify_email(request: Request) -> Any:
    found = _links(request).verified_address(request.GET.get("token", ""))
    db = request.dbsession
    user = services.get_user(db, found[0]) if found else None
    if user is None or user.email.lower() != found[1].lower():  # type: ignore[index]
        request.response.status = 400
        return {"title": "Link not valid", "message": "This link is not valid, has expired, or is for another address."}
    if not user.email_verified:
        user.email_verified = True
        services.record_event(db, user, EventTag.EMAIL_VERIFIED, request.client_addr, email=user.email)
    return {"title": "Email verified", "message": f"Thank you: {user.email} is verified."}


@view_config(
    route_name="account.verify_resend", permission=Permission.ACCOUNT, require_methods=["POST"], renderer="string"
)
def resend_verification(request: Request) -> Any:
    user = signed_in_user(request)
    if not user.email_verified:
        _send_verification(request, user)
        request.session.flash(f"We sent a new link to {user.email}.", "account")
    return HTTPSeeOther(location=request.route_path("account"))


@view_config(
    route_name="account.forgot",
    permission=PUBLIC,
    renderer="myapp:templates/accounts/forgot.jinja2",
    require_methods=FORM_METHODS,
)
def forgot_password(request: Request) -> Any:
    """Sends a reset link if the account exists; says the same, in the same
    time, either way (``myapp.accounts.recovery``)."""
    form = bound_form(request, ForgotPasswordForm)
    if request.method != "POST":
        return {"form": form, "sent": False}
    if not form.validate():
        return failed(request, {"form": form, "sent": False})
    login = form.username.data
    checks = ((RESET_BY_USER, login.lower()), (RESET_BY_ADDRESS, request.client_addr or ""))
    check_throttles(request, *checks)
    count_attempts(request, *checks)
    # The same work for every login: whether the account exists is decided by the job.
    request_reset(request, login)
    return {"form": form, "sent": True}


@view_config(
    route_name="account.reset",
    permission=PUBLIC,
    renderer="myapp:templates/accounts/reset.jinja2",
    require_methods=FORM_METHODS,
)
def reset_password(request: Request) -> Any:
    token = request.params.get("token", "")
    found = _links(request).reset_user_id(token)
    db = request.dbsession
    user = services.get_user(db, found[0]) if found else None
    if user is None or not user.is_active or not _links(request).reset_matches(user, found[1]):  # type: ignore[index]
        request.response.status = 400
        return {"form": None, "token": "", "invalid": True}
    form = bound_form(request, ResetPasswordForm)
    form.user_inputs = (user.username, user.email)
    values = {"form": form, "token": token, "invalid": False}
    if request.method != "POST":
        return values
    if not form.validate():
        return failed(request, values)
    services.set_password(db, user, form.password.data, EventTag.PASSWORD_RESET, request.client_addr)
    forget(request)
    request.session.flash("Your password was reset. Sign in with the new one.", "login")
    return HTTPSeeOther(location=request.route_path("account.login"))


@view_config(
    route_name="account.two_factor_setup",
    renderer="myapp:templates/accounts/two_factor.jinja2",
    permission=Permission.ACCOUNT,
    require_methods=FORM_METHODS,
    confirm=True,
)
def two_factor_setup(request: Request) -> Any:
    """Turn two-factor sign-in on (scan, confirm with a code, keep the recovery
    codes) or off (with a current code)."""
    user = signed_in_user(request)
    db = request.dbsession
    request.response.cache_control = "no-store"  # a secret or recovery codes are on this page
    form = bound_form(request, AppCodeForm)
    values: dict[str, Any] = {"user": user, "form": form, "codes": None, "qr": None, "secret": None}
    if user.has_two_factor:
        values["remaining"] = services.unused_recovery_codes(db, user)
        if request.method == "POST":
            if not (form.validate() and two_factor.accept_code(user, form.code.data)):
                form.code.errors = ["That code is not right (or was already used)."]
                return failed(request, values)
            services.remove_two_factor(db, user, request.client_addr)
            request.session.flash("Two-factor sign-in is off.", "account")
            return HTTPSeeOther(location=request.route_path("account"))
        return values
    secret = request.session.get(SETUP_KEY) or two_factor.new_secret()
    request.session[SETUP_KEY] = secret
    uri = two_factor.provisioning_uri(secret, user.username)
    values.update(qr=two_factor.qr_code_svg(uri), secret=secret)
    if request.method == "POST":
        step = two_factor.matching_step(secret, form.code.data or "") if form.validate() else None
        if step is None:
            form.code.errors = ["That code is not right. Check the time on your phone and try the next one."]
            return failed(request, values)
        del request.session[SETUP_KEY]
        codes = services.add_two_factor(db, user, secret, step, request.client_addr)
        values.update(codes=codes, qr=None, secret=None)
    return values


@view_config(
    route_name="admin.users", renderer="myapp:templates/accounts/admin_users.jinja2", permission=Permission.ADMIN
)
def admin_users(request: Request) -> dict[str, Any]:
    return {"users": services.all_users(request.dbsession)}


@view_config(route_name="admin.user_active", permission=Permission.ADMIN, require_methods=["POST"])
def admin_set_active(request: Request) -> Any:
    db = request.dbsession
    user = services.find_user(db, request.matchdict["username"])
    if user is None:
        raise HTTPNotFound("No such user.")
    active = request.POST.get("active") == "true"
    if user.id == signed_in_user(request).id and not active:
        raise HTTPBadRequest("You cannot suspend your own account.")
    services.set_active(db, user, active, by=signed_in_user(request), ip_address=request.client_addr)
    return HTTPFound(location=request.route_path("admin.users"))

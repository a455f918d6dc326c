"""Who may join: registering (``myapp.registration`` = open, invite or
closed) and administrators' invitations. (Who may read is the policy's
``MEMBERS``; what a signed-in non-member sees is ``views.forbidden``'s.)

Every account is made through a single-use link mailed to its address: an
administrator's invitation, or, when registration is open, a link that
anyone may ask for on the register page by giving an address. Asking with
an address that already has an account answers exactly the same ("check
your inbox") after the same work (a row written, a mail sent): its owner is
told by mail instead. So the form tells nobody who has an account, no
account exists before its address is proven, and nothing (not even a
username) is reserved by asking. Usernames are chosen on the link's form,
and a taken one is said to be taken: usernames are public.
"""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config
from sqlalchemy.exc import IntegrityError

from myapp.accounts import services
from myapp.accounts.forms import InvitationForm, InvitedRegisterForm
from myapp.accounts.mail import send_mail
from myapp.accounts.models import EventTag, Invitation
from myapp.accounts.services import Throttle
from myapp.accounts.steps import PUBLIC, bound_form, check_throttles, count_attempts, failed, sign_in, signed_in_user
from myapp.data.meta import utcnow
from myapp.security import FORM_METHODS, Permission

REGISTRATION = "myapp.registration"  # registry: open, invite or closed
REGISTER_TEMPLATE = "myapp:templates/accounts/register.jinja2"
# Each request mails someone: a client address may ask a few times, not flood inboxes.
REGISTER_BY_ADDRESS = Throttle("register-address")


def _mode(request: Request) -> str:
    return request.registry[REGISTRATION]


# -- registering ----------------------------------------------------------------------


@view_config(route_name="account.register", permission=PUBLIC, renderer=REGISTER_TEMPLATE, require_methods=FORM_METHODS)
def register(request: Request) -> Any:
    """The register page. With a link's ``token``: choose a username and a
    password. Otherwise, when registration is open: an address to mail such
    a link to; when it is not, a plain word saying so (and a refusal of the
    form, whatever was posted)."""
    if "token" in request.params:
        return _register_invited(request, request.params["token"])
    mode = _mode(request)
    if mode != "open":
        if request.method == "POST":
            request.response.status = 403
        return {"mode": mode}
    form = bound_form(request, InvitationForm)
    if request.method != "POST":
        return {"mode": mode, "form": form}
    if not form.validate():
        return failed(request, {"mode": mode, "form": form})
    checks = ((REGISTER_BY_ADDRESS, request.client_addr or ""),)
    check_throttles(request, *checks)
    count_attempts(request, *checks)
    db = request.dbsession
    owner = services.find_user_by_email(db, form.email.data)
    if owner is None:
        invitation, secret = services.create_invitation(
            db, form.email.data, by=None, days=services.SELF_SERVICE_DAYS, self_service=True
        )
        _mail_link(request, invitation, secret, "register_link")
    else:
        # An address with an account needs no link (and this does the other path's UPDATE: the same work).
        services.revoke_pending_invitations(db, form.email.data)
        services.record_event(db, owner, EventTag.REGISTRATION_ATTEMPTED, request.client_addr)
        login, reset = request.route_url("account.login"), request.route_url("account.forgot")
        send_mail(request, owner, "register_taken", login=login, reset=reset)
    return {"mode": mode, "sent_to": form.email.data}


def _mail_link(request: Request, invitation: Invitation, secret: str, template: str, **values: Any) -> None:
    link = request.route_url("account.register", _query={"token": secret})
    send_mail(request, None, template, to=invitation.email, invitation=invitation, link=link, **values)


def _register_invited(request: Request, token: str) -> Any:
    """Register through a link (an invitation, or one asked for): the address
    is the link's, and the link having come to that inbox verifies it."""
    db = request.dbsession
    invitation = services.find_invitation(db, token) if _mode(request) != "closed" else None
    if invitation is None:
        request.response.status = 400
        return {"mode": _mode(request), "invalid": True}
    form = bound_form(request, InvitedRegisterForm)
    form.user_inputs = (invitation.email,)
    values = {"mode": _mode(request), "form": form, "invitation": invitation, "token": token}
    if request.method != "POST":
        return values
    valid = form.validate_new_account(db)
    if services.find_user_by_email(db, invitation.email) is not None:  # only the inbox's owner has the link
        form.username.errors = [*form.username.errors, f"{invitation.email} has an account already: log in instead."]
        valid = False
    if not valid:
        return failed(request, values)
    if not services.use_invitation(db, invitation):  # another request used it a moment ago
        request.response.status = 400
        return {"mode": _mode(request), "invalid": True}
    try:
        # Two links used at once with one username both pass the check above; the unique index
        # refuses the second, in a savepoint, so this answer is a form error and not a 500.
        with db.begin_nested():
            user = services.create_user(
                db,
                username=form.username.data,
                email=invitation.email,
                password=form.password.data,
                ip_address=request.client_addr,
            )
    except IntegrityError:
        form.username.errors = ["That username was taken a moment ago. Choose another."]
        return failed(request, values)  # (a 400: the invitation is not spent)
    user.email_verified = True
    invitation.used_by_id = user.id
    via = "a link asked for" if invitation.self_service else "an invitation"
    services.record_event(db, user, EventTag.EMAIL_VERIFIED, request.client_addr, email=user.email, via=via)
    return sign_in(request, user, None)


# -- administrators: invitations --------------------------------------------------------


@view_config(
    route_name="admin.invitations",
    permission=Permission.ADMIN,
    renderer="myapp:templates/accounts/admin_invitations.jinja2",
    require_methods=FORM_METHODS,
)
def admin_invitations(request: Request) -> Any:
    """Invite someone by email; see pending, used, expired and revoked invitations."""
    form = bound_form(request, InvitationForm)
    db = request.dbsession
    if request.method == "POST":
        if form.validate() and _may_invite(request, form):
            invitation, secret = services.create_invitation(
                db, form.email.data, by=signed_in_user(request), ip_address=request.client_addr
            )
            _mail_link(request, invitation, secret, "invitation", inviter=signed_in_user(request))
            request.session.flash(f"Invitation sent to {invitation.email}.", "admin")
            return HTTPSeeOther(location=request.route_path("admin.invitations"))
        request.response.status = 400
    return {
        "form": form,
        "mode": _mode(request),
        "invitations": services.recent_invitations(db),
        "now": utcnow(),
        "notices": request.session.pop_flash("admin"),
    }


def _may_invite(request: Request, form: InvitationForm) -> bool:
    if _mode(request) == "closed":
        form.email.errors = ["Registration is closed, so an invitation could not be used. Set it to invite first."]
        return False
    if services.find_user_by_email(request.dbsession, form.email.data) is not None:
        form.email.errors = ["That address has an account already."]
        return False
    return True


@view_config(route_name="admin.invitation_revoke", permission=Permission.ADMIN, require_methods=["POST"])
def admin_revoke_invitation(request: Request) -> Any:
    found: Invitation | None = services.revoke_invitation(
        request.dbsession, int(request.matchdict["id"]), by=signed_in_user(request), ip_address=request.client_addr
    )
    if found is None:
        raise HTTPNotFound("No such pending invitation.")
    request.session.flash(f"The invitation for {found.email} is revoked.", "admin")
    return HTTPSeeOther(location=request.route_path("admin.invitations"))

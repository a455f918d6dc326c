"""People: accounts, signing in and out, recovery, two factors, API tokens'
credentials, and who may do what (the security policy)."""

from pyramid.authorization import Everyone
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.viewderivers import INGRESS

from myapp.accounts.channels import credentials_by_channel
from myapp.accounts.links import LinkSigner
from myapp.accounts.membership import REGISTRATION
from myapp.accounts.policy import MEMBERS, READERS, Root, SecurityPolicy
from myapp.accounts.recovery import RESET_JOB, answer_reset_request
from myapp.security import Permission, derived_secret, read_access, registration


def can_browse(request: Request, ask: bool = True) -> bool:
    """May this visitor read the index? The header offers Browse and Search
    only then: on a private index they would lead back to the login page.
    Asked of the root, whatever page this is. A public index needs no
    question; a private one asks the database, so with ``ask=False`` (a
    server error's page, which asks the database nothing) the answer is no."""
    if request.registry[READERS] == Everyone:
        return True
    return ask and bool(request.has_permission(Permission.VIEW, Root(request)))


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    config.set_security_policy(SecurityPolicy(float(settings.get("myapp.token_check_seconds", 0) or 0)))
    # The policy answers by route (basic auth on tool routes only): pyramid_tm must
    # not ask it before routing, to annotate its transaction. That question also
    # came before the exception views, so a database failure there was no 503 page.
    settings["tm.annotate_user"] = False
    # Outermost: a cross-site change or a refused credential never reaches the permission check.
    config.add_view_deriver(credentials_by_channel, over="secured_view", under=INGRESS)
    config.set_root_factory(Root)
    # Every view needs "view" unless it says otherwise: a private index is private by default.
    config.registry[READERS] = MEMBERS if read_access(settings) == "authenticated" else Everyone
    config.registry[REGISTRATION] = registration(settings)
    config.add_request_method(can_browse, "can_browse")
    config.set_default_permission(Permission.VIEW)
    config.registry["link_signer"] = LinkSigner(derived_secret(settings, "links"))
    config.include("myapp.accounts.mail")
    config.include("myapp.accounts.sudo")  # confirm=... on views: the password again for sensitive actions
    config.add_job_handler(RESET_JOB, answer_reset_request)

    config.add_route("account", "/account")
    config.add_route("account.register", "/account/register")
    config.add_route("account.login", "/account/login")
    config.add_route("account.two_factor", "/account/login/two-factor")
    config.add_route("account.logout", "/account/logout")
    config.add_route("account.password", "/account/password")
    config.add_route("account.email", "/account/email")
    config.add_route("account.verify", "/account/verify-email")
    config.add_route("account.verify_resend", "/account/verify-email/send")
    config.add_route("account.forgot", "/account/forgot-password")
    config.add_route("account.reset", "/account/reset-password")
    config.add_route("account.two_factor_setup", "/account/two-factor")
    config.add_route("admin.users", "/admin/users")
    config.add_route("admin.user_active", "/admin/users/{username}/active")
    config.add_route("admin.invitations", "/admin/invitations")
    config.add_route("admin.invitation_revoke", r"/admin/invitations/{id:\d{1,9}}/revoke")

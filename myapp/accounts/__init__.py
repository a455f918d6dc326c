"""People: accounts, signing in and out, recovery, two factors, API tokens'
credentials, and who may do what (the security policy)."""

from pyramid.authorization import Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.viewderivers import INGRESS

from myapp.accounts.channels import credentials_by_channel
from myapp.accounts.links import LinkSigner
from myapp.accounts.policy import READERS, Root, SecurityPolicy
from myapp.security import derived_secret, read_access


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    config.set_security_policy(SecurityPolicy())
    # The policy answers by route (basic auth on tool routes only): pyramid_tm must
    # not ask it before routing, to annotate its transaction. That question also
    # came before the exception views, so a database failure there was no 503 page.
    settings["tm.annotate_user"] = False
    # Outermost: a cross-site change or a refused credential never reaches the permission check.
    config.add_view_deriver(credentials_by_channel, over="secured_view", under=INGRESS)
    config.set_root_factory(Root)
    # Every view needs "view" unless it says otherwise: a private index is private by default.
    config.registry[READERS] = Authenticated if read_access(settings) == "authenticated" else Everyone
    config.set_default_permission("view")
    config.registry["link_signer"] = LinkSigner(derived_secret(settings, "links"))
    config.include("myapp.accounts.mail")
    config.include("myapp.accounts.sudo")  # confirm=... on views: the password again for sensitive actions

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

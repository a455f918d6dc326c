"""People: accounts, signing in and out, recovery, two factors, API tokens'
credentials, and who may do what (the security policy)."""

from pyramid.authorization import Authenticated, Everyone
from pyramid.config import Configurator

from myapp.accounts.links import LinkSigner
from myapp.accounts.policy import READERS, Root, SecurityPolicy
from myapp.accounts.recovery import RESET_JOB, answer_reset_request
from myapp.security import derived_secret, read_access


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    config.set_security_policy(SecurityPolicy())
    config.set_root_factory(Root)
    # Every view needs "view" unless it says otherwise: a private index is private by default.
    config.registry[READERS] = Authenticated if read_access(settings) == "authenticated" else Everyone
    config.set_default_permission("view")
    config.registry["link_signer"] = LinkSigner(derived_secret(settings, "links"))
    config.include("myapp.accounts.mail")
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

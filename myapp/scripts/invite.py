"""``myapp-invite CONFIG EMAIL [--days N] [--base-url URL]``: invite someone
to register, from the command line. The invitation is mailed as the admin
page at /admin/invitations mails it (queued, sent by the worker), and the
link is printed too. The link works once, until it expires; registering
through it verifies the address. Needs ``myapp.registration`` to be
``invite`` or ``open``."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlencode

from pyramid.request import Request
from pyramid.scripting import prepare
from webob.multidict import MultiDict

from myapp.accounts import services
from myapp.accounts.forms import FormData, InvitationForm
from myapp.accounts.mail import queue_mail, render_mail
from myapp.config import configure
from myapp.scripts import OPTIONS, ScriptError, command, load_settings, managed_session
from myapp.security import registration

BASE_URL_SETTING = "myapp.base_url"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="myapp-invite", description=__doc__, parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. production.ini")
    parser.add_argument("email", help="the address to invite")
    parser.add_argument("--days", type=int, default=services.INVITATION_DAYS, help="days the link works (default 7)")
    parser.add_argument(
        "--base-url", help=f"the site's address, e.g. https://packages.example.org (else {BASE_URL_SETTING})"
    )
    return parser.parse_args(argv)


@command("myapp-invite")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    form = InvitationForm(FormData(MultiDict(email=args.email)))
    if not form.validate():
        raise ScriptError(f"email: {form.email.errors[0]}")
    if not 1 <= args.days <= 365:
        raise ScriptError("--days must be from 1 to 365")
    settings = load_settings(args.config_uri)
    base = (args.base_url or settings.get(BASE_URL_SETTING) or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ScriptError(f"say where the site is: --base-url https://your.host, or {BASE_URL_SETTING} in the ini")
    if registration(settings) == "closed":
        raise ScriptError("registration is closed, so an invitation could not be used; set myapp.registration = invite")
    with managed_session() as db:
        if services.find_user_by_email(db, form.email.data) is not None:
            raise ScriptError(f"{form.email.data} has an account already")
        invitation, secret = services.create_invitation(db, form.email.data, by=None, days=args.days)
        link = f"{base}/account/register?{urlencode({'token': secret})}"
        _queue_invitation(settings, base, db, invitation, link)
        print(f"Invitation for {invitation.email}, good once until {invitation.expires:%Y-%m-%d %H:%M} UTC,")
        print(f"mailed (the worker sends it), and here to pass on yourself:\n{link}")
    return 0


def _queue_invitation(settings: dict, base: str, db: Any, invitation: Any, link: str) -> None:
    """The same mail the admin page sends, rendered with the site's own
    templates, queued in this command's transaction."""
    app = configure(settings).make_wsgi_app()
    env = prepare(request=Request.blank("/", base_url=base), registry=app.registry)
    try:
        message = render_mail(
            env["request"], None, "invitation", to=invitation.email, invitation=invitation, link=link, inviter=None
        )
        queue_mail(db, message)
    finally:
        env["closer"]()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

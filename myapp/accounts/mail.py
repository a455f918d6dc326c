"""Mail to users, rendered from templates and sent through pyramid_mailer.

``request.mailer`` joins the request's transaction: a message goes out only
if the request commits. Settings: ``mail.host``, ``mail.port``,
``mail.username``, ``mail.password`` (or ``MYAPP_MAIL_PASSWORD``),
``mail.tls``, ``mail.default_sender``. With ``myapp.mail_folder`` set
(development.ini), messages are written there as ``.eml`` files instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.renderers import render
from pyramid.request import Request
from pyramid_mailer import get_mailer
from pyramid_mailer.interfaces import IMailer
from pyramid_mailer.mailer import DebugMailer
from pyramid_mailer.message import Message

from myapp.accounts.models import User

DEFAULT_SENDER = "myapp <noreply@localhost>"


def send_mail(request: Request, user: User | None, template: str, *, to: str | None = None, **values: Any) -> None:
    """Render ``templates/accounts/email/<template>.txt.jinja2`` (its first line
    is the subject) and send it to the user (or ``to``; someone invited has
    no account yet, so only ``to``)."""
    recipient = to or (user.email if user is not None else None)
    if not recipient:
        raise ValueError("send_mail needs a user or an address (to=)")
    text = render(f"myapp:templates/accounts/email/{template}.txt.jinja2", {"user": user, **values}, request=request)
    subject, _, body = text.partition("\n")
    sender = request.registry.settings["mail.default_sender"]
    message = Message(subject=subject.strip(), sender=sender, recipients=[recipient], body=body.strip() + "\n")
    request.mailer.send(message)


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    settings.setdefault("mail.default_sender", DEFAULT_SENDER)
    if os.environ.get("MYAPP_MAIL_PASSWORD"):
        settings["mail.password"] = os.environ["MYAPP_MAIL_PASSWORD"]
    folder = settings.get("myapp.mail_folder")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        config.registry.registerUtility(DebugMailer(folder), IMailer)
        config.add_request_method(get_mailer, "mailer", reify=True)
    else:
        config.include("pyramid_mailer")

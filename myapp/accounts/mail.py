"""Mail to users, rendered from templates and delivered through the job queue.

``send_mail`` renders the message at once (so a template error fails the
request that asked for it) and queues a ``mail`` job in the request's
transaction: the message exists only if the request commits, and no request
waits for, or fails because of, the mail server. A worker
(``myapp.data.jobs``) delivers it with pyramid_mailer's ``send_immediately``,
and when the server is down or refuses, tries again with backoff (10 s,
20 s, 40 s, ... up to an hour; 15 attempts, about half a day) before giving up.

Settings: ``mail.host``, ``mail.port``, ``mail.username``, ``mail.password``
(or ``MYAPP_MAIL_PASSWORD``), ``mail.tls``, ``mail.default_sender``. With
``myapp.mail_folder`` set (development.ini, tests), the worker writes each
message there as an ``.eml`` file instead of sending it.
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
from pyramid_mailer.mailer import DebugMailer, Mailer
from pyramid_mailer.message import Message

from myapp.accounts.models import User
from myapp.data.jobs import JobContext, enqueue

DEFAULT_SENDER = "myapp <noreply@localhost>"
MAIL_JOB = "mail"
MAIL_ATTEMPTS = 15


def send_mail(request: Request, user: User | None, template: str, *, to: str | None = None, **values: Any) -> None:
    """Render ``templates/accounts/email/<template>.txt.jinja2`` (its first line
    is the subject) and queue it for the user (or ``to``); it is sent after
    the request commits, never if it fails."""
    queue_mail(request.dbsession, render_mail(request, user, template, to=to, **values))


def render_mail(
    request: Request, user: User | None, template: str, *, to: str | None = None, **values: Any
) -> dict[str, Any]:
    """The message as the mail job's payload: sender, recipients, subject, body."""
    text = render(f"myapp:templates/accounts/email/{template}.txt.jinja2", {"user": user, **values}, request=request)
    subject, _, body = text.partition("\n")
    recipient = to or (user.email if user is not None else None)
    if not recipient:
        raise ValueError("a mail needs a recipient")
    return {
        "sender": request.registry.settings["mail.default_sender"],
        "recipients": [recipient],
        "subject": subject.strip(),
        "body": body.strip() + "\n",
    }


def queue_mail(dbsession: Any, message: dict[str, Any]) -> None:
    enqueue(dbsession, MAIL_JOB, message, max_attempts=MAIL_ATTEMPTS)


def deliver(ctx: JobContext, message: dict[str, Any]) -> None:
    """The ``mail`` job: hand the message to the mail server now (an error
    means the queue tries again later)."""
    get_mailer(ctx.registry).send_immediately(Message(**message), fail_silently=False)


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    settings.setdefault("mail.default_sender", DEFAULT_SENDER)
    if os.environ.get("MYAPP_MAIL_PASSWORD"):
        settings["mail.password"] = os.environ["MYAPP_MAIL_PASSWORD"]
    folder = settings.get("myapp.mail_folder")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        mailer: Any = DebugMailer(folder)
    else:
        mailer = Mailer.from_settings(settings)
    config.registry.registerUtility(mailer, IMailer)
    config.add_job_handler(MAIL_JOB, deliver)

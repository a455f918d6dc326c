"""Password reset requests, answered by the job queue so that the answer to
the form reveals nothing.

The form's request does the same work whoever is asked about: it checks the
throttles and queues one ``accounts.reset`` job with what was typed. The job
looks the account up: an active account gets a reset link; an email address
that no account uses gets a note saying so (so whoever typed it learns why
no link came, and only the owner of that address learns it); a username
that no account uses gets nothing. Whether an account exists never changes
the status, body or time of the form's answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from email_validator import EmailNotValidError, validate_email
from pyramid.request import Request

from myapp.accounts import services
from myapp.accounts.mail import queue_mail, render_mail
from myapp.accounts.models import EventTag
from myapp.data.jobs import JobContext, enqueue

RESET_JOB = "accounts.reset"


def request_reset(request: Request, login: str) -> None:
    """Queue the lookup for ``login`` (a username or an email address)."""
    payload = {"login": login, "reset_url": request.route_url("account.reset"), "ip": request.client_addr}
    enqueue(request.dbsession, RESET_JOB, payload)


def answer_reset_request(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The ``accounts.reset`` job: queue the mail that fits (see the module's doc)."""
    db, login = ctx.dbsession, payload["login"]
    # The mail's links point where the form was: render as a request to that URL would.
    request = Request.blank(payload["reset_url"])
    request.registry = ctx.registry
    user = services.find_user_by_login(db, login)
    if user is not None and user.is_active:
        token = ctx.registry["link_signer"].reset_token(user)
        link = f"{payload['reset_url']}?{urlencode({'token': token})}"
        queue_mail(db, render_mail(request, user, "reset", link=link))
        services.record_event(db, user, EventTag.PASSWORD_RESET_REQUESTED, payload["ip"])
    elif user is None and _is_address(login):
        queue_mail(db, render_mail(request, None, "reset_unknown", to=login, address=login))


def _is_address(login: str) -> bool:
    try:
        validate_email(login, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True

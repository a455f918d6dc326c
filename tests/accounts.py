"""Helpers for the account tests: make users, fill in forms, read the mail."""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import webtest
from sqlalchemy.orm import Session

from myapp.accounts import services
from myapp.accounts.models import User
from myapp.data.jobs import Outcome, Worker

PASSWORD = "violet kettle harbour 93"
NEW_PASSWORD = "amber lantern orchard 57"
LINK = re.compile(r"http://\S+")


def unique(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_user(db: Session, username: str | None = None, *, password: str = PASSWORD, **fields: Any) -> User:
    username = username or unique()
    user = services.create_user(db, username=username, email=f"{username}@example.org", password=password)
    for name, value in fields.items():
        setattr(user, name, value)
    db.flush()
    return user


def form_for(page: webtest.TestResponse, action: str) -> webtest.forms.Form:
    for form in page.forms.values():
        if form.action == action:
            return form
    raise AssertionError(f"no form posting to {action} on the page")


def submit(
    app: webtest.TestApp,
    path: str,
    fields: dict[str, str],
    *,
    action: str | None = None,
    status: Any = "*",
    extra_environ: dict[str, str] | None = None,
) -> webtest.TestResponse:
    """Open ``path``, fill in its form (the one posting to ``action``, by default
    the path itself) as a browser would, CSRF token included, and submit it."""
    page = app.get(path, extra_environ=extra_environ or {})
    form = form_for(page, action or path.split("?")[0])
    for name, value in fields.items():
        form[name] = value
    return form.submit(status=status, expect_errors=True, extra_environ=extra_environ or {})


def log_in(app: webtest.TestApp, username: str, password: str = PASSWORD, **kw: Any) -> webtest.TestResponse:
    return submit(app, "/account/login", {"username": username, "password": password}, **kw)


def log_out(app: webtest.TestApp) -> webtest.TestResponse:
    return form_for(app.get("/account"), "/account/logout").submit(status=303)


def signed_in_as(app: webtest.TestApp) -> str | None:
    """The username the page header shows, or None for an anonymous visitor."""
    link = app.get("/").html.select_one('.account-nav a[href="/account"]')
    return link.text if link else None


def deliver_mail(app: webtest.TestApp) -> Counter[Outcome]:
    """Run the jobs the app queued (its mail among them), as ``myapp-worker
    --drain`` would, inside the test's transaction (the dbsession fixture binds
    ``DbSession.factory`` to it)."""
    return Worker(app.app.registry).drain()


def mails_to(source: webtest.TestApp | Path, address: str, *, wait: float = 10) -> list[email.message.EmailMessage]:
    """Messages the development mailer wrote for ``address``, oldest first.

    ``source`` is the app under test (its queued mail is delivered first), or
    the mail folder of a live server, whose worker thread delivers it: then
    wait up to ``wait`` seconds for a first message."""
    if isinstance(source, webtest.TestApp):
        deliver_mail(source)
        return _read_mail(Path(source.app.registry.settings["myapp.mail_folder"]), address)
    deadline = time.monotonic() + wait
    while not (found := _read_mail(source, address)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _read_mail(folder: Path, address: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if address in str(message["To"]):
            found.append(message)
    return found


class Inbox:
    """An aiosmtpd handler that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def link_in(message: email.message.EmailMessage) -> str:
    """The path and query of the one link in a message."""
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    url = LINK.search(body)
    assert url, body
    parts = urlsplit(url.group())
    return f"{parts.path}?{parts.query}"


def register(app: webtest.TestApp, name: str | None = None) -> str:
    """Register as a newcomer does: give an address, open the link mailed to
    it, choose a username and a password (which signs in). Returns the username."""
    name = name or unique()
    address = f"{name}@example.org"
    res = submit(app, "/account/register", {"email": address})
    assert res.status_int == 200 and "Check your inbox" in res.text, res.text
    link = link_in(mails_to(app, address)[-1])
    res = submit(app, link, {"username": name, "password": PASSWORD}, action="/account/register")
    assert res.status_int == 303, res.text
    return name

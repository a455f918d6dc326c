"""Sudo mode, on SQLite and PostgreSQL: each sensitive action asks for the
password (and a code, with two-factor sign-in on) again once the last
confirmation is older than ``myapp.sudo_seconds``; it is not carried out
until then, and works right after confirming. Wrong answers are 400,
throttled and recorded; a request without a signed-in session never confirms.

The clock is ``myapp.accounts.sudo._now``: the tests move it forward rather
than wait ten minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from sqlalchemy import select

from myapp.accounts import services as accounts
from myapp.accounts import sudo
from myapp.accounts.models import ApiToken, UserEvent
from myapp.accounts.passwords import verify_password
from myapp.packaging import roles, services
from myapp.packaging.models import RoleName
from tests.accounts import NEW_PASSWORD, PASSWORD, form_for, log_in, make_user
from tests.factories import make_package
from tests.test_accounts import basic

STALE = sudo.DEFAULT_SECONDS + 1


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def later(self, seconds: float = STALE) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sudo, "_now", lambda: time.time() + clock.offset)
    return clock


@pytest.fixture
def owner(dbsession):
    """olivia owns Gizmo (1.0 and 1.1, one file each), with an API token; mark maintains it."""
    package = make_package(dbsession, "Gizmo", versions=["1.0", "1.1"])
    olivia, mark = make_user(dbsession, "olivia"), make_user(dbsession, "mark")
    roles.set_role(dbsession, package, olivia, RoleName.OWNER)
    roles.set_role(dbsession, package, mark, RoleName.MAINTAINER)
    accounts.create_token(dbsession, olivia, "laptop")
    return olivia


def events(db, user) -> list[str]:
    db.expire_all()
    return [e.tag.value for e in db.scalars(select(UserEvent).where(UserEvent.user_id == user.id))]


def confirm_location(response) -> str:
    """The ``next`` of a redirect to the confirm page."""
    assert response.status_int == 303, response.status
    where = urlsplit(response.location)
    assert where.path == "/account/confirm", response.location
    return parse_qs(where.query)["next"][0]


def confirm(testapp, target: str, password: str = PASSWORD, code: str | None = None, status: int = 303):
    page = testapp.get("/account/confirm", params={"next": target})
    form = form_for(page, "/account/confirm")
    form["password"] = password
    if code is not None:
        form["code"] = code
    res = form.submit(status=status, expect_errors=True)
    if status == 303:
        assert res.location.endswith(target)
    return res


# -- each sensitive action ------------------------------------------------------------------


@dataclass
class Action:
    """A form on ``page`` (picked by ``pick``), filled by ``fill``; ``done`` says it happened."""

    page: str
    pick: Callable[[Any], bool]
    fill: dict[str, str]
    done: Callable[[Any, Any], bool]
    back_to: str  # where confirming leads


def _token_revoked(db, user) -> bool:
    db.expire_all()
    return db.scalar(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.name == "laptop")).revoked is not None


def _role(db, username: str) -> str | None:
    db.expire_all()
    package = services.find_package(db, "gizmo")
    return {r.user.username: r.role.value for r in roles.maintainers(db, package)}.get(username)


def _has_release(db, version: str) -> bool:
    db.expire_all()
    return services.find_release(db, services.find_package(db, "gizmo"), version) is not None


def _has_file(db, filename: str) -> bool:
    db.expire_all()
    return services.find_file(db, filename) is not None


MANAGE = "/manage/project/gizmo/"
COLLABORATORS = "/manage/project/gizmo/collaborators"


def _field(name: str, value: str) -> Callable[[Any], bool]:
    return lambda form: form.get(name, default=None) is not None and form[name].value == value


ACTIONS = {
    "create a token": Action(
        "/account/tokens",
        lambda f: f.action == "/account/tokens",
        {"name": "ci"},
        lambda db, user: any(t.name == "ci" for t in accounts.tokens_of(db, user)),
        "/account/tokens",
    ),
    "revoke a token": Action(
        "/account/tokens",
        lambda f: f.action.endswith("/revoke"),
        {"confirm_name": "laptop"},
        _token_revoked,
        "/account/tokens",  # the form's page (the browser's Referer)
    ),
    "change the password": Action(
        "/account",
        lambda f: f.action == "/account/password",
        {"current_password": PASSWORD, "password": NEW_PASSWORD},
        lambda db, user: (db.expire_all(), verify_password(user.password_hash, NEW_PASSWORD))[1],
        "/account",
    ),
    "change the email": Action(
        "/account",
        lambda f: f.action == "/account/email",
        {"email": "olivia@example.net", "current_password": PASSWORD},
        lambda db, user: (db.expire_all(), user.email == "olivia@example.net")[1],
        "/account",
    ),
    "add a collaborator": Action(
        COLLABORATORS,
        lambda f: f.id == "add-collaborator",
        {"username": "nina"},
        lambda db, user: _role(db, "nina") == "maintainer",
        COLLABORATORS,
    ),
    "change a role": Action(
        COLLABORATORS,
        lambda f: _field("action", "role")(f) and f["username"].value == "mark",
        {"role": "owner"},
        lambda db, user: _role(db, "mark") == "owner",
        COLLABORATORS,
    ),
    "remove a collaborator": Action(
        COLLABORATORS,
        lambda f: _field("action", "remove")(f) and f["username"].value == "mark",
        {},
        lambda db, user: _role(db, "mark") is None,
        COLLABORATORS,
    ),
    "delete a release": Action(
        MANAGE,
        lambda f: _field("action", "delete-release")(f) and f["version"].value == "1.1",
        {"confirm_name": "gizmo"},
        lambda db, user: not _has_release(db, "1.1"),
        MANAGE,
    ),
    "delete a file": Action(
        MANAGE,
        lambda f: _field("action", "delete-file")(f) and f["filename"].value == "gizmo-1.0-0.tar.gz",
        {"confirm_name": "gizmo"},
        lambda db, user: not _has_file(db, "gizmo-1.0-0.tar.gz"),
        MANAGE,
    ),
}


def _form(testapp, action: Action):
    page = testapp.get(action.page)
    form = next(f for f in page.forms.values() if action.pick(f))
    for name, value in action.fill.items():
        form[name] = value
    return form


def sign_in_with_code(testapp, username: str, secret: str) -> None:
    assert log_in(testapp, username).status_int == 303
    form = form_for(testapp.get("/account/login/two-factor"), "/account/login/two-factor")
    form["code"] = pyotp.TOTP(secret).now()
    assert form.submit(status=303).location.endswith("/account")


@pytest.mark.parametrize("two_factor", [False, True], ids=["password", "password+code"])
@pytest.mark.parametrize("name", ACTIONS)
def test_each_sensitive_action_asks_again_when_stale(testapp, dbsession, owner, clock, name, two_factor):
    """Stale: refused (sent to confirm), nothing done; a wrong password (or a
    missing code) is 400 and recorded, and still nothing is done; confirmed:
    the same form works."""
    make_user(dbsession, "nina")
    action = ACTIONS[name]
    code = None
    if two_factor:
        owner.totp_secret = secret = pyotp.random_base32()
        dbsession.flush()
        sign_in_with_code(testapp, "olivia", secret)
        code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step's: signing in used this one
    else:
        log_in(testapp, "olivia")
    form = _form(testapp, action)  # the page, while signing in still counts
    clock.later()

    refused = form.submit(status="*", expect_errors=True)
    assert confirm_location(refused) == action.back_to
    assert not action.done(dbsession, owner)  # nothing happened

    assert "That is not your password." in confirm(testapp, action.back_to, "wrong", code=code, status=400).text
    if two_factor:
        assert "That code is not right" in confirm(testapp, action.back_to, status=400).text  # no code
    assert events(dbsession, owner).count("confirmation failed") == (2 if two_factor else 1)
    assert confirm_location(form.submit(status="*", expect_errors=True)) == action.back_to
    assert not action.done(dbsession, owner)

    confirm(testapp, action.back_to, code=code)
    assert form.submit(status="*", expect_errors=True).status_int in (200, 303)
    assert action.done(dbsession, owner)


def test_signing_in_counts_as_a_confirmation_for_a_while(testapp, dbsession, owner, clock):
    log_in(testapp, "olivia")
    assert testapp.get("/account/tokens", status=200)
    clock.later(sudo.DEFAULT_SECONDS - 60)
    assert testapp.get("/account/tokens", status=200)
    clock.later(120)
    assert confirm_location(testapp.get("/account/tokens")) == "/account/tokens"
    confirm(testapp, "/account/tokens")
    assert testapp.get("/account/tokens", status=200)


@pytest.mark.parametrize("page", ["/account/tokens", "/account/two-factor", COLLABORATORS])
def test_sensitive_pages_ask_again_on_a_get(testapp, dbsession, owner, clock, page):
    log_in(testapp, "olivia")
    clock.later()
    assert confirm_location(testapp.get(page)) == page
    confirm(testapp, page)
    assert testapp.get(page, status=200)


def test_pages_that_are_not_sensitive_do_not_ask(testapp, dbsession, owner, clock):
    log_in(testapp, "olivia")
    clock.later()
    assert testapp.get("/account", status=200)
    assert testapp.get(MANAGE, status=200)
    page = testapp.get(MANAGE)
    yank = next(f for f in page.forms.values() if _field("action", "yank")(f) and f["version"].value == "1.0")
    assert yank.submit(status=303).location.endswith(MANAGE)  # yanking can be undone: no confirmation
    dbsession.expire_all()
    assert services.find_release(dbsession, services.find_package(dbsession, "gizmo"), "1.0").yanked


def test_a_post_returns_to_the_page_it_came_from(testapp, dbsession, owner, clock):
    log_in(testapp, "olivia")
    form = next(f for f in testapp.get("/account/tokens").forms.values() if f.action.endswith("/revoke"))
    clock.later()
    refused = form.submit(headers={"Referer": "http://localhost/account/tokens"}, status=303)
    assert confirm_location(refused) == "/account/tokens"
    elsewhere = form.submit(headers={"Referer": "http://evil.example/account/tokens"}, status=303)
    assert confirm_location(elsewhere) == "/account"


def test_a_wrong_password_is_refused_recorded_and_throttled(testapp, dbsession, owner, clock):
    log_in(testapp, "olivia")
    clock.later()
    res = confirm(testapp, "/account/tokens", password="not my password", status=400)
    assert "That is not your password." in res.text
    assert "confirmation failed" in events(dbsession, owner)
    assert confirm_location(testapp.get("/account/tokens")) == "/account/tokens"  # still not confirmed
    for _ in range(9):  # the sign-in throttle allows 10 failures per account in its window
        confirm(testapp, "/account/tokens", password="not my password", status=400)
    res = confirm(testapp, "/account/tokens", status=429)  # even the right one, now
    assert "Retry-After" in res.headers
    assert confirm_location(testapp.get("/account/tokens")) == "/account/tokens"


def test_confirming_goes_back_only_to_this_site(testapp, dbsession, owner, clock):
    log_in(testapp, "olivia")
    clock.later()
    page = testapp.get("/account/confirm", params={"next": "//evil.example/"})
    form = form_for(page, "/account/confirm")
    form["password"] = PASSWORD
    assert form.submit(status=303).location.endswith("/account")


def test_two_factor_users_give_a_code_too(testapp, dbsession, clock):
    secret = pyotp.random_base32()
    user = make_user(dbsession, totp_secret=secret)
    sign_in_with_code(testapp, user.username, secret)
    clock.later()
    assert confirm_location(testapp.get("/account/tokens")) == "/account/tokens"
    assert testapp.get("/account/confirm").html.select_one("input[name=code]") is not None
    assert "That code is not right" in confirm(testapp, "/account/tokens", status=400).text  # the password alone
    confirm(testapp, "/account/tokens", code="000000" if pyotp.TOTP(secret).now() != "000000" else "111111", status=400)
    assert "confirmation failed" in events(dbsession, user)
    confirm(testapp, "/account/tokens", code=pyotp.TOTP(secret).at(time.time() + 30))  # the next step's code
    assert testapp.get("/account/tokens", status=200)


def test_no_session_no_confirmation(testapp, dbsession, owner):
    """An API token (or a password over basic auth) never passes for a confirmed session."""
    _, token = accounts.create_token(dbsession, owner, "stolen")
    for headers in (basic("__token__", token), basic("olivia", PASSWORD)):
        assert testapp.get("/account/tokens", headers=headers, status="*", expect_errors=True).status_int != 200
        res = testapp.get("/account/confirm", headers=headers, status="*", expect_errors=True)
        assert res.status_int in (401, 403)
        assert not res.html.select("input[name=password]")


def test_signing_out_ends_the_confirmation(testapp, dbsession, owner):
    log_in(testapp, "olivia")
    assert testapp.get("/account/tokens", status=200)
    form_for(testapp.get("/account"), "/account/logout").submit(status=303)
    assert "/account/login" in testapp.get("/account/tokens", status=303).location

"""Credentials by channel, on SQLite and PostgreSQL: basic auth (passwords and
API tokens) opens the tool routes only, pages take the session cookie only, a
wrong ``Authorization`` header never falls back to the session, browsers'
cross-site changes through tool routes are refused, and basic-auth password
guesses are throttled with the sign-in form and cost one argon2 hash, not one
per request."""

from __future__ import annotations

import json
import time

import pytest
import webtest
from argon2 import PasswordHasher
from sqlalchemy import func, select, text

from myapp.accounts import channels, passwords, services
from myapp.accounts.channels import RecentAccounts, RecentChecks, RecentTokens
from myapp.accounts.models import ThrottleEvent, User
from myapp.accounts.reads import Account, TokenGrant
from myapp.config import configure
from myapp.data.meta import utcnow
from myapp.packaging import services as packaging
from myapp.packaging.models import Role, RoleName
from tests.accounts import NEW_PASSWORD, PASSWORD, form_for, log_in, make_user, signed_in_as
from tests.factories import make_package
from tests.test_accounts import basic, events

YANK = "/api/projects/tool-thing/1.0/yank"


@pytest.fixture
def owner(dbsession) -> User:
    user = make_user(dbsession)
    package = make_package(dbsession, "tool-thing")
    dbsession.add(Role(user_id=user.id, package_id=package.id, role=RoleName.OWNER))
    dbsession.flush()
    return user


def yanked(dbsession) -> bool:
    dbsession.expire_all()
    package = packaging.find_package(dbsession, "tool-thing")
    return packaging.find_release(dbsession, package, "1.0").yanked


# -- pages take the session only ------------------------------------------------------------


def test_a_token_or_password_opens_no_page(testapp, dbsession, owner):
    """The reported attack: a token sent as basic auth read the collaborators
    form's CSRF token and made its holder an owner. No page answers it now."""
    _, token = services.create_token(dbsession, owner, "ci")
    pages = ["/account", "/account/tokens", "/account/two-factor", "/manage/project/tool-thing/collaborators", "/"]
    for headers in (basic("__token__", token), basic(owner.username, PASSWORD)):
        for path in pages:
            res = testapp.get(path, headers=headers, status=401)
            assert "WWW-Authenticate" not in res.headers, path  # no prompt for what the page never takes
            assert "csrf_token" not in res.text and "browser sign-in only" in res.text, path
        res = testapp.post("/account/tokens", {"name": "evil"}, headers=headers, status=401)
        assert "csrf_token" not in res.text
    assert services.tokens_of(dbsession, owner)[0].name == "ci" and len(services.tokens_of(dbsession, owner)) == 1


def test_a_wrong_authorization_header_never_falls_back_to_the_session(testapp, dbsession, owner):
    log_in(testapp, owner.username)
    assert testapp.get("/account").status_int == 200
    assert testapp.get("/simple/tool-thing/").status_int == 200  # reading tool routes take the session too
    for headers in (basic(owner.username, "wrong password"), basic("__token__", "myapp-x-y"), {"Authorization": "x"}):
        res = testapp.get("/simple/tool-thing/", headers=headers, status=401)
        assert res.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert testapp.get("/account", headers=headers, status=401)
        assert testapp.post(YANK, headers=headers, status=401)
    assert not yanked(dbsession)


def test_tool_routes_that_change_things_take_basic_auth_only(testapp, dbsession, owner):
    _, token = services.create_token(dbsession, owner, "ci")
    log_in(testapp, owner.username)
    res = testapp.post(YANK, status=401)  # the session cookie is not a credential here
    assert res.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert testapp.post(YANK, headers=basic("__token__", token)).json["yanked"] is True
    assert yanked(dbsession)


# -- browsers' cross-site requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port or a sibling subdomain is another origin
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},  # the browser's word wins
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:8080"},
        {"Origin": "null"},
    ],
)
def test_cross_site_changes_through_tool_routes_are_refused(testapp, dbsession, owner, headers):
    _, token = services.create_token(dbsession, owner, "ci")
    res = testapp.post(YANK, headers=basic("__token__", token) | headers, status=403)
    assert "another site" in res.text
    assert "WWW-Authenticate" not in res.headers  # no challenge: a browser would replay saved credentials
    assert testapp.post("/legacy/", {":action": "file_upload"}, headers=headers, status=403)
    assert not yanked(dbsession)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {"Origin": "http://localhost"}],
)
def test_tools_and_this_site_may_change_things(testapp, dbsession, owner, headers):
    _, token = services.create_token(dbsession, owner, "ci")
    body = json.dumps({"reason": "bad"})
    res = testapp.post(YANK, body, headers=basic("__token__", token) | headers | {"Content-Type": "application/json"})
    assert res.json["yanked"] is True


# -- throttling and cost ---------------------------------------------------------------------------


def test_basic_auth_guesses_are_throttled_with_the_form(testapp, dbsession, owner):
    """The reported attack: 30 wrong passwords over basic auth all got 401, none
    was recorded, and the right one then worked."""
    for i in range(10):
        assert testapp.get("/simple/", headers=basic(owner.username, f"guess {i}"), status=401)
    res = testapp.get("/simple/", headers=basic(owner.username, "guess 11"), status=429)
    assert 0 < int(res.headers["Retry-After"]) <= 15 * 60
    assert testapp.get("/simple/", headers=basic(owner.username, PASSWORD), status=429)  # even the right one
    assert testapp.get("/simple/", headers=basic(owner.username.upper(), PASSWORD), status=429)
    assert log_in(testapp, owner.username).status_int == 429  # the form shares the count
    assert events(dbsession, owner).count("login failed") == 10


def test_the_address_is_throttled_for_unknown_names_and_tokens(testapp, dbsession, owner):
    for i in range(5):
        assert testapp.get("/simple/", headers=basic(f"nobody-{i}", "guess"), status=401)
        assert testapp.get("/simple/", headers=basic("__token__", f"myapp-{i}-guess"), status=401)
    res = testapp.get("/simple/", headers=basic(owner.username, PASSWORD), status=429)
    assert int(res.headers["Retry-After"]) > 0


class CountingHasher(PasswordHasher):
    """The tests' cheap hasher, counting the checks it makes."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.checks = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.checks += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(passwords, "hasher", counting)
    return counting


def test_a_checked_password_is_remembered_until_it_changes(testapp, dbsession, hasher):
    user = make_user(dbsession)
    hasher.checks = 0
    for _ in range(5):
        assert testapp.get("/simple/", headers=basic(user.username, PASSWORD)).status_int == 200
    assert hasher.checks == 1  # pip's many requests: one hash
    services.set_password(dbsession, user, NEW_PASSWORD, services.EventTag.PASSWORD_CHANGED, None)
    dbsession.flush()
    assert testapp.get("/simple/", headers=basic(user.username, PASSWORD), status=401)  # at once
    assert testapp.get("/simple/", headers=basic(user.username, NEW_PASSWORD)).status_int == 200
    assert hasher.checks == 3
    services.set_active(dbsession, user, False, by=user, ip_address=None)
    dbsession.flush()
    assert testapp.get("/simple/", headers=basic(user.username, NEW_PASSWORD), status=401)  # at once


def test_repeated_wrong_guesses_cost_one_hash_known_name_or_not(testapp, dbsession, hasher):
    user = make_user(dbsession)
    for login in (user.username, "nobody-at-all"):
        hasher.checks = 0
        for _ in range(4):
            assert testapp.get("/simple/", headers=basic(login, "the same wrong guess"), status=401)
        assert hasher.checks == 1, login


def test_two_factor_users_use_tokens_not_passwords(testapp, dbsession):
    user = make_user(dbsession, totp_secret="JBSWY3DPEHPK3PXP")
    _, token = services.create_token(dbsession, user, "ci")
    assert testapp.get("/simple/", headers=basic(user.username, PASSWORD), status=401)
    assert testapp.get("/simple/", headers=basic("__token__", token)).status_int == 200


def test_a_session_still_signs_in_on_the_page(testapp, dbsession, owner):
    """The pages' own way in is unchanged: the form, then the cookie."""
    log_in(testapp, owner.username)
    page = testapp.get("/account/tokens")
    form = form_for(page, "/account/tokens")
    form["name"] = "made in the browser"
    assert form.submit().status_int in (200, 303)


def test_remembered_checks_are_bounded_and_keep_no_password():
    recent = RecentChecks(seconds=0.05, size=3)
    keys = [recent.key(f"name-{i}", None, PASSWORD) for i in range(5)]
    for key in keys:
        recent.put(key, False)
    assert [recent.get(key) for key in keys] == [None, None, False, False, False]  # the oldest went first
    assert all(PASSWORD.encode() not in repr(key).encode() for key in keys)
    time.sleep(0.06)
    assert recent.get(keys[-1]) is None  # and all expire


def test_a_token_is_checked_on_every_request_and_its_use_written_once_a_minute(testapp, dbsession, owner):
    """The token and its account are read as committed now (a raw read, no ORM
    session): a revocation or a disabled account counts on the next request.
    Its last use is written when it is a minute old, not on every request."""
    from datetime import timedelta

    from myapp.data.meta import utcnow

    make_package(dbsession, "tokened")
    record, token = services.create_token(dbsession, owner, "ci")
    dbsession.flush()
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token))
    dbsession.refresh(record)
    first_use = record.last_used
    assert first_use is not None
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token))
    dbsession.refresh(record)
    assert record.last_used == first_use  # within the minute: not written again
    record.last_used = utcnow() - timedelta(minutes=2)
    dbsession.flush()
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token))
    dbsession.refresh(record)
    assert record.last_used > utcnow() - timedelta(minutes=1)

    owner.is_active = False
    dbsession.flush()
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token), status=401)
    owner.is_active = True
    record.revoked = utcnow()
    dbsession.flush()
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token), status=401)
    record.revoked, record.expires = None, utcnow() - timedelta(seconds=1)
    dbsession.flush()
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token), status=401)
    record.expires = utcnow() + timedelta(days=1)
    dbsession.flush()
    testapp.get("/pypi/tokened/json", headers=basic("__token__", token), status=200)


# -- tokens a process trusts for a moment (myapp.token_check_seconds) -----------------------


def test_recent_tokens_expire_are_forgotten_and_keep_no_token():
    now = [0.0]
    tokens = RecentTokens(1.0, clock=lambda: now[0])
    grant = TokenGrant(7, None, Account(1, "ann", False, True, True, 0), use_is_stale=True)
    key = tokens.key("myapp-abc-secret")
    tokens.put(key, grant)
    kept = tokens.get(key)
    assert kept is not None and kept.id == 7 and not kept.use_is_stale  # its use is written once, by the read
    assert b"secret" not in key and tokens.get(tokens.key("myapp-abc-secreT")) is None
    now[0] = 1.01
    assert tokens.get(key) is None  # trusted for its second, no longer
    tokens.put(key, grant)
    tokens.forget()
    assert tokens.get(key) is None
    never = RecentTokens(0)
    never.put(key, grant)
    assert never.get(key) is None  # the default: every request reads


@pytest.fixture
def trusting(settings, dbsession) -> webtest.TestApp:
    """A private index whose process trusts a token it found live for a minute."""
    app = configure({**settings, "myapp.read_access": "authenticated", "myapp.token_check_seconds": "60"})
    return webtest.TestApp(app.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})


def test_a_trusted_token_is_read_once_and_refused_at_once_when_revoked_here(trusting, dbsession, count_queries):
    user = make_user(dbsession, email_verified=True)
    make_package(dbsession, "kept-private")
    record, token = services.create_token(dbsession, user, "ci")
    record.last_used = record.created  # used just now: nothing to write
    dbsession.flush()
    tool = basic("__token__", token)
    trusting.get("/simple/kept-private/", headers=tool)
    count_queries.clear()
    trusting.get("/simple/kept-private/", headers=tool)
    assert not any("FROM api_tokens" in s or "api_tokens t" in s for s in count_queries.statements)

    # Revoked in the database by another process: this one trusts its check for its minute.
    record.revoked = utcnow()
    dbsession.flush()
    trusting.get("/simple/kept-private/", headers=tool, status=200)
    # Any request of this process that may have written makes it read every token again.
    trusting.post("/account/logout", status="*")
    trusting.get("/simple/kept-private/", headers=tool, status=401)


def test_a_token_revoked_on_its_page_is_refused_at_once(trusting, dbsession):
    user = make_user(dbsession, email_verified=True)
    make_package(dbsession, "kept-private")
    record, token = services.create_token(dbsession, user, "laptop")
    dbsession.flush()
    tool = basic("__token__", token)
    trusting.get("/simple/kept-private/", headers=tool, status=200)
    browser = webtest.TestApp(trusting.app, extra_environ={"HTTP_HOST": "localhost"})
    log_in(browser, user.username)
    revoke = form_for(browser.get("/account/tokens"), f"/account/tokens/{record.id}/revoke")
    revoke["confirm_name"] = "laptop"
    revoke.submit(status=303)
    trusting.get("/simple/kept-private/", headers=tool, status=401)


def test_a_wrong_token_is_never_trusted_and_always_counted(trusting, dbsession, count_queries):
    make_package(dbsession, "kept-private")
    _, token = services.create_token(dbsession, make_user(dbsession, email_verified=True), "ci")
    dbsession.flush()
    wrong = basic("__token__", token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb"))
    for _ in range(2):
        count_queries.clear()
        trusting.get("/simple/kept-private/", headers=wrong, status=401)
        assert any("api_tokens t" in s for s in count_queries.statements)
    attempts = dbsession.scalar(
        select(func.count()).select_from(ThrottleEvent).where(ThrottleEvent.scope == services.LOGIN_BY_ADDRESS.scope)
    )
    assert attempts == 2


# -- signed-in accounts a process trusts for a moment (the same setting) ------------------------


def test_recent_accounts_expire_follow_this_process_changes_and_keep_no_inactive_account():
    now = [0.0]
    accounts = RecentAccounts(1.0, clock=lambda: now[0])
    reads_made = []

    def read(user_id: int) -> Account:
        reads_made.append(user_id)
        return Account(user_id, "ann", False, user_id != 9, True, 0)

    assert accounts.read(1, read).id == 1 and accounts.read(1, read).id == 1
    assert reads_made == [1]  # kept
    channels._account_changed()  # this process changed a user
    accounts.read(1, read)
    assert reads_made == [1, 1]
    now[0] = 1.01
    accounts.read(1, read)
    assert reads_made == [1, 1, 1]  # trusted for its second, no longer
    accounts.read(9, read)
    accounts.read(9, read)
    assert reads_made[-2:] == [9, 9]  # a disabled account is never kept
    never = RecentAccounts(0)
    never.read(1, read)
    never.read(1, read)
    assert reads_made[-2:] == [1, 1]  # the default: every request reads


@pytest.fixture
def trusting_browser(settings, dbsession) -> webtest.TestApp:
    """A browser on a process that trusts an account it read for a minute."""
    app = configure({**settings, "myapp.token_check_seconds": "60"})
    return webtest.TestApp(app.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})


def test_a_signed_in_account_is_read_once_and_a_change_elsewhere_waits_for_a_write_here(
    trusting_browser, dbsession, count_queries
):
    user = make_user(dbsession, email_verified=True)
    log_in(trusting_browser, user.username)
    assert signed_in_as(trusting_browser) == user.username
    count_queries.clear()
    assert signed_in_as(trusting_browser) == user.username
    assert not any("FROM users" in s for s in count_queries.statements)

    # Disabled by another process (no ORM here): this one trusts its read for its minute.
    dbsession.execute(text("UPDATE users SET is_active = :no WHERE id = :id"), {"no": False, "id": user.id})
    assert signed_in_as(trusting_browser) == user.username
    # Any request of this process that may have written makes it read every account again.
    webtest.TestApp(trusting_browser.app, extra_environ={"HTTP_HOST": "localhost"}).post("/account/logout", status="*")
    assert signed_in_as(trusting_browser) is None


def test_a_change_this_process_makes_to_an_account_is_seen_at_once(trusting_browser, dbsession):
    user = make_user(dbsession, email_verified=True)
    log_in(trusting_browser, user.username)
    assert signed_in_as(trusting_browser) == user.username
    admin = make_user(dbsession, is_admin=True)
    services.set_active(dbsession, user, False, by=admin, ip_address=None)
    dbsession.flush()  # as a view, a script or a GET that writes (an email's verification) would
    assert signed_in_as(trusting_browser) is None

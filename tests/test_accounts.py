"""Accounts through the pages, on SQLite and PostgreSQL: register, verify,
sign in and out, change and reset passwords, two factors, administrators,
API tokens in basic auth, and every forbidden path."""

from __future__ import annotations

import time

import pyotp
import pytest
import webtest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from myapp.accounts import services
from myapp.accounts.models import EventTag, ThrottleEvent, User, UserEvent
from myapp.data.meta import utcnow
from tests.accounts import (
    NEW_PASSWORD,
    PASSWORD,
    form_for,
    link_in,
    log_in,
    log_out,
    mails_to,
    make_user,
    signed_in_as,
    submit,
    unique,
)


def events(db, user: User) -> list[str]:
    db.expire_all()
    return [
        e.tag.value for e in db.scalars(select(UserEvent).where(UserEvent.user_id == user.id).order_by(UserEvent.id))
    ]


def fresh(db, user: User) -> User:
    db.expire_all()
    return db.get(User, user.id)


def basic(username: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


# -- registering ----------------------------------------------------------------------


@pytest.mark.real_hashing
def test_register_through_a_link_mailed_to_the_address(testapp, dbsession):
    # Registering asks for an address and mails a link; the account is made on
    # the link's form, already verified. (It used to be made and signed in at
    # once, which told anyone whether an address had an account: see
    # test_membership.test_a_taken_email_is_not_revealed.)
    name = unique("Alice")
    res = submit(testapp, "/account/register", {"email": f"{name}@Example.org"})
    assert res.status_int == 200 and f"Check your inbox: we sent a message to {name}@example.org" in res.text
    assert signed_in_as(testapp) is None and services.find_user_by_email(dbsession, f"{name}@example.org") is None

    (message,) = mails_to(testapp, f"{name}@example.org")
    assert message["Subject"] == "Create your myapp account"
    link = link_in(message)
    res = submit(testapp, link, {"username": name, "password": PASSWORD}, action="/account/register")
    assert res.status_int == 303 and res.location.endswith("/account")
    assert signed_in_as(testapp) == name
    user = services.find_user(dbsession, name.lower())
    assert user is not None and user.username == name and user.email == f"{name}@example.org"
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert user.email_verified and events(dbsession, user) == ["registered", "email verified", "login"]
    assert "This link is not valid" in testapp.get(link, status=400).text  # once only


def registration_link(db, address: str) -> str:
    """The path of a link to register with ``address``, as the register page mails it."""
    _, secret = services.create_invitation(db, address, by=None, self_service=True)
    db.flush()
    return f"/account/register?token={secret}"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"username": "-bad"}, "username", "Use 1 to 50 letters"),
        ({"username": "a" * 51}, "username", "Use 1 to 50 letters"),
        ({"username": "al ice"}, "username", "Use 1 to 50 letters"),
        ({"username": "ålice"}, "username", "Use 1 to 50 letters"),
        ({"password": "short"}, "password", "at least 12 characters"),
        ({"password": "password1234"}, "password", "very common password"),
        ({"password": "qwertyuiopasdf"}, "password", "Try a few unrelated words"),
    ],
)
def test_register_explains_what_is_wrong_and_keeps_what_was_typed(testapp, dbsession, fields, field, message):
    name = unique()
    values = {"username": name, "password": PASSWORD} | fields
    res = submit(testapp, registration_link(dbsession, f"{name}@example.org"), values, action="/account/register")
    assert res.status_int == 400
    errors = res.html.select_one(f"#{field}-errors")
    assert errors is not None and message.lower() in errors.text.lower(), res.html.select(".field-errors")
    form = form_for(res, "/account/register")
    assert form["username"].value == values["username"]
    assert form["password"].value == ""  # never sent back
    assert dbsession.scalar(select(func.count()).select_from(User)) == 0


def test_register_asks_for_a_real_address(testapp, dbsession):
    res = submit(testapp, "/account/register", {"email": "not-an-address"})
    assert res.status_int == 400 and "must have an @-sign" in res.html.select_one("#email-errors").text
    assert form_for(res, "/account/register")["email"].value == "not-an-address"


def test_usernames_and_emails_are_unique_whatever_their_case(testapp, dbsession):
    user = make_user(dbsession, "Bob-Smith")
    res = submit(
        testapp,
        registration_link(dbsession, "x@example.org"),
        {"username": "bob-smith", "password": PASSWORD},
        action="/account/register",
    )
    assert res.status_int == 400 and "That username is taken" in res.text
    # A taken email is not said to be taken (test_a_taken_email_is_not_revealed): its owner is told instead.
    submit(testapp, "/account/register", {"email": user.email.upper()})
    told = mails_to(testapp, user.email)[-1]  # (the folder is shared by both databases' runs)
    assert told["Subject"] == "Someone tried to register with your address on myapp"


def test_forms_need_the_csrf_token(testapp, dbsession):
    make_user(dbsession, "carol")
    res = testapp.post("/account/login", {"username": "carol", "password": PASSWORD}, status=400)
    assert "did not come from this site" in res.text
    assert testapp.post("/account/register", {"username": "x"}, status=400)


# -- signing in and out ---------------------------------------------------------------


def test_login_and_logout(testapp, dbsession):
    user = make_user(dbsession)
    assert testapp.get("/account", status=303).location.endswith("/account/login?came_from=%2Faccount")
    res = log_in(testapp, user.username.upper())  # usernames are not case-sensitive
    assert res.status_int == 303 and res.location.endswith("/account")
    page = testapp.get("/account")
    assert user.username in page.text and "login" in [li.strong.text for li in page.html.select(".events li")]
    log_out(testapp)
    assert signed_in_as(testapp) is None
    assert events(dbsession, user)[-2:] == ["login", "logout"]
    assert log_in(testapp, user.email).status_int == 303  # or by email


def test_unknown_user_and_wrong_password_look_the_same(testapp, dbsession):
    user = make_user(dbsession)
    wrong = log_in(testapp, user.username, "not the password at all")
    unknown = log_in(testapp, "nobody-" + user.username, "not the password at all")
    assert wrong.status_int == unknown.status_int == 400
    assert wrong.html.select_one("#password-errors").text == unknown.html.select_one("#password-errors").text
    assert events(dbsession, user)[-1] == "login failed"


def test_login_came_from_stays_on_this_site(testapp, dbsession):
    user = make_user(dbsession)
    for target, expected in [
        ("/projects/?sort=updated", "http://localhost/projects/?sort=updated"),
        ("//evil.example/", "http://localhost/account"),
        ("https://evil.example/", "http://localhost/account"),
        ("/\\evil.example", "http://localhost/account"),
    ]:
        res = submit(testapp, f"/account/login?came_from={target}", {"username": user.username, "password": PASSWORD})
        assert res.location == expected, target
        log_out(testapp)


def test_a_copied_session_dies_at_logout(app, testapp, dbsession):
    user = make_user(dbsession)
    log_in(testapp, user.username)
    stolen = testapp.cookies["myapp_session"]
    log_out(testapp)
    thief = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    thief.set_cookie("myapp_session", stolen)
    assert thief.get("/account", status=303).location.endswith("/account/login?came_from=%2Faccount")


def test_login_is_a_new_session(app, testapp, dbsession):
    """Session fixation: a session (and its CSRF token) from before sign-in is not the one after."""
    user = make_user(dbsession)
    page = testapp.get("/account/login")
    before = (testapp.cookies["myapp_session"], form_for(page, "/account/login")["csrf_token"].value)
    log_in(testapp, user.username)
    after_token = form_for(testapp.get("/account"), "/account/logout")["csrf_token"].value
    assert testapp.cookies["myapp_session"] != before[0] and after_token != before[1]
    planted = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    planted.set_cookie("myapp_session", before[0])
    assert signed_in_as(planted) is None


def test_login_is_throttled_per_account_and_per_address(testapp, dbsession):
    user = make_user(dbsession)
    for _ in range(10):
        assert log_in(testapp, user.username, "wrong password here").status_int == 400
    res = log_in(testapp, user.username)  # even the right password now waits
    assert res.status_int == 429 and 0 < int(res.headers["Retry-After"]) <= 900
    assert "Too many attempts" in res.text
    # The count is per account: another account from another address is not held up ...
    other = make_user(dbsession)
    assert log_in(testapp, other.username, extra_environ={"REMOTE_ADDR": "10.9.9.9"}).status_int == 303
    # ... and per address: ten failures from one address stop it trying any account.
    dbsession.execute(ThrottleEvent.__table__.delete())
    for i in range(10):
        log_in(testapp, f"someone-{i}", "wrong password here", extra_environ={"REMOTE_ADDR": "10.1.1.1"})
    assert log_in(testapp, other.username, extra_environ={"REMOTE_ADDR": "10.1.1.1"}).status_int == 429


def test_the_throttle_window_passes(dbsession):
    throttle = services.Throttle("test", limit=2)
    throttle.count(dbsession, "k")
    throttle.count(dbsession, "k")
    assert throttle.retry_after(dbsession, "k") is not None
    dbsession.execute(ThrottleEvent.__table__.update().values(created=utcnow() - throttle.window))
    assert throttle.retry_after(dbsession, "k") is None


@pytest.mark.real_hashing
def test_an_old_hash_is_replaced_at_login(testapp, dbsession):
    user = make_user(dbsession)
    user.password_hash = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(PASSWORD)
    dbsession.flush()
    assert log_in(testapp, user.username).status_int == 303
    assert fresh(dbsession, user).password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


# -- changing and recovering passwords --------------------------------------------------


def test_password_change_ends_every_other_session(app, testapp, dbsession):
    user = make_user(dbsession)
    log_in(testapp, user.username)
    other_device = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    log_in(other_device, user.username)
    res = submit(
        testapp, "/account", {"current_password": "wrong one", "password": NEW_PASSWORD}, action="/account/password"
    )
    assert res.status_int == 400 and "not your current password" in res.text
    res = submit(testapp, "/account", {"current_password": PASSWORD, "password": "short"}, action="/account/password")
    assert res.status_int == 400 and "at least 12 characters" in res.text
    res = submit(
        testapp, "/account", {"current_password": PASSWORD, "password": NEW_PASSWORD}, action="/account/password"
    )
    assert res.status_int == 303
    assert "Every other session has been signed out" in testapp.get("/account").text
    assert signed_in_as(testapp) == user.username
    assert signed_in_as(other_device) is None
    assert "password changed" in events(dbsession, user)
    log_out(testapp)
    assert log_in(testapp, user.username, PASSWORD).status_int == 400
    assert log_in(testapp, user.username, NEW_PASSWORD).status_int == 303


def test_email_change_needs_the_password_and_a_new_verification(testapp, dbsession):
    user = make_user(dbsession, email_verified=True)
    old, new = user.email, unique("new") + "@example.org"
    log_in(testapp, user.username)
    taken = make_user(dbsession)
    res = submit(testapp, "/account", {"email": taken.email, "current_password": PASSWORD}, action="/account/email")
    assert res.status_int == 400 and "already exists" in res.text
    res = submit(testapp, "/account", {"email": new, "current_password": PASSWORD}, action="/account/email")
    assert res.status_int == 303
    user = fresh(dbsession, user)
    assert user.email == new and not user.email_verified
    assert mails_to(testapp, old)[-1]["Subject"] == "Your myapp email address was changed"
    testapp.get(link_in(mails_to(testapp, new)[-1]))
    assert fresh(dbsession, user).email_verified


def test_password_reset_by_mail(testapp, dbsession):
    user = make_user(dbsession)
    sent = submit(testapp, "/account/forgot-password", {"username": user.email})
    nobody = submit(testapp, "/account/forgot-password", {"username": "nobody-at-all"})
    assert sent.status_int == nobody.status_int == 200
    assert sent.html.select_one(".notice").text == nobody.html.select_one(".notice").text  # no account enumeration
    (message,) = mails_to(testapp, user.email)
    link = link_in(message)
    res = submit(testapp, link, {"password": NEW_PASSWORD}, action="/account/reset-password")
    assert res.status_int == 303 and res.location.endswith("/account/login")
    assert "Your password was reset" in testapp.get("/account/login").text
    assert log_in(testapp, user.username, NEW_PASSWORD).status_int == 303
    assert testapp.get(link, status=400).html.select_one(".error")  # used: dead
    assert events(dbsession, user)[-3:] == ["password reset requested", "password reset", "login"]


def test_a_reset_link_dies_when_the_password_changes(testapp, dbsession):
    user = make_user(dbsession)
    submit(testapp, "/account/forgot-password", {"username": user.username})
    link = link_in(mails_to(testapp, user.email)[-1])
    services.set_password(dbsession, user, NEW_PASSWORD, EventTag.PASSWORD_CHANGED, None)
    dbsession.flush()
    assert "not valid" in testapp.get(link, status=400).text
    assert testapp.get("/account/reset-password?token=" + link.split("token=")[1][:-3] + "abc", status=400)


def test_reset_requests_are_throttled(testapp, dbsession):
    user = make_user(dbsession)
    for _ in range(10):
        assert submit(testapp, "/account/forgot-password", {"username": user.username}).status_int == 200
    res = submit(testapp, "/account/forgot-password", {"username": user.username})
    assert res.status_int == 429 and "Retry-After" in res.headers


# -- two factors -----------------------------------------------------------------------


def turn_on_two_factor(testapp) -> tuple[str, list[str]]:
    page = testapp.get("/account/two-factor")
    assert page.html.select_one(".qr svg") is not None  # the QR code, inline, no script
    secret = page.html.select_one(".totp-secret").text
    wrong = submit(testapp, "/account/two-factor", {"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "1"})
    assert wrong.status_int == 400
    done = submit(testapp, "/account/two-factor", {"code": pyotp.TOTP(secret).now()})
    codes = [li.text for li in done.html.select(".recovery-codes code")]
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def test_two_factor_sign_in(testapp, dbsession):
    user = make_user(dbsession)
    log_in(testapp, user.username)
    secret, codes = turn_on_two_factor(testapp)
    assert fresh(dbsession, user).has_two_factor
    assert "two-factor added" in events(dbsession, user)
    log_out(testapp)

    res = log_in(testapp, user.username)
    assert res.status_int == 303 and "/account/login/two-factor" in res.location
    assert signed_in_as(testapp) is None  # not yet
    assert submit(testapp, "/account/login/two-factor", {"code": "123 456"}).status_int == 400
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step's: the set-up used this one
    assert submit(testapp, "/account/login/two-factor", {"code": code}).status_int == 303
    assert signed_in_as(testapp) == user.username
    log_out(testapp)

    log_in(testapp, user.username)
    assert submit(testapp, "/account/login/two-factor", {"code": code}).status_int == 400  # never twice
    assert submit(testapp, "/account/login/two-factor", {"code": codes[0]}).status_int == 303  # a recovery code
    log_out(testapp)
    log_in(testapp, user.username)
    assert submit(testapp, "/account/login/two-factor", {"code": codes[0]}).status_int == 400  # once only
    assert "recovery code used" in events(dbsession, user)


def test_two_factor_is_turned_off_only_with_a_current_code(testapp, dbsession):
    user = make_user(dbsession)
    log_in(testapp, user.username)
    secret, _ = turn_on_two_factor(testapp)
    assert submit(testapp, "/account/two-factor", {"code": "999999"}).status_int == 400
    assert fresh(dbsession, user).has_two_factor
    res = submit(testapp, "/account/two-factor", {"code": pyotp.TOTP(secret).at(time.time() + 30)})
    assert res.status_int == 303
    assert not fresh(dbsession, user).has_two_factor
    assert services.unused_recovery_codes(dbsession, user) == 0


def test_two_factor_codes_are_throttled(testapp, dbsession):
    user = make_user(dbsession)
    log_in(testapp, user.username)
    turn_on_two_factor(testapp)
    log_out(testapp)
    log_in(testapp, user.username)
    for _ in range(10):
        assert submit(testapp, "/account/login/two-factor", {"code": "000001"}).status_int == 400
    assert submit(testapp, "/account/login/two-factor", {"code": "000001"}).status_int == 429


def test_basic_auth_with_a_password_is_refused_once_two_factor_is_on(testapp, dbsession):
    user = make_user(dbsession)
    _, token = services.create_token(dbsession, user, "ci")
    assert testapp.get("/simple/", headers=basic(user.username, PASSWORD), status=200)
    user.totp_secret = pyotp.random_base32()
    dbsession.flush()
    assert testapp.get("/simple/", headers=basic(user.username, PASSWORD), status=401)
    assert testapp.get("/simple/", headers=basic("__token__", token), status=200)  # tokens still work


def test_the_second_step_expires_with_the_session_generation(app, testapp, dbsession):
    user = make_user(dbsession, totp_secret=pyotp.random_base32())
    log_in(testapp, user.username)
    services.end_sessions(user)  # e.g. the password was reset meanwhile
    dbsession.flush()
    assert testapp.get("/account/login/two-factor", status=303).location.endswith("/account/login")


# -- administrators, disabled accounts, tokens ------------------------------------------------


def test_administrators_and_suspended_accounts(app, testapp, dbsession):
    admin = make_user(dbsession, is_admin=True)
    user = make_user(dbsession)
    assert testapp.get("/admin/users", status=303).location.endswith("came_from=%2Fadmin%2Fusers")
    log_in(testapp, user.username)
    assert testapp.get("/admin/users", status=403).status_int == 403
    _, token = services.create_token(dbsession, user, "ci")
    victim_session = testapp.cookies["myapp_session"]
    log_out(testapp)

    admin_app = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    log_in(admin_app, admin.username)
    page = admin_app.get("/admin/users")
    assert user.username in page.text
    suspend = form_for(page, f"/admin/users/{user.username}/active")
    assert "Suspend" in page.text
    suspend.submit(status=302)
    assert "disabled" in events(dbsession, user)
    assert "suspended" in admin_app.get("/admin/users").text

    replay = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    replay.set_cookie("myapp_session", victim_session)
    assert signed_in_as(replay) is None
    assert log_in(testapp, user.username).status_int == 400
    assert testapp.get("/simple/", headers=basic("__token__", token), status=401)
    assert testapp.get("/simple/", headers=basic(user.username, PASSWORD), status=401)


def test_basic_auth_with_a_password_or_a_token(testapp, dbsession):
    """On a tool route (pages take the session only: tests/test_channels.py)."""
    user = make_user(dbsession)
    _, token = services.create_token(dbsession, user, "laptop")
    _, expired_token = services.create_token(dbsession, user, "old", expires=utcnow())
    assert testapp.get("/simple/", headers=basic(user.username, PASSWORD)).status_int == 200
    assert testapp.get("/simple/", headers=basic("__token__", token)).status_int == 200
    dbsession.expire_all()
    assert services.tokens_of(dbsession, user)[0].last_used is not None
    for headers in (
        basic("__token__", expired_token),
        basic("__token__", token[:-2] + "xx"),
        basic("__token__", "myapp-nothing-here"),
        basic(user.username, "wrong password"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer " + token},
    ):
        assert testapp.get("/simple/", headers=headers, status=401), headers
    services.revoke_token(dbsession, user, services.tokens_of(dbsession, user)[0].id, None)
    dbsession.flush()
    assert testapp.get("/simple/", headers=basic("__token__", token), status=401)
    assert events(dbsession, user)[-1] == "token revoked"


# -- the page cache and signed-in visitors --------------------------------------------------


@pytest.fixture
def cached_app(settings, dbsession):
    from myapp.config import configure

    app = configure({**settings, "myapp.page_cache_seconds": "60"}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


def test_cached_pages_hold_no_token_and_no_name(cached_app, dbsession):
    user = make_user(dbsession)
    anonymous = cached_app.get("/")
    assert "csrf_token" not in anonymous.text and "Set-Cookie" not in anonymous.headers
    log_in(cached_app, user.username)
    page = cached_app.get("/")
    assert "X-Page-Cache" not in page.headers and user.username in page.text and "csrf_token" in page.text
    log_out(cached_app)
    cached_app.reset()
    again = cached_app.get("/")
    assert again.headers.get("X-Page-Cache") == "hit"
    assert user.username not in again.text and "csrf_token" not in again.text

"""The account rules an attacker probes, on SQLite and PostgreSQL: redirects
after sign-in, mail through a real SMTP server, secrets in logs, two app
instances sharing sessions and throttle counts, production's cookie and
secret, and the command-line tool."""

from __future__ import annotations

import email
import email.policy
import logging
import subprocess
from urllib.parse import quote, urljoin, urlsplit

import pyotp
import pytest
import webtest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyramid.paster import get_appsettings
from sqlalchemy import select

from myapp.accounts.models import User
from myapp.accounts.policy import safe_next
from myapp.config import configure
from myapp.data.jobs import Outcome
from tests.accounts import (
    NEW_PASSWORD,
    PASSWORD,
    Inbox,
    deliver_mail,
    link_in,
    log_in,
    log_out,
    mails_to,
    make_user,
    register,
    signed_in_as,
    submit,
    unique,
)
from tests.conftest import BIN, ROOT, TEST_SECRET, free_port

# -- came_from: never another host ----------------------------------------------------

PIECES = st.sampled_from(
    [
        "/",
        "//",
        "\\",
        "/\\",
        "\\\\",
        "http:",
        "https:",
        "HTTPS:",
        "javascript:",
        "data:",
        "evil.example",
        "@",
        "%2f",
        "%2F",
        "%5c",
        "%09",
        "%0a",
        "%00",
        "\t",
        "\n",
        "\r",
        " ",
        "\x00",
        "\x0b",
        "\u3002",
        "\uff0f",
        "\uff45\uff56\uff49\uff4c",
        "?",
        "#",
        ":",
        "..",
        ".",
        "projects",
        "account",
        "\u2028",
        "%252f",
        "//\\",
        "/%09/",
    ]
)
CAME_FROM = st.one_of(
    st.lists(PIECES, min_size=1, max_size=6).map("".join),
    st.text(max_size=40),
    st.from_regex(r"\A[/\\ \t]{0,3}(https?:)?[/\\]{0,3}[a-z.]{0,12}(/[a-z]{0,5})?\Z"),
)


def stays_on_site(location: str, base: str = "http://localhost/account") -> bool:
    """Where a browser would go: resolved against the page, with the tab and
    newline characters browsers strip; on this host, over http(s)."""
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").strip()
    target = urlsplit(urljoin(base, cleaned))
    return target.scheme in ("http", "https") and target.hostname == "localhost"


@settings(max_examples=1500, deadline=None)
@given(CAME_FROM)
def test_safe_next_never_leaves_the_site(target):
    result = safe_next(target, "/account")
    assert result.startswith("/") and not result.startswith("//")
    assert stays_on_site(result), (target, result)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(CAME_FROM)
def test_login_redirects_only_on_this_site(testapp, dbsession, target):
    user = dbsession.scalar(select(User).where(User.username == "hyp")) or make_user(dbsession, "hyp")
    testapp.reset()
    path = "/account/login?came_from=" + quote(target, safe="")
    if "\x00" in target:  # the request guard refuses NUL anywhere (test_unstorable.py)
        testapp.get(path, status=400)
        return
    res = submit(testapp, path, {"username": user.username, "password": PASSWORD}, action="/account/login")
    assert res.status_int == 303
    assert stays_on_site(res.headers["Location"]), (target, res.headers["Location"])


# -- mail through a real SMTP server ----------------------------------------------------


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_verification_and_reset_links_by_real_smtp(settings, dbsession, smtp):
    controller, inbox = smtp
    mail_settings = {"mail.host": "127.0.0.1", "mail.port": str(controller.port), "mail.default_sender": "idx@x.org"}
    app_settings = {k: v for k, v in settings.items() if k != "myapp.mail_folder"} | mail_settings
    app = webtest.TestApp(configure(app_settings).make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
    name = unique()
    address = f"{name}@example.org"
    submit(app, "/account/register", {"email": address})
    assert inbox.messages == []  # queued in the request's transaction, sent by the worker
    deliver_mail(app)
    (join,) = inbox.messages
    assert join["To"] == address and join["From"] == "idx@x.org"
    res = submit(app, _link(join), {"username": name, "password": PASSWORD}, action="/account/register")
    assert res.status_int == 303
    submit(app, "/account", {"email": f"new-{address}", "current_password": PASSWORD}, action="/account/email")
    deliver_mail(app)
    (verify,) = [m for m in inbox.messages if m["To"] == f"new-{address}"]
    assert "is verified" in app.get(_link(verify)).text
    log_out(app)

    submit(app, "/account/forgot-password", {"username": name})
    assert deliver_mail(app) == {Outcome.DONE: 2}  # the look-up, then the mail it queued
    reset = inbox.messages[-1]
    assert reset["Subject"] == "Reset your myapp password"
    assert submit(app, _link(reset), {"password": NEW_PASSWORD}, action="/account/reset-password").status_int == 303
    assert log_in(app, name, NEW_PASSWORD).status_int == 303


def _link(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",)).get_content()
    url = next(word for word in body.split() if word.startswith("http://"))
    return url.removeprefix("http://localhost")


# -- no secret in any log ---------------------------------------------------------------------


def test_no_secret_reaches_the_logs(testapp, dbsession, settings, caplog):
    caplog.set_level(logging.DEBUG)
    name = unique()
    register(testapp, name)
    page = testapp.get("/account/two-factor")
    totp_secret = page.html.select_one(".totp-secret").text
    codes_page = submit(testapp, "/account/two-factor", {"code": pyotp.TOTP(totp_secret).now()})
    recovery = [c.text for c in codes_page.html.select(".recovery-codes code")]
    token = submit(testapp, "/account/tokens", {"name": "ci"}).html.select_one(".new-token").text
    log_out(testapp)
    submit(testapp, "/account/forgot-password", {"username": name})
    reset_link = link_in(mails_to(testapp, f"{name}@example.org")[-1])
    submit(testapp, reset_link, {"password": NEW_PASSWORD}, action="/account/reset-password")
    log_in(testapp, name, "a wrong password, logged nowhere")
    log_in(testapp, name, NEW_PASSWORD)
    submit(testapp, "/account/login/two-factor", {"code": recovery[0]})
    testapp.get("/simple/", headers={"Authorization": "Basic " + _b64(f"__token__:{token}")})
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    secrets = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "wrong password": "a wrong password, logged nowhere",
        "TOTP secret": totp_secret,
        "recovery code": recovery[0],
        "API token": token,
        "reset token": reset_link.split("token=")[1],
        "app secret": TEST_SECRET,
    }
    assert logged, "the flow logged nothing at all: the check would prove nothing"
    for what, secret in secrets.items():
        assert secret not in logged, what


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# -- two instances, one database --------------------------------------------------------------


def test_two_app_instances_share_sessions_and_throttle_counts(settings, dbsession):
    first, second = (
        webtest.TestApp(configure(dict(settings)).make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
        for _ in range(2)
    )
    user = make_user(dbsession)
    log_in(first, user.username)
    second.set_cookie("myapp_session", first.cookies["myapp_session"])
    assert signed_in_as(second) == user.username  # the same secret: the other instance accepts it
    log_out(second)
    assert signed_in_as(first) is None  # ... and a logout on one ends the session on both
    for app in (first, second) * 5:
        log_in(app, user.username, "wrong password, again")
    assert log_in(first, user.username).status_int == 429
    assert log_in(second, user.username).status_int == 429


# -- production's cookie and secret -----------------------------------------------------------


def production_settings(db_url: str, **extra: str) -> dict[str, str]:
    ini = dict(get_appsettings(str(ROOT / "production.ini")))
    return ini | {"sqlalchemy.url": db_url, "myapp.files_dir": "/tmp", **extra}


def test_production_session_cookie_is_host_only_and_secure(db_url, dbsession, monkeypatch):
    monkeypatch.setenv("MYAPP_SECRET", "x7Qm2vRw9LpT4sZa8KdN1cYf6HbJ3gUe")
    app = webtest.TestApp(
        configure(production_settings(db_url)).make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"}
    )
    cookie = app.get("/account/login").headers["Set-Cookie"]
    assert cookie.startswith("__Host-myapp_session=")
    for part in ("secure", "httponly", "samesite=lax", "path=/"):
        assert part in cookie.lower()
    assert "Domain" not in cookie


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "Set MYAPP_SECRET"),
        ("too-short-secret-1234", "at least 32 characters"),
        ("change-me-change-me-change-me-change-me", "looks like a placeholder"),
    ],
)
def test_production_refuses_a_weak_secret_in_one_line(tmp_path, secret, message):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"}
    if secret:
        env["MYAPP_SECRET"] = secret
    code = "from pyramid.paster import get_app; get_app('production.ini')"
    done = subprocess.run([str(BIN / "python"), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("myapp:")]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# -- myapp-adduser ------------------------------------------------------------------------------


def test_adduser_creates_users_and_refuses_clearly(tmp_path):
    from tests.conftest import write_ini

    ini = write_ini(tmp_path / "cli.ini", f"sqlite:///{tmp_path / 'cli.sqlite'}", tmp_path / "files", free_port())
    assert subprocess.run([str(BIN / "myapp-initdb"), str(ini)], capture_output=True, check=False).returncode == 0

    def adduser(*args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "myapp-adduser"), str(ini), *args, "--password-stdin"]
        return subprocess.run(command, input=password + "\n", capture_output=True, text=True, timeout=60)

    done = adduser("--username", "root-admin", "--email", "root@example.org", "--admin")
    assert done.returncode == 0 and "Created administrator root-admin." in done.stdout
    taken = adduser("--username", "ROOT-ADMIN", "--email", "other@example.org")
    assert taken.returncode == 1 and "That username is taken." in taken.stderr
    weak = adduser("--username", "weakling", "--email", "weak@example.org", password="password")
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    for result in (done, taken, weak):
        assert PASSWORD not in result.stdout + result.stderr and "Traceback" not in result.stderr
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'cli.sqlite'}")
    with engine.connect() as conn:
        rows = conn.execute(select(User.username, User.is_admin, User.email_verified)).all()
    engine.dispose()
    assert rows == [("root-admin", True, True)]


def test_session_cookies_are_pyramids_own_and_verified_ones_are_remembered():
    """The remembering serializer makes and reads the same cookies as
    SignedCookieSessionFactory's; a forged or altered one is refused every
    time (a failure is never remembered), and a remembered one gives each
    request its own copy of the session."""
    from pyramid.session import JSONSerializer
    from webob.cookies import SignedSerializer

    from myapp.security import RememberedSignatures

    secret = "s" * 64
    pyramids = SignedSerializer(secret, "pyramid.session.", "sha512", serializer=JSONSerializer())
    ours = RememberedSignatures(secret, size=2)
    session = [1700000000, 1700000000, {"auth": {"uid": 1, "gen": 3}}]
    assert ours.loads(pyramids.dumps(session)) == session
    assert pyramids.loads(ours.dumps(session)) == session

    cookie = ours.dumps(session)
    first = ours.loads(cookie)
    first[2]["auth"]["uid"] = 2  # a view changing its session in place
    assert ours.loads(cookie) == session
    forged = cookie[:-2] + (b"AA" if not cookie.endswith(b"AA") else b"BB")
    for _ in range(2):
        with pytest.raises(ValueError):
            ours.loads(forged)
    with pytest.raises(ValueError):
        RememberedSignatures("t" * 64).loads(cookie)  # another secret's

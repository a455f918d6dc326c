"""Membership, on SQLite and PostgreSQL: who may register (open, by
invitation, closed), administrators' invitations (mailed, single-use,
expiring, revocable; ``myapp-invite`` on the command line), who may read a
private index (active members with a verified email), and a registration
form that does not tell whether an address has an account."""

from __future__ import annotations

import http.cookiejar
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
import webtest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from myapp.accounts import services
from myapp.accounts.models import Invitation, User
from myapp.config import configure
from myapp.data.meta import utcnow
from myapp.data.migrations import upgrade_to_head
from myapp.packaging.demo import load_demo
from myapp.packaging.models import Package
from myapp.security import SettingsError, registration
from tests.accounts import (
    PASSWORD,
    form_for,
    link_in,
    log_in,
    mails_to,
    make_user,
    register,
    signed_in_as,
    submit,
    unique,
)
from tests.conftest import BIN, fresh_database, live_server
from tests.test_accounts import basic, events, fresh


def make_app(settings, **more: str) -> webtest.TestApp:
    app = configure({**settings, **more}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


@pytest.fixture
def private(settings, dbsession) -> webtest.TestApp:
    """A private index with the default registration (closed)."""
    return make_app(settings, **{"myapp.read_access": "authenticated"})


@pytest.fixture
def by_invitation(settings, dbsession) -> webtest.TestApp:
    return make_app(settings, **{"myapp.read_access": "authenticated", "myapp.registration": "invite"})


@pytest.fixture
def project(dbsession, files_dir) -> Package:
    load_demo(dbsession, files_dir, projects=1)
    return dbsession.scalars(select(Package)).one()


def private_urls(project: Package) -> list[str]:
    wheel = project.releases[0].files[0].filename
    return [
        "/simple/",
        f"/simple/{project.name}/",
        f"/pypi/{project.name}/json",
        f"/project/{project.name}/",
        f"/files/{wheel}",
    ]


def csrf_token(app: webtest.TestApp) -> str:
    """A real CSRF token for this client's session (the login page's form)."""
    return form_for(app.get("/account/login"), "/account/login")["csrf_token"].value


def users(db) -> int:
    return db.scalar(select(func.count()).select_from(User))


# -- the setting ------------------------------------------------------------------------------


def test_registration_setting(monkeypatch):
    monkeypatch.delenv("MYAPP_READ_ACCESS", raising=False)
    monkeypatch.delenv("MYAPP_REGISTRATION", raising=False)
    assert registration({}) == "open"
    assert registration({"myapp.read_access": "authenticated"}) == "closed"  # a private index is closed by default
    assert registration({"myapp.read_access": "authenticated", "myapp.registration": " Invite "}) == "invite"
    monkeypatch.setenv("MYAPP_REGISTRATION", "open")
    assert registration({"myapp.read_access": "authenticated", "myapp.registration": "closed"}) == "open"
    monkeypatch.setenv("MYAPP_REGISTRATION", "anyone")
    with pytest.raises(
        SettingsError, match=r"^myapp\.registration must be one of open, invite, closed, not 'anyone'\.$"
    ):
        registration({})


# -- defect 1: a private index let anyone in ------------------------------------------------------


def test_a_stranger_cannot_register_on_a_private_index(private, dbsession, project):
    page = private.get("/account/register")
    assert "Registration is closed" in page.text and "ask an administrator" in page.text
    assert not page.html.select("form input[name=password]")
    # The form is refused by the server, not just hidden.
    fields = {"username": "stranger", "email": "stranger@example.org", "password": PASSWORD}
    res = private.post("/account/register", {**fields, "csrf_token": csrf_token(private)}, status=403)
    assert "Registration is closed" in res.text
    assert users(dbsession) == 0
    assert log_in(private, "stranger").status_int == 400
    for path in private_urls(project):  # tools get 401, pages send to the login page
        assert private.get(path, headers=basic("stranger", PASSWORD), status=[401, 303])


def test_by_invitation_only_the_form_needs_an_invitation(by_invitation, dbsession):
    page = by_invitation.get("/account/register")
    assert "Registration is by invitation only" in page.text and not page.html.select("form input[name=password]")
    fields = {"username": "stranger", "email": "stranger@example.org", "password": PASSWORD}
    by_invitation.post("/account/register", {**fields, "csrf_token": csrf_token(by_invitation)}, status=403)
    for token in ("", "forged", "x" * 5000):
        res = by_invitation.post(
            "/account/register", {**fields, "token": token, "csrf_token": csrf_token(by_invitation)}, status=400
        )
        assert "This link is not valid" in res.text
    assert users(dbsession) == 0


def test_unverified_and_suspended_accounts_read_nothing(app, private, dbsession, project):
    """Signed in, with a password or with a token: an unverified address reads
    nothing (and is told to verify it); once verified it reads; suspended, its
    session, password and token stop at once."""
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    user = make_user(dbsession)
    _, token = services.create_token(dbsession, user, "pip")
    log_in(private, user.username)
    for path in private_urls(project):
        page = private.get(path, status=403)
        assert "verified email address" in page.text and user.email in page.text, path
        if path.startswith("/project/"):  # a page: how to verify; tools get the 403's reason
            assert "Verify your email address" in page.text and form_for(page, "/account/verify-email/send")
        for headers in (basic(user.username, PASSWORD), basic("__token__", token)):
            if path.startswith("/project/"):  # basic auth opens no page, member or not
                private.get(path, headers=headers, status=401)
                continue
            res = private.get(path, headers=headers, status=403)
            assert "verified email address" in res.text, path
    assert private.get("/account").status_int == 200  # where to verify (or change) the address
    user.email_verified = True
    dbsession.flush()
    for path in private_urls(project):
        assert private.get(path).status_int == 200, path
        tool = not path.startswith("/project/")
        assert private.get(path, headers=basic("__token__", token), status=200 if tool else 401), path

    admin_app = make_app(app.registry.settings, **{"myapp.read_access": "authenticated"})
    log_in(admin_app, admin.username)
    page = admin_app.get("/admin/users")
    assert "Suspend" in page.text
    form_for(page, f"/admin/users/{user.username}/active").submit(status=302)
    assert "suspended" in admin_app.get("/admin/users").text
    assert private.get("/account", status=303)  # the session ended: sign in again
    for path in private_urls(project):
        assert private.get(path, status=[401, 303]), path
        for headers in (basic(user.username, PASSWORD), basic("__token__", token)):
            assert private.get(path, headers=headers, status=[401, 303]), path
    assert log_in(private, user.username).status_int == 400
    assert "disabled" in events(dbsession, user)

    form_for(admin_app.get("/admin/users"), f"/admin/users/{user.username}/active").submit(status=302)  # reinstate
    assert log_in(private, user.username).status_int == 303
    assert private.get(f"/simple/{project.name}/").status_int == 200


def test_an_open_private_index_admits_whoever_proves_an_inbox(settings, dbsession, project):
    open_private = make_app(settings, **{"myapp.read_access": "authenticated", "myapp.registration": "open"})
    name = register(open_private)
    assert signed_in_as_member(open_private, project)
    assert services.find_user(dbsession, name).email_verified


def signed_in_as_member(app: webtest.TestApp, project: Package) -> bool:
    return app.get(f"/simple/{project.name}/", expect_errors=True).status_int == 200


# -- invitations --------------------------------------------------------------------------------


def invite(admin_app: webtest.TestApp, address: str, status: int = 303) -> webtest.TestResponse:
    return submit(admin_app, "/admin/invitations", {"email": address}, status=status)


def test_an_invitation_is_mailed_used_once_and_verifies_the_address(by_invitation, settings, dbsession, project):
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    admin_app = make_app(settings, **{"myapp.read_access": "authenticated", "myapp.registration": "invite"})
    log_in(admin_app, admin.username)
    address = f"{unique('new')}@example.org"
    invite(admin_app, address)
    listing = admin_app.get("/admin/invitations")
    assert f"Invitation sent to {address}" in listing.text and "pending" in listing.text

    (mail,) = mails_to(admin_app, address)
    assert mail["Subject"] == "You are invited to myapp" and admin.username in mail.get_content()
    link = link_in(mail)
    secret = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]
    stored = dbsession.scalars(select(Invitation).where(Invitation.email == address)).one()
    row = dbsession.execute(text("SELECT * FROM invitations WHERE id = :i"), {"i": stored.id}).one()
    assert secret not in " ".join(str(value) for value in row)  # only its digest is kept

    page = by_invitation.get(link)
    assert f"You were invited as {address}." in page.html.select_one("main").text
    form = form_for(page, "/account/register")
    assert "email" not in form.fields  # the address is the invitation's
    form["username"] = "invited-one"
    form["password"] = PASSWORD
    assert form.submit(status=303).location.endswith("/account")
    assert signed_in_as(by_invitation) == "invited-one"
    user = services.find_user(dbsession, "invited-one")
    assert user.email == address and fresh(dbsession, user).email_verified
    assert events(dbsession, user) == ["registered", "email verified", "login"]
    assert by_invitation.get(f"/simple/{project.name}/").status_int == 200

    again = make_app(settings, **{"myapp.read_access": "authenticated", "myapp.registration": "invite"})
    assert "This link is not valid" in again.get(link, status=400).text  # single use
    dbsession.expire_all()
    assert stored.state(utcnow()) == "used" and stored.used_by_id == user.id and stored.invited_by_id == admin.id
    assert "used by invited-one" in admin_app.get("/admin/invitations").text


def test_invitations_expire_and_can_be_revoked(by_invitation, settings, dbsession):
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    expired, expired_secret = services.create_invitation(dbsession, "late@example.org", by=admin)
    expired.expires = utcnow() - timedelta(seconds=1)
    revoked, revoked_secret = services.create_invitation(dbsession, "gone@example.org", by=admin)
    dbsession.flush()
    assert by_invitation.get(f"/account/register?token={revoked_secret}").status_int == 200
    admin_app = make_app(settings, **{"myapp.registration": "invite"})
    log_in(admin_app, admin.username)
    page = admin_app.get("/admin/invitations")
    assert "expired" in page.text
    form_for(page, f"/admin/invitations/{revoked.id}/revoke").submit(status=303)
    assert "revoked" in admin_app.get("/admin/invitations").text
    admin_app.post(f"/admin/invitations/{revoked.id}/revoke", {"csrf_token": csrf_token(admin_app)}, status=404)
    for secret in (expired_secret, revoked_secret):
        assert "This link is not valid" in by_invitation.get(f"/account/register?token={secret}", status=400).text
        fields = {"token": secret, "username": unique(), "password": PASSWORD, "csrf_token": csrf_token(by_invitation)}
        by_invitation.post("/account/register", fields, status=400)
    assert users(dbsession) == 1
    # A second invitation for one address replaces the first.
    first, first_secret = services.create_invitation(dbsession, "twice@example.org", by=admin)
    services.create_invitation(dbsession, "twice@example.org", by=admin)
    assert services.find_invitation(dbsession, first_secret) is None and first.revoked is not None


def test_closed_means_closed_even_with_an_invitation(private, settings, dbsession):
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    _, secret = services.create_invitation(dbsession, "late@example.org", by=admin)
    dbsession.flush()
    assert "This link is not valid" in private.get(f"/account/register?token={secret}", status=400).text
    log_in(private, admin.username)
    res = invite(private, "someone@example.org", status=400)
    assert "Registration is closed" in res.text and "set it to invite first" in res.text.lower()


def test_only_administrators_invite_and_never_an_existing_member(by_invitation, settings, dbsession):
    member = make_user(dbsession, email_verified=True)
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    assert by_invitation.get("/admin/invitations", status=303)  # sign in first
    log_in(by_invitation, member.username)
    assert by_invitation.get("/admin/invitations", status=403)
    by_invitation.post(
        "/admin/invitations", {"email": "x@example.org", "csrf_token": csrf_token(by_invitation)}, status=403
    )
    admin_app = make_app(settings, **{"myapp.registration": "invite"})
    log_in(admin_app, admin.username)
    admin_app.post("/admin/invitations", {"email": "x@example.org"}, status=400)  # no CSRF token
    assert "has an account already" in invite(admin_app, member.email.upper(), status=400).text
    assert "must have an @-sign" in invite(admin_app, "not-an-address", status=400).text
    assert dbsession.scalar(select(func.count()).select_from(Invitation)) == 0
    assert mails_to(admin_app, "x@example.org") == []


def test_an_invited_member_who_changes_address_reads_nothing_until_it_is_verified(by_invitation, dbsession, project):
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    _, secret = services.create_invitation(dbsession, "joiner@example.org", by=admin)
    dbsession.flush()
    res = submit(by_invitation, f"/account/register?token={secret}", {"username": "joiner", "password": PASSWORD})
    assert res.status_int == 303
    assert by_invitation.get(f"/simple/{project.name}/").status_int == 200
    res = submit(
        by_invitation,
        "/account",
        {"email": "joiner@example.net", "current_password": PASSWORD},
        action="/account/email",
    )
    assert res.status_int == 303
    assert "verified email address" in by_invitation.get(f"/simple/{project.name}/", status=403).text


def test_two_uses_of_one_invitation_at_once_one_wins(backend, tmp_path):
    """Two transactions both see the invitation pending, and both try to spend
    it: exactly one does. On PostgreSQL the second waits on the first's row
    lock (checked in pg_stat_activity) and then matches nothing."""
    with fresh_database(backend, tmp_path) as url:
        engine = create_engine(url)
        upgrade_to_head(engine)
        with Session(engine) as db:
            _, secret = services.create_invitation(db, "race@example.org", by=None)
            db.commit()
        first, second = Session(engine), Session(engine)
        try:
            one, two = services.find_invitation(first, secret), services.find_invitation(second, secret)
            assert one is not None and two is not None
            results: dict[str, bool] = {}
            assert services.use_invitation(first, one)
            if backend == "postgresql":
                pid = second.execute(text("SELECT pg_backend_pid()")).scalar()
            waiter = threading.Thread(target=lambda: results.update(second=services.use_invitation(second, two)))
            waiter.start()
            if backend == "postgresql":
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with engine.connect() as conn:
                        waiting = conn.execute(
                            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
                        ).scalar()
                    if waiting == "Lock":
                        break
                    time.sleep(0.05)
                assert waiting == "Lock"
            first.commit()
            waiter.join(30)
            second.commit()
            assert results == {"second": False}
        finally:
            first.close()
            second.close()
        with Session(engine) as db:
            assert db.scalar(select(func.count()).select_from(Invitation).where(Invitation.used_at.is_not(None))) == 1
        engine.dispose()


# -- registration reveals nothing --------------------------------------------------------------


WRITE = re.compile(r"(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)")


def test_a_taken_email_is_not_revealed(testapp, dbsession, count_queries):
    """Asking to register answers the same status, page and headers, after the
    same work (one row written, one mail), whether the address is new or has an
    account; its owner is told by mail, and nothing is reserved either way."""
    owner = make_user(dbsession, email_verified=True)
    answers = {}
    for case, address in (("new", f"{unique('fresh')}@example.org"), ("taken", owner.email.upper())):
        client = webtest.TestApp(testapp.app, extra_environ={"HTTP_HOST": "localhost"})
        page = client.get("/account/register")
        count_queries.clear()
        form = form_for(page, "/account/register")
        form["email"] = address
        res = form.submit(expect_errors=True)
        writes = {m.group(2) for q in count_queries.statements if (m := WRITE.match(q.lstrip()))}
        body = re.sub(r"[\w.+-]+@[\w.-]+", "ADDRESS", res.text)
        answers[case] = (res.status_int, body, sorted(name for name, _ in res.headerlist if name != "Content-Length"))
        assert signed_in_as(client) is None
        answers[case + " writes"] = writes
    assert answers["new"] == answers["taken"]
    assert answers["new"][0] == 200 and "Check your inbox: we sent a message to ADDRESS" in answers["new"][1]
    # No account, nothing reserved; the mail is a queued job either way.
    assert answers["new writes"] == {"invitations", "throttle_events", "jobs"}
    assert answers["taken writes"] == {"invitations", "user_events", "throttle_events", "jobs"}
    (told,) = mails_to(testapp, owner.email)
    assert told["Subject"] == "Someone tried to register with your address on myapp"
    assert owner.username in told.get_content()
    assert events(dbsession, owner) == ["registered", "registration attempted"]
    assert users(dbsession) == 1  # nobody has an account until a link is used


# -- myapp-invite, for real ----------------------------------------------------------------------


def test_myapp_invite_prints_a_link_that_works_once(backend, tmp_path):
    """``myapp-invite`` run as a command against a live private index; the link
    it prints, opened by two browsers that submit at the same moment, makes one
    verified member who reads the index; the other is refused."""
    settings = {"myapp.read_access": "authenticated", "myapp.registration": "invite"}
    with live_server(backend, tmp_path, settings=settings, demo=False) as server:
        command = [str(BIN / "myapp-invite"), str(server.ini)]
        done = server.run_cli(*command, "newcomer@example.org", "--base-url", server.base)
        assert done.returncode == 0, done.stderr
        (link,) = re.findall(r"http://\S+", done.stdout)
        assert link.startswith(f"{server.base}/account/register?token=")

        def refusal(*args: str) -> str:
            """The one line the command says (the log may say more) as it exits 1."""
            failed = server.run_cli(*command, *args)
            lines = [line for line in failed.stderr.splitlines() if line.startswith("myapp-invite:")]
            assert failed.returncode == 1 and len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr
            return lines[0]

        assert refusal("not-an-address", "--base-url", server.base).startswith("myapp-invite: email: ")
        assert refusal("a@example.org").startswith("myapp-invite: say where the site is")
        assert "--days must be from 1 to 365" in refusal("a@example.org", "--base-url", server.base, "--days", "0")
        server.env["MYAPP_REGISTRATION"] = "closed"
        assert refusal("b@example.org", "--base-url", server.base) == (
            "myapp-invite: registration is closed, so an invitation could not be used; set myapp.registration = invite"
        )
        del server.env["MYAPP_REGISTRATION"]

        answers = at_once([Browser(link), Browser(link)], ["racer-0", "racer-1"])
        # Mailed too: the server's worker thread (started by its first request) sends it.
        (mail,) = mails_to(server.folder / "mail", "newcomer@example.org")
        assert mail["Subject"] == "You are invited to myapp" and link in mail.get_content()
        assert sorted(status for status, _ in answers) == [200, 400], answers
        winner = next(url for status, url in answers if status == 200)
        assert winner.endswith("/account")
        engine = create_engine(server.url)
        with Session(engine) as db:
            (member,) = db.scalars(select(User)).all()
            assert member.email == "newcomer@example.org" and member.email_verified
        engine.dispose()
        status, _ = Browser(f"{server.base}/simple/").open(basic(member.username, PASSWORD))
        assert status == 200
        again = Browser(link)
        assert again.status == 400
        taken = refusal("newcomer@example.org", "--base-url", server.base)
        assert taken == "myapp-invite: newcomer@example.org has an account already"

        # Two invitations used at the same moment with one username: one account, a form error, no 500.
        links = []
        for address in ("twin-a@example.org", "twin-b@example.org"):
            done = server.run_cli(*command, address, "--base-url", server.base)
            links += re.findall(r"http://\S+", done.stdout)
        twins = [Browser(url) for url in links]
        answers = at_once(twins, ["twin", "twin"])
        assert sorted(status for status, _ in answers) == [200, 400], answers
        (refused,) = [twin.body for twin in twins if "Create account" in twin.body]
        assert re.search(r"That username (is|was) taken", refused)
    log = server.log.read_text()
    secret = link.partition("token=")[2]
    assert secret not in log and PASSWORD not in log and "Traceback" not in log


def at_once(browsers: list[Browser], usernames: list[str]) -> list[tuple[int, str]]:
    """Each browser submits its form with its username, all at the same moment."""
    barrier = threading.Barrier(len(browsers))
    answers: list[tuple[int, str]] = []

    def register(browser: Browser, name: str) -> None:
        barrier.wait()
        answers.append(browser.submit(name))

    threads = [threading.Thread(target=register, args=pair) for pair in zip(browsers, usernames, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


class Browser:
    """A client with its own cookies that opens the register page (getting
    the session's CSRF token) and submits it, as a browser would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.body = ""
        self.status, body = self._open(urllib.request.Request(url))
        found = re.search(r'name="csrf_token" value="([^"]+)"', body)
        self.csrf = found.group(1) if found else ""

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=60) as res:
                return res.status, res.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def open(self, headers: dict[str, str]) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.url, headers=headers))

    def submit(self, username: str) -> tuple[int, str]:
        """POST the form; the status and the address it ended at (after a
        redirect). The page is kept in ``body``."""
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["token"][0]
        data = urllib.parse.urlencode(
            {"csrf_token": self.csrf, "token": token, "username": username, "password": PASSWORD}
        ).encode()
        base = self.url.split("/account/")[0]
        try:
            with self.opener.open(urllib.request.Request(f"{base}/account/register", data=data), timeout=60) as res:
                self.body = res.read().decode()
                return res.status, res.geturl()
        except urllib.error.HTTPError as err:
            self.body = err.read().decode()
            return err.code, err.geturl()


# -- the header of a private index -----------------------------------------------------------------


def test_pages_for_those_who_may_not_read_offer_no_browse_or_search(private, testapp, dbsession):
    """On a private index Browse and Search lead back to the login page: the
    pages a signed-out visitor (or an unverified member) sees leave them out."""

    def header_links(page: webtest.TestResponse) -> tuple[bool, bool]:
        return bool(page.html.select('header a[href="/projects/"]')), bool(page.html.select("header form.search"))

    for path in ("/account/login", "/account/register", "/account/forgot-password"):
        assert header_links(private.get(path)) == (False, False), path
        assert header_links(testapp.get(path)) == (True, True), path  # a public index offers them
    missing = private.get("/no-such-page", status=404)
    assert header_links(missing) == (False, False) and "browse all projects" not in missing.text
    user = make_user(dbsession)
    log_in(private, user.username)
    assert header_links(private.get("/account")) == (False, False)
    user.email_verified = True
    dbsession.flush()
    assert header_links(private.get("/account")) == (True, True)


def test_only_members_publish_to_a_private_index(private, dbsession):
    """An account whose address is not verified reads nothing, and publishes
    nothing either: not even a new project, which needs no role."""
    from tests.test_upload import WHEEL, _wheel, upload

    user = make_user(dbsession, username=unique("publisher"))
    data = _wheel("Tiny-Thing", "1.0", "A tiny thing")
    refused = upload(private, user.username, PASSWORD, WHEEL, data)
    assert refused.status_int == 403 and "verify your email address" in refused.text
    assert dbsession.scalar(select(func.count()).select_from(Package).where(Package.name == "tiny-thing")) == 0
    user.email_verified = True
    dbsession.flush()
    assert upload(private, user.username, PASSWORD, WHEEL, data).status_int == 200

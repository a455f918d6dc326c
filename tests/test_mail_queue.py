"""Mail goes through the job queue: it leaves only if the request commits,
and a mail server that is down never fails a request (a live server, with
aiosmtpd started, stopped and started again). Also: bookkeeping after the
response is skipped when the request failed."""

from __future__ import annotations

import time

import pytest
import requests
import webtest
from aiosmtpd.controller import Controller
from bs4 import BeautifulSoup
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from myapp.accounts.mail import send_mail
from myapp.accounts.models import EventTag, User, UserEvent
from myapp.config import configure
from myapp.data import write_after_response
from myapp.data.jobs import Job, JobState, enqueue
from tests.accounts import PASSWORD, Inbox, link_in, mails_to, make_user, submit, unique
from tests.conftest import BIN, free_port, live_server

# -- what a failed request leaves behind: nothing -------------------------------------------------


class Boom(Exception):
    pass


def _mail_view(fail: bool):
    def view(request):
        user = request.dbsession.get(User, int(request.params["user"]))
        send_mail(request, user, "verify", link="http://localhost/account/verify-email?token=t")
        if fail:
            raise Boom("after the mail was queued")
        return Response("sent")

    return view


def _bookkeeping_view(ran: list[str], fail: bool):
    def view(request):
        write_after_response(request, lambda db: ran.append(request.path), what="a test count")
        if fail:
            raise Boom("after the bookkeeping was asked for")
        return Response("ok")

    return view


@pytest.fixture
def app_with_test_views(settings, dbsession) -> tuple[webtest.TestApp, list[str]]:
    """The app plus views that queue a mail or bookkeeping, then succeed or raise."""
    ran: list[str] = []
    config = configure(settings)
    for name, view in {
        "mail-then-ok": _mail_view(False),
        "mail-then-fail": _mail_view(True),
        "count-then-ok": _bookkeeping_view(ran, False),
        "count-then-fail": _bookkeeping_view(ran, True),
    }.items():
        config.add_route(f"test.{name}", f"/test/{name}")
        config.add_view(view, route_name=f"test.{name}", permission=NO_PERMISSION_REQUIRED)
    return webtest.TestApp(config.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"}), ran


def test_a_request_that_fails_after_queueing_a_mail_sends_nothing(app_with_test_views, dbsession):
    app, _ = app_with_test_views
    failed, sent = make_user(dbsession), make_user(dbsession)
    assert app.get(f"/test/mail-then-fail?user={failed.id}", status=500)
    assert app.get(f"/test/mail-then-ok?user={sent.id}", status=200)
    assert mails_to(app, sent.email)[-1]["Subject"] == "Verify your email address for myapp"
    assert mails_to(app, failed.email) == []  # the mail was queued in the aborted transaction


def test_bookkeeping_after_the_response_is_skipped_when_the_request_failed(app_with_test_views, dbsession):
    app, ran = app_with_test_views
    app.get("/test/count-then-fail", status=500)
    app.get("/test/count-then-ok", status=200)
    assert ran == ["/test/count-then-ok"]


# -- the password reset answers the same for every login ---------------------------------------------


def test_a_reset_request_answers_the_same_and_mails_only_what_fits(testapp, dbsession):
    user, disabled = make_user(dbsession), make_user(dbsession, is_active=False)
    unknown_address = unique("nobody") + "@example.org"
    answers = [
        submit(testapp, "/account/forgot-password", {"username": login})
        for login in (user.email, user.username, disabled.email, unknown_address, unique("nobody"))
    ]
    assert {a.status_int for a in answers} == {200}
    assert len({a.text for a in answers}) == 1  # byte for byte the same page
    assert [m["Subject"] for m in mails_to(testapp, user.email)] == ["Reset your myapp password"] * 2
    assert mails_to(testapp, disabled.email) == []
    (note,) = mails_to(testapp, unknown_address)
    assert note["Subject"] == "Password reset requested for myapp" and "no account uses" in note.get_content()
    assert "token=" not in note.get_content()
    dbsession.expire_all()
    requested = select(func.count()).where(UserEvent.tag == EventTag.PASSWORD_RESET_REQUESTED)
    assert dbsession.scalar(requested.where(UserEvent.user_id == user.id)) == 2
    assert dbsession.scalar(requested.where(UserEvent.user_id == disabled.id)) == 0


# -- a live server while the mail server is down ----------------------------------------------------


def post_form(web: requests.Session, page_url: str, action: str, fields: dict[str, str]) -> requests.Response:
    """Fill in the form posting to ``action`` on ``page_url`` (CSRF token included) and send it."""
    page = web.get(page_url, timeout=30)
    form = BeautifulSoup(page.text, "html.parser").find("form", action=action)
    assert form is not None, f"no form posting to {action} on {page_url}"
    data = {
        i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name") and i.get("type") != "submit"
    }
    base = page_url.split("/", 3)[:3]
    return web.post("/".join(base) + action, data={**data, **fields}, allow_redirects=False, timeout=30)


def test_mail_waits_out_an_smtp_outage_and_no_request_fails(backend, tmp_path):
    inbox, smtp_port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    settings = {
        "mail.host": "127.0.0.1",
        "mail.port": str(smtp_port),
        "myapp.mail_folder": "",  # real SMTP
        "myapp.worker_thread": "false",  # delivered by myapp-worker --drain below
        "myapp.jobs.backoff_seconds": "1",
    }
    try:
        with live_server(backend, tmp_path, demo=False, settings=settings) as server:

            def drain() -> str:
                done = server.run_cli(str(BIN / "myapp-worker"), str(server.ini), "--drain")
                assert done.returncode == 0, done.stderr
                return done.stdout

            web, name = requests.Session(), unique()
            old, new = f"{name}@example.org", f"{name}-new@example.org"
            assert post_form(web, server.base + "/account/register", "/account/register", {"email": old}).ok
            drain()
            (join,) = inbox.messages
            assert (join["To"], join["Subject"]) == (old, "Create your myapp account")
            fields = {"username": name, "password": PASSWORD}
            assert post_form(web, server.base + link_in(join), "/account/register", fields).status_code == 303

            smtp.stop()  # the mail server goes down
            fields = {"email": new, "current_password": PASSWORD}
            assert post_form(web, server.base + "/account", "/account/email", fields).status_code == 303
            reset = post_form(
                requests.Session(),
                server.base + "/account/forgot-password",
                "/account/forgot-password",
                {"username": new},
            )
            assert reset.status_code == 200
            assert "retry" in drain() and len(inbox.messages) == 1

            engine = create_engine(server.url)
            try:
                with engine.connect() as db:
                    assert db.scalars(select(User.email).where(User.username == name)).all() == [new]  # once
                    changed = select(func.count()).select_from(UserEvent).where(UserEvent.tag == EventTag.EMAIL_CHANGED)
                    assert db.scalar(changed) == 1
                    waiting = db.execute(
                        select(Job.state, Job.attempts, Job.last_error).where(Job.kind == "mail")
                    ).all()
                    retrying = [w for w in waiting if w.state == JobState.QUEUED]
                    assert len(retrying) == 3 and all(
                        w.attempts == 1 and "Connection" in w.last_error for w in retrying
                    )

                smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
                smtp.start()  # ...and comes back
                deadline = time.monotonic() + 30
                while len(inbox.messages) < 4 and time.monotonic() < deadline:
                    time.sleep(1)  # the retries' backoff (1 s here, 10 s by default)
                    drain()
                delivered = sorted((m["To"], m["Subject"]) for m in inbox.messages[1:])
                assert delivered == sorted(
                    [
                        (old, "Your myapp email address was changed"),
                        (new, "Reset your myapp password"),
                        (new, "Verify your email address for myapp"),
                    ]
                )
                with engine.connect() as db:
                    assert set(db.scalars(select(Job.state).where(Job.kind == "mail"))) == {JobState.DONE}
            finally:
                engine.dispose()
    finally:
        smtp.stop()


# -- myapp-worker as a service ---------------------------------------------------------------------


def test_myapp_worker_delivers_until_sigterm_then_exits_cleanly(tmp_path):
    import signal
    import subprocess

    with live_server("sqlite", tmp_path, demo=False, settings={"myapp.worker_thread": "false"}) as server:
        name = unique()
        fields = {"email": f"{name}@example.org"}
        assert post_form(requests.Session(), server.base + "/account/register", "/account/register", fields).ok
        assert mails_to(server.folder / "mail", f"{name}@example.org", wait=0) == []  # nobody runs the queue yet
        worker = subprocess.Popen(
            [str(BIN / "myapp-worker"), str(server.ini)], env=server.env, stderr=subprocess.PIPE, text=True
        )
        try:
            (mail,) = mails_to(server.folder / "mail", f"{name}@example.org", wait=20)
            assert mail["Subject"] == "Create your myapp account"
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=15) == 0
            assert "SIGTERM, stopping after the current job" in worker.stderr.read()
        finally:
            worker.kill()
            worker.wait()
            worker.stderr.close()

        # --drain, as cron runs it: status 1 when a job failed for good (here: a kind nobody handles).
        engine = create_engine(server.url)
        try:
            with sessionmaker(bind=engine).begin() as db:
                enqueue(db, "nobody.handles.this", {})
        finally:
            engine.dispose()
        done = server.run_cli(str(BIN / "myapp-worker"), str(server.ini), "--drain")
        assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout + done.stderr


def test_myapp_worker_reports_a_missing_config_in_one_line(tmp_path):
    import subprocess

    done = subprocess.run([str(BIN / "myapp-worker"), str(tmp_path / "nope.ini")], capture_output=True, text=True)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"myapp-worker: no such file '{tmp_path / 'nope.ini'}'; name the ini file")

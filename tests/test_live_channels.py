"""Credentials and database failures on the real server (waitress): a
database that fails on a request's first query (the security policy's)
answers the site's 503 page, and on SQLite a request whose credentials fail
never waits for, nor holds, the write lock."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from myapp.accounts import services
from myapp.packaging.models import Package, Release, Role, RoleName
from tests.accounts import PASSWORD
from tests.conftest import LiveServer, live_server

# Short, so that a request that waits for SQLite's lock fails fast.
LIVE_SETTINGS = {"sqlalchemy.busy_timeout_ms": "300"}


def add_owner(server: LiveServer, username: str = "owner", nth: int = 0) -> tuple[str, str, str]:
    """A user who owns a demo project with a release (the ``nth``) that is not
    yanked: (project, version, API token)."""
    engine = create_engine(server.url)
    with Session(engine) as db, db.begin():
        user = services.create_user(db, username=username, email=f"{username}@example.org", password=PASSWORD)
        user.email_verified = True  # a member: a private index lets only members read
        package, version = db.execute(
            select(Package, Release.version)
            .join(Release)
            .where(Release.yanked.is_(False))
            .order_by(Release.id)
            .offset(nth)
            .limit(1)
        ).one()
        db.add(Role(user_id=user.id, package_id=package.id, role=RoleName.OWNER))
        _, token = services.create_token(db, user, "ci")
        name = package.name
    engine.dispose()
    return name, version, token


def signed_in(server: LiveServer) -> requests.Session:
    browser = requests.Session()
    page = browser.get(server.base + "/account/login", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page
    res = browser.post(
        server.base + "/account/login",
        {"csrf_token": csrf.group(1), "username": "owner", "password": PASSWORD},
        timeout=30,
        allow_redirects=False,
    )
    assert res.status_code == 303, res.text
    return browser


@contextmanager
def sqlite_write_lock(url: str, how: str = "EXCLUSIVE") -> Iterator[None]:
    """Another connection holds SQLite's write lock for the block."""
    other = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute(f"BEGIN {how}")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def postgresql_down(url: str) -> Iterator[None]:
    """The app's connections are cut and no new one is accepted, for the block."""
    name = make_url(url).database
    engine = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
    try:
        yield
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        engine.dispose()


def test_a_database_failure_on_the_first_query_is_the_503_page(backend, tmp_path):
    """Defect 8: the security policy's query (a signed-in visitor's first)
    failed before the exception views, and waitress answered a bare 500."""
    with live_server(backend, tmp_path, settings=LIVE_SETTINGS) as server:
        add_owner(server)
        browser = signed_in(server)
        assert "owner" in browser.get(server.base + "/account", timeout=30).text
        if backend == "sqlite":
            # A form's POST begins with BEGIN IMMEDIATE; a GET would still read (WAL).
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(server.base + "/account").text)
            with sqlite_write_lock(server.url):
                res = browser.post(server.base + "/account/logout", {"csrf_token": csrf.group(1)}, timeout=60)
        else:
            with postgresql_down(server.url):
                res = browser.get(server.base + "/account", timeout=60)
        assert res.status_code == 503, res.text[:300]
        assert res.headers["Retry-After"] == "5"
        for header in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"):
            assert header in res.headers, header
        assert "temporarily unavailable" in res.text
        assert "owner" in browser.get(server.base + "/account", timeout=30).text  # and it recovers
    log = server.log.read_text()
    assert "database unavailable on" in log and "Traceback" not in log


def test_failed_credentials_never_take_the_sqlite_write_lock(tmp_path):
    """Defect 3: a POST took the write lock before its credentials were
    checked, so wrong credentials queued behind (and blocked) real writers."""
    with live_server("sqlite", tmp_path, settings=LIVE_SETTINGS) as server:
        name, version, token = add_owner(server)
        yank = f"{server.base}/api/projects/{name}/{version}/yank"
        with sqlite_write_lock(server.url, "IMMEDIATE"):
            for credentials in (("owner", "a wrong password"), ("__token__", token[:-3] + "xyz"), ("x", "y")):
                res = requests.post(yank, auth=credentials, timeout=60)
                # Before: BEGIN IMMEDIATE waited out the busy timeout, three times, then 503.
                assert res.status_code == 401, res.text[:300]
        res = requests.post(yank, auth=("__token__", token), timeout=60)
        assert res.status_code == 200 and res.json()["yanked"] is True
    # Failures are recorded after the response; that one was refused by the lock is only logged.
    assert "Traceback" not in server.log.read_text()

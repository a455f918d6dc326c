"""A private index (``myapp.read_access = authenticated``) on SQLite and
PostgreSQL: nothing is readable without signing in, tools get 401 and basic
auth, project-scoped tokens read only their project; and real pip and uv
install with credentials in the index URL or in a netrc file."""

from __future__ import annotations

import subprocess
from urllib.parse import quote

import pytest
import webtest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from myapp.accounts import services
from myapp.config import configure
from myapp.packaging.demo import load_demo
from myapp.packaging.models import Package, ReleaseFile
from myapp.security import SettingsError, read_access
from tests.accounts import PASSWORD, log_in, make_user
from tests.conftest import BIN, live_server
from tests.test_accounts import basic
from tests.test_simple import installed_version, make_venv, offline_env


@pytest.fixture
def private(settings, dbsession) -> webtest.TestApp:
    app = configure({**settings, "myapp.read_access": "authenticated", "myapp.page_cache_seconds": "60"})
    return webtest.TestApp(app.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})


@pytest.fixture
def projects(dbsession, files_dir) -> list[Package]:
    load_demo(dbsession, files_dir, projects=2)
    return list(dbsession.scalars(select(Package).order_by(Package.name)))


def test_people_are_sent_to_sign_in(private, projects):
    for path in ("/", "/projects/", "/search?q=a", f"/project/{projects[0].name}/", "/project/no-such-thing/"):
        res = private.get(path, status=303)
        assert "/account/login?came_from=" in res.location, path
    for path in ("/account/login", "/account/register", "/account/forgot-password", "/static/site.css", "/health"):
        assert private.get(path).status_int == 200, path


def test_tools_get_401_and_learn_nothing(private, projects):
    wheel = projects[0].releases[0].files[0].filename
    paths = [
        "/simple/",
        f"/simple/{projects[0].name}/",
        "/simple/no-such-thing/",
        f"/pypi/{projects[0].name}/json",
        f"/files/{wheel}",
        f"/files/{wheel}.metadata",
        "/files/no-such-file.whl",
    ]
    for path in paths:
        res = private.get(path, status=401)
        assert res.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert projects[0].name not in res.text, path


def test_basic_auth_and_sessions_read(private, dbsession, projects):
    user = make_user(dbsession, email_verified=True)
    _, token = services.create_token(dbsession, user, "pip")
    for headers in (basic(user.username, PASSWORD), basic("__token__", token)):
        assert private.get(f"/simple/{projects[0].name}/", headers=headers).status_int == 200
        assert private.get("/simple/", headers=headers).status_int == 200
    assert private.get("/simple/", headers=basic(user.username, "wrong"), status=401)
    # The member's request left the page in the process's memory: a stranger still gets 401 and nothing of it.
    refused = private.get(f"/simple/{projects[0].name}/", status=401)
    assert projects[0].name not in refused.text
    log_in(private, user.username)
    page = private.get("/")
    assert page.status_int == 200 and "X-Page-Cache" not in page.headers
    assert "X-Page-Cache" not in private.get("/").headers  # no page cache on a private index


def test_project_scoped_tokens_read_only_their_project(private, dbsession, projects):
    mine, other = projects
    user = make_user(dbsession, email_verified=True)
    scoped, token = services.create_token(dbsession, user, "ci", package_id=mine.id)
    headers = basic("__token__", token)
    assert private.get(f"/simple/{mine.name}/", headers=headers).status_int == 200
    wheel = mine.releases[0].files[0].filename
    assert private.get(f"/files/{wheel}", headers=headers).status_int == 200
    for path in (f"/simple/{other.name}/", "/simple/", f"/pypi/{other.name}/json"):
        res = private.get(path, headers=headers, status=403)
        assert "limited to another project" in res.text, path
    assert private.get("/account", headers=headers, status=401)  # no page takes a token
    services.revoke_token(dbsession, user, scoped.id, None)
    dbsession.flush()
    assert private.get(f"/simple/{mine.name}/", headers=headers, status=401)


def test_read_access_setting(monkeypatch):
    monkeypatch.delenv("MYAPP_READ_ACCESS", raising=False)
    assert read_access({}) == "public"
    assert read_access({"myapp.read_access": "Authenticated"}) == "authenticated"
    monkeypatch.setenv("MYAPP_READ_ACCESS", "authenticated")
    assert read_access({"myapp.read_access": "public"}) == "authenticated"
    monkeypatch.setenv("MYAPP_READ_ACCESS", "secret")
    with pytest.raises(SettingsError, match=r"myapp\.read_access must be one of public, authenticated"):
        read_access({})


def test_pip_and_uv_with_credentials(backend, tmp_path):
    with live_server(backend, tmp_path, settings={"myapp.read_access": "authenticated"}) as server:
        engine = create_engine(server.url)
        with Session(engine) as db, db.begin():
            user = services.create_user(db, username="reader", email="reader@example.org", password=PASSWORD)
            user.email_verified = True  # a member: readers of a private index have a verified address
            _, token = services.create_token(db, user, "pip")
            project = db.scalar(
                select(Package.name).join(Package.releases).join(ReleaseFile).order_by(Package.name).limit(1)
            )
        engine.dispose()
        python = make_venv(tmp_path / "venv")
        env = offline_env(tmp_path)
        host = f"127.0.0.1:{server.port}"

        def run(*command: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
            return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)

        anonymous = run(str(python), "-m", "pip", "install", "--index-url", f"{server.base}/simple/", project)
        assert anonymous.returncode != 0 and "401" in anonymous.stdout + anonymous.stderr

        with_password = f"http://reader:{quote(PASSWORD)}@{host}/simple/"
        done = run(str(python), "-m", "pip", "install", "--index-url", with_password, project)
        assert done.returncode == 0, done.stdout + done.stderr
        run(str(python), "-m", "pip", "uninstall", "-y", project)

        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1\nlogin __token__\npassword {token}\n")
        netrc.chmod(0o600)
        with_netrc = env | {"NETRC": str(netrc)}
        done = run(
            str(python), "-m", "pip", "install", "--index-url", f"{server.base}/simple/", project, env=with_netrc
        )
        assert done.returncode == 0, done.stdout + done.stderr

        uv = str(BIN / "uv")
        with_token = f"http://__token__:{token}@{host}/simple/"
        done = run(uv, "pip", "install", "--python", str(python), "--reinstall", "--index-url", with_token, project)
        assert done.returncode == 0, done.stdout + done.stderr
        done = run(
            uv,
            "pip",
            "install",
            "--python",
            str(python),
            "--reinstall",
            "--index-url",
            f"{server.base}/simple/",
            project,
            env=with_netrc,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert installed_version(python, project)
    log = server.log.read_text()
    assert token not in log and PASSWORD not in log and "Traceback" not in log

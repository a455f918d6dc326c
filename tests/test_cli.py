"""What an operator sees: ``pserve``, ``pshell`` and the ``myapp-*`` scripts
as they are run, in subprocesses. Whatever the operator must fix (a missing
ini file, a missing secret, a database that is down, not migrated, behind or
ahead of the code) is one line on stderr that says what to do, and a non-zero
exit; start-up prints no warnings and no Alembic chatter."""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from myapp.data.migrations import head_revisions, known_revisions
from tests.conftest import BIN, ROOT, TEST_SECRET, LiveServer, free_port, fresh_database, live_server, write_ini
from tests.test_live import fetch, query

HEAD = ", ".join(sorted(head_revisions()))
BEHIND = max(known_revisions() - head_revisions())  # a real, older revision, whatever the head is
DEAD_PG = "postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/nothing"  # nothing listens on port 1
# Python's warnings as printed (file:line: SomethingWarning: ...), e.g. pkg_resources' deprecation.
WARNING_LINE = re.compile(r"\w*Warning: ")


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MYAPP_SECRET", "MYAPP_TRACEBACK")}
    return subprocess.run(
        args, cwd=cwd, env=environ | (env or {}), capture_output=True, text=True, timeout=120, check=False
    )


def one_error_line(done: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The single ``prefix:`` line of a refusal, after checking there is nothing worse."""
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and not WARNING_LINE.search(done.stderr), done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"{prefix}:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def copy_ini(name: str, folder: Path, port: int) -> Path:
    """A shipped ini file, in ``folder`` (where its %(here)s paths now point), on ``port``."""
    ini = configparser.RawConfigParser()
    ini.read(ROOT / name)
    ini["server:main"]["listen"] = f"127.0.0.1:{port}"
    path = folder / name
    with path.open("w") as fh:
        ini.write(fh)
    return path


def execute(url: str, sql: str, **params: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def set_revision(url: str, revision: str) -> None:
    execute(url, "UPDATE alembic_version SET version_num = :rev", rev=revision)


# -- start-up output and the access log ------------------------------------------------------------


def test_development_ini_starts_without_warnings(tmp_path):
    """``make run``: pserve development.ini prints no warning (pkg_resources') and no traceback."""
    port = free_port()
    development = copy_ini("development.ini", tmp_path, port)
    url = f"sqlite:///{tmp_path / 'myapp.sqlite'}"
    with LiveServer(url, tmp_path, ini=development, port=port, demo=False) as server:
        assert fetch(server.base + "/")[0] == 200
    log = server.log.read_text()
    assert f"Serving on http://127.0.0.1:{port}" in log
    assert not WARNING_LINE.search(log) and "Traceback" not in log, log


def test_production_ini_logs_serving_on_and_one_safe_line_per_request(tmp_path):
    """production.ini as shipped (in a folder of its own, on a free port):
    waitress's "Serving on", then one access line per request with client,
    method, path, status, bytes and time, and no cookie or token."""
    port = free_port()
    production = copy_ini("production.ini", tmp_path, port)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'myapp.sqlite'}", "MYAPP_SECRET": TEST_SECRET}
    token = "myapp-not-a-real-token-but-secret-all-the-same"
    with LiveServer(env["DATABASE_URL"], tmp_path, ini=production, port=port, env=env, demo=False) as server:
        with urllib.request.urlopen(server.base + "/account/login", timeout=10) as login:
            cookie = login.headers["Set-Cookie"].split(";")[0]
        assert cookie.startswith("__Host-myapp_session=")
        basic = base64.b64encode(f"__token__:{token}".encode()).decode()
        for headers in ({"Cookie": cookie}, {"Authorization": f"Basic {basic}"}):
            # A made-up token may be refused: what matters is what the log keeps.
            fetch(urllib.request.Request(server.base + "/projects/?q=x", headers=headers))  # type: ignore[arg-type]
        assert json.loads(fetch(server.base + "/health")[2])["status"] == "ok"
    log = server.log.read_text()
    assert f"Serving on http://127.0.0.1:{port}" in log
    access = [line for line in log.splitlines() if "[wsgi:" in line]
    assert len(access) == 4, log
    line = re.compile(
        r'.* INFO  \[wsgi:\d+\]\[waitress-\d+\] 127\.0\.0\.1 "(GET) (\S+) HTTP/1\.1" (\d{3}) (\d+) [\d.]+ms '
    )
    assert [line.match(entry).group(1, 2) for entry in access] == [  # type: ignore[union-attr]
        ("GET", "/account/login"),
        ("GET", "/projects/?q=x"),
        ("GET", "/projects/?q=x"),
        ("GET", "/health"),
    ]
    secrets = (cookie.split("=", 1)[1], token, basic, TEST_SECRET)
    assert not any(secret in log for secret in secrets)
    assert not WARNING_LINE.search(log) and "Traceback" not in log, log


def test_pserve_production_ini_without_a_secret_says_so_in_one_line(tmp_path):
    production = copy_ini("production.ini", tmp_path, free_port())
    done = run(str(BIN / "pserve"), str(production), env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite'}"})
    assert one_error_line(done, "myapp").startswith("myapp: Set MYAPP_SECRET in the environment")


# -- the app refuses a database it cannot use ------------------------------------------------------


def test_pserve_refuses_a_database_that_is_not_at_the_codes_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    ini = write_ini(tmp_path / "app.ini", url, tmp_path / "files", free_port())
    message = one_error_line(run(str(BIN / "pserve"), "app.ini", cwd=tmp_path), "myapp")
    assert message == (
        f"myapp: the database at {url} is not migrated (revision none, code needs {HEAD}); run: myapp-initdb app.ini"
    )
    assert run(str(BIN / "myapp-initdb"), str(ini)).returncode == 0
    set_revision(url, BEHIND)
    message = one_error_line(run(str(BIN / "pserve"), str(ini)), "myapp")
    assert message == (
        f"myapp: the database at {url} is behind the code (revision {BEHIND}, code needs {HEAD}); "
        f"run: myapp-initdb {ini}"
    )
    set_revision(url, "ffff0009")  # migrated by newer code
    message = one_error_line(run(str(BIN / "pserve"), str(ini)), "myapp")
    assert message == (
        f"myapp: the database at {url} is ahead of the code (revision ffff0009, code needs {HEAD}); "
        "deploy the code that migrated it"
    )
    # myapp-initdb cannot help with that either, and says so instead of failing inside Alembic.
    assert one_error_line(run(str(BIN / "myapp-initdb"), str(ini)), "myapp-initdb") == (
        message.replace("myapp:", "myapp-initdb:")
    )
    # The escape hatch: myapp.check_schema = false starts anyway.
    write_ini(ini, url, tmp_path / "files", free_port(), extra={"myapp.check_schema": "false"})
    started = run(str(BIN / "python"), "-c", f"from pyramid.paster import get_app; get_app({str(ini)!r})")
    assert started.returncode == 0, started.stderr


def test_pserve_refuses_a_database_server_that_is_down_in_one_line(tmp_path):
    ini = write_ini(tmp_path / "app.ini", DEAD_PG, tmp_path / "files", free_port())
    done = run(str(BIN / "pserve"), str(ini))
    message = one_error_line(done, "myapp")
    assert message.startswith(
        "myapp: cannot reach the database at postgresql+psycopg://nobody:***@127.0.0.1:1/nothing (connection failed:"
    )
    assert message.endswith("; start it, or point sqlalchemy.url (or DATABASE_URL) at one that runs")
    assert "secret-pw" not in done.stdout + done.stderr
    # MYAPP_TRACEBACK=1 shows where it came from, for those who want it.
    debug = run(str(BIN / "pserve"), str(ini), env={"MYAPP_TRACEBACK": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "OperationalError" in debug.stderr


def test_health_is_503_when_the_schema_changes_under_a_running_app(tmp_path):
    with live_server("sqlite", tmp_path, demo=False) as server:
        assert fetch(server.base + "/health")[0] == 200
        set_revision(server.url, BEHIND)
        status, _, body = fetch(server.base + "/health")
        assert status == 503
        assert json.loads(body)["schema"] == (
            f"behind the code (revision {BEHIND}, code needs {HEAD}); run: myapp-initdb CONFIG"
        )
        set_revision(server.url, "ffff0009")
        status, _, body = fetch(server.base + "/health")
        assert status == 503
        assert json.loads(body)["schema"].startswith("ahead of the code (revision ffff0009,")
        execute(server.url, "DELETE FROM alembic_version")
        assert json.loads(fetch(server.base + "/health")[2])["schema"].startswith("not migrated (revision none,")


# -- the scripts -----------------------------------------------------------------------------------


def test_scripts_report_what_to_fix_in_one_line(tmp_path):
    documents = tmp_path / "docs"
    documents.mkdir()
    (documents / "x.json").write_text("{}")
    missing = one_error_line(run(str(BIN / "myapp-initdb"), "missing.ini", cwd=tmp_path), "myapp-initdb")
    assert missing == (
        "myapp-initdb: no such file 'missing.ini'; name the ini file, e.g. development.ini or production.ini"
    )

    dead = write_ini(tmp_path / "dead.ini", DEAD_PG, tmp_path / "files", free_port())
    for command in (["myapp-initdb", str(dead)], ["myapp-import", str(dead), str(documents)]):
        done = run(str(BIN / command[0]), *command[1:])
        message = one_error_line(done, command[0])
        assert message.startswith(f"{command[0]}: cannot reach the database at postgresql+psycopg://nobody:***@")
        assert "secret-pw" not in done.stdout + done.stderr
    # --traceback (or MYAPP_TRACEBACK=1) for the whole story.
    for done in (
        run(str(BIN / "myapp-import"), str(dead), str(documents), "--traceback"),
        run(str(BIN / "myapp-import"), str(dead), str(documents), env={"MYAPP_TRACEBACK": "1"}),
    ):
        assert done.returncode != 0 and "Traceback" in done.stderr and "OperationalError" in done.stderr

    # A database that is there but not migrated: the scripts that need the schema say what to run.
    fresh = write_ini(tmp_path / "fresh.ini", f"sqlite:///{tmp_path / 'fresh.sqlite'}", tmp_path / "files", 1)
    done = run(str(BIN / "myapp-import"), str(fresh), str(documents))
    assert one_error_line(done, "myapp-import").endswith(
        f"is not migrated (revision none, code needs {HEAD}); run: myapp-initdb {fresh}"
    )


def test_initdb_says_in_one_line_where_the_database_is(tmp_path):
    """``make run``'s first command with the shipped development.ini: our own
    line and the demo data, no Alembic INFO lines, no warnings."""
    development = copy_ini("development.ini", tmp_path, free_port())
    url = f"sqlite:///{tmp_path / 'myapp.sqlite'}"
    first = run(str(BIN / "myapp-initdb"), "development.ini", "--demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"myapp: database at {url} migrated from none to revision {HEAD} (head)",
        "Loaded 36 demo projects.",
    ]
    assert "alembic" not in first.stderr and not WARNING_LINE.search(first.stderr), first.stderr
    again = run(str(BIN / "myapp-initdb"), str(development))
    assert again.stdout.splitlines() == [f"myapp: database at {url} is at revision {HEAD} (head)"]


def test_initdb_loads_fewer_demo_projects_on_request():
    from myapp.scripts.initdb import parse_args

    assert parse_args(["x.ini", "--demo"]).demo_projects == 36
    assert parse_args(["x.ini", "--demo", "--demo-projects", "5"]).demo_projects == 5
    for wrong in ("0", "37", "five"):
        with pytest.raises(SystemExit):
            parse_args(["x.ini", "--demo", "--demo-projects", wrong])


# -- pshell ----------------------------------------------------------------------------------------


def test_pshell_banner_is_short_and_commits_keep_working(tmp_path):
    with fresh_database("sqlite", tmp_path) as url:
        server = LiveServer(url, tmp_path)
        assert server.initdb("--demo").returncode == 0
        script = (
            "print('COUNT', dbsession.scalar(select(func.count()).select_from(Package)), tm is request.tm)\n"
            "dbsession.add(models.Classifier(classifier='Topic :: Made In pshell'))\n"
            "tm.commit()\n"
            "print('AFTER', dbsession.scalar(select(func.count()).select_from(Classifier)"
            ".where(Classifier.classifier == 'Topic :: Made In pshell')))\n"
        )
        done = subprocess.run(
            [str(BIN / "pshell"), str(server.ini)], input=script, capture_output=True, text=True, timeout=60
        )
        assert "COUNT 36 True" in done.stdout and "AFTER 1" in done.stdout, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and not WARNING_LINE.search(done.stderr), done.stderr
        banner = done.stderr.strip().splitlines()
        assert len(banner) < 15, done.stderr
        assert f"myapp shell, database {url}" in banner
        assert "tm.commit()" in done.stderr
        stmt = text("SELECT count(*) FROM classifiers WHERE classifier = 'Topic :: Made In pshell'")
        assert query(url, stmt) == 1  # committed


# -- make ------------------------------------------------------------------------------------------


def test_make_test_after_make_run_installs_nothing(tmp_path):
    """One install stamp for every target: with it in place, neither command runs pip."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()

    def planned(target: str) -> str:
        return subprocess.run(
            ["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout

    assert "pip install" in planned("run")  # a fresh venv: installs the app with its extras
    (venv / ".installed").touch()
    for target in ("run", "test", "lint", "bench"):
        assert "pip" not in planned(target), target

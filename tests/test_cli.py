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

from tests.conftest import BIN, ROOT, TEST_SECRET, LiveServer, free_port
from tests.test_live import fetch

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
        login = urllib.request.urlopen(server.base + "/account/login", timeout=10)
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

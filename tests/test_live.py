"""The app as a user runs it: ``myapp-initdb`` and ``pserve`` on waitress, real
HTTP from real threads, on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import configparser
import http.client
import json
import threading
import urllib.error
import urllib.request

from sqlalchemy import create_engine, func, select, text

from myapp.data.migrations import head_revisions
from myapp.packaging.models import Package, Release, ReleaseFile
from tests.conftest import ROOT, LiveServer, free_port, fresh_database, live_server

THREADS = 8
REQUESTS_PER_THREAD = 50


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def query(url: str, stmt, *, all_rows: bool = False):  # type: ignore[no-untyped-def]
    """Read the live server's database from outside, on a connection of our own:
    the first value, or with ``all_rows`` every row."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(stmt)
            return result.all() if all_rows else result.scalar()
    finally:
        engine.dispose()


def test_concurrent_downloads_lose_no_count(backend, tmp_path):
    """8 threads x 50 requests increment one counter: all 400 are kept."""
    with live_server(backend, tmp_path) as server:
        filename = query(server.url, select(ReleaseFile.filename).order_by(ReleaseFile.id).limit(1))
        expected_body = (tmp_path / "files").rglob(filename).__next__().read_bytes()
        package_total = (
            select(Package.downloads).join(Release).join(ReleaseFile).where(ReleaseFile.filename == filename)
        )
        before = query(server.url, package_total)
        barrier = threading.Barrier(THREADS)
        failures: list[str] = []

        def download_many() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            barrier.wait()
            for _ in range(REQUESTS_PER_THREAD):
                conn.request("GET", f"/files/{filename}")
                res = conn.getresponse()
                body = res.read()
                if res.status != 200 or body != expected_body:
                    failures.append(f"{res.status} {body[:80]!r}")
            conn.close()

        threads = [threading.Thread(target=download_many) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        # The server counts in memory and writes once a second, and what is left when it is stopped.
        server.stop()
        stmt = select(ReleaseFile.downloads).where(ReleaseFile.filename == filename)
        assert query(server.url, stmt) == THREADS * REQUESTS_PER_THREAD
        assert query(server.url, package_total) == before + THREADS * REQUESTS_PER_THREAD
        assert "Traceback" not in server.log.read_text()


def test_counts_still_in_memory_are_written_when_the_server_is_stopped(backend, tmp_path):
    """SIGTERM (what LiveServer.stop sends, as systemd and Docker do) is a clean
    stop: waitress finishes, and the counts not yet written are written."""
    settings = {"myapp.download_flush_seconds": "3600"}
    with live_server(backend, tmp_path, settings=settings) as server:
        filename = query(server.url, select(ReleaseFile.filename).order_by(ReleaseFile.id).limit(1))
        for _ in range(3):
            assert fetch(f"{server.base}/files/{filename}")[0] == 200
        stmt = select(ReleaseFile.downloads).where(ReleaseFile.filename == filename)
        assert query(server.url, stmt) == 0  # counted in memory only
        server.stop()
        assert query(server.url, stmt) == 3
        assert "Traceback" not in server.log.read_text()


def test_initdb_twice_keeps_the_data(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path)
        first = server.initdb("--demo")
        assert first.returncode == 0, first.stderr
        assert "Loaded 36 demo projects." in first.stdout
        packages = query(url, select(func.count()).select_from(Package))
        files = query(url, select(func.count()).select_from(ReleaseFile))
        second = server.initdb("--demo")
        assert second.returncode == 0, second.stderr
        assert "already has projects; demo data not loaded" in second.stdout
        assert query(url, select(func.count()).select_from(Package)) == packages == 36
        assert query(url, select(func.count()).select_from(ReleaseFile)) == files
        assert {query(url, text("SELECT version_num FROM alembic_version"))} == head_revisions()


def test_health_is_503_when_the_database_is_down(tmp_path):
    """A database that goes away under a running app. (At start-up the app
    refuses a database it cannot reach, test_cli.py; with myapp.check_schema =
    false it starts anyway, as here, and answers 503 until the database is back.)"""
    dead = f"postgresql+psycopg://nobody:secret-pw@127.0.0.1:{free_port()}/nothing"
    with LiveServer(dead, tmp_path, migrate=False, settings={"myapp.check_schema": "false"}) as server:
        status, _, body = fetch(server.base + "/health")
        assert status == 503
        # No schema check without a database; the files folder was never made (no initdb).
        assert json.loads(body) == {
            "status": "error",
            "database": "unavailable",
            "files": "missing",
            "files_free_bytes": None,
        }
        status, headers, body = fetch(server.base + "/")
        assert status == 503 and b"temporarily unavailable" in body  # the site's own page, not a traceback
        assert headers["Retry-After"] == "5"
    log = server.log.read_text()
    assert "Connecting to DB at postgresql+psycopg://nobody:***@127.0.0.1" in log
    assert "secret-pw" not in log


def test_production_ini_runs_on_postgresql_with_only_the_url_changed(tmp_path):
    """production.ini as shipped, with DATABASE_URL pointing at PostgreSQL and
    the secret in the environment: the operator's deployment."""
    with fresh_database("postgresql", tmp_path) as url:
        ini = configparser.RawConfigParser()
        ini.read(ROOT / "production.ini")
        port = free_port()
        ini["server:main"]["listen"] = f"127.0.0.1:{port}"  # a free port instead of 0.0.0.0:6543
        ini["app:main"]["myapp.files_dir"] = str(tmp_path / "files")
        path = tmp_path / "production.ini"
        with path.open("w") as fh:
            ini.write(fh)
        env = {"DATABASE_URL": url, "MYAPP_SECRET": "a-long-random-production-secret-123"}
        with LiveServer(url, tmp_path, ini=path, port=port, env=env) as server:
            status, headers, body = fetch(server.base + "/")
            assert status == 200 and b"<strong>36</strong> projects" in body
            assert headers["Strict-Transport-Security"].startswith("max-age=")
            assert fetch(server.base + "/")[1].get("X-Page-Cache") == "hit"  # production caches pages
            assert fetch(server.base + "/health")[0] == 200
        assert query(url, select(func.count()).select_from(Package)) == 36  # the data went to PostgreSQL

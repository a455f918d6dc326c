"""Hardening checks that need the real server: memory under a flood of huge
and unique URLs, and a database that refuses writes, on waitress."""

from __future__ import annotations

import hashlib
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import create_engine, select, text

from myapp.packaging.demo import _wheel
from myapp.packaging.models import ReleaseFile
from tests.accounts import PASSWORD
from tests.conftest import LiveServer, fresh_database, live_server
from tests.test_live import fetch, query
from tests.test_upload import add_user

FLOOD = 1000
HUGE_QUERY = 250_000
RSS_BUDGET_MB = 150


def raw_request(port: int, target: str, headers: str = "") -> int:
    """Send one GET as raw bytes and return the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_page_cache_memory_stays_bounded_under_a_url_flood(tmp_path, capsys):
    """The reported attack: 2,500 URLs with 250 kB query strings took 700 MB
    for good. Now they are 414s, unknown parameters are never stored, and the
    pages that are stored (unique searches) fit a byte budget. 1,000 of each
    (250 MB of query strings, well over the RSS budget if any were kept) make
    the point in a third of the time."""
    settings = {"myapp.page_cache_seconds": "300", "myapp.page_cache_bytes": str(8 * 1024 * 1024)}
    with live_server("sqlite", tmp_path, settings=settings) as server:
        assert server.process is not None
        pid, port = server.process.pid, server.port
        for _ in range(20):
            raw_request(port, "/search?q=warm-up")
        before = rss_mb(pid)
        lock = threading.Lock()
        statuses: dict[int, int] = {}

        def send(i: int) -> None:
            filler = f"{i:06d}" + "x" * HUGE_QUERY
            targets = [f"/projects/?sort=name&q={filler}", f"/search?q=term-{i}-{'y' * 150}", f"/?utm={i}{'z' * 4000}"]
            for target in targets:
                status = raw_request(port, target)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(FLOOD)))
        after = rss_mb(pid)
        assert raw_request(port, "/search?q=term-7-" + "y" * 150) == 200
    with capsys.disabled():
        print(f"\nRSS {before:.0f} MB -> {after:.0f} MB after {3 * FLOOD} requests; statuses {statuses}")
    assert statuses == {414: FLOOD, 200: 2 * FLOOD}
    assert after - before < RSS_BUDGET_MB


def _read_only_url(backend: str, url: str) -> str:
    """The same database, for a server that can only read it."""
    if backend == "sqlite":
        return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        name = conn.execute(text("SELECT current_database()")).scalar()
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    return url


def test_a_read_only_database_still_serves_files_and_health_says_so(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        writable = LiveServer(url, tmp_path)
        assert writable.initdb("--demo").returncode == 0
        add_user(writable, "uploader")
        filename = query(url, select(ReleaseFile.filename).order_by(ReleaseFile.id).limit(1))
        ro_url = _read_only_url(backend, url)
        server = LiveServer(
            ro_url, tmp_path, migrate=False, settings={"myapp.health_write_check": "true"}, env={"DATABASE_URL": ro_url}
        )
        with server:
            status, headers, body = fetch(f"{server.base}/files/{filename}")
            assert status == 200 and len(body) == int(headers["Content-Length"]) > 0
            assert fetch(server.base + "/")[0] == 200  # pages still read
            status, _, body = fetch(server.base + "/health")
            assert status == 503 and b'"write": "refused"' in body
            # A write: 503 with Retry-After (the database is there, and may take writes again), not a 500.
            wheel = _wheel("Tiny-Thing", "1.0", "x")
            fields = {":action": "file_upload", "protocol_version": "1", "name": "Tiny-Thing", "version": "1.0"}
            fields["sha256_digest"] = hashlib.sha256(wheel).hexdigest()
            res = requests.post(
                server.base + "/legacy/",
                data=fields,
                files={"content": ("tiny_thing-1.0-py3-none-any.whl", wheel)},
                auth=("uploader", PASSWORD),
                timeout=30,
            )
            assert res.status_code == 503 and res.headers["Retry-After"] == "5", res.status_code
            assert "temporarily unavailable" in res.text
            assert not list((tmp_path / "files" / ".incoming").glob("upload-*"))
        log = server.log.read_text()
        assert f"could not record a download of {filename}" in log
        assert "Traceback" not in log
        assert query(url, select(ReleaseFile.downloads).where(ReleaseFile.filename == filename)) == 0


def test_access_log_lines_are_complete_and_keep_no_secret(tmp_path):
    """One line per request: client, request, status, bytes, milliseconds;
    reset tokens redacted (also from the referrer); X-Forwarded-For ignored."""
    import re
    import urllib.request

    with live_server("sqlite", tmp_path) as server:
        secret = "eyJ1aWQiOjF9.secret-token-value"
        request = urllib.request.Request(
            f"{server.base}/account/reset-password?token={secret}&x=1",
            headers={"X-Forwarded-For": "6.6.6.6", "Referer": f"{server.base}/account/verify-email?token={secret}"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as err:
            err.close()
            assert err.code == 400
        fetch(server.base + "/projects/")
    lines = [line for line in server.log.read_text().splitlines() if "[wsgi]" in line]
    assert len(lines) == 2, lines
    line = lines[0]
    assert re.fullmatch(
        r'INFO \[wsgi\] 127\.0\.0\.1 "GET /account/reset-password\?token=\*\*\*&x=1 HTTP/1\.1" 400 \d+ [\d.]+ms '
        r'"http://127\.0\.0\.1:\d+/account/verify-email\?token=\*\*\*" "Python-urllib/[\d.]+"',
        line,
    ), line
    assert secret not in server.log.read_text() and "6.6.6.6" not in server.log.read_text()
    assert re.search(r'"GET /projects/ HTTP/1\.1" 200 \d+ [\d.]+ms', lines[1])

"""The proxy as it runs: pserve processes with ``myapp.upstream`` set, in front
of a live upstream (a second instance of this app), with real threads, real
processes and real pip; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, LiveServer, fresh_database, live_server
from tests.upstream_helpers import JSON, ago, publish, remove, requests_for, wheel_name, yank

UV_OPTIONS = ("--no-cache", "--python-version", "3.11", "--quiet")


def get(url: str, accept: str = JSON) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=60) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def filenames(server: LiveServer, name: str) -> set[str]:
    status, _, body = get(f"{server.base}/simple/{name}/")
    assert status == 200, body[:300]
    return {f["filename"] for f in json.loads(body)["files"]}


def wait_for(condition, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def upstream(backend: str, tmp_path: Path) -> Iterator[LiveServer]:
    folder = tmp_path / "upstream"
    folder.mkdir()
    with live_server(backend, folder) as server:
        yield server


def proxy_settings(upstream: LiveServer, **more: str) -> dict[str, str]:
    return {"myapp.upstream": f"{upstream.base}/simple/", "myapp.upstream_retry_after": "2s", **more}


def test_stale_while_revalidate_yank_removal_and_upstream_down(backend, tmp_path, upstream):
    name, never = "followed", "never-fetched"
    publish(upstream, name, {"1.0": ago(days=60), "2.0": ago(days=30), "3.0": ago(days=20)})
    publish(upstream, never, {"1.0": ago(days=60)})
    settings = proxy_settings(upstream, **{"myapp.upstream_ttl": "1s"})
    (tmp_path / "proxy").mkdir()
    with live_server(backend, tmp_path / "proxy", demo=False, settings=settings) as proxy:
        assert len(filenames(proxy, name)) == 3
        assert len(filenames(proxy, name)) == 3
        log = proxy.log.read_text()
        assert f"/simple/{name}/ HTTP/1.1" in log and "upstream=miss" in log and "upstream=hit" in log
        # The upstream's 404 is kept for the TTL too: a second ask inside it does not reach it.
        assert get(f"{proxy.base}/simple/nothing-here/")[0] == 404
        assert get(f"{proxy.base}/simple/nothing-here/")[0] == 404
        assert requests_for(upstream, "/simple/nothing-here/") == 1

        yank(upstream, name, "2.0", "bad build")
        remove(upstream, name, "3.0")
        time.sleep(1.2)  # past the TTL: served stale at once, refreshed in the background
        assert len(filenames(proxy, name)) == 3

        def followed() -> bool:
            files = {f["filename"]: f for f in json.loads(get(f"{proxy.base}/simple/{name}/")[2])["files"]}
            return set(files) == {wheel_name(name, "1.0"), wheel_name(name, "2.0")} and (
                files[wheel_name(name, "2.0")]["yanked"] == "bad build"
            )

        assert wait_for(followed), proxy.log.read_text()[-2000:]
        assert "upstream=stale" in proxy.log.read_text()

        upstream.stop()  # down mid-run
        time.sleep(1.2)
        for _ in range(3):  # stale pages keep being served (stale-if-error)
            assert filenames(proxy, name) == {wheel_name(name, "1.0"), wheel_name(name, "2.0")}
        status, headers, body = get(f"{proxy.base}/simple/{never}/")
        assert status == 502, body[:300]
        assert int(headers["Retry-After"]) >= 1
        assert b"127.0.0.1" in body  # names the upstream
        health = json.loads(get(f"{proxy.base}/health", "application/json")[2])
        assert health["status"] == "ok"  # the index itself is fine
        assert wait_for(
            lambda: json.loads(get(f"{proxy.base}/health", "application/json")[2])["upstream"]["reachable"] == "failing"
        )
        upstream.migrate = False  # the same database: start the server again, nothing else
        upstream.start()
        time.sleep(2.1)  # past the back-off after the failure
        assert filenames(proxy, never) == {wheel_name(never, "1.0")}


def test_twenty_concurrent_misses_make_one_upstream_request(backend, tmp_path, upstream):
    """Two proxy processes on one database, ten threads each, one cold name."""
    name = "crowded"
    publish(upstream, name, {"1.0": ago(days=60), "1.1": ago(days=50)})
    settings = proxy_settings(upstream)
    (tmp_path / "proxy").mkdir()
    with fresh_database(backend, tmp_path / "proxy") as url:
        first = LiveServer(url, tmp_path / "proxy", demo=False, settings=settings).start()
        second_dir = tmp_path / "proxy2"
        second_dir.mkdir()
        second = LiveServer(url, second_dir, demo=False, migrate=False, settings=settings).start()
        try:
            barrier = threading.Barrier(20)
            results: list[tuple[int, frozenset[str]]] = []

            def ask(server: LiveServer) -> None:
                barrier.wait()
                status, _, body = get(f"{server.base}/simple/{name}/")
                files = frozenset(f["filename"] for f in json.loads(body)["files"]) if status == 200 else frozenset()
                results.append((status, files))

            threads = [threading.Thread(target=ask, args=(first if i % 2 else second,)) for i in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [status for status, _ in results] == [200] * 20
            assert {files for _, files in results} == {frozenset({wheel_name(name, "1.0"), wheel_name(name, "1.1")})}
            assert requests_for(upstream, f"/simple/{name}/") == 1
        finally:
            second.stop()
            first.stop()


def test_pip_sees_proxied_versions_after_the_cooldown_and_never_confusion(backend, tmp_path, upstream):
    """Real pip reads our pages (``pip index versions``: pages only, no files)."""
    proxied, ours = "popular-lib", "our-private-lib"
    publish(upstream, proxied, {"1.0": ago(days=60), "2.0": ago(days=30), "3.0": ago(hours=2)})
    publish(upstream, ours, {"1.0": ago(days=60), "99.0": ago(days=30)})
    settings = proxy_settings(upstream, **{"myapp.upstream_min_age": "7d"})
    (tmp_path / "proxy").mkdir()
    with live_server(backend, tmp_path / "proxy", demo=False, settings=settings) as proxy:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        from tests.factories import make_package

        engine = create_engine(proxy.url)
        with Session(engine) as db:
            package = make_package(db, ours, versions=["1.0"])
            ours_file = package.releases[0].files[0]
            ours_file.filename, ours_file.storage_path = "our_private_lib-1.0.tar.gz", "x/our_private_lib-1.0.tar.gz"
            db.commit()
        engine.dispose()

        def versions(name: str) -> str:
            done = subprocess.run(
                [
                    str(BIN / "pip"),
                    "index",
                    "versions",
                    name,
                    "--index-url",
                    f"{proxy.base}/simple/",
                    "--disable-pip-version-check",
                    "--no-cache-dir",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        out = versions(proxied)
        assert "Available versions: 2.0, 1.0" in out  # 3.0 is two hours old: not yet
        mine = versions(ours)
        assert "Available versions: 1.0" in mine and "99.0" not in mine
        assert requests_for(upstream, f"/simple/{ours}/") == 0


def test_uv_resolves_through_proxied_pages_and_metadata(backend, tmp_path, upstream):
    """Real uv resolves demo projects (and their dependencies) from our pages and
    PEP 658 metadata alone: no file is downloaded."""
    from tests.upstream_helpers import upstream_db

    with upstream_db(upstream) as db:
        from sqlalchemy import select

        from myapp.packaging.models import Package

        names = list(db.scalars(select(Package.name).order_by(Package.name).limit(3)))
    (tmp_path / "proxy").mkdir()
    with live_server(backend, tmp_path / "proxy", demo=False, settings=proxy_settings(upstream)) as proxy:
        done = subprocess.run(
            [str(BIN / "uv"), "pip", "compile", "-", "--index-url", f"{proxy.base}/simple/", *UV_OPTIONS],
            input="\n".join(names) + "\n",
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for name in names:
            assert f"\n{name}==" in "\n" + done.stdout
        log = proxy.log.read_text()
        assert '.whl.metadata HTTP/1.1" 200' in log
        assert ".whl HTTP/1.1" not in log  # pages and metadata only

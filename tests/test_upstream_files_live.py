"""The proxy's files part with real clients, on SQLite and PostgreSQL: the
proxy and its upstream are both this app under waitress on 127.0.0.1
(``LiveServer``), or the upstream is pypiserver (PEP 503 HTML, no upload
times). pip and uv install through the proxy (its index URL only), again
with the upstream stopped; 20 concurrent first downloads make one upstream
fetch; a hash mismatch never completes a response; bandersnatch mirrors
hosted and proxied files from the /packages/ layout."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from myapp.upstream.models import UpstreamFile
from tests.conftest import BIN, LiveServer, free_port, fresh_database, live_server, write_ini
from tests.test_simple import installed_version, make_venv, offline_env
from tests.upstream_files_helpers import Published, build_wheel, publish_wheel
from tests.upstream_helpers import JSON, Hostile, pypiserver, requests_for, upstream_db


@contextmanager
def proxy_of(backend: str, folder: Path, upstream_url: str, threads: int = 8, **settings: str) -> Iterator[LiveServer]:
    """This app as a proxy of ``upstream_url``, under waitress with ``threads`` threads."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with fresh_database(backend, folder) as url:
        extra = {"myapp.upstream": upstream_url, **settings}
        ini = write_ini(folder / "live.ini", url, folder / "files", port, threads=threads, extra=extra)
        with LiveServer(url, folder, demo=False, ini=ini, port=port) as server:
            yield server


@contextmanager
def upstream_app(backend: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A second instance of this app, the upstream, with no projects until a test publishes some."""
    folder = tmp_path / "upstream"
    folder.mkdir()
    with live_server(backend, folder, demo=False) as server:
        yield server


def run(*command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def pip_install(tmp_path: Path, venv: str, index: str, *projects: str) -> Path:
    python = make_venv(tmp_path / venv)
    run(str(python), "-m", "pip", "install", "--index-url", index, *projects, env=offline_env(tmp_path))
    return python


def uv_install(tmp_path: Path, venv: str, index: str, *projects: str) -> Path:
    python = make_venv(tmp_path / venv)
    env = offline_env(tmp_path) | {"UV_CACHE_DIR": str(tmp_path / f"uv-cache-{venv}")}  # cold: nothing from before
    run(str(BIN / "uv"), "pip", "install", "--python", str(python), "--index-url", index, *projects, env=env)
    return python


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def test_pip_and_uv_install_through_the_proxy_also_with_the_upstream_stopped_and_ours_win(backend, tmp_path):
    with upstream_app(backend, tmp_path) as upstream:
        publish_wheel(upstream, "proxied-app", "1.0", requires=("proxied-lib>=1",))
        app = publish_wheel(upstream, "proxied-app", "1.1", requires=("proxied-lib>=1",))
        lib = publish_wheel(upstream, "proxied-lib", "2.0")
        with proxy_of(backend, tmp_path / "proxy", f"{upstream.base}/simple/") as proxy:
            # A name hosted here, and a higher version of it upstream: the dependency-confusion bait.
            ours = publish_wheel(proxy, "team-tool", "1.0")
            bait = publish_wheel(upstream, "team-tool", "9.0")
            index = f"{proxy.base}/simple/"
            wanted = ("proxied-app", "team-tool")

            def check(python: Path) -> None:
                assert installed_version(python, "proxied-app") == "1.1"
                assert installed_version(python, "proxied-lib") == "2.0"  # a dependency, from the metadata
                assert installed_version(python, "team-tool") == "1.0"  # ours, never the upstream's 9.0

            check(pip_install(tmp_path, "pip-warm", index, *wanted))
            check(uv_install(tmp_path, "uv-warm", index, *wanted))
            # Each proxied wheel came from the upstream once, for both clients.
            assert requests_for(upstream, f"/files/{app.filename}") == 1
            assert requests_for(upstream, f"/files/{lib.filename}") == 1
            assert requests_for(upstream, f"/files/{bait.filename}") == 0
            assert requests_for(upstream, "/simple/team-tool/") == 0  # our name: never asked

            upstream.stop()
            check(pip_install(tmp_path, "pip-down", index, *wanted))
            check(uv_install(tmp_path, "uv-down", index, *wanted))
            assert ours.filename in proxy.log.read_text()


def test_twenty_concurrent_first_downloads_make_one_upstream_fetch(backend, tmp_path):
    with upstream_app(backend, tmp_path) as upstream:
        wheel = publish_wheel(upstream, "popular", "1.0", padding=3_000_000)
        # More waitress threads than clients: all 20 really are in flight together.
        with proxy_of(backend, tmp_path / "proxy", f"{upstream.base}/simple/", threads=24) as proxy:
            get(f"{proxy.base}/simple/popular/")
            url = proxy.base + wheel.packages_path
            barrier = threading.Barrier(20)
            digests: list[str] = []
            errors: list[BaseException] = []

            def download() -> None:
                try:
                    barrier.wait(timeout=30)
                    digests.append(hashlib.sha256(get(url)).hexdigest())
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)

            threads = [threading.Thread(target=download) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not errors, errors
            assert digests == [wheel.sha256] * 20
            assert requests_for(upstream, f"/files/{wheel.filename}") == 1


def test_a_second_first_download_follows_the_first_as_it_grows(backend, tmp_path):
    """A request for a file this process is still fetching gets its bytes as
    they arrive, not after the last one: pip's 15 s read timeout never runs out
    while a large wheel is fetched for another client. Still one upstream fetch."""
    wheel = "growing_thing-1.0-py3-none-any.whl"
    content = bytes(range(256)) * 4096  # 1 MiB
    sha = hashlib.sha256(content).hexdigest()
    go_on = threading.Event()
    with Hostile() as upstream:
        page = {"meta": {"api-version": "1.1"}, "name": "growing-thing"}
        page["files"] = [{"filename": wheel, "url": f"{upstream.base}/files/{wheel}", "hashes": {"sha256": sha}}]
        upstream.routes["/simple/growing-thing/"] = lambda: (200, {"Content-Type": JSON}, json.dumps(page).encode())
        half = len(content) // 2
        pause = lambda: go_on.wait(timeout=60)  # noqa: E731 (a part of the trickled body)
        upstream.routes[f"/files/{wheel}"] = lambda: (200, {}, [content[:half], pause, content[half:]])
        with proxy_of(backend, tmp_path / "proxy", f"{upstream.base}/simple/") as proxy:
            get(f"{proxy.base}/simple/growing-thing/")
            path = f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{wheel}"
            leader = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
            leader.request("GET", path)
            first = leader.getresponse()
            assert first.read(1000)  # the leader is streaming: half the file is written, the rest waits
            follower = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            follower.request("GET", path)
            second = follower.getresponse()
            assert second.status == 200 and second.getheader("ETag") == f'"{sha}"'
            early = second.read(1000)  # before the upstream has sent the rest
            assert early == content[:1000] and not go_on.is_set()
            go_on.set()
            assert early + second.read() == content
            assert first.read() == content[1000:]
            leader.close()
            follower.close()
            assert upstream.hits.count(f"/files/{wheel}") == 1


def test_a_hash_mismatch_never_completes_as_a_good_file_and_pip_refuses_it(backend, tmp_path):
    with upstream_app(backend, tmp_path) as upstream:
        wheel = publish_wheel(upstream, "tampered-live", "1.0", padding=300_000)
        good = wheel.path.read_bytes()
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        wheel.path.write_bytes(bytes(bad))
        with proxy_of(backend, tmp_path / "proxy", f"{upstream.base}/simple/") as proxy:
            get(f"{proxy.base}/simple/tampered-live/")
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
            connection.request("GET", wheel.packages_path)
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Content-Length") == str(wheel.size)
            with pytest.raises(http.client.IncompleteRead) as cut:
                response.read()
            assert len(cut.value.partial) < wheel.size  # the connection was cut short of the last chunk
            connection.close()
            assert "sha256 mismatch" in proxy.log.read_text()

            python = make_venv(tmp_path / "venv")
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--index-url", f"{proxy.base}/simple/", "tampered-live"],
                capture_output=True,
                text=True,
                env=offline_env(tmp_path),
                timeout=300,
            )
            assert done.returncode != 0
            assert (
                "tampered-live"
                not in subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True).stdout
            )
            # The upstream fixed: the next request fetches again, and pip installs.
            wheel.path.write_bytes(good)
            assert hashlib.sha256(get(proxy.base + wheel.packages_path)).hexdigest() == wheel.sha256
            assert requests_for(upstream, f"/files/{wheel.filename}") >= 3


# -- pypiserver: an HTML-only upstream without upload times ---------------------------------------


def test_pip_and_uv_install_through_the_proxy_of_a_pypiserver(backend, tmp_path):
    packages = tmp_path / "pypiserver-packages"
    packages.mkdir()
    build_wheel(packages, "html-only-app", "1.0", requires=("html-only-lib",))
    lib = build_wheel(packages, "html-only-lib", "0.5")
    with pypiserver(packages) as upstream_url, proxy_of(backend, tmp_path / "proxy", upstream_url) as proxy:
        index = f"{proxy.base}/simple/"
        page = urllib.request.Request(f"{index}html-only-lib/", headers={"Accept": JSON})
        with urllib.request.urlopen(page, timeout=30) as res:
            doc = json.load(res)
        (entry,) = doc["files"]
        assert entry["hashes"]["sha256"] == hashlib.sha256(lib.read_bytes()).hexdigest()
        # No upload-time upstream: ours is when this index first saw the file (PEP 700 keeps it honest).
        assert "upload-time" in entry
        python = pip_install(tmp_path, "pip", index, "html-only-app")
        assert installed_version(python, "html-only-lib") == "0.5"
        python = uv_install(tmp_path, "uv", index, "html-only-app")
        assert installed_version(python, "html-only-app") == "1.0"


# -- bandersnatch ---------------------------------------------------------------------------------


def bandersnatch_config(folder: Path, master: str, allow: list[str]) -> Path:
    config = folder / "bandersnatch.conf"
    names = "".join(f"    {name}\n" for name in allow)
    config.write_text(
        f"""[mirror]
directory = {folder / "mirror"}
master = {master}
allow-non-https = true
api-method = simple
json = true
release-files = true
hash-index = false
simple-format = ALL
stop-on-error = true
timeout = 30
global-timeout = 300
workers = 1
verifiers = 1
compare-method = hash

[plugins]
enabled =
    allowlist_project

[allowlist]
packages =
{names}"""
    )
    return config


def mirrored(folder: Path, wheel: Published) -> Path:
    s = wheel.sha256
    return folder / "mirror" / "web" / "packages" / s[:2] / s[2:4] / s[4:] / wheel.filename


@pytest.mark.skipif(shutil.which("bandersnatch", path=str(BIN)) is None, reason="bandersnatch is not installed")
def test_bandersnatch_mirrors_hosted_and_proxied_files_from_the_packages_layout(backend, tmp_path):
    with upstream_app(backend, tmp_path) as upstream:
        proxied = publish_wheel(upstream, "mirror-me", "1.0")
        with proxy_of(backend, tmp_path / "proxy", f"{upstream.base}/simple/") as proxy:
            hosted = [publish_wheel(proxy, "house-made", "1.0"), publish_wheel(proxy, "house-made", "2.0")]
            publish_wheel(proxy, "not-allowed", "1.0")
            work = tmp_path / "bandersnatch"
            work.mkdir()
            config = bandersnatch_config(work, proxy.base, ["house-made", "mirror-me"])
            env = offline_env(tmp_path)
            # The whole index (its /simple/ JSON lists what we host), then a proxied name by name.
            run(str(BIN / "bandersnatch"), "--config", str(config), "mirror", env=env)
            run(str(BIN / "bandersnatch"), "--config", str(config), "sync", "mirror-me", env=env)
            for wheel in [*hosted, proxied]:
                copy = mirrored(work, wheel)
                assert hashlib.sha256(copy.read_bytes()).hexdigest() == wheel.sha256, wheel.filename
            assert not list((work / "mirror" / "web" / "packages").rglob("not_allowed-*"))
            assert (work / "mirror" / "web" / "simple" / "house-made" / "index.html").is_file()


def test_a_fetch_past_the_budget_queues_an_eviction_that_the_worker_runs(backend, tmp_path):
    with upstream_app(backend, tmp_path) as upstream:
        wheels = [publish_wheel(upstream, "budgeted", f"1.{i}", padding=100_000) for i in range(3)]
        budget = wheels[1].size + wheels[2].size + 100
        settings = {"myapp.upstream_cache_bytes": str(budget)}
        with proxy_of(backend, tmp_path / "proxy", f"{upstream.base}/simple/", **settings) as proxy:
            get(f"{proxy.base}/simple/budgeted/")
            for wheel in wheels:  # oldest download first
                assert hashlib.sha256(get(proxy.base + wheel.packages_path)).hexdigest() == wheel.sha256
            deadline = time.monotonic() + 60
            while True:  # the worker thread (as in development) runs the queued upstream.files.evict
                with upstream_db(proxy) as db:
                    rows = {r.filename: r for r in db.scalars(select(UpstreamFile))}
                    cached = {name: r.cached_bytes for name, r in rows.items() if r.storage_path}
                if sum(cached.values()) <= budget or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert set(cached) == {wheels[1].filename, wheels[2].filename}
            assert not (
                proxy.folder / "files" / wheels[0].sha256[:2] / wheels[0].sha256[2:4] / wheels[0].filename
            ).exists()
            # Evicted, then wanted again: fetched again.
            assert hashlib.sha256(get(proxy.base + wheels[0].packages_path)).hexdigest() == wheels[0].sha256
            assert requests_for(upstream, f"/files/{wheels[0].filename}") == 2

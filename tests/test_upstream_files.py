"""The proxy's files part against a real upstream on 127.0.0.1 (a second
instance of this app, in a subprocess, serving real wheels); the proxy itself
runs in-process (WebTest) on the test's database, SQLite and PostgreSQL.
pip, uv, concurrency, pypiserver and bandersnatch: test_upstream_files_live.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest
from sqlalchemy import select

from myapp.upstream.eviction import maintain_job
from myapp.upstream.fetch import PROXY_KEY, Proxy
from myapp.upstream.filefetch import FetchRefused
from myapp.upstream.files import FILES_KEY
from myapp.upstream.models import UpstreamFile
from tests.conftest import LiveServer, live_server
from tests.factories import make_package
from tests.upstream_files_helpers import Published, publish_wheel
from tests.upstream_helpers import JSON, ago, proxy_app, remove, requests_for, yank


@pytest.fixture(scope="module")
def upstream(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(backend, tmp_path_factory.mktemp("upstream"), demo=False) as server:
        yield server


@pytest.fixture
def proxy(settings: dict[str, Any], dbsession: Any, upstream: LiveServer) -> webtest.TestApp:
    return proxy_app(settings, upstream, **{"myapp.upstream_download_flush_seconds": "0"})


def file_row(dbsession: Any, filename: str) -> UpstreamFile:
    dbsession.expire_all()
    row = dbsession.scalar(select(UpstreamFile).where(UpstreamFile.filename == filename))
    assert row is not None
    return row


def listed(app: webtest.TestApp, name: str) -> dict[str, dict[str, Any]]:
    doc = app.get(f"/simple/{name}/", headers={"Accept": JSON}).json
    return {f["filename"]: f for f in doc["files"]}


def stored(settings: dict[str, Any], row: UpstreamFile) -> Path:
    assert row.storage_path is not None
    return Path(settings["myapp.files_dir"]) / row.storage_path


def refresh(app: webtest.TestApp, name: str) -> None:
    proxy: Proxy = app.app.registry[PROXY_KEY]
    proxy.refresh(app.app.registry["dbsession_factory"], name, None)  # unconditional: a whole new page


def test_first_download_is_fetched_verified_stored_then_served_like_our_own(proxy, upstream, dbsession, settings):
    wheel = publish_wheel(upstream, "pull-through", "1.0")
    page = listed(proxy, wheel.name)
    assert page[wheel.filename]["url"] == wheel.packages_path
    assert file_row(dbsession, wheel.filename).storage_path is None  # listed, not fetched

    first = proxy.get(wheel.packages_path)
    assert hashlib.sha256(first.body).hexdigest() == wheel.sha256
    assert first.headers["Content-Length"] == str(wheel.size)
    assert first.etag == wheel.sha256
    assert "immutable" in first.headers["Cache-Control"]
    row = file_row(dbsession, wheel.filename)
    assert row.cached_bytes == wheel.size and row.downloads == 1 and row.last_downloaded_at is not None
    assert stored(settings, row).read_bytes() == wheel.path.read_bytes()
    assert requests_for(upstream, f"/files/{wheel.filename}") == 1

    # From the store from now on: ranges, conditional requests; the upstream is not asked again.
    again = proxy.get(wheel.packages_path)
    assert again.body == first.body
    part = proxy.get(wheel.packages_path, headers={"Range": "bytes=0-9"}, status=206)
    assert part.body == first.body[:10]
    proxy.get(wheel.packages_path, headers={"If-None-Match": f'"{wheel.sha256}"'}, status=304)
    assert requests_for(upstream, f"/files/{wheel.filename}") == 1
    # Counted as our own files are: each full GET, and a range from byte 0 (not the 304).
    assert file_row(dbsession, wheel.filename).downloads == 3
    # PEP 658 metadata: fetched once, checked against the page's hash, then from the store.
    meta = proxy.get(wheel.packages_path + ".metadata")
    assert hashlib.sha256(meta.body).hexdigest() == page[wheel.filename]["core-metadata"]["sha256"]
    proxy.get(wheel.packages_path + ".metadata")
    assert requests_for(upstream, f"/files/{wheel.filename}.metadata") == 1
    # A path whose hash is not the file's: 404.
    wrong = wheel.packages_path.replace(wheel.sha256[4:], "0" * 60)
    proxy.get(wrong, status=404)


def test_a_hash_mismatch_is_refused_nothing_kept_and_the_next_request_retries(proxy, upstream, dbsession, settings):
    wheel = publish_wheel(upstream, "tampered", "1.0")
    listed(proxy, wheel.name)
    good = wheel.path.read_bytes()
    bad = bytearray(good)
    bad[-30] ^= 0xFF  # the same size, other bytes: only the hash can tell
    wheel.path.write_bytes(bytes(bad))
    # The body's iterator raises before its last chunk: a server cuts the connection
    # short of Content-Length, so no client takes it for the file.
    with pytest.raises(FetchRefused, match="sha256 mismatch"):
        proxy.get(wheel.packages_path)
    row = file_row(dbsession, wheel.filename)
    assert row.storage_path is None and row.cached_bytes == 0 and row.fetching_until is None
    assert row.fetch_error is not None and "sha256 mismatch" in row.fetch_error
    assert not any((Path(settings["myapp.files_dir"]) / wheel.sha256[:2]).rglob(wheel.filename))
    assert not [p for p in (Path(settings["myapp.files_dir"]) / ".incoming").glob("*") if p.stat().st_size]

    wheel.path.write_bytes(good)  # the upstream is right again: the next request fetches afresh
    assert hashlib.sha256(proxy.get(wheel.packages_path).body).hexdigest() == wheel.sha256
    assert file_row(dbsession, wheel.filename).storage_path is not None
    assert requests_for(upstream, f"/files/{wheel.filename}") == 2


def test_the_cooldown_hides_young_files_and_refuses_their_download(settings, dbsession, upstream):
    app = proxy_app(settings, upstream, **{"myapp.upstream_min_age": "7d"})
    old = publish_wheel(upstream, "cooling", "1.0", uploaded=ago(days=30))
    young = publish_wheel(upstream, "cooling", "2.0", uploaded=ago(days=1))
    page = listed(app, "cooling")
    assert old.filename in page and young.filename not in page
    refused = app.get(young.packages_path, status=403)
    assert "minimum release age" in refused.text
    assert requests_for(upstream, f"/files/{young.filename}") == 0
    assert hashlib.sha256(app.get(old.packages_path).body).hexdigest() == old.sha256


def test_a_file_yanked_upstream_is_still_downloadable_and_marked(proxy, upstream, dbsession):
    wheel = publish_wheel(upstream, "yanky", "1.0")
    listed(proxy, "yanky")
    yank(upstream, "yanky", "1.0", "broken build")
    refresh(proxy, "yanky")
    assert listed(proxy, "yanky")[wheel.filename]["yanked"] == "broken build"
    got = proxy.get(wheel.packages_path)
    assert hashlib.sha256(got.body).hexdigest() == wheel.sha256
    assert got.headers["X-Yanked"] == "broken build"


def test_a_file_removed_upstream_is_a_404_and_its_cached_bytes_are_quarantined(proxy, upstream, dbsession, settings):
    kept = publish_wheel(upstream, "vanishing", "1.0")
    gone = publish_wheel(upstream, "vanishing", "2.0")
    listed(proxy, "vanishing")
    proxy.get(kept.packages_path)
    proxy.get(gone.packages_path)
    cached = stored(settings, file_row(dbsession, gone.filename))
    assert cached.is_file()

    remove(upstream, "vanishing", "2.0")
    refresh(proxy, "vanishing")  # the page refresh marks it removed
    assert gone.filename not in listed(proxy, "vanishing")
    assert "removed from the upstream index" in proxy.get(gone.packages_path, status=404).text
    row = file_row(dbsession, gone.filename)
    assert row.quarantined_at is not None and row.storage_path is None and row.cached_bytes == 0
    assert not cached.exists()
    assert file_row(dbsession, kept.filename).storage_path is not None  # the rest untouched
    proxy.get(gone.packages_path, status=404)


def test_the_periodic_job_quarantines_removed_files_nobody_asked_for(proxy, upstream, dbsession, settings):
    wheel = publish_wheel(upstream, "quiet-removal", "1.0")
    listed(proxy, "quiet-removal")
    proxy.get(wheel.packages_path)
    cached = stored(settings, file_row(dbsession, wheel.filename))
    remove(upstream, "quiet-removal", "1.0")
    refresh(proxy, "quiet-removal")
    run_maintenance(proxy, dbsession)
    assert file_row(dbsession, wheel.filename).quarantined_at is not None
    assert not cached.exists()


def hosted_files(dbsession: Any, files_dir: Path, name: str, data: bytes) -> list[Any]:
    """A project hosted here whose files are stored (the factory's are rows only)."""
    files = [f for release in make_package(dbsession, name).releases for f in release.files]
    for f in files:
        f.sha256 = hashlib.sha256(data + f.filename.encode()).hexdigest()
        f.size = len(data)
        f.storage_path = f"{f.sha256[:2]}/{f.sha256[2:4]}/{f.filename}"
        (files_dir / f.storage_path).parent.mkdir(parents=True, exist_ok=True)
        (files_dir / f.storage_path).write_bytes(data)
    dbsession.flush()
    return files


def run_maintenance(app: webtest.TestApp, dbsession: Any) -> None:
    from datetime import UTC, datetime

    from myapp.data.jobs import ClaimedJob, JobContext

    job = ClaimedJob(0, "upstream.files.maintain", {}, 1, 1, "test", datetime.now(UTC), None)
    maintain_job(JobContext(dbsession, app.app.registry, job), {})


def test_eviction_keeps_the_cache_within_its_budget_least_recently_downloaded_first(
    settings, dbsession, upstream, files_dir, sigterm_kept
):
    wheels = [publish_wheel(upstream, "evictable", f"1.{i}", padding=20_000) for i in range(3)]
    budget = wheels[0].size + wheels[1].size + 100  # two fit, three do not
    # Download times kept in memory as a server keeps them: the maintenance writes them first.
    app = proxy_app(
        settings,
        upstream,
        **{"myapp.upstream_cache_bytes": str(budget), "myapp.upstream_download_flush_seconds": "3600"},
    )
    our_files = hosted_files(dbsession, files_dir, "our-own", b"ours")  # uploads of ours: never evicted
    listed(app, "evictable")
    for wheel in wheels:  # 1.0 first: the least recently downloaded
        app.get(wheel.packages_path)
    app.get(wheels[0].packages_path)  # ...until downloaded again: now 1.1 is
    run_maintenance(app, dbsession)
    rows = {w.version: file_row(dbsession, w.filename) for w in wheels}
    assert rows["1.1"].storage_path is None and rows["1.1"].cached_bytes == 0
    assert rows["1.0"].storage_path is not None and rows["1.2"].storage_path is not None
    assert sum(r.cached_bytes for r in rows.values()) <= budget
    for f in our_files:
        assert (files_dir / f.storage_path).read_bytes() == b"ours"
    # An evicted file is fetched again on its next download.
    assert hashlib.sha256(app.get(wheels[1].packages_path).body).hexdigest() == wheels[1].sha256
    assert requests_for(upstream, f"/files/{wheels[1].filename}") == 2
    app.app.registry[FILES_KEY].downloads.flush()  # none left for the process's exit, when the database is gone


def test_hosted_files_under_the_packages_layout_and_never_the_upstreams_for_our_names(
    proxy, upstream, dbsession, files_dir
):
    mine = hosted_files(dbsession, files_dir, "confusable", b"our bytes")[0]
    s = mine.sha256
    got = proxy.get(f"/packages/{s[:2]}/{s[2:4]}/{s[4:]}/{mine.filename}")
    assert got.body == b"our bytes"
    proxy.get(f"/packages/{s[:2]}/{s[2:4]}/{'0' * 60}/{mine.filename}", status=404)
    doc = proxy.get("/pypi/confusable/json").json
    assert any(u["url"].endswith(f"/packages/{s[:2]}/{s[2:4]}/{s[4:]}/{mine.filename}") for u in doc["urls"])

    # The upstream has a higher version of our name: not listed, and not downloadable
    # even by its exact path (a row for it exists only if the name were proxied first).
    theirs: Published = publish_wheel(upstream, "confusable", "99.0")
    page = listed(proxy, "confusable")
    assert theirs.filename not in page
    proxy.get(theirs.packages_path, status=404)
    assert requests_for(upstream, f"/files/{theirs.filename}") == 0


def test_a_cached_download_reads_four_statements_and_writes_none(
    settings, upstream, dbsession, count_queries, sigterm_kept
):
    # Download times written once a minute (as a server does by default), not per download.
    app = proxy_app(settings, upstream, **{"myapp.upstream_download_flush_seconds": "60"})
    wheel = publish_wheel(upstream, "counted", "1.0")
    listed(app, "counted")
    app.get(wheel.packages_path)  # fetched and cached
    count_queries.clear()
    app.get(wheel.packages_path)
    # Hosted? (packaging's route), the proxied file with its project, its name's policy,
    # a hosted project of that name?, and nothing written (download times are batched).
    assert count_queries.count == 4, count_queries.statements
    assert not [s for s in count_queries.statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    app.app.registry[FILES_KEY].downloads.flush()  # as the writer thread does, and the process at exit
    assert file_row(dbsession, wheel.filename).downloads == 2


def test_a_private_index_asks_tools_for_credentials_before_any_upstream_request(settings, dbsession, upstream):
    app = proxy_app(settings, upstream, **{"myapp.read_access": "authenticated"})
    wheel = publish_wheel(upstream, "private-pull", "1.0")
    s = wheel.sha256
    refused = app.get(f"/packages/{s[:2]}/{s[2:4]}/{s[4:]}/{wheel.filename}", status=401)
    assert refused.headers["WWW-Authenticate"].startswith("Basic")  # a tool route: pip may answer it
    assert requests_for(upstream, f"/files/{wheel.filename}") == 0

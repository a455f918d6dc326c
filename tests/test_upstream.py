"""The proxy of a public index (myapp.upstream) against a real upstream on
127.0.0.1: a second instance of this app (demo data) in a subprocess. The
proxy itself runs in-process (WebTest) on the test's database."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import webtest
from sqlalchemy import select

from myapp.packaging.models import Package
from myapp.upstream.fetch import PROXY_KEY, Proxy
from myapp.upstream.models import UpstreamFile, UpstreamProject
from tests.conftest import LiveServer, live_server
from tests.factories import make_package
from tests.upstream_helpers import HTML, JSON, ago, proxy_app, publish, requests_for, wheel_name


@pytest.fixture(scope="module")
def upstream(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(backend, tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture
def proxy(settings: dict[str, Any], dbsession: Any, upstream: LiveServer) -> webtest.TestApp:
    return proxy_app(settings, upstream)


def proxy_of(app: webtest.TestApp) -> Proxy:
    return app.app.registry[PROXY_KEY]


def upstream_json(upstream: LiveServer, name: str) -> dict[str, Any]:
    """The upstream's own page, read directly, to compare with ours."""
    request = urllib.request.Request(f"{upstream.base}/simple/{name}/", headers={"Accept": JSON})
    with urllib.request.urlopen(request, timeout=30) as res:
        return json.load(res)


def demo_name(upstream: LiveServer) -> str:
    from tests.upstream_helpers import upstream_db

    with upstream_db(upstream) as db:
        return db.scalar(select(Package.name).order_by(Package.name).limit(1))


def test_a_proxied_page_in_both_formats(proxy, upstream, dbsession):
    name = demo_name(upstream)
    doc = proxy.get(f"/simple/{name}/", headers={"Accept": JSON}).json
    assert requests_for(upstream, f"/simple/{name}/") == 1
    upstream_doc = upstream_json(upstream, name)
    assert doc["name"] == name
    assert doc["meta"]["tracks"] == [f"{upstream.base}/simple/{name}/"]
    by_name = {f["filename"]: f for f in doc["files"]}
    assert set(by_name) == {f["filename"] for f in upstream_doc["files"]}
    for f in upstream_doc["files"]:
        ours = by_name[f["filename"]]
        assert ours["hashes"] == f["hashes"]
        assert ours["upload-time"] == f["upload-time"]
        assert ours["size"] == f["size"]
        assert ours["yanked"] == f["yanked"]
        assert ours["requires-python"] == f["requires-python"]
        assert ours["core-metadata"] == f["core-metadata"]
        sha = f["hashes"]["sha256"]
        assert ours["url"] == f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{f['filename']}"
    assert doc["versions"] == upstream_doc["versions"]
    html = proxy.get(f"/simple/{name}/", headers={"Accept": HTML})
    assert html.content_type == HTML
    assert f'<meta name="pypi:tracks" content="{upstream.base}/simple/{name}/">' in html.text
    for f in upstream_doc["files"]:
        assert f["filename"] in html.text
    # Our second answer was a hit: the upstream saw only our first request (and the test's own read).
    assert requests_for(upstream, f"/simple/{name}/") == 2
    assert proxy_of(proxy).stats.as_dict()["hit"] == 1


def unique_name(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def files_of(app: webtest.TestApp, name: str, **kw: Any) -> set[str]:
    return {f["filename"] for f in app.get(f"/simple/{name}/", headers={"Accept": JSON}, **kw).json["files"]}


def test_json_api_and_project_page_mark_proxied_projects(proxy, upstream):
    name = demo_name(upstream)
    doc = proxy.get(f"/pypi/{name}/json").json
    assert doc["upstream"]["note"] == "from the upstream index"
    assert doc["upstream"]["project"] == f"{upstream.base}/simple/{name}/"
    assert doc["info"]["version"] in doc["releases"]
    assert all(f["url"].startswith("http://localhost/packages/") for f in doc["urls"])
    one = proxy.get(f"/pypi/{name}/{doc['info']['version']}/json").json
    assert one["urls"] == doc["urls"] and "releases" not in one
    assert proxy.get(f"/pypi/{name}/0.0.0.dev0/json", status=404)
    page = proxy.get(f"/project/{name}/")
    assert "From the upstream index." in page.text
    assert f"{upstream.base}/simple/{name}/" in page.text
    # Each version has its page, linked from the project's: that version's files, a pinned install.
    version = doc["info"]["version"]
    assert page.html.select_one(f'a[href="/project/{name}/{version}/"]') is not None
    release = proxy.get(f"/project/{name}/{version}/")
    assert "From the upstream index." in release.text and f"{name}=={version}" in release.text
    shown = {a.text for a in release.html.select("ul.files a")}
    assert shown == {f["filename"] for f in doc["urls"]}
    assert proxy.get(f"/project/{name}/0.0.0.dev0/", status=404)
    # Names are normalized as on hosted projects; an unknown name is a 404 from the upstream's answer.
    assert proxy.get(f"/simple/{name.upper()}/", status=301).location.endswith(f"/simple/{name}/")
    missing = unique_name("no-such")
    assert proxy.get(f"/simple/{missing}/", status=404)
    assert proxy.get(f"/pypi/{missing}/json", status=404)
    # (That the upstream's 404 is kept for the TTL is tested on a live proxy: here
    # the 404 rolls back the test's one connection, the proxy's own writes with it.)


def test_cooldown_hides_young_files_until_released(settings, dbsession, upstream):
    from tests.accounts import log_in, make_user, submit

    name = unique_name("young")
    publish(upstream, name, {"1.0": ago(days=30), "2.0": ago(hours=1)})
    app = proxy_app(settings, upstream, **{"myapp.upstream_min_age": "7d"})
    old, new = wheel_name(name, "1.0"), wheel_name(name, "2.0")
    assert files_of(app, name) == {old}
    assert app.get(f"/simple/{name}/", headers={"Accept": JSON}).json["versions"] == ["1.0"]
    html = app.get(f"/simple/{name}/", headers={"Accept": HTML}).text
    assert old in html and new not in html
    assert list(app.get(f"/pypi/{name}/json").json["releases"]) == ["1.0"]
    assert "1 newer file is not shown yet" in app.get(f"/project/{name}/").text
    assert app.get(f"/project/{name}/1.0/").status_int == 200
    app.get(f"/project/{name}/2.0/", status=404)  # nor its own page, until the cooldown lets it out
    etag = app.get(f"/simple/{name}/").headers["ETag"]

    # Break glass: an admin releases 2.0 early, with a reason, after confirming the password.
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    log_in(app, admin.username)
    refused = submit(app, "/admin/upstream", {"name": name, "version": "2.0", "reason": ""}, status=400)
    assert "Say why" in refused.text
    submit(app, "/admin/upstream", {"name": name, "version": "2.0", "reason": "fixes CVE-0000-1"}, status=303)
    app.reset()  # anonymous again: what pip sees
    assert files_of(app, name) == {old, new}
    assert app.get(f"/simple/{name}/").headers["ETag"] != etag
    from myapp.packaging.models import JournalEntry

    entry = dbsession.scalar(select(JournalEntry).where(JournalEntry.package_name == name))
    assert entry.version == "2.0" and "fixes CVE-0000-1" in entry.action and entry.username == admin.username


def test_cooldown_exemption_and_freeze(settings, dbsession, upstream):
    from tests.accounts import log_in, make_user

    name = unique_name("exempt")
    publish(upstream, name, {"1.0": ago(days=30), "2.0": ago(days=3), "3.0": ago(minutes=5)})
    app = proxy_app(settings, upstream, **{"myapp.upstream_min_age": "7d"})
    assert files_of(app, name) == {wheel_name(name, "1.0")}
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    log_in(app, admin.username)
    page = app.get("/admin/upstream")
    form = next(f for f in page.forms.values() if [x.value for x in f.fields.get("action", [])] == ["exempt"])
    form["name"] = name
    form.submit(status=303)
    app.reset()
    assert files_of(app, name) == {wheel_name(name, v) for v in ("1.0", "2.0", "3.0")}
    # A freeze is absolute: nothing uploaded after it, exempt or not.
    frozen = proxy_app(
        settings, upstream, **{"myapp.upstream_min_age": "7d", "myapp.upstream_freeze": ago(days=10).isoformat()}
    )
    assert files_of(frozen, name) == {wheel_name(name, "1.0")}


def test_hosted_names_never_show_upstream_files(proxy, upstream, dbsession):
    """Zero dependency confusion: the upstream has a higher version of every hosted name."""
    hosted = [unique_name("ours") for _ in range(3)]
    for name in hosted:
        make_package(dbsession, name, versions=["1.0"])
        publish(upstream, name, {"1.0": ago(days=60), "99.0": ago(days=30)})
    for name in hosted:
        doc = proxy.get(f"/simple/{name}/", headers={"Accept": JSON}).json
        assert doc["versions"] == ["1.0"]
        assert all("99.0" not in f["filename"] for f in doc["files"])
        assert "tracks" not in doc["meta"] and "alternate-locations" not in doc
        assert "99.0" not in proxy.get(f"/simple/{name}/", headers={"Accept": HTML}).text
        assert "99.0" not in proxy.get(f"/pypi/{name}/json").text
        assert "99.0" not in proxy.get(f"/project/{name}/").text
        assert requests_for(upstream, f"/simple/{name}/") == 0  # never even asked
    assert dbsession.scalar(select(UpstreamProject).where(UpstreamProject.name.in_(hosted))) is None


def test_owner_opts_in_to_upstream_versions_with_pep_708(proxy, upstream, dbsession):
    from myapp.packaging.models import JournalEntry, Role, RoleName
    from tests.accounts import form_for, log_in, make_user

    name = unique_name("both")
    package = make_package(dbsession, name, versions=["1.0"])
    clash = wheel_name(name, "1.0")
    ours_file = package.releases[0].files[0]
    ours_file.filename, ours_file.sha256 = clash, "ab" * 32  # the upstream has a file of this name, other bytes
    ours_file.storage_path = f"ab/ab/{clash}"
    owner = make_user(dbsession, email_verified=True)
    dbsession.add(Role(user_id=owner.id, package_id=package.id, role=RoleName.OWNER))
    dbsession.flush()
    publish(upstream, name, {"1.0": ago(days=60), "2.0": ago(days=30)})

    stranger = make_user(dbsession, email_verified=True)
    log_in(proxy, stranger.username)
    proxy.get(f"/manage/project/{name}/upstream", status=403)
    proxy.reset()
    log_in(proxy, owner.username)
    page = proxy.get(f"/manage/project/{name}/upstream")
    form_for(page, f"/manage/project/{name}/upstream").submit(status=303)
    proxy.reset()

    doc = proxy.get(f"/simple/{name}/", headers={"Accept": JSON}).json
    upstream_url = f"{upstream.base}/simple/{name}/"
    assert doc["meta"]["api-version"] == "1.2"
    assert doc["meta"]["tracks"] == [upstream_url]
    assert doc["alternate-locations"] == [upstream_url]
    assert doc["versions"] == ["1.0", "2.0"]
    files = {f["filename"]: f for f in doc["files"]}
    assert set(files) == {clash, wheel_name(name, "2.0")}
    assert files[clash]["hashes"]["sha256"] == "ab" * 32  # ours wins the clash
    assert files[clash]["url"] == f"/files/{clash}"
    assert files[wheel_name(name, "2.0")]["url"].startswith("/packages/")
    html = proxy.get(f"/simple/{name}/", headers={"Accept": HTML}).text
    assert f'<meta name="pypi:tracks" content="{upstream_url}">' in html
    assert f'<meta name="pypi:alternate-locations" content="{upstream_url}">' in html
    entry = dbsession.scalar(select(JournalEntry).where(JournalEntry.package_name == name))
    assert entry.action == "also serve upstream versions: on" and entry.username == owner.username


def test_private_index_guards_proxied_names(settings, dbsession, upstream):
    name = demo_name(upstream)
    private = proxy_app(settings, upstream, **{"myapp.read_access": "authenticated"})
    for path in (f"/simple/{name}/", f"/pypi/{name}/json"):
        assert private.get(path, status=401).headers["WWW-Authenticate"].startswith("Basic")
    assert private.get(f"/project/{name}/", status=303)  # to the sign-in page
    unknown = unique_name("private")
    private.get(f"/simple/{unknown}/", status=401)
    assert requests_for(upstream, f"/simple/{unknown}/") == 0


def test_health_and_admin_page_report_the_upstream(proxy, upstream, dbsession):
    from tests.accounts import log_in, make_user

    proxy.get(f"/simple/{demo_name(upstream)}/")
    report = proxy.get("/health").json["upstream"]
    assert report["reachable"] == "ok"
    assert report["projects"] >= 1 and report["files"] >= 1
    assert report["url"] == f"{upstream.base}/simple/"
    admin = make_user(dbsession, is_admin=True, email_verified=True)
    log_in(proxy, admin.username)
    page = proxy.get("/admin/upstream")
    assert "Reachable" in page.text and f"{upstream.base}/simple/" in page.text


def test_refresh_follows_yanks_and_removals(settings, dbsession, upstream):
    from myapp.data.jobs import Worker
    from tests.upstream_helpers import remove, yank

    name = unique_name("follow")
    publish(upstream, name, {"1.0": ago(days=60), "2.0": ago(days=30), "3.0": ago(days=20)})
    app = proxy_app(settings, upstream, **{"myapp.upstream_ttl": "0"})
    assert len(files_of(app, name)) == 3
    yank(upstream, name, "2.0", "broken")
    remove(upstream, name, "3.0")
    # Past the TTL (0 s): served at once as stored, and a refresh queued ...
    assert len(files_of(app, name)) == 3
    from myapp.data.jobs import Job

    assert len(files_of(app, name)) == 3  # asked again while the refresh waits: no second job
    jobs = dbsession.scalars(select(Job).where(Job.kind == "upstream.refresh")).all()
    assert [job.payload for job in jobs] == [{"name": name}]
    # ... which the worker runs (as myapp-worker --drain would, in this test's transaction).
    assert Worker(app.app.registry).drain()["done"] >= 1
    doc = app.get(f"/simple/{name}/", headers={"Accept": JSON}).json
    files = {f["filename"]: f for f in doc["files"]}
    assert set(files) == {wheel_name(name, "1.0"), wheel_name(name, "2.0")}
    assert files[wheel_name(name, "2.0")]["yanked"] == "broken"
    gone = dbsession.scalar(select(UpstreamFile).where(UpstreamFile.filename == wheel_name(name, "3.0")))
    assert gone.removed_at is not None


def test_a_conditional_refresh_sends_the_etag(settings, dbsession, upstream):
    name = unique_name("etag")
    publish(upstream, name, {"1.0": ago(days=60)})
    app = proxy_app(settings, upstream, **{"myapp.upstream_ttl": "0"})
    files_of(app, name)
    row = dbsession.scalar(select(UpstreamProject).where(UpstreamProject.name == name))
    assert row.etag and row.page_status == 200
    from myapp.data.jobs import Worker

    files_of(app, name)  # past the TTL: a refresh queued
    Worker(app.app.registry).drain()
    dbsession.expire_all()
    row = dbsession.scalar(select(UpstreamProject).where(UpstreamProject.name == name))
    assert row.page_status == 304
    assert timedelta(0) <= row.fetched_at - row.created


def test_the_index_lists_hosted_and_fetched_proxied_names(proxy, upstream, dbsession):
    name = demo_name(upstream)
    hosted = unique_name("listed")
    make_package(dbsession, hosted, versions=["1.0"])
    before = proxy.get("/simple/", headers={"Accept": JSON})
    names = [p["name"] for p in before.json["projects"]]
    assert hosted in names and name not in names  # not asked for yet: not known
    proxy.get(f"/simple/{name}/")
    after = proxy.get("/simple/", headers={"Accept": JSON})
    assert after.headers["ETag"] != before.headers["ETag"]
    names = [p["name"] for p in after.json["projects"]]
    assert name in names and names == sorted(names)
    assert f'<a href="/simple/{name}/">' in proxy.get("/simple/").text


def test_a_warm_proxied_page_is_two_raw_reads_and_answers_if_none_match(proxy, upstream, count_queries):
    """No hosted project of that name (asked first: ours win), then what the
    kept page depends on (the stored project's serial, its TTL, its policy):
    no session. A client that has the page gets 304 from the same two reads."""
    name = demo_name(upstream)
    proxy.get(f"/simple/{name}/", headers={"Accept": JSON})  # fetched: kept from the next request on
    first = proxy.get(f"/simple/{name}/", headers={"Accept": JSON})
    count_queries.clear()
    again = proxy.get(f"/simple/{name}/", headers={"Accept": JSON})
    read = [statement.split(" FROM ")[-1].split()[0] for statement in count_queries.statements]
    assert read == ["packages", "upstream_projects"], count_queries.statements
    assert (again.body, again.headers["ETag"], again.content_type) == (first.body, first.headers["ETag"], JSON)
    assert again.headers["X-PyPI-Last-Serial"] == first.headers["X-PyPI-Last-Serial"]
    count_queries.clear()
    proxy.get(f"/simple/{name}/", headers={"Accept": JSON, "If-None-Match": again.headers["ETag"]}, status=304)
    assert count_queries.count == 2, count_queries.statements
    # The HTML page is kept apart.
    assert proxy.get(f"/simple/{name}/", headers={"Accept": HTML}).content_type == HTML
    assert proxy_of(proxy).stats.as_dict()["hit"] >= 2


def test_a_kept_proxied_page_lets_a_file_out_when_the_cooldown_does(
    settings, dbsession, upstream, monkeypatch, count_queries
):
    """Kept until the cooldown's next release of a file, not for its serial alone."""
    from myapp.upstream import pages

    name = unique_name("ripening")
    publish(upstream, name, {"1.0": ago(days=30), "2.0": ago(days=7) + timedelta(minutes=1)})
    app = proxy_app(settings, upstream, **{"myapp.upstream_min_age": "7d"})
    assert files_of(app, name) == files_of(app, name) == {wheel_name(name, "1.0")}
    count_queries.clear()
    assert files_of(app, name) == {wheel_name(name, "1.0")}  # kept: 2.0 is still too young
    assert count_queries.count == 2, count_queries.statements
    later = pages.utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(pages, "utcnow", lambda: later)
    assert files_of(app, name) == {wheel_name(name, "1.0"), wheel_name(name, "2.0")}


def test_a_hosted_page_with_a_proxy_set_costs_no_session(proxy, dbsession, count_queries):
    """Whether its owner asked for upstream files too is one raw read beside
    the page's serial, not an ORM session and a query, while they did not."""
    hosted = unique_name("alone")
    make_package(dbsession, hosted, versions=["1.0"])
    proxy.get(f"/simple/{hosted}/", headers={"Accept": JSON})
    count_queries.clear()
    res = proxy.get(f"/simple/{hosted}/", headers={"Accept": JSON})
    assert [f["filename"] for f in res.json["files"]]
    read = [statement.split(" FROM ")[1].split()[0] for statement in count_queries.statements]
    assert read == ["packages", "upstream_policies"], count_queries.statements


def test_a_project_gone_upstream_is_gone_here(settings, dbsession, upstream):
    from myapp.data.jobs import Worker
    from tests.upstream_helpers import upstream_db

    name = unique_name("gone")
    publish(upstream, name, {"1.0": ago(days=60)})
    app = proxy_app(settings, upstream, **{"myapp.upstream_ttl": "0"})
    assert files_of(app, name) == {wheel_name(name, "1.0")}
    with upstream_db(upstream) as db:
        package = db.scalar(select(Package).where(Package.name == name))
        for release in package.releases:
            for file in release.files:
                db.delete(file)
            db.delete(release)
        db.delete(package)
    assert files_of(app, name) == {wheel_name(name, "1.0")}  # stale, served while the refresh is queued
    Worker(app.app.registry).drain()
    app.get(f"/simple/{name}/", status=404)
    gone = dbsession.scalar(select(UpstreamFile).where(UpstreamFile.filename == wheel_name(name, "1.0")))
    assert gone.removed_at is not None


def test_core_metadata_is_served_verified_and_kept(proxy, upstream, settings):
    import hashlib
    import shutil
    from pathlib import Path

    name = demo_name(upstream)
    doc = proxy.get(f"/simple/{name}/", headers={"Accept": JSON}).json
    wheel = next(f for f in doc["files"] if f["core-metadata"])
    kept = Path(settings["myapp.files_dir"]) / ".upstream-metadata"
    shutil.rmtree(kept, ignore_errors=True)  # (kept by hash: the other backend's run may have it)
    metadata = proxy.get(wheel["url"] + ".metadata")
    assert hashlib.sha256(metadata.body).hexdigest() == wheel["core-metadata"]["sha256"]
    assert metadata.content_type == "text/plain"
    assert any(kept.rglob(wheel["core-metadata"]["sha256"]))
    upstream_path = "/files/" + wheel["filename"] + ".metadata"
    assert proxy.get(wheel["url"] + ".metadata").body == metadata.body
    assert requests_for(upstream, upstream_path) == 1  # the second came from our disk
    sha = wheel["hashes"]["sha256"]
    wrong = f"/packages/{sha[:2]}/{sha[2:4]}/{'0' * 60}/{wheel['filename']}.metadata"
    assert proxy.get(wrong, status=404)


def test_core_metadata_of_a_young_file_is_refused(settings, dbsession, upstream):
    from myapp.upstream.models import UpstreamFile as File

    name = unique_name("young-meta")
    publish(upstream, name, {"1.0": ago(hours=1)}, metadata=True)
    app = proxy_app(settings, upstream, **{"myapp.upstream_min_age": "7d"})
    assert files_of(app, name) == set()
    file = dbsession.scalar(select(File).where(File.filename == wheel_name(name, "1.0")))
    assert file.core_metadata_sha256
    sha = file.sha256
    res = app.get(f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{file.filename}.metadata", status=403)
    assert "minimum release age" in res.text

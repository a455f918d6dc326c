"""The simple repository API (PEP 503/691/592/658/700) and PyPI's JSON API,
on SQLite and PostgreSQL, and real pip and uv installing from a live server."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import webtest
from sqlalchemy import select

from myapp.config import configure
from myapp.packaging import services
from myapp.packaging.demo import load_demo
from myapp.packaging.models import Package, Release, ReleaseFile
from myapp.packaging.simple_cache import Page, sized
from myapp.web.bounded import BoundedMap
from tests.conftest import BIN, live_server
from tests.test_live import query

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {HTML}; q=0.1, text/html; q=0.01"


@pytest.fixture
def demo(dbsession, files_dir) -> Package:
    load_demo(dbsession, files_dir, projects=4)
    # The demo project with the most releases, for paging through versions.
    return max(dbsession.scalars(select(Package)), key=lambda p: len(p.releases))


# -- negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html"),
        (PIP_ACCEPT, JSON),
        (JSON, JSON),
        ("application/vnd.pypi.simple.latest+json", JSON),
        (HTML, HTML),
        (f"{JSON}; q=0.2, {HTML}; q=0.9", HTML),
        (f"{JSON}; q=0, text/html", "text/html"),
    ],
)
def test_content_negotiation(testapp, demo, accept, expected):
    headers = {"Accept": accept} if accept else {}
    for path in ("/simple/", f"/simple/{demo.name}/"):
        res = testapp.get(path, headers=headers)
        assert res.content_type == expected, (path, accept)
        assert res.headers["Vary"] == "Accept"
        assert res.headers["X-PyPI-Last-Serial"].isdigit()


@pytest.mark.parametrize("accept", ["image/png", f"{JSON}; q=0", "application/json"])
def test_nothing_acceptable_is_406(testapp, demo, accept):
    assert testapp.get(f"/simple/{demo.name}/", headers={"Accept": accept}, status=406)


def test_format_parameter(testapp, demo):
    assert testapp.get(f"/simple/{demo.name}/", params={"format": JSON}).content_type == JSON
    assert testapp.get(f"/simple/{demo.name}/?format=xml", status=406)


# -- the project page ------------------------------------------------------------------------


def test_project_page_html(testapp, dbsession, demo):
    release = demo.releases[0]
    release.yanked, release.yanked_reason = True, "broken <build>"
    for f in release.files:
        f.yanked = True
    dbsession.flush()
    page = testapp.get(f"/simple/{demo.name}/")
    assert page.html.find("meta", attrs={"name": "pypi:repository-version"})["content"] == "1.1"
    links = {a.text: a for a in page.html.select("a")}
    files = dbsession.scalars(select(ReleaseFile).join(Release).where(Release.package_id == demo.id)).all()
    assert set(links) == {f.filename for f in files}
    for f in files:
        a = links[f.filename]
        assert a["href"] == f"/files/{f.filename}#sha256={f.sha256}"
        assert a["data-requires-python"] == ">=3.9"
        assert ('data-yanked="broken &lt;build&gt;"' in str(a)) == f.yanked
        if f.filename.endswith(".whl"):
            assert a["data-core-metadata"] == a["data-dist-info-metadata"] == f"sha256={f.metadata_sha256}"
        else:
            assert not a.has_attr("data-core-metadata")
    assert "&gt;=3.9" in page.text  # escaped, as PEP 503 asks


def test_project_page_json(testapp, dbsession, demo):
    doc = testapp.get(f"/simple/{demo.name}/", headers={"Accept": PIP_ACCEPT}).json
    assert doc["meta"] == {"api-version": "1.1", "_last-serial": demo.last_serial}
    assert doc["name"] == demo.name
    releases = sorted(demo.releases, key=lambda r: r.sort_key)
    assert doc["versions"] == [r.version for r in releases]
    first = doc["files"][0]
    stored = dbsession.scalar(select(ReleaseFile).where(ReleaseFile.filename == first["filename"]))
    assert first["url"] == f"/files/{stored.filename}"
    assert first["hashes"] == {"sha256": stored.sha256}
    assert first["size"] == stored.size and first["requires-python"] == ">=3.9" and first["yanked"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["upload-time"])


def test_non_normalized_names_redirect_and_unknown_are_404(testapp, demo):
    odd = demo.display_name.upper().replace("-", "_")
    res = testapp.get(f"/simple/{odd}/", status=301)
    assert res.location == f"http://localhost/simple/{demo.name}/"
    assert testapp.get("/simple/no-such-project/", status=404)
    assert testapp.get("/simple/%00/", status=400)  # NUL: refused by the request guard
    assert testapp.get(f"/simple/{demo.name}", status=301).location.endswith(f"/simple/{demo.name}/")


def test_etags_and_serials(testapp, dbsession, demo):
    page = testapp.get(f"/simple/{demo.name}/")
    assert testapp.get(f"/simple/{demo.name}/", headers={"If-None-Match": page.headers["ETag"]}, status=304)
    as_json = testapp.get(f"/simple/{demo.name}/", headers={"Accept": JSON})
    assert as_json.headers["ETag"] != page.headers["ETag"]  # one per representation
    index = testapp.get("/simple/")
    assert testapp.get("/simple/", headers={"If-None-Match": index.headers["ETag"]}, status=304)
    from myapp.packaging.services import bump_serial

    bump_serial(dbsession, demo)
    dbsession.flush()
    changed = testapp.get(f"/simple/{demo.name}/", headers={"If-None-Match": page.headers["ETag"]})
    assert changed.status_int == 200 and int(changed.headers["X-PyPI-Last-Serial"]) == demo.last_serial
    assert testapp.get("/simple/", headers={"If-None-Match": index.headers["ETag"]}).status_int == 200


def test_index_lists_every_project(testapp, dbsession, demo):
    names = sorted(dbsession.scalars(select(Package.name)))
    html = testapp.get("/simple/")
    assert [a["href"] for a in html.html.select("a")] == [f"/simple/{n}/" for n in names]
    doc = testapp.get("/simple/", headers={"Accept": JSON}).json
    assert doc["meta"]["api-version"] == "1.1"
    assert [p["name"] for p in doc["projects"]] == sorted(
        dbsession.scalars(select(Package.display_name)), key=lambda d: d.lower()
    )


def test_index_escapes_a_name_that_got_around_validation(testapp, dbsession, demo):
    # A valid name has nothing to escape, so the listing escapes only a batch that holds another.
    demo.display_name = 'Odd<b>&"\\'
    demo.name = 'odd"><b>'
    dbsession.flush()
    html = testapp.get("/simple/")
    assert '<a href="/simple/odd&quot;&gt;&lt;b&gt;/">Odd&lt;b&gt;&amp;&quot;\\</a>' in html.text
    assert "<b>" not in html.text
    doc = testapp.get("/simple/", headers={"Accept": JSON}).json
    assert 'Odd<b>&"\\' in [p["name"] for p in doc["projects"]]


def test_core_metadata_is_the_wheels_own(testapp, dbsession, demo):
    wheel = next(f for r in demo.releases for f in r.files if f.filename.endswith(".whl"))
    res = testapp.get(f"/files/{wheel.filename}.metadata")
    assert hashlib.sha256(res.body).hexdigest() == wheel.metadata_sha256
    # 2.4: the demo's files carry License-Expression, and their Requires-Dist (what pip reads here, PEP 658).
    assert res.text.startswith("Metadata-Version: 2.4\nName: ") and "\nRequires-Dist: pytest>=8" in res.text
    sdist = next(f for r in demo.releases for f in r.files if f.filename.endswith(".tar.gz"))
    assert testapp.get(f"/files/{sdist.filename}.metadata", status=404)
    dbsession.expire_all()
    assert dbsession.get(ReleaseFile, wheel.id).downloads == 0  # metadata is not a download


def test_files_have_their_content_types(testapp, demo):
    wheel = next(f for r in demo.releases for f in r.files if f.filename.endswith(".whl"))
    sdist = next(f for r in demo.releases for f in r.files if f.filename.endswith(".tar.gz"))
    assert testapp.get(f"/files/{wheel.filename}").content_type == "application/zip"
    res = testapp.get(f"/files/{sdist.filename}")
    assert res.content_type == "application/gzip" and "Content-Encoding" not in res.headers


def test_hosted_files_in_pypis_packages_layout(testapp, dbsession, demo):
    """/packages/<h1>/<h2>/<rest>/<filename>, with or without a proxy: the same bytes
    and metadata as /files/; a hash that is not the file's, or an unknown name, is a 404."""
    wheel = dbsession.scalar(
        select(ReleaseFile).where(ReleaseFile.metadata_sha256.isnot(None)).order_by(ReleaseFile.id).limit(1)
    )
    s = wheel.sha256
    path = f"/packages/{s[:2]}/{s[2:4]}/{s[4:]}/{wheel.filename}"
    assert testapp.get(path).body == testapp.get(f"/files/{wheel.filename}").body
    assert testapp.get(path + ".metadata").body == testapp.get(f"/files/{wheel.filename}.metadata").body
    testapp.get(path.replace(s[4:], "0" * 60), status=404)
    testapp.get(f"/packages/{s[:2]}/{s[2:4]}/{s[4:]}/nothing-1.0-py3-none-any.whl", status=404)


# -- PyPI's JSON API ---------------------------------------------------------------------------


def test_json_api(testapp, dbsession, demo):
    doc = testapp.get(f"/pypi/{demo.name}/json").json
    assert set(doc) == {"info", "last_serial", "releases", "urls", "vulnerabilities"}
    assert doc["info"]["name"] == demo.display_name and doc["vulnerabilities"] == []
    assert set(doc["releases"]) == {r.version for r in demo.releases}
    latest = doc["info"]["version"]
    assert {u["filename"] for u in doc["urls"]} == {f["filename"] for f in doc["releases"][latest]}
    one = doc["urls"][0]
    # PyPI's /packages/ layout (a mirror such as bandersnatch keeps the URL's path).
    sha = one["digests"]["sha256"]
    assert one["url"] == f"http://localhost/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{one['filename']}"
    assert one["upload_time_iso_8601"].endswith("Z")
    version_doc = testapp.get(f"/pypi/{demo.name}/{latest}/json").json
    assert version_doc["info"]["version"] == latest and "releases" not in version_doc
    assert testapp.get(f"/pypi/{demo.name}/0.0.0.0.1/json", status=404)
    assert testapp.get("/pypi/nothing-here/json", status=404)
    assert testapp.get(f"/pypi/{demo.display_name.upper()}/json", status=301)


# -- real clients ------------------------------------------------------------------------------


def make_venv(folder: Path) -> Path:
    """A fresh virtual environment (its pip comes from ensurepip, offline)."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, capture_output=True, timeout=120)
    return folder / "bin" / "python"


def offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return env | {
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_NO_CONFIG": "1",
        "UV_PYTHON_DOWNLOADS": "never",
    }


def installed_version(python: Path, project: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({project!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_pip_installs_a_dependency_hosted_here_reading_requires_dist_from_core_metadata(backend, tmp_path):
    """A demo project needs another: pip learns it from the wheel's .metadata
    (PEP 658, its Requires-Dist) and installs both from this index."""
    with live_server(backend, tmp_path) as server:
        rows = query(server.url, select(Package.name, Release.requires_dist).join(Release), all_rows=True)
        project, needs = next((n, r[0]) for n, r in rows if r and "extra ==" not in r[0])
        python = make_venv(tmp_path / "venv")
        command = [str(python), "-m", "pip", "install", "--index-url", server.base + "/simple/", project]
        done = subprocess.run(command, capture_output=True, text=True, env=offline_env(tmp_path), timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert installed_version(python, needs)  # the dependency came too
        dependency_metadata = f"/files/{needs.replace('-', '_')}-{installed_version(python, needs)}-py3-none-any.whl"
        assert dependency_metadata + ".metadata" in server.log.read_text()


def test_pip_and_uv_install_from_the_index(backend, tmp_path):
    """pip (its JSON or HTML simple API, PEP 658 metadata) and uv install demo
    wheels from the live server and nothing else; uv's --exclude-newer reads
    the upload times."""
    with live_server(backend, tmp_path) as server:
        # A project with at least two final, non-yanked releases.
        releases = query(
            server.url,
            select(Package.name, Release.version, Release.created, Release.requires_dist)
            .join(Release)
            .where(~Release.is_prerelease, ~Release.yanked)
            .order_by(Package.name, Release.sort_key.desc()),
            all_rows=True,
        )
        by_project: dict[str, list[tuple[str, object]]] = {}
        for name, version, created, requires in releases:
            if all("extra ==" in r for r in requires or []):  # no dependency to fetch: pip fetches this alone
                by_project.setdefault(name, []).append((version, created))
        project, history = next((n, h) for n, h in by_project.items() if len(h) >= 2)
        (newest, newest_time), (older, _) = history[0], history[1]
        index = server.base + "/simple/"
        python = make_venv(tmp_path / "venv")
        env = offline_env(tmp_path)

        def run(*command: str) -> None:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
            assert done.returncode == 0, done.stdout + done.stderr

        run(str(python), "-m", "pip", "install", "--index-url", index, project)
        assert installed_version(python, project) == newest
        # pip read the chosen wheel's core metadata (PEP 658) and fetched no other wheel.
        fetched = [
            line.split('"')[1].split()[1]
            for line in server.log.read_text().splitlines()
            if "[wsgi]" in line and '"GET /files/' in line
        ]
        wheel = f"/files/{project.replace('-', '_')}-{newest}-py3-none-any.whl"
        assert fetched == [wheel + ".metadata", wheel], fetched
        module = project.replace("-", "_")
        run(str(python), "-c", f"import {module}; assert {module}.__version__ == {newest!r}")

        # A range: pip resolves it with .metadata files and downloads the chosen wheel only.
        before = len(server.log.read_text().splitlines())
        run(
            str(python),
            "-m",
            "pip",
            "download",
            "--dest",
            str(tmp_path / "dl"),
            "--index-url",
            index,
            f"{project}<{newest}",
        )
        fetched = [
            line.split('"')[1].split()[1]
            for line in server.log.read_text().splitlines()[before:]
            if "[wsgi]" in line and '"GET /files/' in line
        ]
        older_wheel = f"/files/{project.replace('-', '_')}-{older}-py3-none-any.whl"
        assert fetched == [older_wheel + ".metadata", older_wheel], fetched
        assert [p.name for p in (tmp_path / "dl").iterdir()] == [older_wheel.rsplit("/", 1)[1]]

        run(str(BIN / "uv"), "pip", "install", "--python", str(python), "--index-url", index, f"{project}=={older}")
        assert installed_version(python, project) == older

        cutoff = (newest_time - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        run(
            str(BIN / "uv"),
            "pip",
            "install",
            "--python",
            str(python),
            "--index-url",
            index,
            "--exclude-newer",
            cutoff,
            "--upgrade",
            project,
        )
        assert installed_version(python, project) == older  # the newest is "newer" than the cutoff
    log = server.log.read_text()
    assert "Traceback" not in log


def test_the_index_listing_is_kept_until_anything_changes(testapp, dbsession, files_dir, demo):
    cache = files_dir / ".cache"
    first = testapp.get("/simple/")
    saved = [p.name for p in cache.iterdir() if not p.name.startswith(".")]
    assert saved == [f"simple-{first.headers['ETag'].strip(chr(34))}"]
    again = testapp.get("/simple/")
    assert again.body == first.body and again.headers["ETag"] == first.headers["ETag"]
    from myapp.packaging.services import bump_serial

    bump_serial(dbsession, demo)
    dbsession.flush()
    changed = testapp.get("/simple/")
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert [p.name for p in cache.iterdir() if p.name.startswith("simple-html")] == [
        f"simple-{changed.headers['ETag'].strip(chr(34))}"
    ]  # the old copy is gone


# -- kept pages ------------------------------------------------------------------------------


def test_a_kept_page_is_never_stale_after_a_write_by_another_process(settings, dbsession, demo):
    """Two apps keep pages apart, as two server processes do; a write made
    elsewhere (here: the test's session, as an upload would) bumps the serial,
    and both see it on their next request."""
    apps = [webtest.TestApp(configure(settings).make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})]
    apps.append(webtest.TestApp(configure(settings).make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"}))
    url = f"/simple/{demo.name}/"
    before = [app.get(url) for app in apps]
    assert [app.get(url).body for app in apps] == [page.body for page in before]  # kept
    release = demo.releases[0]
    release.files.append(
        ReleaseFile(filename="late_arrival-9.9.tar.gz", packagetype="sdist", size=1, sha256="0" * 64, url="https://x/y")
    )
    services.bump_serial(dbsession, demo)  # what every write does
    dbsession.flush()
    for app, old in zip(apps, before, strict=True):
        page = app.get(url)
        assert "late_arrival-9.9.tar.gz" in page.text and "late_arrival-9.9.tar.gz" not in old.text
        assert page.headers["ETag"] != old.headers["ETag"]
        assert page.headers["X-PyPI-Last-Serial"] == str(demo.last_serial)
        assert app.get(url, headers={"If-None-Match": old.headers["ETag"]}).status_int == 200


def test_kept_pages_depend_on_where_the_app_is_mounted(testapp, demo):
    plain = testapp.get(f"/simple/{demo.name}/")
    mounted = testapp.get(f"/simple/{demo.name}/", extra_environ={"SCRIPT_NAME": "/index"})
    assert 'href="/files/' in plain.text and 'href="/files/' not in mounted.text
    assert 'href="/index/files/' in mounted.text


def test_kept_pages_are_bounded_by_bytes():
    cache = BoundedMap[Page](max_bytes=800)
    for key in range(10):
        cache.put(key, *sized(Page(b"x" * 100, "text/html")))
    assert cache.size == 800
    assert cache.get(0) is None and cache.get(1) is None  # the oldest went first
    assert cache.get(2) is not None  # ... and 2 is now the most recent
    cache.put("next", *sized(Page(b"y" * 100, "text/html")))
    assert cache.get(3) is None and cache.get(2) is not None
    cache.put("huge", *sized(Page(b"z" * 101, "text/html")))  # over an eighth of the bound: never kept
    assert cache.get("huge") is None and cache.size == 800
    assert cache.get_or_make("r", lambda: sized(Page(b"r", "text/html"))).body == b"r"
    assert cache.get_or_make("r", lambda: sized(Page(b"other", "text/html"))).body == b"r"


def test_kept_entries_can_expire():
    now = [1000.0]
    cache = BoundedMap[str](max_bytes=800, seconds=10, clock=lambda: now[0])
    cache.put("a", "A", 1)
    now[0] += 9
    assert cache.get("a") == "A"
    now[0] += 2
    assert cache.get("a") is None and cache.size == 0 and len(cache) == 0

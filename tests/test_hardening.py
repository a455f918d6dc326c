"""Hostile input, class by class, on SQLite and PostgreSQL: a poisoned or
bloated page cache, 500s from odd input, forged log lines, off-site
redirects, downloads that are not downloads, missing headers, and a health
check that lies. The seeded fuzzer in ``test_fuzz.py`` covers the same rules
at random."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import webtest
from sqlalchemy import select, text

from myapp.config import configure
from myapp.data.migrations import head_revisions, known_revisions
from myapp.logs import SafeFormatter
from myapp.packaging.models import ReleaseFile
from myapp.web.cache import PageCache
from myapp.web.files import ByteRange, parse_range
from myapp.web.guard import DEFAULT_ALLOWED_HOSTS, allowed_hosts, valid_host
from myapp.web.views import _relative_location
from tests.factories import make_package, refuse

UNICODE_DIGITS = ["²", "٣", "①", "෦", "\U0001d7d9", "¹0", "1²"]  # the fifth: MATHEMATICAL DOUBLE-STRUCK ONE


def stored_file(dbsession, files_dir: Path, name: str = "tool", size: int = 4096) -> ReleaseFile:
    """A project whose one file has real bytes in the store."""
    make_package(dbsession, name)
    file = dbsession.scalar(select(ReleaseFile).where(ReleaseFile.filename.startswith(name.replace("-", "_"))))
    data = (uuid.uuid4().bytes * (size // 16 + 1))[:size]
    relative = f"t/{uuid.uuid4().hex}/{file.filename}"
    (files_dir / relative).parent.mkdir(parents=True)
    (files_dir / relative).write_bytes(data)
    file.storage_path, file.size, file.sha256 = relative, size, hashlib.sha256(data).hexdigest()
    dbsession.flush()
    return file


def downloads(dbsession, file: ReleaseFile) -> int:
    dbsession.expire_all()
    return dbsession.scalar(select(ReleaseFile.downloads).where(ReleaseFile.id == file.id))


@pytest.fixture
def cached_app(settings, dbsession):
    app = configure({**settings, "myapp.page_cache_seconds": "60"}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


# -- 1. Host and the page cache -------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("localhost", "localhost"),
        ("LOCALHOST:6543", "localhost:6543"),
        ("localhost.", "localhost"),
        ("127.0.0.1:80", "127.0.0.1:80"),
        ("[::1]:6543", "[::1]:6543"),
        ("localhost/projects", None),
        ("localhost:99999", None),
        ("localhost:0", None),
        ("localhost:²", None),
        ("localhost:", None),
        ("evil.example", None),
        ("localhost.evil.example", None),
        ("user@localhost", None),
        ("local\x00host", None),
        ("localhost\r\nX-Injected: 1", None),
        ("", None),
        ("a" * 300, None),
        ("l\u043ecalhost", None),  # a Cyrillic o
        ("localhost, evil.example", None),  # duplicated headers, joined
    ],
)
def test_host_header_must_name_this_site(header, expected):
    assert valid_host(header, DEFAULT_ALLOWED_HOSTS) == expected


def test_allowed_hosts_setting_and_environment(monkeypatch):
    monkeypatch.delenv("MYAPP_ALLOWED_HOSTS", raising=False)
    hosts = allowed_hosts({"myapp.allowed_hosts": "pypi.example.com\n.corp.example [::1]"})
    assert hosts == ("pypi.example.com", ".corp.example", "::1")
    assert valid_host("PyPI.example.com:443", hosts) == "pypi.example.com:443"
    assert valid_host("a.b.corp.example", hosts) == "a.b.corp.example"
    assert valid_host("corp.example", hosts) == "corp.example"
    assert valid_host("evilcorp.example", hosts) is None
    assert valid_host("localhost", hosts) is None
    monkeypatch.setenv("MYAPP_ALLOWED_HOSTS", "index.internal")
    assert allowed_hosts({"myapp.allowed_hosts": "pypi.example.com"}) == ("index.internal",)


@pytest.mark.parametrize("host", ["evil.example", "localhost/projects", "localhost:²", "a" * 300, "[::1"])
def test_foreign_or_malformed_host_is_400_before_any_view(cached_app, dbsession, count_queries, host):
    res = cached_app.get("/", headers={"Host": host}, status=400)
    assert "does not answer to that host name" in res.text
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert count_queries.count == 0
    assert len(cached_app.app.registry["page_cache"]) == 0


def test_page_cache_cannot_be_poisoned_through_host(cached_app, dbsession):
    """The reported attack: ``Host: localhost/projects`` + ``GET /`` filled the
    entry of ``/projects/``. Now it is refused, and keys are tuples of the
    validated parts, so no two different pages can share one."""
    make_package(dbsession, "tool")
    for host in ("localhost/projects", "localhost/projects/", "localhost:80/projects"):
        cached_app.get("/", headers={"Host": host}, status=400)
    cached_app.get("/")  # the home page, cached under its own key
    for _ in range(2):
        page = cached_app.get("/projects/")
        assert page.html.select_one("h1").text.startswith("All projects"), page.text[:300]
    assert cached_app.get("/projects/").headers["X-Page-Cache"] == "hit"


def test_page_cache_normalizes_and_ignores_unknown_parameters(cached_app, dbsession):
    for i in range(25):
        make_package(dbsession, f"pkg-{i:02d}")
    cached_app.get("/projects/?sort=name&after=pkg-03")
    assert cached_app.get("/projects/?after=pkg-03&sort=name").headers["X-Page-Cache"] == "hit"  # same page, same entry
    for junk in ("?utm_source=x", "?after=a&after=a", "?sort=name&sort=name", "?q=x", "?after=a&x=" + "y" * 4000):
        cached_app.get("/projects/" + junk)
        assert "X-Page-Cache" not in cached_app.get("/projects/" + junk).headers, junk
    keys = [key for key in cached_app.app.registry["page_cache"]._pages]
    assert {tuple(name for name, _ in key[3]) for key in keys} == {("after", "sort")}


def test_page_cache_is_bounded_in_bytes_and_drops_expired_pages():
    cache = PageCache(seconds=60, max_bytes=200_000)
    response = webtest.TestResponse(body=b"x" * 10_000, content_type="text/html")
    for i in range(500):
        cache.put(("http", "localhost", "/search", (("q", f"term{i}"),), ""), response)
        assert cache.bytes <= cache.max_bytes
    assert 10 <= len(cache) < 20
    assert cache.get(("http", "localhost", "/search", (("q", "term499"),), "")) is not None
    assert cache.get(("http", "localhost", "/search", (("q", "term0"),), "")) is None  # evicted, oldest first
    cache.put(("http", "localhost", "/big", (), ""), webtest.TestResponse(body=b"x" * 100_000))
    assert cache.get(("http", "localhost", "/big", (), "")) is None  # one page may not take an eighth of the budget

    short = PageCache(seconds=0.01, max_bytes=10_000_000)
    for i in range(50):
        short.put(("http", "localhost", f"/p{i}", (), ""), response)
    time.sleep(0.02)
    short.put(("http", "localhost", "/fresh", (), ""), response)
    assert len(short) == 1 and short.bytes < 11_000  # the expired 50 are gone, not just unreachable


def test_page_cache_never_stores_credentialed_requests(cached_app, dbsession):
    make_package(dbsession, "tool")
    headers = {"Authorization": "Basic X190b2tlbl9fOnB5cGktc2VjcmV0"}
    cached_app.get("/project/tool/", headers=headers, status=401)  # a page takes no basic auth
    assert "X-Page-Cache" not in cached_app.get("/project/tool/", headers=headers, status=401).headers
    assert len(cached_app.app.registry["page_cache"]) == 0


# -- 2/3. Absurd URLs and input that used to be a 500 -----------------------------


@pytest.mark.parametrize("digits", UNICODE_DIGITS)
@pytest.mark.parametrize("path", ["/search?q=a"])
def test_unicode_digits_in_page_are_400(testapp, path, digits):
    sep = "&" if "?" in path else "?"
    res = testapp.get(f"{path}{sep}page={quote(digits)}", status=400)
    assert "page must be a whole number" in res.text


@pytest.mark.parametrize("junk", ["%0d%0aSet-Cookie:%20x=1", "%0aINFO%20forged", "%0d", "%00", "%E2%80%A8"])
def test_control_characters_in_redirected_paths_are_encoded(testapp, dbsession, junk):
    make_package(dbsession, "tool")
    res = testapp.get(f"/project/tool{junk}", status="*", expect_errors=True)
    assert res.status_int < 500
    if res.status_int == 301:
        location = res.headers["Location"]
        assert location.startswith("http://localhost/project/")
        assert not any(c in location for c in "\r\n\x00")
        assert "Set-Cookie" not in res.headers


def test_relative_locations_never_leave_the_site():
    assert _relative_location("//evil.example/x/", "") == "/evil.example/x/"
    assert _relative_location("/\\evil.example/", "") == "/%5Cevil.example/"
    assert _relative_location("/a\r\nb/", "q=1\r\n") == "/a%0D%0Ab/?q=1%0D%0A"
    assert _relative_location("/projects/", "sort=updated&page=2") == "/projects/?sort=updated&page=2"
    assert _relative_location("/project/ü/", "q=%C3%BC\xff") == "/project/%C3%BC/?q=%C3%BC%FF"


# -- 5. Redirects -------------------------------------------------------------------


def test_redirects_use_the_configured_host_only(testapp, dbsession):
    make_package(dbsession, "Flask_Thing")
    for path in ("/project/Flask_Thing/", "/project/flask-thing", "/projects?sort=updated"):
        assert testapp.get(path, headers={"Host": "evil.example"}, status=400)
        res = testapp.get(path, headers={"Host": "127.0.0.1:6543"}, status=301)
        assert res.location.startswith("http://127.0.0.1:6543/"), res.location


# -- 6. What counts as a download ----------------------------------------------------


def test_only_full_gets_and_first_chunks_count(testapp, dbsession, files_dir):
    file = stored_file(dbsession, files_dir, size=4096)
    url = f"/files/{file.filename}"

    full = testapp.get(url)
    assert full.status_int == 200 and len(full.body) == 4096
    assert full.headers["ETag"] == f'"{file.sha256}"'
    assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert full.headers["Accept-Ranges"] == "bytes"
    assert downloads(dbsession, file) == 1

    assert testapp.head(url).status_int == 200
    assert testapp.get(url, headers={"If-None-Match": f'"{file.sha256}"'}, status=304).body == b""
    since = full.headers["Last-Modified"]
    assert testapp.get(url, headers={"If-Modified-Since": since}, status=304)
    assert downloads(dbsession, file) == 1  # HEAD and 304s count nothing

    first = testapp.get(url, headers={"Range": "bytes=0-99"}, status=206)
    assert first.body == full.body[:100] and first.headers["Content-Range"] == "bytes 0-99/4096"
    assert downloads(dbsession, file) == 2  # the first chunk of a ranged download
    later = testapp.get(url, headers={"Range": "bytes=100-"}, status=206)
    assert later.body == full.body[100:]
    assert testapp.get(url, headers={"Range": "bytes=-10"}, status=206).body == full.body[-10:]
    assert downloads(dbsession, file) == 2  # later chunks do not

    # If-Range naming this file: the range; another entity, a weak tag or junk: the whole file, counted.
    assert testapp.get(url, headers={"Range": "bytes=100-", "If-Range": f'"{file.sha256}"'}, status=206)
    assert testapp.get(url, headers={"Range": "bytes=100-", "If-Range": since}, status=206)
    assert downloads(dbsession, file) == 2
    for if_range in ('"other"', f'W/"{file.sha256}"', "garbage GMT", "Mon, 99 Foo 2024 25:61:61 GMT", "\x00"):
        assert testapp.get(url, headers={"Range": "bytes=100-", "If-Range": if_range}, status=200)
    assert downloads(dbsession, file) == 7


@pytest.mark.parametrize("header", ["bytes=5-1", "bytes=4096-", "bytes=-0", "bytes=99999999999-"])
def test_unsatisfiable_ranges_are_416_and_count_nothing(testapp, dbsession, files_dir, header):
    file = stored_file(dbsession, files_dir, size=4096)
    res = testapp.get(f"/files/{file.filename}", headers={"Range": header}, status=416)
    assert res.headers["Content-Range"] == "bytes */4096"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert downloads(dbsession, file) == 0


@pytest.mark.parametrize("header", ["bytes=-", "bytes=--1", "bytes=abc", "bytes=\xb2-", "bytes= 1 - x", "bytes=1-2-3"])
@pytest.mark.parametrize("path", ["/files/{}", "/static/site.css"])
def test_malformed_ranges_are_416_everywhere_and_count_nothing(testapp, dbsession, files_dir, header, path):
    file = stored_file(dbsession, files_dir, size=4096)
    res = testapp.get(path.format(file.filename), headers={"Range": header}, status=416)
    assert "not a valid byte range" in res.text
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert downloads(dbsession, file) == 0


@pytest.mark.parametrize("header", ["items=0-1", "bytes=0-1,5-6"])
@pytest.mark.parametrize("path", ["/files/{}", "/static/site.css"])
def test_ranges_we_do_not_serve_are_ignored(testapp, dbsession, files_dir, header, path):
    file = stored_file(dbsession, files_dir, size=100)
    full = testapp.get(path.format(file.filename))
    assert testapp.get(path.format(file.filename), headers={"Range": header}, status=200).body == full.body


@pytest.mark.parametrize(
    "headers",
    [
        {"If-Modified-Since": "Thu, 01 Jan 99999 00:00:00 GMT"},
        {"If-Modified-Since": "garbage GMT"},
        {"If-Unmodified-Since": "Thu, 01 Jan 99999 00:00:00 GMT"},
        {"Range": "bytes=0-1", "If-Range": "Thu, 01 Jan 99999 00:00:00 GMT"},
        {"Range": "bytes=0-1", "If-Range": "garbage GMT"},
    ],
)
@pytest.mark.parametrize("path", ["/files/{}", "/static/site.css"])
def test_dates_that_are_not_dates_are_ignored(testapp, dbsession, files_dir, headers, path):
    file = stored_file(dbsession, files_dir, size=100)
    res = testapp.get(path.format(file.filename), headers=headers, status=200)
    assert len(res.body) > 2


def test_range_parser():
    def span(header: str, size: int = 10) -> tuple[int, int] | None:
        wanted = parse_range(header)
        assert wanted is not None
        return wanted.span(size)

    assert span("bytes=0-0") == (0, 1)
    assert span("bytes=5-") == (5, 10)
    assert span("bytes=5-1000") == (5, 10)
    assert span("bytes=-3") == (7, 10)
    assert span("bytes=-30") == (0, 10)
    assert span("BYTES=1-2") == (1, 3)
    assert parse_range("bytes=3-") == ByteRange(3, None, None)
    for unsatisfiable in ("bytes=10-", "bytes=3-2", "bytes=-0"):
        assert span(unsatisfiable) is None, unsatisfiable
    assert span("bytes=0-", 0) is None
    for malformed in ("bytes=-", "bytes=--1", "bytes=a-", "bytes=9" * 30 + "-", "bytes=\u0663-"):
        with pytest.raises(ValueError):
            parse_range(malformed)
    for ignored in ("items=0-1", "bytes=0-1,3-4", "0-1", ""):
        assert parse_range(ignored) is None


def test_a_download_is_served_when_the_count_cannot_be_written(testapp, dbsession, files_dir, caplog):
    """A trigger that refuses every change to the counter stands in for a
    database that refuses writes (the live test uses a real read-only one)."""
    file = stored_file(dbsession, files_dir, size=64)
    refuse(dbsession, "release_files", "UPDATE")
    with caplog.at_level(logging.ERROR, logger="myapp"):
        res = testapp.get(f"/files/{file.filename}", status=200)
    assert len(res.body) == 64
    assert downloads(dbsession, file) == 0
    assert any("could not record a download of" in r.getMessage() for r in caplog.records)


# -- 4. Logs -------------------------------------------------------------------------


def test_log_records_are_one_line_whatever_the_client_sent():
    formatter = SafeFormatter("%(levelname)s [%(name)s] %(message)s")
    record = logging.LogRecord(
        "myapp", logging.WARNING, __file__, 1, "on %s", ("/a\r\nERROR [x] forged\x1b\u2028",), None
    )
    assert formatter.format(record) == "WARNING [myapp] on /a\\x0d\\x0aERROR [x] forged\\x1b\\u2028"
    try:
        raise ValueError("bad\nERROR [y] forged")
    except ValueError as exc:
        record = logging.LogRecord("myapp", logging.ERROR, __file__, 1, "boom", (), (ValueError, exc, None))
    lines = formatter.format(record).split("\n")
    assert lines[0] == "ERROR [myapp] boom"
    assert all(line.startswith("    ") for line in lines[1:]) and "    ERROR [y] forged" in lines


# -- 7. Headers ----------------------------------------------------------------------


def test_no_csp_exemption_without_the_debug_toolbar(testapp):
    res = testapp.get("/_debug_toolbar/static/x.js", status=404)
    assert "default-src 'self'" in res.headers["Content-Security-Policy"]


# -- 8. Health -----------------------------------------------------------------------


def test_health_reports_a_schema_behind_or_ahead_of_the_code(testapp, dbsession):
    head = next(iter(head_revisions()))
    behind = max(known_revisions() - head_revisions())
    dbsession.execute(text("UPDATE alembic_version SET version_num = :rev"), {"rev": behind})
    res = testapp.get("/health", status=503)
    assert res.json["status"] == "error"
    assert res.json["schema"] == f"behind the code (revision {behind}, code needs {head}); run: myapp-initdb CONFIG"
    dbsession.execute(text("UPDATE alembic_version SET version_num = 'ffff0009'"))
    res = testapp.get("/health", status=503)
    assert res.json["schema"] == (
        f"ahead of the code (revision ffff0009, code needs {head}); deploy the code that migrated it"
    )


def test_health_reports_a_missing_or_read_only_files_folder(settings, dbsession, tmp_path):
    def health(folder: Path) -> dict:
        app = configure({**settings, "myapp.files_dir": str(folder)}).make_wsgi_app()
        return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"}).get("/health", status="*").json

    assert health(tmp_path / "gone")["files"] == "missing"
    assert health(tmp_path)["files"] == "ok"


def test_health_write_check(settings, dbsession):
    app = configure({**settings, "myapp.health_write_check": "true"}).make_wsgi_app()
    res = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"}).get("/health")
    body = res.json
    assert body.pop("files_free_bytes") > 0
    assert body == {"status": "ok", "database": "ok", "schema": "ok", "write": "ok", "files": "ok"}
    assert {dbsession.scalar(text("SELECT version_num FROM alembic_version"))} == head_revisions()  # rolled back


def test_a_lost_stored_file_is_503_and_logged_not_404(testapp, dbsession, files_dir, caplog):
    file = stored_file(dbsession, files_dir)
    (files_dir / file.storage_path).unlink()
    with caplog.at_level(logging.ERROR, logger="myapp"):
        res = testapp.get(f"/files/{file.filename}", status=503)
    assert "temporarily unavailable" in res.text
    assert any(f"stored file missing: {file.filename}" in r.getMessage() for r in caplog.records)
    assert downloads(dbsession, file) == 0

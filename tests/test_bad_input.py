"""Odd URLs, huge query strings, wrong methods and bad bytes: always a 4xx
page or a normal page, never a 500 - on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import webtest
from sqlalchemy import func, select

from myapp.packaging.models import Package, ReleaseFile
from tests.factories import make_package

ODD_PATHS = [
    "/project/",
    "/project//",
    "/project/a/b/c/d/",
    "/project/%00/",
    "/project/x%00y/",
    "/project/tool/%00/",
    "/project/tool/1.0%00/",
    "/project/" + "a" * 5000 + "/",
    "/project/tool/" + "9" * 5000 + "/",
    "/project/..%2F..%2Fetc%2Fpasswd/",
    "/project/%2e%2e/",
    "/project/tool/../../",
    "/project/<script>/",
    "/project/' OR '1'='1/",
    "/project/%E2%98%83/",
    "/files/%00",
    "/files/..%2F..%2Fsecret",
    "/files/" + "x" * 3000,
    "/static/../setup.py",
    "/static/%2e%2e/%2e%2e/setup.py",
    "/projects/?page=1e9",
    "/projects/?page=%00",
    "/projects/?page=" + "9" * 400,
    "/projects/?sort[]=name",
    "/search?q=%00%00",
    "/search?q=" + "%F0%9F%98%80" * 300,
    "/search?page=2&q=",
    "/search?q=a&page=-5",
    "/search?q=x&q=y",
]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_odd_urls_never_500(testapp, dbsession, path):
    make_package(dbsession, "tool")
    res = testapp.get(path, status="*", expect_errors=True)
    assert res.status_int < 500, (path, res.status)
    if res.status_int >= 400:
        assert res.content_type == "text/html"
        assert res.status_int in (400, 404, 405)


@pytest.mark.parametrize(
    "path",
    [b"/project/\xff\xfe/", b"/search?q=\xff", b"/projects/?page=\xc3\x28", b"/\xff", b"/search?\xff=1"],
)
def test_non_utf8_bytes_are_400(testapp, path):
    # WSGI carries raw bytes as latin-1 text; this is what a client sending them produces.
    raw = path.decode("latin-1")
    pth, _, query = raw.partition("?")
    req = webtest.TestRequest.blank("/", environ={"HTTP_HOST": "localhost"})
    req.environ.update(PATH_INFO=pth, QUERY_STRING=query)
    res = testapp.do_request(req, status="*", expect_errors=True)
    assert res.status_int in (200, 400), (path, res.status)
    if res.status_int == 400:
        assert "not valid UTF-8" in res.text


def test_long_search_is_rejected_cleanly(testapp):
    res = testapp.get("/search", params={"q": "x" * 5000}, status=400)
    assert "limited to 200 characters" in res.text


def test_absurd_urls_are_414_before_any_view(testapp):
    res = testapp.get("/search", params={"q": "x" * 100_000}, status=414)
    assert "limited to 8192 bytes" in res.text
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert testapp.get("/project/" + "a" * 9000 + "/", status=414)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/projects/", "/project/tool/", "/search?q=a", "/files/tool-1.0-0.tar.gz"])
def test_wrong_methods_are_405_and_write_nothing(testapp, dbsession, method, path):
    make_package(dbsession, "tool")
    res = testapp.request(path, method=method, status="*", expect_errors=True)
    assert res.status_int == 405, (method, path, res.status)
    dbsession.expire_all()
    assert dbsession.scalar(select(func.sum(ReleaseFile.downloads))) == 0


def test_head_works_like_get(testapp, dbsession):
    make_package(dbsession, "tool")
    res = testapp.head("/project/tool/")
    assert res.status_int == 200 and res.body == b""


def test_failed_download_leaves_the_count_alone(testapp, dbsession):
    """A file with no bytes stored and no URL is a 404, and the 404 aborts the increment."""
    make_package(dbsession, "tool")
    testapp.get("/files/tool-1.0-0.tar.gz", status=404)
    dbsession.expire_all()
    assert dbsession.scalar(select(ReleaseFile.downloads)) == 0
    assert dbsession.scalar(select(func.count()).select_from(Package)) == 1

"""Everything an upstream sends is hostile: pages with bad names, foreign or
``javascript:``/``file:`` URLs, oversized or endless bodies, gzip bombs,
redirects to link-local and private addresses. Each is refused with a clear
answer (a 502 naming the upstream for a project never fetched), never a 500,
and nothing refused reaches a page."""

from __future__ import annotations

import gzip
import json
import time
from datetime import timedelta
from typing import Any

import pytest
import webtest

from myapp.config import configure
from myapp.security import SettingsError
from myapp.upstream.client import Refused, UpstreamClient, UpstreamError, is_public
from myapp.upstream.parse import PageError, parse_page
from myapp.upstream.policy import ProjectPolicy, next_change, visible
from myapp.upstream.settings import UpstreamSettings, parse_duration, read_settings
from tests.upstream_helpers import JSON, Hostile

SHA = "0" * 64
HOSTS = frozenset({"files.example"})
PAGE = "https://index.example/simple/evil/"


def entry(filename: str, url: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "filename": filename,
        "url": url or f"https://files.example/x/{filename}",
        "hashes": {"sha256": SHA},
        **more,
    }


def parse_json(files: list[dict[str, Any]], name: str = "evil") -> Any:
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()
    return parse_page(body, JSON, PAGE, "evil", HOSTS)


def test_only_valid_files_of_the_project_pass():
    page = parse_json(
        [
            entry("evil-1.0-py3-none-any.whl", size=10, **{"upload-time": "2024-01-01T00:00:00.000000Z"}),
            entry("evil-1.1.tar.gz", "javascript:alert(1)"),
            entry("evil-1.2.tar.gz", "file:///etc/passwd"),
            entry("evil-1.3.tar.gz", "https://169.254.169.254/evil-1.3.tar.gz"),
            entry("requests-99.0-py3-none-any.whl"),  # another project's file on this page
            entry("evil-1.4.exe"),
            entry("evil-not a version.tar.gz"),
            {
                "filename": "evil-1.5.tar.gz",
                "url": "https://files.example/evil-1.5.tar.gz",
                "hashes": {"md5": "0" * 32},
            },
            entry("evil-1.6.tar.gz", size=-1),
            entry("evil-1.7.tar.gz", **{"requires-python": ">=3.8<<"}),
            entry("evil-1.8.tar.gz", "https://files.example/other-name.tar.gz"),
            entry("evil-1.9.tar.gz", **{"upload-time": "yesterday"}),
            "not an object",
        ]
    )
    assert [f.filename for f in page.files] == ["evil-1.0-py3-none-any.whl"]
    assert page.rejected == 11
    assert page.files[0].size == 10 and page.files[0].upload_time is not None


def test_a_page_for_another_project_or_api_is_refused():
    with pytest.raises(PageError):
        parse_json([], name="requests")
    with pytest.raises(PageError):
        parse_page(b'{"meta": {"api-version": "2.0"}, "name": "evil", "files": []}', JSON, PAGE, "evil", HOSTS)
    with pytest.raises(PageError):
        parse_page(b"<not json", JSON, PAGE, "evil", HOSTS)
    with pytest.raises(PageError):
        parse_page(b"%PDF", "application/pdf", PAGE, "evil", HOSTS)


def test_html_pages_give_hashes_from_fragments_and_data_attributes():
    html = f"""<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.0"></head><body>
    <a href="https://files.example/evil-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8"
       data-core-metadata="sha256={"1" * 64}">evil-1.0-py3-none-any.whl</a>
    <a href="https://files.example/evil-1.1.tar.gz#sha256={SHA}" data-yanked="bad build">evil-1.1.tar.gz</a>
    <a href="https://files.example/evil-1.2.tar.gz#md5={"0" * 32}">evil-1.2.tar.gz</a>
    <a href="javascript:alert(1)#sha256={SHA}">evil-1.3.tar.gz</a>
    </body></html>""".encode()
    page = parse_page(html, "text/html", PAGE, "evil", HOSTS)
    files = {f.filename: f for f in page.files}
    assert set(files) == {"evil-1.0-py3-none-any.whl", "evil-1.1.tar.gz"}
    wheel = files["evil-1.0-py3-none-any.whl"]
    assert wheel.requires_python == ">=3.8" and wheel.core_metadata_sha256 == "1" * 64 and wheel.upload_time is None
    assert files["evil-1.1.tar.gz"].yanked and files["evil-1.1.tar.gz"].yanked_reason == "bad build"


def test_settings_are_checked():
    assert read_settings({}, {}) is None
    assert parse_duration("7d", "x") == timedelta(days=7)
    assert parse_duration("12h", "x") == timedelta(hours=12)
    assert parse_duration("0", "x") == timedelta(0)
    for bad in ({"myapp.upstream": "ftp://x/simple/"}, {"myapp.upstream": "https://u:p@x/simple/"}):
        with pytest.raises(SettingsError):
            read_settings(bad, {})
    with pytest.raises(SettingsError):
        read_settings({"myapp.upstream": "https://x/simple/", "myapp.upstream_min_age": "a week"}, {})
    env = {
        "MYAPP_UPSTREAM": "https://env.example/simple",
        "MYAPP_UPSTREAM_USERNAME": "u",
        "MYAPP_UPSTREAM_PASSWORD": "p",
    }
    got = read_settings({"myapp.upstream": "https://ini.example/simple/"}, env)
    assert got is not None and got.url == "https://env.example/simple/" and got.username == "u"


def test_private_addresses_are_not_public():
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "169.254.169.254",
        "192.168.0.1",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ):
        assert not is_public(address), address
    assert is_public("93.184.216.34")


def test_the_client_refuses_what_it_must(tmp_path):
    settings = UpstreamSettings(url="http://127.0.0.1:9/simple/", host="127.0.0.1", timeout=1)
    client = UpstreamClient(settings)
    with pytest.raises(Refused):
        client.check_url("file:///etc/passwd", "page")
    with pytest.raises(Refused):
        client.check_url("https://elsewhere.example/x.whl", "file")  # not an allowed file host
    with pytest.raises(Refused):
        client.resolve("localhost", 80)  # another name for a loopback address: not the upstream's host
    assert client.resolve("127.0.0.1", 80) == "127.0.0.1"  # the upstream's own host is allowed
    with pytest.raises(UpstreamError):
        client.get("http://127.0.0.1:9/simple/x/")  # nothing listens: an error, not a crash


def test_cooldown_decision():
    from datetime import UTC, datetime

    from myapp.upstream.models import UpstreamFile

    now = datetime(2026, 1, 10, tzinfo=UTC)
    young = UpstreamFile(version="2.0", upload_time=now - timedelta(days=1), first_seen_at=now - timedelta(days=30))
    unknown = UpstreamFile(version="1.0", upload_time=None, first_seen_at=now - timedelta(days=8))
    policy = ProjectPolicy(min_age=timedelta(days=7))
    shown, reason = visible(young, policy, now)
    assert not shown and "minimum release age" in reason and "2026-01-16" in reason
    assert visible(unknown, policy, now) == (True, "")  # no upload time: the age counts from first seen
    assert visible(young, ProjectPolicy(min_age=timedelta(days=7), released=frozenset({"2.0"})), now)[0]
    assert visible(young, ProjectPolicy(min_age=timedelta(days=7), exempt=True), now)[0]
    frozen = ProjectPolicy(freeze=now - timedelta(days=3), exempt=True)
    assert not visible(young, frozen, now)[0] and visible(unknown, frozen, now)[0]
    unknown.removed_at = now
    assert visible(unknown, ProjectPolicy(), now) == (False, "This file was removed from the upstream index.")


def test_when_the_cooldown_next_lets_a_file_out():
    """What a kept proxied page's expiry is: the soonest a hidden file's age is reached."""
    from datetime import UTC, datetime

    from myapp.upstream.models import UpstreamFile

    now = datetime(2026, 1, 10, tzinfo=UTC)
    week = timedelta(days=7)
    files = [
        UpstreamFile(version="1.0", upload_time=now - timedelta(days=30), first_seen_at=now),  # out long ago
        UpstreamFile(version="2.0", upload_time=now - timedelta(days=5), first_seen_at=now),  # out in 2 days
        UpstreamFile(version="3.0", upload_time=now - timedelta(days=1), first_seen_at=now),  # out in 6 days
    ]
    assert next_change(files, ProjectPolicy(min_age=week), now) == now + timedelta(days=2)
    assert next_change(files, ProjectPolicy(min_age=week, released=frozenset({"2.0"})), now) == now + timedelta(days=6)
    assert next_change(files, ProjectPolicy(min_age=week, exempt=True), now) is None
    assert next_change(files, ProjectPolicy(), now) is None  # no cooldown: nothing waits
    frozen = ProjectPolicy(min_age=week, freeze=now - timedelta(days=6))  # 2.0 and 3.0 are never served
    assert next_change(files, frozen, now) is None
    files[1].removed_at = now
    assert next_change(files, ProjectPolicy(min_age=week), now) == now + timedelta(days=6)


# -- through the proxy, against a hostile server --------------------------------------------


@pytest.fixture
def hostile():
    with Hostile() as server:
        yield server


@pytest.fixture
def proxy(settings: dict[str, Any], dbsession: Any, hostile: Hostile) -> webtest.TestApp:
    app = configure(
        {
            **settings,
            "myapp.upstream": f"{hostile.base}/simple/",
            "myapp.upstream_timeout": "1",
            "myapp.upstream_max_page_bytes": "100000",
        }
    ).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


def json_page(files: list[dict[str, Any]], name: str = "evil") -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode()
    return 200, {"Content-Type": JSON}, body


def bad_gateway(proxy: webtest.TestApp, name: str, hostile: Hostile) -> webtest.TestResponse:
    res = proxy.get(f"/simple/{name}/", status=502)
    assert "127.0.0.1" in res.text and int(res.headers["Retry-After"]) > 0
    return res


def test_hostile_entries_never_reach_our_page(proxy, hostile):
    good = f"{hostile.base}/files/evil-1.0-py3-none-any.whl"
    hostile.routes["/simple/evil/"] = lambda: json_page(
        [
            entry("evil-1.0-py3-none-any.whl", good),
            entry("evil-1.1.tar.gz", "javascript:alert(1)"),
            entry("evil-1.2.tar.gz", "file:///etc/passwd"),
            entry("evil-1.3.tar.gz", "http://169.254.169.254/evil-1.3.tar.gz"),
            entry("other-2.0.tar.gz", f"{hostile.base}/files/other-2.0.tar.gz"),
            entry("../../evil-1.4.tar.gz", f"{hostile.base}/files/..%2F..%2Fevil-1.4.tar.gz"),
        ]
    )
    doc = proxy.get("/simple/evil/", headers={"Accept": JSON}).json
    assert [f["filename"] for f in doc["files"]] == ["evil-1.0-py3-none-any.whl"]
    assert doc["files"][0]["url"].startswith("/packages/00/00/")


@pytest.mark.parametrize(
    "route",
    [
        lambda: (200, {"Content-Type": JSON}, b"x" * 200_000),  # larger than the page cap
        lambda: (200, {"Content-Type": JSON, "Content-Length": "999999999"}, b""),  # says so up front
        lambda: (200, {"Content-Type": JSON, "Content-Encoding": "gzip"}, gzip.compress(b" " * 50_000_000)),  # a bomb
        lambda: (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),  # cloud metadata
        lambda: (302, {"Location": "http://localhost:1/simple/evil/"}, b""),  # loopback under another name
        lambda: (302, {"Location": "file:///etc/passwd"}, b""),
        lambda: (302, {"Location": "/simple/evil/"}, b""),  # a loop
        lambda: (200, {"Content-Type": "application/octet-stream"}, b"\x00\x01"),
        lambda: (200, {"Content-Type": JSON}, b'{"meta": {"api-version": "1.0"}, "name": "requests", "files": []}'),
        lambda: (500, {}, b"oops"),
        lambda: time.sleep(2.5) or (200, {"Content-Type": JSON}, b"{}"),  # slower than the timeout
    ],
    ids=[
        "large",
        "declared-large",
        "gzip-bomb",
        "link-local",
        "loopback-name",
        "file",
        "loop",
        "binary",
        "other",
        "500",
        "slow",
    ],
)
def test_hostile_answers_are_a_502_for_a_project_never_fetched(proxy, hostile, route):
    hostile.routes["/simple/evil/"] = route
    bad_gateway(proxy, "evil", hostile)
    assert all(not hit.startswith("/latest") for hit in hostile.hits)


def test_an_opted_in_hosted_project_serves_its_own_files_when_the_upstream_is_down(settings, dbsession):
    from myapp.upstream.models import UpstreamPolicy
    from tests.conftest import free_port
    from tests.factories import make_package

    package = make_package(dbsession, "ours-when-down", versions=["1.0"])
    package.releases[0].files[0].storage_path = "x/ours"
    dbsession.add(UpstreamPolicy(name=package.name, also_serve_upstream=True, cooldown_exempt=False))
    dbsession.flush()
    down = f"http://127.0.0.1:{free_port()}/simple/"  # nothing listens there
    app = configure({**settings, "myapp.upstream": down, "myapp.upstream_timeout": "1"}).make_wsgi_app()
    res = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"}).get(
        f"/simple/{package.name}/", headers={"Accept": JSON}
    )
    assert [f["filename"] for f in res.json["files"]] == [package.releases[0].files[0].filename]
    assert "tracks" not in res.json["meta"]


def test_metadata_that_does_not_match_its_hash_is_refused(proxy, hostile):
    import hashlib

    wheel = "evil-1.0-py3-none-any.whl"
    promised = hashlib.sha256(b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n").hexdigest()
    hostile.routes["/simple/evil/"] = lambda: json_page(
        [entry(wheel, f"{hostile.base}/files/{wheel}", **{"core-metadata": {"sha256": promised}})]
    )
    hostile.routes[f"/files/{wheel}.metadata"] = lambda: (200, {}, b"Requires-Dist: something-else\n")
    doc = proxy.get("/simple/evil/", headers={"Accept": JSON}).json
    url = doc["files"][0]["url"] + ".metadata"
    res = proxy.get(url, status=502)
    assert "does not match its hash" in res.text
    assert proxy.get(url, status=502)  # not kept: asked again, refused again
    assert hostile.hits.count(f"/files/{wheel}.metadata") == 2

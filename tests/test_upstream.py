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

from myapp.config import configure
from myapp.packaging.models import Package
from myapp.upstream.fetch import PROXY_KEY, Proxy
from myapp.upstream.models import UpstreamFile, UpstreamProject
from tests.conftest import LiveServer, live_server
from tests.factories import make_package
from tests.upstream_helpers import HTML, JSON, ago, publish, requests_for, wheel_name


@pytest.fixture(scope="module")
def upstream(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(backend, tmp_path_factory.mktemp("upstream")) as server:
        yield server


def proxy_app(settings: dict[str, Any], upstream: LiveServer, **more: str) -> webtest.TestApp:
    app = configure({**settings, "myapp.upstream": f"{upstream.base}/simple/", **more}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


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
    # Our second and third answers were hits: the upstream saw only our first (and the test's own read).
    assert requests_for(upstream, f"/simple/{name}/") == 2
    assert proxy_of(proxy).stats.as_dict()["hit"] == 2

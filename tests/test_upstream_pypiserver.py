"""pypiserver as the upstream: PEP 503 HTML only, no ``upload-time``, no
sizes. The proxy still answers in both of our formats; ages count from when
the proxy first saw each file (the README says so), so a cooldown hides
everything new to it."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upstream_helpers import HTML, JSON, make_wheel, proxy_app
from tests.upstream_helpers import pypiserver as pypiserver_at


def make_sdist(folder: Path, name: str, version: str) -> Path:
    path = folder / f"{name}-{version}.tar.gz"
    info = folder / "PKG-INFO"
    info.write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(info, arcname=f"{name}-{version}/PKG-INFO")
    info.unlink()
    return path


@pytest.fixture(scope="module")
def pypiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """pypiserver on 127.0.0.1 serving a folder; (its simple URL, {filename: sha256})."""
    folder = tmp_path_factory.mktemp("pypiserver")
    files = [make_wheel(folder, "html-only", "1.0"), make_wheel(folder, "html-only", "2.0")]
    files.append(make_sdist(folder, "html_only", "2.0"))
    with pypiserver_at(folder) as url:
        yield url, {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_an_html_only_upstream_in_both_of_our_formats(settings, dbsession, pypiserver):
    url, hashes = pypiserver
    app = proxy_app(settings, url)
    doc = app.get("/simple/html-only/", headers={"Accept": JSON}).json
    assert doc["versions"] == ["1.0", "2.0"]
    files = {f["filename"]: f for f in doc["files"]}
    assert {name: f["hashes"]["sha256"] for name, f in files.items()} == hashes
    for f in files.values():
        assert "size" not in f  # the upstream gave none; we do not make one up
        assert f["upload-time"]  # when we first saw it (the upstream gave none)
        assert f["url"].startswith("/packages/")
    html = app.get("/simple/html-only/", headers={"Accept": HTML}).text
    for name, sha in hashes.items():
        assert f"#sha256={sha}" in html and name in html
    assert app.get("/simple/HTML_Only/", status=301)
    assert app.get("/simple/not-there/", status=404)


def test_a_cooldown_counts_from_first_seen_without_upload_times(settings, dbsession, pypiserver):
    url, _ = pypiserver
    app = proxy_app(settings, url, **{"myapp.upstream_min_age": "1d"})
    assert app.get("/simple/html-only/", headers={"Accept": JSON}).json["files"] == []
    assert "3 newer files are not shown yet" in app.get("/project/html-only/").text

"""pypiserver as the upstream: PEP 503 HTML only, no ``upload-time``, no
sizes. The proxy still answers in both of our formats; ages count from when
the proxy first saw each file (the README says so), so a cooldown hides
everything new to it."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, free_port
from tests.upstream_helpers import HTML, JSON, make_wheel, proxy_app

HASHES = ("--hash-algo", "sha256")


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
    port = free_port()
    log = (folder.parent / "pypiserver.log").open("wb")
    process = subprocess.Popen(
        # --disable-fallback: an unknown name is a 404, never a redirect to a public index.
        [
            str(BIN / "pypi-server"),
            "run",
            "-p",
            str(port),
            "-i",
            "127.0.0.1",
            "--disable-fallback",
            *HASHES,
            str(folder),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("pypiserver did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/simple/", {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


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

"""Faults of the machine, on SQLite and PostgreSQL: temporary files a killed
upload left are swept (at start-up and by the job queue), a full disk is a
507 that writes nothing, /simple/ is sent whole when its saved copy cannot be
written, and /health fails under a floor of free space.

The full disk is real: a 1 MiB tmpfs mounted for the test (the suite runs as
root here and in CI; where mounting is not permitted the test skips). A
real filesystem that runs out finds every write that was missed, including
the flush at close that a mocked ``write`` would not.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import webtest

from myapp.config import configure
from myapp.data.jobs import Worker
from myapp.packaging import services
from myapp.packaging.demo import _wheel
from myapp.packaging.storage import INCOMING, STALE_SECONDS
from tests.accounts import PASSWORD
from tests.factories import make_package
from tests.test_upload import WHEEL, stored_files, upload, uploader  # noqa: F401 (a fixture)


def app_on(settings: dict, folder: Path, **extra: str) -> webtest.TestApp:
    app = configure({**settings, "myapp.files_dir": str(folder), **extra}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


@contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem of its own."""
    with tmpfs(tmp_path / "tiny", "size=1m") as folder:
        yield folder


@pytest.fixture
def four_inodes(tmp_path: Path) -> Iterator[Path]:
    """Room for the root, ``.incoming`` and an upload's two temporary files
    (the wheel, its METADATA): full when the commit makes the folders to put them in."""
    with tmpfs(tmp_path / "inodes", "size=1m,nr_inodes=4") as folder:
        (folder / INCOMING).mkdir()
        yield folder


def fill(folder: Path) -> None:
    """Write until the filesystem is full."""
    with (folder / "filler").open("wb", buffering=0) as out:  # unbuffered: closing has nothing left to write
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass


def aged(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half an upload")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


# -- temporary files -------------------------------------------------------------------


def test_stale_temporary_uploads_are_swept_at_start_up_and_by_the_periodic_job(settings, dbsession, tmp_path):
    incoming = tmp_path / INCOMING
    dead = aged(incoming / "upload-dead", STALE_SECONDS + 60)
    in_flight = aged(incoming / "upload-in-flight", 60)
    other = aged(incoming / "not-ours", STALE_SECONDS + 60)
    app = app_on(settings, tmp_path).app
    assert not dead.exists() and in_flight.exists() and other.exists()  # swept at start-up

    dead_later = aged(incoming / "upload-dead-later", STALE_SECONDS + 60)
    outcomes = Worker(app.registry).drain()
    assert sum(outcomes.values()) >= 1
    assert not dead_later.exists() and in_flight.exists()  # the periodic job, due at once


# -- a full disk -------------------------------------------------------------------------


def test_a_full_disk_is_507_and_leaves_nothing(settings, dbsession, uploader, tiny_disk, caplog):  # noqa: F811
    testapp = app_on(settings, tiny_disk)
    (tiny_disk / INCOMING).mkdir()
    fill(tiny_disk)  # the temporary file is made; writing to it fails
    with caplog.at_level(logging.ERROR, logger="myapp"):
        res = upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    assert res.status_int == 507, res.status
    assert "has no room for this file now" in res.status and "tell its operator" in res.text
    assert not any((tiny_disk / INCOMING).iterdir())
    assert stored_files(tiny_disk) == {"filler"}  # nothing half-written beside it
    assert services.find_package(dbsession, "tiny-thing") is None
    assert any("the files folder is full" in r.getMessage() for r in caplog.records)
    # The same upload fits once there is room: the refusal was only the disk's.
    (tiny_disk / "filler").unlink()
    assert upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x")).status_int == 200


def test_a_disk_full_at_the_commit_is_507_and_leaves_nothing(settings, dbsession, uploader, four_inodes):  # noqa: F811
    testapp = app_on(settings, four_inodes)
    res = upload(testapp, "uploader", PASSWORD, WHEEL, _wheel("Tiny-Thing", "1.0", "x"))
    assert res.status_int == 507 and "has no room for this file now" in res.text
    assert [p.name for p in four_inodes.rglob("*")] == [INCOMING]
    assert services.find_package(dbsession, "tiny-thing") is None


def test_simple_is_sent_whole_when_its_copy_cannot_be_saved(settings, dbsession, tiny_disk, caplog):
    for i in range(300):
        make_package(dbsession, f"Project-{i:03d}", versions=[])
    testapp = app_on(settings, tiny_disk)
    fill(tiny_disk)
    with caplog.at_level(logging.WARNING, logger="myapp"):
        html = testapp.get("/simple/", status=200)
        json = testapp.get("/simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, status=200)
    assert html.text.count("<a href=") == 300 and html.text.endswith("</body></html>\n")
    assert len(json.json["projects"]) == 300
    assert sum("cannot save a copy of /simple/" in r.getMessage() for r in caplog.records) == 2
    assert [p.name for p in (tiny_disk / ".cache").iterdir()] == []  # no partial copy left


def test_simple_is_sent_whole_when_its_cache_folder_cannot_be_made(settings, dbsession, tmp_path, caplog):
    """Without a full disk (no mount needed): a file where the folder should be."""
    make_package(dbsession, "Gizmo", versions=[])
    (tmp_path / ".cache").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="myapp"):
        res = app_on(settings, tmp_path).get("/simple/", status=200)
    assert '<a href="/simple/gizmo/">Gizmo</a>' in res.text and res.text.endswith("</body></html>\n")
    assert any("cannot save a copy of /simple/" in r.getMessage() for r in caplog.records)


# -- /health ------------------------------------------------------------------------------


def test_health_reports_free_space_and_fails_under_the_floor(settings, dbsession, tmp_path):
    res = app_on(settings, tmp_path).get("/health", status=200)
    assert res.json["files"] == "ok" and res.json["files_free_bytes"] > 0
    floor = res.json["files_free_bytes"] * 2
    res = app_on(settings, tmp_path, **{"myapp.min_free_bytes": str(floor)}).get("/health", status=503)
    assert res.json["status"] == "error"
    assert res.json["files"].startswith("low on space: ") and f"myapp.min_free_bytes ({floor})" in res.json["files"]


def test_health_fails_on_a_full_disk_with_the_default_floor(settings, dbsession, tiny_disk):
    """The default floor is room for one more upload of the largest size (100 MiB)."""
    res = app_on(settings, tiny_disk).get("/health", status=503)
    assert res.json["files"].startswith("low on space: ") and res.json["files_free_bytes"] <= 1024 * 1024
    res = app_on(settings, tiny_disk, **{"myapp.max_upload_bytes": "1000"}).get("/health", status=200)
    assert res.json["files"] == "ok"

"""Download counts added up in memory and written in batches, the download's
one statement, and handing whole files to a proxy (X-Accel-Redirect,
X-Sendfile). What counts as a download is in test_hardening.py; the writer
thread and the last write at shutdown run in a real server in test_live.py."""

from __future__ import annotations

import logging
import signal
from typing import Any

import pytest
import webtest
from pyramid.exceptions import ConfigurationError
from sqlalchemy import select

from myapp.config import configure
from myapp.data.shutdown import exit_cleanly_on_sigterm
from myapp.packaging.downloads import DownloadCounter, counter_of
from myapp.packaging.models import Package, Release, ReleaseFile
from tests.factories import refuse
from tests.test_hardening import downloads, stored_file


def make_app(settings: dict[str, Any], **extra: str) -> webtest.TestApp:
    app = configure({**settings, **extra}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


@pytest.fixture
def batched(settings, dbsession, sigterm_kept) -> tuple[webtest.TestApp, DownloadCounter]:
    """The app as a server runs it, with an interval long enough that only the test writes."""
    testapp = make_app(settings, **{"myapp.download_flush_seconds": "3600"})
    return testapp, counter_of(testapp.app.registry)


def package_downloads(dbsession, file: ReleaseFile) -> int:
    dbsession.expire_all()
    stmt = select(Package.downloads).join(Release).join(ReleaseFile).where(ReleaseFile.id == file.id)
    return dbsession.scalar(stmt)


def test_downloads_are_counted_in_memory_and_written_together(batched, dbsession, files_dir, count_queries):
    testapp, counter = batched
    tool, gadget = stored_file(dbsession, files_dir, "tool"), stored_file(dbsession, files_dir, "gadget")
    count_queries.clear()
    testapp.get(f"/files/{tool.filename}")
    # The file, its release's project and what the view needs, in one statement; no write on the request.
    assert count_queries.count == 1, count_queries.statements
    assert count_queries.statements[0].lstrip().upper().startswith("SELECT")
    testapp.get(f"/files/{tool.filename}")
    testapp.get(f"/files/{tool.filename}", headers={"Range": "bytes=0-9"}, status=206)  # a first chunk counts
    testapp.get(f"/files/{tool.filename}", headers={"Range": "bytes=10-"}, status=206)  # a later one does not
    testapp.head(f"/files/{tool.filename}")
    testapp.get(f"/files/{tool.filename}", headers={"If-None-Match": f'"{tool.sha256}"'}, status=304)
    testapp.get(f"/files/{gadget.filename}")
    testapp.get(f"/files/{gadget.filename}.metadata", status=404)  # no metadata stored: nothing counted
    assert counter.pending() == 4
    assert downloads(dbsession, tool) == downloads(dbsession, gadget) == 0  # not written yet

    count_queries.clear()
    counter.flush()
    assert len(count_queries.statements) == 2, count_queries.statements  # files, then projects, each for all
    assert all(s.lstrip().upper().startswith("UPDATE") for s in count_queries.statements)
    assert (downloads(dbsession, tool), downloads(dbsession, gadget)) == (3, 1)
    assert (package_downloads(dbsession, tool), package_downloads(dbsession, gadget)) == (3, 1)
    assert counter.pending() == 0
    counter.flush()  # nothing left: nothing written
    assert downloads(dbsession, tool) == 3


def test_a_batch_that_cannot_be_written_is_logged(batched, dbsession, files_dir, caplog):
    testapp, counter = batched
    file = stored_file(dbsession, files_dir, size=64)
    refuse(dbsession, "release_files", "UPDATE")
    for _ in range(2):
        assert len(testapp.get(f"/files/{file.filename}").body) == 64
    with caplog.at_level(logging.ERROR, logger="myapp"):
        counter.flush()
    assert downloads(dbsession, file) == 0
    assert any(f"could not record 2 downloads of {file.filename}" in r.getMessage() for r in caplog.records)
    assert counter.pending() == 0  # dropped, as a single count was: a read-only database does not fill memory


def test_a_failed_request_counts_nothing(batched, dbsession, files_dir):
    testapp, counter = batched
    file = stored_file(dbsession, files_dir)
    (files_dir / file.storage_path).unlink()
    testapp.get(f"/files/{file.filename}", status=503)
    testapp.get("/files/nothing-1.0.tar.gz", status=404)
    assert counter.pending() == 0


@pytest.mark.parametrize("accel", ["nginx", "apache"])
def test_whole_files_can_be_sent_by_the_proxy(settings, dbsession, files_dir, accel):
    testapp = make_app(settings, **{"myapp.files_accel": accel, "myapp.files_accel_prefix": "/_stored/"})
    file = stored_file(dbsession, files_dir, size=100)
    res = testapp.get(f"/files/{file.filename}")
    assert res.body == b""
    assert res.headers["Content-Length"] == "0"
    assert res.headers["ETag"] == f'"{file.sha256}"'
    assert res.headers["Content-Type"] == "application/gzip"
    if accel == "nginx":
        assert res.headers["X-Accel-Redirect"] == f"/_stored/{file.storage_path}"
    else:
        assert res.headers["X-Sendfile"] == str((files_dir / file.storage_path).resolve())
    assert downloads(dbsession, file) == 1
    # A range and a 304 are still answered here.
    ranged = testapp.get(f"/files/{file.filename}", headers={"Range": "bytes=0-9"}, status=206)
    assert len(ranged.body) == 10 and "X-Accel-Redirect" not in ranged.headers and "X-Sendfile" not in ranged.headers
    assert testapp.get(f"/files/{file.filename}", headers={"If-None-Match": f'"{file.sha256}"'}, status=304)
    assert downloads(dbsession, file) == 2


def test_files_accel_must_be_known(settings, dbsession):
    with pytest.raises(ConfigurationError, match=r"myapp\.files_accel must be nginx, apache or empty"):
        make_app(settings, **{"myapp.files_accel": "lighttpd"})


def test_sigterm_handler_is_only_set_when_nobody_has_one(sigterm_kept):
    def theirs(signum, frame):  # a server's own handler (gunicorn)
        pass

    signal.signal(signal.SIGTERM, theirs)
    assert exit_cleanly_on_sigterm() is False
    assert signal.getsignal(signal.SIGTERM) is theirs
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert exit_cleanly_on_sigterm() is True
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    with pytest.raises(SystemExit):
        handler(signal.SIGTERM, None)

"""Download counts, added up in memory and written in batches.

Writing each download's count in a transaction of its own put SQLite's
write lock (or a PostgreSQL row lock) on every download. Instead a
download is added to this process's tally once its response is decided,
and the tally is written in one transaction every
``myapp.download_flush_seconds`` (default 1) by a thread of the process,
and once more when the process exits cleanly (``atexit``; ``SIGTERM`` too,
see ``myapp.data.shutdown``). A crash (``SIGKILL``, power loss) loses the
counts of at most the last interval. ``0`` writes each download's count
in the request's own thread once its response is decided, as before (tests).

What counts is decided by the view (a full GET, or the first chunk of a
ranged one: ``myapp.web.files``), and nothing is counted for a request that
failed. A tally that cannot be written (a read-only database) is logged and
dropped, as a single count was.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import TYPE_CHECKING

from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.exc import SQLAlchemyError

from myapp.data import request_failed, retry_transient
from myapp.data.shutdown import exit_cleanly_on_sigterm, on_shutdown
from myapp.packaging import services

if TYPE_CHECKING:
    from pyramid.registry import Registry

log = logging.getLogger(__name__)

SETTING = "myapp.download_flush_seconds"
DEFAULT_SECONDS = 1.0
REGISTRY_KEY = "download_counter"


class DownloadCounter:
    """This process's downloads not yet written: file id -> count (and its project's)."""

    def __init__(self, registry: Registry, seconds: float) -> None:
        self.registry = registry
        self.seconds = seconds
        self._files: Counter[int] = Counter()
        self._packages: Counter[int] = Counter()
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one write at a time, in order
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, file: services.StoredFile) -> None:
        with self._lock:
            self._files[file.id] += 1
            self._packages[file.package_id] += 1
            self._names[file.id] = file.filename
            if self.seconds > 0 and self._thread is None:
                self._start()

    def pending(self) -> int:
        with self._lock:
            return sum(self._files.values())

    def flush(self) -> None:
        """Write what has been counted so far, in one transaction."""
        with self._flush_lock:
            with self._lock:
                files, packages, names = self._files, self._packages, self._names
                self._files, self._packages, self._names = Counter(), Counter(), {}
            if not files:
                return
            factory = self.registry["dbsession_factory"]
            try:
                retry_transient(lambda db: services.count_downloads(db, dict(files), dict(packages)), factory)
            except SQLAlchemyError as exc:
                reason = type(getattr(exc, "orig", None) or exc).__name__
                for file_id, n in files.items():
                    what = "a download" if n == 1 else f"{n} downloads"
                    log.error("could not record %s of %s: %s", what, names[file_id], reason)

    def _start(self) -> None:
        """The writer thread, started by the first download (a forked server
        starts its own), stopped and flushed once more at exit."""
        self._thread = threading.Thread(target=self._run, name="myapp-download-counts", daemon=True)
        self._thread.start()
        on_shutdown(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.flush()
            except Exception:  # never let the writer die: the next interval tries again
                log.exception("writing download counts failed")

    def close(self) -> None:
        """Stop the writer and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()


def install(registry: Registry, settings: dict[str, str]) -> None:
    seconds = float(settings.get(SETTING, DEFAULT_SECONDS))
    registry[REGISTRY_KEY] = DownloadCounter(registry, seconds)
    if seconds > 0:
        exit_cleanly_on_sigterm()  # so a stopped server writes its last counts


def counter_of(registry: Registry) -> DownloadCounter:
    counter: DownloadCounter = registry[REGISTRY_KEY]
    return counter


def count_when_sent(request: Request, file: services.StoredFile) -> None:
    """Count a download of ``file`` once the response is decided, unless the request failed."""
    counter = counter_of(request.registry)

    def count(request: Request, response: Response) -> None:
        if request_failed(request, response):
            return
        counter.add(file)
        if counter.seconds <= 0:
            counter.flush()

    request.add_response_callback(count)

"""Small writes added up in memory and written together.

Writing each download's count (or a proxied file's last download time) in a
transaction of its own put SQLite's write lock, or a PostgreSQL row lock, on
every download. A ``Batch`` keeps them in this process's memory instead,
merged by key, and writes them in one transaction every ``seconds`` from a
thread of the process (started by the first ``add``), and once more when the
process exits cleanly (``atexit``; ``SIGTERM`` too, see ``shutdown``).

* A crash (``SIGKILL``, power loss) loses what was added in the last interval.
* ``seconds = 0`` writes each ``add`` at once, in the caller's thread (tests).
* A write that fails (a read-only database) is logged, a line per entry, and
  dropped: memory never fills while the database refuses.
* Entries are merged by key, so what is kept is bounded by the number of
  distinct keys (files), not by the number of downloads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from myapp.data.shutdown import exit_cleanly_on_sigterm, on_shutdown

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Batch(Generic[K, V]):
    """key -> value, merged as they arrive and written together (see above).

    ``write(session, entries)`` runs in a write transaction of its own (again if
    the failure was transient: ``retry_transient``); ``merge(old, new)`` combines
    two values of a key; ``describe(key, value)`` names an entry in the log when
    it could not be written; ``factory()`` gives the session factory at the time
    of the write (tests rebind it)."""

    def __init__(
        self,
        name: str,
        seconds: float,
        factory: Callable[[], sessionmaker[Session]],
        write: Callable[[Session, dict[K, V]], None],
        merge: Callable[[V, V], V],
        describe: Callable[[K, V], str],
    ) -> None:
        self.name = name
        self.seconds = seconds
        self._factory = factory
        self._write = write
        self._merge = merge
        self._describe = describe
        self._pending: dict[K, V] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one write at a time, in order
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if seconds > 0:
            exit_cleanly_on_sigterm()  # so a stopped server writes what it holds

    def add(self, key: K, value: V) -> None:
        with self._lock:
            old = self._pending.get(key)
            self._pending[key] = value if old is None else self._merge(old, value)
            if self.seconds > 0 and self._thread is None:
                self._start()
        if self.seconds <= 0:
            self.flush()

    def pending(self) -> dict[K, V]:
        """A copy of what is not written yet."""
        with self._lock:
            return dict(self._pending)

    def flush(self) -> None:
        """Write what has been added so far, in one transaction."""
        from myapp.data import retry_transient  # the package imports this module

        with self._flush_lock:
            with self._lock:
                entries, self._pending = self._pending, {}
            if not entries:
                return
            try:
                retry_transient(lambda db: self._write(db, entries), self._factory())
            except SQLAlchemyError as exc:
                reason = type(getattr(exc, "orig", None) or exc).__name__
                for key, value in entries.items():
                    log.error("could not record %s: %s", self._describe(key, value), reason)

    def _start(self) -> None:
        """The writer thread, started by the first entry (a forked server
        starts its own), stopped and flushed once more at exit."""
        self._thread = threading.Thread(target=self._run, name=f"myapp-{self.name}", daemon=True)
        self._thread.start()
        on_shutdown(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.flush()
            except Exception:  # never let the writer die: the next interval tries again
                log.exception("writing %s failed", self.name)

    def close(self) -> None:
        """Stop the writer and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

"""The worker: claim a due job, run it in a transaction of its own, record
how it went. ``myapp-worker`` runs one until it is told to stop; ``--drain``
and the tests run everything due and return; development runs one in a
thread of ``pserve`` (``myapp.worker_thread = true``).

Each job takes three short transactions: the claim (a row marked
``running`` by this worker), the handler's work together with "done", and,
if the handler raised, the retry or failure. No transaction stays open
while a handler talks to the outside world before its first write (mail is
sent with no lock held, even on SQLite). A worker that dies leaves its job
``running``: after ``stale_after`` any worker claims it again. So a job may
run twice (a crash between sending a mail and recording it): handlers must
tolerate that; what they write to the database happens exactly once.
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import socket
import threading
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from myapp.data import take_write_lock
from myapp.data.db_session import DbSession
from myapp.data.jobs import queue
from myapp.data.jobs.kinds import ClaimedJob, JobContext, JobKinds, PermanentJobError, job_kinds
from myapp.data.meta import utcnow

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=10)  # longer than any job should take (SMTP gives up after 10 s)
POLL_SECONDS = 1.0
DOWN_SECONDS = 10.0  # between tries while the database does not answer


class Outcome(enum.StrEnum):
    DONE = "done"
    RETRY = "retry"  # failed, will run again after a backoff
    FAILED = "failed"  # failed for good
    LOST = "lost"  # another worker took it over: nothing of this run was kept


class LostClaim(Exception):
    """The job was taken over while it ran (this worker was thought dead)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the jobs of ``registry``'s kinds, with sessions from ``factory``
    (``DbSession.factory`` unless given)."""

    def __init__(
        self,
        registry: Any,
        factory: sessionmaker[Session] | None = None,
        *,
        name: str | None = None,
        stale_after: timedelta = STALE_AFTER,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = registry
        self.kinds: JobKinds = job_kinds(registry)
        self._factory = factory
        self.name = name or worker_name()
        self.stale_after = stale_after
        self.clock = clock or utcnow
        self._periodic_scheduled = False
        # How long the first retry waits (then twice as long each time): myapp.jobs.backoff_seconds.
        settings = getattr(registry, "settings", None) or {}
        self.first_backoff = float(settings.get("myapp.jobs.backoff_seconds", queue.BACKOFF_SECONDS))

    @property
    def factory(self) -> sessionmaker[Session]:
        factory = self._factory or DbSession.factory
        if factory is None:
            raise RuntimeError("DbSession.global_init() has not been called")
        return factory

    # -- one job ----------------------------------------------------------------------

    def claim(self) -> ClaimedJob | None:
        now = self.clock()
        stale_before = now - self.stale_after
        if self._periodic_scheduled:
            with self.factory() as session:  # a read first: idle polls take no lock
                if not queue.anything_due(session, now, stale_before):
                    return None
        with self.factory() as session, session.begin():
            take_write_lock(session)
            if not self._periodic_scheduled:
                queue.schedule_periodic(session, self.kinds, now)
                self._periodic_scheduled = True
            return queue.claim(session, self.name, now, stale_before)

    def run_one(self) -> Outcome | None:
        """Claim one due job and run it; None if nothing is due."""
        claimed = self.claim()
        return None if claimed is None else self.run_claimed(claimed)

    def run_claimed(self, claimed: ClaimedJob) -> Outcome:
        """Run a job this worker claimed, and record how it went."""
        if claimed.attempts > claimed.max_attempts:  # taken over from dead workers, again and again
            return self._failed(claimed, "its worker stopped while running it, on every attempt", final=True)
        handler = self.kinds.handlers.get(claimed.kind)
        if handler is None:
            return self._failed(claimed, f"no handler for job kind {claimed.kind!r}", final=True)
        try:
            with self.factory() as session, session.begin():
                handler(JobContext(session, self.registry, claimed), claimed.payload)
                if not queue.finish(session, claimed, self.kinds, self.clock()):
                    raise LostClaim()
        except LostClaim:
            log.warning("job %s (%s) was taken over by another worker; this run is undone", claimed.id, claimed.kind)
            return Outcome.LOST
        except PermanentJobError as exc:
            return self._failed(claimed, _describe(exc), final=True)
        except Exception as exc:
            return self._failed(claimed, _describe(exc), final=False)
        log.info("job %s (%s) done", claimed.id, claimed.kind)
        return Outcome.DONE

    def _failed(self, claimed: ClaimedJob, error: str, *, final: bool) -> Outcome:
        with self.factory() as session, session.begin():
            take_write_lock(session)
            retry = queue.fail(
                session, claimed, self.kinds, error, self.clock(), final=final, first_backoff=self.first_backoff
            )
        outcome = Outcome.RETRY if retry else Outcome.FAILED
        log.warning("job %s (%s) attempt %s: %s (%s)", claimed.id, claimed.kind, claimed.attempts, outcome, error)
        return outcome

    # -- many jobs --------------------------------------------------------------------

    def drain(self, limit: int | None = None) -> Counter[Outcome]:
        """Run every job due now (and those that become due while it runs, such
        as mail a job queued); return how each run ended."""
        outcomes: Counter[Outcome] = Counter()
        while limit is None or outcomes.total() < limit:
            outcome = self.run_one()
            if outcome is None:
                break
            outcomes[outcome] += 1
        return outcomes

    def run(self, stop: threading.Event, poll: float = POLL_SECONDS) -> None:
        """Run jobs until ``stop`` is set; the job in hand is finished first."""
        log.info("worker %s started", self.name)
        while not stop.is_set():
            try:
                outcome = self.run_one()
            except SQLAlchemyError as exc:  # the database is down, say: wait, then try again
                log.warning(
                    "worker %s cannot reach the queue: %s", self.name, type(getattr(exc, "orig", None) or exc).__name__
                )
                stop.wait(DOWN_SECONDS)
                continue
            if outcome is None:
                stop.wait(poll)
        log.info("worker %s stopped", self.name)


def _describe(exc: BaseException) -> str:
    """The error's type and message, and where it was raised (for the admin page)."""
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"


def start_worker_thread(registry: Any, poll: float = POLL_SECONDS) -> threading.Event:
    """A worker in a daemon thread of this process (development); set the
    returned event to stop it. At exit it is asked to stop and given a few
    seconds to finish its job."""
    stop = threading.Event()
    thread = threading.Thread(target=Worker(registry).run, args=(stop, poll), name="myapp-worker", daemon=True)
    thread.start()

    def _stop() -> None:
        stop.set()
        thread.join(timeout=15)

    atexit.register(_stop)
    return stop

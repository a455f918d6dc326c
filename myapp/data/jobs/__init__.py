"""A job queue in the database: work that a request asks for and a worker
does after the request commits (mail now; clean-ups and upstream refreshes
next).

* ``enqueue(dbsession, kind, payload)`` inserts a row in the caller's
  transaction, a transactional outbox: if the request aborts, the job was
  never there.
* Handlers are registered by kind in ``includeme`` with
  ``config.add_job_handler(kind, handler)``; periodic ones with
  ``config.add_periodic_job(kind, handler, seconds=...)``, which keeps one
  row per kind, scheduled again when it finishes, so it runs at most once a
  period whatever the number of workers.
* ``Worker`` claims due jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  workers on several nodes share the queue; on SQLite one worker suffices and
  claims under ``BEGIN IMMEDIATE``), runs each in its own transaction, and on
  an error retries with exponential backoff (10 s, 20 s, ... up to an hour)
  until the job's ``max_attempts``, then marks it ``failed`` with the error.
* ``jobs.purge`` (periodic, hourly) deletes finished jobs older than
  ``myapp.jobs.keep_days`` (7).

Why written here rather than taken from a library: see the README ("Mail and
the job queue").
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pyramid.events import NewRequest
from pyramid.settings import asbool

from myapp.data.jobs.kinds import (
    ClaimedJob,
    JobContext,
    JobKinds,
    PermanentJobError,
    add_job_handler,
    add_periodic_job,
    job_kinds,
)
from myapp.data.jobs.models import Job, JobState
from myapp.data.jobs.queue import backoff, enqueue, purge
from myapp.data.jobs.worker import Outcome, Worker, start_worker_thread

if TYPE_CHECKING:
    from pyramid.config import Configurator

__all__ = [
    "ClaimedJob",
    "Job",
    "JobContext",
    "JobKinds",
    "JobState",
    "Outcome",
    "PermanentJobError",
    "Worker",
    "backoff",
    "enqueue",
    "job_kinds",
    "start_worker_thread",
]

PURGE_KIND = "jobs.purge"
PURGE_EVERY_SECONDS = 3600
KEEP_DAYS = 7


def purge_finished(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The periodic clean-up: finished jobs older than ``myapp.jobs.keep_days``."""
    days = float(ctx.registry.settings.get("myapp.jobs.keep_days", KEEP_DAYS))
    purge(ctx.dbsession, older_than=ctx.job.locked_at - timedelta(days=days))


class WorkerOnFirstRequest:
    """Starts the in-process worker thread when the first request arrives: a
    server that serves requests runs it; ``pshell`` or a script that loads
    the app does not (their own transactions would compete with it)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self.stop: threading.Event | None = None

    def __call__(self, event: NewRequest) -> None:
        if self.stop is None:
            with self._lock:
                if self.stop is None:
                    self.stop = start_worker_thread(self.registry)


def includeme(config: Configurator) -> None:
    config.add_directive("add_job_handler", add_job_handler)
    config.add_directive("add_periodic_job", add_periodic_job)
    job_kinds(config.registry)
    config.add_periodic_job(PURGE_KIND, purge_finished, seconds=PURGE_EVERY_SECONDS)
    if asbool(config.get_settings().get("myapp.worker_thread", False)):
        config.add_subscriber(WorkerOnFirstRequest(config.registry), NewRequest)

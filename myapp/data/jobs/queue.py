"""The queue's statements: put a job in, claim one, finish or reschedule it.

Each function works in the session it is given; the worker (``worker.py``)
decides the transactions. Times come from the caller's clock (UTC), so tests
can move it forward instead of sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from myapp.data.jobs.kinds import DEFAULT_MAX_ATTEMPTS, ClaimedJob, JobKinds
from myapp.data.jobs.models import Job, JobState
from myapp.data.meta import utcnow

BACKOFF_SECONDS = 10  # the first retry; each one after waits twice as long...
BACKOFF_CAP_SECONDS = 3600  # ...up to an hour
PERIODIC_PREFIX = "periodic:"


def enqueue(
    dbsession: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    delay: float = 0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """Queue a job in the caller's transaction: it runs only if that commits."""
    json.dumps(payload)  # not serializable: fail here, in the caller, not at commit
    job = Job(
        kind=kind,
        payload=payload,
        state=JobState.QUEUED,
        run_at=utcnow() + timedelta(seconds=delay),
        attempts=0,
        max_attempts=max_attempts,
    )
    dbsession.add(job)
    return job


def backoff(attempts: int, first: float = BACKOFF_SECONDS) -> timedelta:
    """How long to wait after the ``attempts``-th failure: 10 s, 20 s, 40 s, ... up to an hour."""
    return timedelta(seconds=min(first * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS))


def _due(now: datetime, stale_before: datetime) -> Any:
    """Queued and due, or claimed by a worker that has held it too long (it died)."""
    return or_(
        and_(Job.state == JobState.QUEUED, Job.run_at <= now),
        and_(Job.state == JobState.RUNNING, Job.locked_at < stale_before),
    )


def anything_due(dbsession: Session, now: datetime, stale_before: datetime) -> bool:
    """A cheap read, so an idle worker never takes SQLite's write lock."""
    return dbsession.scalar(select(Job.id).where(_due(now, stale_before)).limit(1)) is not None


def claim(dbsession: Session, worker: str, now: datetime, stale_before: datetime) -> ClaimedJob | None:
    """Mark the next due job as ours. On PostgreSQL ``SKIP LOCKED`` lets
    several workers claim at once, each a different row; on SQLite the
    caller's ``BEGIN IMMEDIATE`` makes claims take turns."""
    job = dbsession.scalars(
        select(Job)
        .where(_due(now, stale_before))
        .order_by(Job.run_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        return None
    job.state, job.locked_by, job.locked_at = JobState.RUNNING, worker, now
    job.attempts += 1
    dbsession.flush()
    return ClaimedJob(job.id, job.kind, dict(job.payload), job.attempts, job.max_attempts, worker, now, job.unique_key)


def _ours(claimed: ClaimedJob) -> Any:
    """Still held by this claim: a worker whose job was taken over changes nothing."""
    return and_(Job.id == claimed.id, Job.locked_by == claimed.locked_by, Job.locked_at == claimed.locked_at)


def finish(dbsession: Session, claimed: ClaimedJob, kinds: JobKinds, now: datetime) -> bool:
    """Done; a periodic job is scheduled for its next period instead. False if
    the claim was lost (another worker took the job over)."""
    period = kinds.periodic.get(claimed.kind) if claimed.unique_key else None
    if period is not None:
        values: dict[str, Any] = dict(state=JobState.QUEUED, run_at=now + timedelta(seconds=period.seconds), attempts=0)
        values.update(last_error=None, finished=now)
    else:
        values = dict(state=JobState.DONE, finished=now)
    result = dbsession.execute(update(Job).where(_ours(claimed)).values(locked_by=None, locked_at=None, **values))
    return result.rowcount == 1  # type: ignore[attr-defined]


def fail(
    dbsession: Session,
    claimed: ClaimedJob,
    kinds: JobKinds,
    error: str,
    now: datetime,
    *,
    final: bool,
    first_backoff: float = BACKOFF_SECONDS,
) -> bool:
    """Try again after a backoff (True), or, out of attempts or ``final``, give
    up with the error kept (False). A periodic job that gives up is queued
    for its next period."""
    values: dict[str, Any] = dict(last_error=error[:4000], locked_by=None, locked_at=None)
    period = kinds.periodic.get(claimed.kind) if claimed.unique_key else None
    retry = not final and claimed.attempts < claimed.max_attempts
    if retry:
        values.update(state=JobState.QUEUED, run_at=now + backoff(claimed.attempts, first_backoff))
    elif period is not None:
        values.update(state=JobState.QUEUED, run_at=now + timedelta(seconds=period.seconds), attempts=0, finished=now)
    else:
        values.update(state=JobState.FAILED, finished=now)
    dbsession.execute(update(Job).where(_ours(claimed)).values(**values))
    return retry


def schedule_periodic(dbsession: Session, kinds: JobKinds, now: datetime) -> None:
    """One row per periodic kind, inserted once whichever worker comes first
    (the unique key makes every other insert a no-op)."""
    if not kinds.periodic:
        return
    insert = pg_insert if dbsession.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [
        dict(
            kind=kind,
            payload={},
            state=JobState.QUEUED,
            run_at=now,
            attempts=0,
            max_attempts=period.max_attempts,
            unique_key=PERIODIC_PREFIX + kind,
            created=now,
        )
        for kind, period in kinds.periodic.items()
    ]
    dbsession.execute(insert(Job).values(rows).on_conflict_do_nothing(index_elements=[Job.unique_key]))


def purge(dbsession: Session, older_than: datetime) -> int:
    """Delete finished jobs (done or failed) that finished before ``older_than``."""
    result = dbsession.execute(
        delete(Job).where(Job.state.in_([JobState.DONE, JobState.FAILED]), Job.finished < older_than)
    )
    return result.rowcount  # type: ignore[attr-defined]


# -- what the admin page shows and does ---------------------------------------------------


def unfinished_and_failed(dbsession: Session, limit: int = 200) -> Sequence[Job]:
    """Queued, running and failed jobs, failed first, then by when they run."""
    failed_first = (Job.state != JobState.FAILED).label("failed_first")
    return dbsession.scalars(
        select(Job).where(Job.state != JobState.DONE).order_by(failed_first, Job.run_at, Job.id).limit(limit)
    ).all()


def counts_by_state(dbsession: Session) -> dict[JobState, int]:
    rows = dbsession.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state: count for state, count in rows}


def retry_failed(dbsession: Session, job_id: int, now: datetime | None = None) -> bool:
    """Queue a failed job again, with its attempts back to none. False if it is not failed."""
    result = dbsession.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.FAILED)
        .values(state=JobState.QUEUED, run_at=now or utcnow(), attempts=0, finished=None)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]

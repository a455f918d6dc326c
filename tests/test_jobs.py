"""The job queue on SQLite and PostgreSQL: a job runs once, after its
transaction commits; failures are retried with backoff, then kept as failed;
a dead worker's job is taken over; periodic jobs run once a period; on
PostgreSQL two workers never run the same job."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from pyramid.registry import Registry
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from myapp.data.jobs import (
    Job,
    JobState,
    Outcome,
    PermanentJobError,
    Worker,
    backoff,
    enqueue,
    job_kinds,
)
from myapp.data.jobs.queue import retry_failed
from myapp.data.meta import utcnow
from myapp.data.migrations import upgrade_to_head
from tests.conftest import fresh_database


class Clock:
    """A clock the test moves forward (no sleeping)."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(seconds=1)  # after the jobs the test queues

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def registry_with(**handlers: Any) -> Registry:
    registry = Registry("test-jobs")
    registry.settings = {}
    for kind, handler in handlers.items():
        job_kinds(registry).add(kind.replace("_", "."), handler)
    return registry


def reload(db: Session, job: Job) -> Job:
    db.expire_all()
    return db.get(Job, job.id)


def test_a_job_runs_once_with_its_payload_and_is_done(dbsession):
    seen = []
    worker = Worker(registry_with(test_echo=lambda ctx, payload: seen.append((ctx.job.kind, payload))))
    job = enqueue(dbsession, "test.echo", {"to": "a@example.org", "n": 3})
    dbsession.flush()
    assert worker.drain() == {Outcome.DONE: 1}
    assert seen == [("test.echo", {"to": "a@example.org", "n": 3})]
    job = reload(dbsession, job)
    assert job.state == JobState.DONE and job.attempts == 1 and job.finished is not None and job.locked_by is None
    assert worker.drain() == {}  # nothing due: it does not run again


def test_a_job_not_yet_due_waits(dbsession):
    clock = Clock()
    worker = Worker(registry_with(test_echo=lambda ctx, payload: None), clock=clock)
    enqueue(dbsession, "test.echo", {}, delay=60)
    dbsession.flush()
    assert worker.drain() == {}
    clock.advance(61)
    assert worker.drain() == {Outcome.DONE: 1}


def test_a_payload_that_is_not_json_fails_in_the_caller(dbsession):
    with pytest.raises(TypeError):
        enqueue(dbsession, "test.echo", {"when": utcnow()})


def test_what_a_failing_job_wrote_is_undone_and_it_is_retried_with_backoff_then_succeeds(dbsession):
    clock = Clock()
    calls = []

    def flaky(ctx, payload):
        calls.append(clock())
        enqueue(ctx.dbsession, "test.echo", {"from": len(calls)})  # a write in the job's transaction
        if len(calls) < 3:
            raise ConnectionRefusedError("SMTP is down")

    worker = Worker(registry_with(test_flaky=flaky, test_echo=lambda ctx, payload: None), clock=clock)
    job = enqueue(dbsession, "test.flaky", {})
    dbsession.flush()
    start = clock()

    assert worker.drain() == {Outcome.RETRY: 1}
    job = reload(dbsession, job)
    assert job.state == JobState.QUEUED and job.attempts == 1
    assert job.run_at == start + timedelta(seconds=10) and "ConnectionRefusedError: SMTP is down" in job.last_error
    assert dbsession.scalars(select(Job).where(Job.kind == "test.echo")).all() == []  # rolled back with it

    clock.advance(9)
    assert worker.drain() == {}  # not before its backoff
    clock.advance(1)
    assert worker.drain() == {Outcome.RETRY: 1}
    assert reload(dbsession, job).run_at == clock() + timedelta(seconds=20)  # twice as long
    clock.advance(20)
    assert worker.drain() == {Outcome.DONE: 2}  # the job, then the one it queued
    job = reload(dbsession, job)
    assert job.state == JobState.DONE and job.attempts == 3
    echoes = dbsession.scalars(select(Job).where(Job.kind == "test.echo")).all()
    assert [e.payload for e in echoes] == [{"from": 3}]  # only the successful run's write was kept


def test_backoff_doubles_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff(30) == timedelta(hours=1)


def test_a_job_out_of_attempts_fails_for_good_with_its_error_and_an_admin_can_retry_it(dbsession):
    clock = Clock()

    def broken(ctx, payload):
        raise ValueError(f"bad input {payload['n']}")

    worker = Worker(registry_with(test_broken=broken), clock=clock)
    job = enqueue(dbsession, "test.broken", {"n": 7}, max_attempts=2)
    dbsession.flush()
    assert worker.drain() == {Outcome.RETRY: 1}
    clock.advance(10)
    assert worker.drain() == {Outcome.FAILED: 1}
    job = reload(dbsession, job)
    assert job.state == JobState.FAILED and job.attempts == 2 and job.finished is not None
    assert job.last_error.startswith("ValueError: bad input 7 at test_jobs.py:")
    clock.advance(3600)
    assert worker.drain() == {}  # failed jobs stay failed

    assert retry_failed(dbsession, job.id, clock())
    assert reload(dbsession, job).state == JobState.QUEUED and reload(dbsession, job).attempts == 0
    assert worker.drain() == {Outcome.RETRY: 1}
    assert not retry_failed(dbsession, job.id)  # only a failed job can be retried


def test_a_permanent_error_or_an_unknown_kind_fails_at_once(dbsession):
    def refuse(ctx, payload):
        raise PermanentJobError("no such address")

    worker = Worker(registry_with(test_refuse=refuse))
    refused = enqueue(dbsession, "test.refuse", {})
    unknown = enqueue(dbsession, "test.nobody-handles-this", {})
    dbsession.flush()
    assert worker.drain() == {Outcome.FAILED: 2}
    assert reload(dbsession, refused).last_error.startswith("PermanentJobError: no such address")
    assert reload(dbsession, unknown).last_error == "no handler for job kind 'test.nobody-handles-this'"


def test_a_job_whose_worker_died_is_taken_over_and_the_dead_one_changes_nothing(dbsession):
    clock = Clock()
    runs = []
    registry = registry_with(test_echo=lambda ctx, payload: runs.append(ctx.job.locked_by))
    dead = Worker(registry, name="dead", clock=clock, stale_after=timedelta(minutes=10))
    alive = Worker(registry, name="alive", clock=clock, stale_after=timedelta(minutes=10))
    job = enqueue(dbsession, "test.echo", {})
    dbsession.flush()
    claimed = dead.claim()  # ...and the process is killed before it runs the job
    assert claimed is not None and reload(dbsession, job).state == JobState.RUNNING

    clock.advance(9 * 60)
    assert alive.drain() == {}  # held, and not for long yet
    clock.advance(61)
    assert alive.drain() == {Outcome.DONE: 1}
    job = reload(dbsession, job)
    assert job.state == JobState.DONE and job.attempts == 2 and runs == ["alive"]

    # The "dead" worker was only slow: its late run is undone, the job stays done once.
    assert dead.run_claimed(claimed) == Outcome.LOST
    assert reload(dbsession, job).state == JobState.DONE and runs == ["alive", "dead"]


def test_a_periodic_job_runs_once_a_period_however_many_workers(dbsession):
    clock = Clock()
    ticks = []
    registry = registry_with()
    job_kinds(registry).every("test.tick", lambda ctx, payload: ticks.append(clock()), seconds=60)
    workers = [Worker(registry, clock=clock) for _ in range(3)]
    assert [w.drain() for w in workers] == [{Outcome.DONE: 1}, {}, {}]
    rows = dbsession.scalars(select(Job).where(Job.kind == "test.tick")).all()
    assert len(rows) == 1 and rows[0].state == JobState.QUEUED and rows[0].run_at == clock() + timedelta(seconds=60)
    clock.advance(30)
    assert [w.drain() for w in workers] == [{}, {}, {}]
    clock.advance(30)
    assert sum((w.drain() for w in workers), Counter()) == {Outcome.DONE: 1}
    assert len(ticks) == 2 and len(dbsession.scalars(select(Job).where(Job.kind == "test.tick")).all()) == 1


def test_the_periodic_purge_deletes_finished_jobs_older_than_a_week(dbsession, app):
    now = utcnow()
    old_done = Job(kind="test.x", payload={}, state=JobState.DONE, max_attempts=1, finished=now - timedelta(days=8))
    old_failed = Job(kind="test.x", payload={}, state=JobState.FAILED, max_attempts=1, finished=now - timedelta(days=8))
    recent = Job(kind="test.x", payload={}, state=JobState.DONE, max_attempts=1, finished=now - timedelta(days=6))
    waiting = Job(kind="test.x", payload={}, state=JobState.QUEUED, max_attempts=1, run_at=now + timedelta(days=1))
    dbsession.add_all([old_done, old_failed, recent, waiting])
    dbsession.flush()
    ids = {job.id for job in (old_done, old_failed, recent, waiting)}
    assert Worker(app.registry).drain()[Outcome.DONE] >= 1  # the app's jobs.purge was due at once
    dbsession.expire_all()
    left = set(dbsession.scalars(select(Job.id).where(Job.id.in_(ids))))
    assert left == {recent.id, waiting.id}
    purge = dbsession.scalars(select(Job).where(Job.unique_key == "periodic:jobs.purge")).one()
    assert purge.state == JobState.QUEUED and purge.run_at > now + timedelta(minutes=59)


# -- PostgreSQL: several workers at once -------------------------------------------------------


@pytest.fixture
def committed_pg(tmp_path):
    """A fresh PostgreSQL database of its own: these tests need real commits
    and several connections, outside the shared test transaction."""
    with fresh_database("postgresql", tmp_path) as url:
        engine = create_engine(url)
        upgrade_to_head(engine)
        try:
            yield sessionmaker(bind=engine, expire_on_commit=False)
        finally:
            engine.dispose()


def test_postgresql_a_claimed_job_is_skipped_not_waited_for_nor_taken_twice(committed_pg):
    factory = committed_pg
    with factory.begin() as db:
        first, second = enqueue(db, "test.echo", {"n": 1}), enqueue(db, "test.echo", {"n": 2})
    registry = registry_with(test_echo=lambda ctx, payload: None)
    holder = factory()
    with holder.begin():
        # Worker A's claim transaction, still open: its row is locked FOR UPDATE.
        locked = holder.scalars(select(Job).where(Job.id == first.id).with_for_update()).one()
        assert locked.id == first.id
        started = time.monotonic()
        claimed = Worker(registry, factory).claim()  # worker B, another connection
        assert time.monotonic() - started < 2  # skipped the locked row instead of waiting for it
        assert claimed is not None and claimed.id == second.id
    holder.close()


def test_postgresql_two_workers_draining_at_once_run_every_job_exactly_once(committed_pg):
    factory = committed_pg
    with factory.begin() as db:
        for n in range(60):
            enqueue(db, "test.echo", {"n": n})
    runs: list[tuple[str, int]] = []
    lock = threading.Lock()

    def echo(ctx, payload):
        time.sleep(0.005)  # long enough for the two workers to overlap
        with lock:
            runs.append((ctx.job.locked_by, payload["n"]))

    registry = registry_with(test_echo=echo)
    workers = [Worker(registry, factory, name=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(n for _, n in runs) == list(range(60))  # each once, none twice
    assert {name for name, _ in runs} == {"w0", "w1"}  # and both took part
    with factory() as db:
        assert set(db.scalars(select(Job.state))) == {JobState.DONE}


# -- the admin page -------------------------------------------------------------------------------


def test_admins_see_queued_and_failed_jobs_and_retry_a_failed_one(app, testapp, dbsession):
    import webtest

    from tests.accounts import form_for, log_in, make_user

    admin, someone = make_user(dbsession, is_admin=True), make_user(dbsession)
    waiting = enqueue(dbsession, "mail", {"subject": "hello"})
    failed = Job(
        kind="test.broken", payload={}, state=JobState.FAILED, attempts=3, max_attempts=3, last_error="OSError: <no>"
    )
    dbsession.add(failed)
    dbsession.flush()

    log_in(testapp, someone.username)
    assert testapp.get("/admin/jobs", status=403)
    assert testapp.post(f"/admin/jobs/{failed.id}/retry", status=403)  # no CSRF token, no admin: refused

    admin_app = webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})
    log_in(admin_app, admin.username)
    page = admin_app.get("/admin/jobs")
    rows = {row.select_one("td").text: row for row in page.html.select("table.jobs tbody tr")}
    assert "queued" in rows[str(waiting.id)].text and "0 of 10" in rows[str(waiting.id)].text
    assert "failed" in rows[str(failed.id)].text and "OSError: <no>" in rows[str(failed.id)].text  # escaped
    assert not rows[str(waiting.id)].select("form")  # only a failed job has a retry button
    done = form_for(page, f"/admin/jobs/{failed.id}/retry").submit(status=303)
    assert "will run again" in done.follow().text
    assert reload(dbsession, failed).state == JobState.QUEUED and reload(dbsession, failed).attempts == 0
    token = page.html.select_one("[name=csrf_token]")["value"]
    admin_app.post(f"/admin/jobs/{failed.id}/retry", {"csrf_token": token}, status=404)  # not failed any more
    assert "job queue" in admin_app.get("/admin/users").text

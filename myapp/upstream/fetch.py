"""Asking the upstream for a project's page, once, however many ask at once.

``Proxy.project`` is what the views call. For a normalized name it returns
the stored project (and how it was found: ``hit``, ``stale`` or ``miss``):

* fetched within ``myapp.upstream_ttl``: served as stored (``hit``);
* fetched before that: served as stored at once (``stale``), and one refresh
  queued on the job queue by whichever request claims the row first
  (stale-while-revalidate: nobody waits for the upstream);
* never fetched, or last found missing upstream and past the TTL: fetched
  now (``miss``). Of concurrent requests, in any thread or process, the one
  whose conditional UPDATE claims ``refreshing_until`` asks the upstream;
  the others poll the row (briefly, bounded by the claim's lease) and serve
  what it stored.

The upstream request is made outside any transaction: a claim commits
first, the answer is stored in a transaction of its own, and what the view
shows is read after that (a request's own snapshot, on SQLite, would not see
it). A project never fetched whose fetch fails is a 502 naming the upstream,
with ``Retry-After``; one fetched before keeps being served (stale-if-error).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pyramid.httpexceptions import HTTPBadGateway, HTTPNotFound
from sqlalchemy.orm import Session, sessionmaker

from myapp.data import take_write_lock
from myapp.data.jobs import JobContext, enqueue
from myapp.data.meta import utcnow
from myapp.upstream import services, store
from myapp.upstream.client import UpstreamClient, UpstreamError
from myapp.upstream.models import UpstreamFile, UpstreamProject
from myapp.upstream.parse import ACCEPT, PageError, parse_page
from myapp.upstream.settings import UpstreamSettings

log = logging.getLogger(__name__)

REFRESH_KIND = "upstream.refresh"
POLL_FIRST = 0.02  # seconds between looks at a row another process is fetching, doubling...
POLL_MAX = 0.2  # ...up to this
Found = Literal["hit", "stale", "miss"]


@dataclass
class Snapshot:
    """A project and its live files, read in one session and detached from it."""

    project: UpstreamProject
    files: list[UpstreamFile]
    found: Found


class Stats:
    """This process's hits, stale hits, misses and failures (for /health and the admin page)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.report: tuple[float, dict[str, Any]] | None = None  # the operators' report, and when it was made

    def add(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
        served = sum(counts.get(k, 0) for k in ("hit", "stale", "miss"))
        cached = counts.get("hit", 0) + counts.get("stale", 0)
        return {**counts, "hit_rate": round(cached / served, 3) if served else None}


class Proxy:
    def __init__(self, settings: UpstreamSettings, client: UpstreamClient | None = None) -> None:
        self.settings = settings
        self.client = client or UpstreamClient(settings)
        self.stats = Stats()

    # -- what the views call ------------------------------------------------------------

    def project(self, db: Session, factory: sessionmaker[Session], name: str) -> Snapshot:
        """The stored project ``name`` (normalized), fetched first if it must be;
        404 when the upstream has no such project, 502 when it cannot say."""
        now = utcnow()
        row = services.find_project(db, name)
        if row is not None and row.fetched_at is not None:
            fresh = now - row.fetched_at < self.settings.ttl
            if not row.missing:
                if not fresh and self._may_claim(row, now):
                    self.schedule(factory, name, row.fetched_at)
                found: Found = "hit" if fresh else "stale"
                self.stats.add(found)
                return Snapshot(row, services.live_files(db, row.id), found)
            if fresh:
                self.stats.add("hit")
                raise HTTPNotFound(f"There is no project called {name!r} here or on the upstream index.")
        seen = row.fetched_at if row is not None else None
        snapshot = self.fetch_now(factory, name, seen) or self._read(factory, name)  # _read raises 404 or 502
        self.stats.add("miss")
        return snapshot

    def _may_claim(self, row: UpstreamProject, now: datetime) -> bool:
        """What the claim's UPDATE would find, read from the row we have: a stale
        page being refreshed (or backing off) costs no write per request."""
        if row.refreshing_until is not None and row.refreshing_until > now:
            return False
        return row.last_error_at is None or row.last_error_at < now - self.settings.retry_after

    def _read(self, factory: sessionmaker[Session], name: str) -> Snapshot:
        with factory() as db:
            row = services.find_project(db, name)
            if row is None or row.fetched_at is None:
                raise self._bad_gateway(name, row.last_error if row is not None else None)
            if row.missing:
                raise HTTPNotFound(f"There is no project called {name!r} here or on the upstream index.")
            files = services.live_files(db, row.id)
            db.expunge_all()  # plain objects from here on: the session closes
        return Snapshot(row, files, "miss")

    def _bad_gateway(self, name: str, error: str | None) -> HTTPBadGateway:
        self.stats.add("error")
        seconds = max(1, int(self.settings.retry_after.total_seconds()))
        detail = f"The upstream index ({self.settings.host}) did not answer for {name!r}; try again in {seconds} s."
        if error:
            detail += f" ({error[:300]})"
        return HTTPBadGateway(detail, headers={"Retry-After": str(seconds)})

    # -- single flight ------------------------------------------------------------------

    def fetch_now(self, factory: sessionmaker[Session], name: str, seen: datetime | None = None) -> Snapshot | None:
        """Fetch ``name`` unless another process is doing so; then wait for it
        (bounded). The fetcher gets the project as stored; a waiter None (it reads it)."""
        started = utcnow()
        with factory() as db:
            services.cache_write(db)
            created = services.create_claimed(db, name, started, self.settings)
            claimed = created or services.claim(db, name, started, self.settings, seen)
            etag = services.stored_etag(db, name) if claimed and not created else None
            db.commit()
        if claimed:
            return self.refresh(factory, name, etag)
        deadline = time.monotonic() + self.settings.lease.total_seconds()
        pause = POLL_FIRST
        while time.monotonic() < deadline:
            with factory() as db:
                row = services.find_project(db, name)
                now = utcnow()
                if row is None:
                    return None
                done = (row.fetched_at is not None and row.fetched_at >= started) or (
                    row.last_error_at is not None and row.last_error_at >= started
                )
                busy = row.refreshing_until is not None and row.refreshing_until > now
                if done or not busy:
                    return None  # fetched (or failed: the caller reads which), or backing off after a failure
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX)
        return None

    def schedule(self, factory: sessionmaker[Session], name: str, seen: datetime | None) -> bool:
        """Queue one background refresh of a stale page (whoever claims it first)."""
        try:
            with factory() as db:
                claimed = services.claim(db, name, utcnow(), self.settings, seen)
                if claimed:
                    enqueue(db, REFRESH_KIND, {"name": name}, max_attempts=1)
                db.commit()
        except Exception:  # a busy database must not fail a page we can serve
            log.warning("could not queue a refresh of %s", name, exc_info=True)
            return False
        return claimed

    # -- asking the upstream ------------------------------------------------------------

    def refresh(self, factory: sessionmaker[Session], name: str, etag: str | None) -> Snapshot | None:
        """Ask the upstream (we hold the claim; ``etag``: the page we keep) and
        store the answer; never raises for the upstream's faults (they are
        recorded on the row). Returns the project as now stored, if it is there."""
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        url = self.settings.project_url(name)
        answer = None
        error: str | None = None
        try:
            answer = self.client.get(url, headers)
        except UpstreamError as exc:
            error = str(exc)
        now = utcnow()
        with factory() as db:
            # SQLite: the write lock first; a read then a write in a deferred transaction
            # fails at once (no busy wait) if another connection committed in between,
            # and the claim would then be held until its lease ran out.
            take_write_lock(db)
            services.cache_write(db)
            row = services.find_project(db, name)
            if row is None:
                return None
            if answer is None:
                store.apply_failure(row, now, error or "no answer", None)
            elif answer.status == 304:
                store.apply_not_modified(row, now)
            elif answer.status in (404, 410):
                store.apply_missing(db, row, now)
            elif answer.status != 200:
                store.apply_failure(row, now, f"{url}: HTTP {answer.status}", answer.status)
            else:
                self._store_page(db, row, answer.body, answer.headers, answer.url, now)
            problem = row.last_error
            db.commit()
            snapshot = None
            if row.fetched_at is not None and not row.missing:  # read again after the commit, here
                snapshot = Snapshot(row, services.live_files(db, row.id), "miss")
                db.expunge_all()
        if problem:
            log.warning("upstream page of %s: %s", name, problem)
        return snapshot

    def _store_page(
        self, db: Session, row: UpstreamProject, body: bytes, headers: dict[str, str], url: str, now: datetime
    ) -> None:
        try:
            page = parse_page(body, headers.get("content-type"), url, row.name, self.settings.allowed_file_hosts)
        except PageError as exc:
            store.apply_failure(row, now, f"{url}: {exc}", 200)
            return
        store.apply_page(db, row, page, now)
        etag = headers.get("etag")
        row.etag = etag[:512] if etag else None
        serial = headers.get("x-pypi-last-serial", "")
        row.last_serial = int(serial) if serial.isdigit() and len(serial) < 10 else None


def refresh_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The background refresh a stale page queued (``upstream.refresh``)."""
    proxy: Proxy | None = ctx.registry.get(PROXY_KEY)
    name = payload.get("name")
    if proxy is None or not isinstance(name, str):
        return
    factory = ctx.registry["dbsession_factory"]
    with factory() as db:
        row = services.find_project(db, name)
        fresh = row is not None and row.fetched_at is not None and utcnow() - row.fetched_at < proxy.settings.ttl
        etag = services.stored_etag(db, name)
    if not fresh:  # else another job (a claim that outlived its lease) did it already
        proxy.refresh(factory, name, etag)


PROXY_KEY = "upstream.proxy"  # registry: the Proxy, when myapp.upstream is set

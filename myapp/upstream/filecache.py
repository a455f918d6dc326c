"""Queries and writes of the files part: which proxied file a path names, the
single-flight claim on fetching its bytes, recording a fetch (good or bad),
and download times written in batches. Every function takes the session
first; the caller decides the transaction (the fetch runs outside any
request's transaction: a claim must be seen by other processes at once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, joinedload

from myapp.data.meta import table_of
from myapp.upstream.models import UpstreamFile

MAX_ERROR = 1000


def find_file(db: Session, filename: str) -> UpstreamFile | None:
    """The file and its project (the policy needs its name) in one statement."""
    stmt = select(UpstreamFile).options(joinedload(UpstreamFile.project)).where(UpstreamFile.filename == filename)
    return db.scalar(stmt)


def get_file(db: Session, file_id: int) -> UpstreamFile | None:
    return db.get(UpstreamFile, file_id)


def _rowcount(result: Any) -> int:
    counted: CursorResult[Any] = result
    return counted.rowcount


def claim_fetch(db: Session, file_id: int, now: datetime, lease: timedelta) -> bool:
    """Become the one process that fetches the file's bytes now: a conditional
    UPDATE, so of any number of threads and processes exactly one succeeds
    while the bytes are not cached and nobody else holds a live claim."""
    result = db.execute(
        update(UpstreamFile)
        .where(
            UpstreamFile.id == file_id,
            UpstreamFile.storage_path.is_(None),
            or_(UpstreamFile.fetching_until.is_(None), UpstreamFile.fetching_until < now),
        )
        .values(fetching_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def renew_claim(db: Session, file_id: int, until: datetime) -> None:
    """A long fetch keeps its claim (the waiters keep waiting rather than fetch too)."""
    db.execute(
        update(UpstreamFile)
        .where(UpstreamFile.id == file_id, UpstreamFile.fetching_until.isnot(None))
        .values(fetching_until=until)
        .execution_options(synchronize_session=False)
    )


def release_claim(db: Session, file_id: int) -> None:
    """Give the claim up without a verdict (the client went away): a waiter fetches instead."""
    db.execute(
        update(UpstreamFile)
        .where(UpstreamFile.id == file_id)
        .values(fetching_until=None)
        .execution_options(synchronize_session=False)
    )


def record_cached(db: Session, file_id: int, storage_path: str, size: int, now: datetime) -> None:
    """The verified bytes are in the store: serve them from now on."""
    db.execute(
        update(UpstreamFile)
        .where(UpstreamFile.id == file_id)
        .values(
            storage_path=storage_path,
            cached_bytes=size,
            last_downloaded_at=now,
            downloads=UpstreamFile.downloads + 1,
            fetching_until=None,
            fetch_error=None,
            fetch_failed_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def record_failure(db: Session, file_id: int, message: str, now: datetime) -> None:
    """The fetch failed (nothing kept): say why, and free the claim so the next request retries."""
    text = message if len(message) <= MAX_ERROR else message[: MAX_ERROR - 1] + "…"
    db.execute(
        update(UpstreamFile)
        .where(UpstreamFile.id == file_id)
        .values(fetching_until=None, fetch_error=text, fetch_failed_at=now)
        .execution_options(synchronize_session=False)
    )


def forget_bytes(db: Session, file_id: int, storage_path: str) -> bool:
    """The row no longer names its cached bytes (they were lost, evicted or
    quarantined); False if another process changed it meanwhile."""
    result = db.execute(
        update(UpstreamFile)
        .where(UpstreamFile.id == file_id, UpstreamFile.storage_path == storage_path)
        .values(storage_path=None, cached_bytes=0)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def cached_total(db: Session) -> int:
    """The bytes of proxied files in the store (what the budget counts)."""
    total = db.scalar(
        select(func.coalesce(func.sum(UpstreamFile.cached_bytes), 0)).where(UpstreamFile.storage_path.isnot(None))
    )
    return int(total or 0)


# -- download times, written in batches -------------------------------------------------------


@dataclass(frozen=True)
class Downloads:
    """A proxied file's downloads in this process since the last write: the latest and how many."""

    at: datetime
    count: int

    def plus(self, other: Downloads) -> Downloads:
        return Downloads(max(self.at, other.at), self.count + other.count)


def write_downloads(db: Session, pending: dict[int, Downloads]) -> None:
    """One executemany: each file's latest download time and its added count
    (a ``Batch``'s write: the eviction's least-recently-downloaded order is at
    most its interval behind, which is all it needs)."""
    if not pending:
        return
    table = table_of(UpstreamFile)  # Core, not ORM: an executemany with an increment
    stmt = (
        update(table)
        .where(table.c.id == bindparam("file_id"))
        .values(last_downloaded_at=bindparam("at"), downloads=table.c.downloads + bindparam("n"))
    )
    rows = [{"file_id": file_id, "at": d.at, "n": d.count} for file_id, d in sorted(pending.items())]
    db.execute(stmt, rows)

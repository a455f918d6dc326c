"""Keeping the proxy's cached files within ``myapp.upstream_cache_bytes``, and
quarantining the bytes of files removed upstream.

* **Eviction**: while the cached proxied files add up to more than the
  budget, the least recently downloaded go (their rows forget the bytes, then
  the store deletes them; the next download fetches them again). Only
  ``upstream_files`` are looked at: our own uploads are never evicted. Runs
  as the periodic job ``upstream.files.maintain`` (every
  ``myapp.upstream_evict_seconds``, default 300) and as ``upstream.files.evict``,
  queued by a fetch that takes the cache past its budget.
* **Quarantine**: a file that the upstream no longer lists (``removed_at``,
  set by the page refresh) has its cached bytes deleted and ``quarantined_at``
  recorded (it stays hidden and is answered 404). The same periodic job does
  it for every such file; a download of one does it at once.

A row forgets its bytes first (a conditional UPDATE: not if the path changed
meanwhile), then the object is deleted: a download that read the old row and
finds no object fetches the file again. (A fetch claims only a file whose
bytes are not cached, so it never races an eviction of the same row.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from myapp.data import take_write_lock
from myapp.data.jobs import JobContext
from myapp.data.meta import utcnow
from myapp.upstream import filecache, filestore
from myapp.upstream.models import UpstreamFile

log = logging.getLogger(__name__)

MAINTAIN_KIND = "upstream.files.maintain"
MAINTAIN_EVERY_SECONDS = 300
BATCH = 200


@dataclass
class Evicted:
    files: int = 0
    bytes: int = 0


def _gone(store: Any, relative: str) -> None:
    """(A wheel's metadata is kept by the pages part, by its own hash: a few KiB, not evicted.)"""
    try:
        filestore.delete(store, relative)
    except OSError as exc:  # the row no longer names it; an orphan sweep may
        log.warning("could not delete %s from the file store: %s", relative, exc)


def evict(factory: sessionmaker[Session], store: Any, budget: int) -> Evicted:
    """Least recently downloaded proxied files out until the rest fit ``budget`` bytes."""
    done = Evicted()
    if budget <= 0:
        return done
    with factory() as db:
        total = filecache.cached_total(db)
    while total > budget:
        with factory() as db:
            stmt = (
                select(UpstreamFile.id, UpstreamFile.storage_path, UpstreamFile.cached_bytes)
                .where(UpstreamFile.storage_path.isnot(None))
                # Never downloaded since cached (NULL) first, then the oldest download.
                .order_by(
                    UpstreamFile.last_downloaded_at.is_not(None), UpstreamFile.last_downloaded_at, UpstreamFile.id
                )
                .limit(BATCH)
            )
            candidates = list(db.execute(stmt))
        if not candidates:
            break
        progressed = False
        for file_id, relative, size in candidates:
            if total <= budget:
                break
            with factory() as db:
                forgotten = filecache.forget_bytes(db, file_id, relative)
                db.commit()
            if not forgotten:
                continue
            _gone(store, relative)
            total -= size
            done.files += 1
            done.bytes += size
            progressed = True
        if not progressed:
            break
    if done.files:
        log.info("evicted %d proxied file(s), %d bytes (budget %d bytes)", done.files, done.bytes, budget)
    return done


def quarantine(factory: sessionmaker[Session], store: Any, file_ids: list[int] | None = None) -> int:
    """Delete the cached bytes of files removed upstream and record when; ``file_ids``
    limits it to those (a download), None does every such file (the periodic job)."""
    now = utcnow()
    with factory() as db:
        take_write_lock(db)  # SQLite: it reads, then writes; a deferred transaction could fail between
        # Only files with bytes here: one never cached has nothing to set aside, and
        # stays merely removed (listed again upstream, it is served again).
        stmt = select(UpstreamFile.id, UpstreamFile.filename, UpstreamFile.sha256, UpstreamFile.storage_path).where(
            UpstreamFile.removed_at.isnot(None), UpstreamFile.storage_path.isnot(None)
        )
        if file_ids is not None:
            stmt = stmt.where(UpstreamFile.id.in_(file_ids))
        rows = list(db.execute(stmt))
        for file_id, *_ in rows:
            db.execute(
                update(UpstreamFile)
                .where(UpstreamFile.id == file_id)
                .values(storage_path=None, cached_bytes=0, quarantined_at=now)
                .execution_options(synchronize_session=False)
            )
        db.commit()
    for _, filename, sha256, relative in rows:
        _gone(store, relative)
        log.warning("quarantined %s (sha256 %s): removed from the upstream index", filename, sha256)
    return len(rows)


def maintain_job(ctx: JobContext, payload: dict[str, Any]) -> None:
    """``upstream.files.maintain`` and ``upstream.files.evict``: quarantine, then evict."""
    from myapp.upstream.files import FILES_KEY  # the view module imports this one

    fetcher = ctx.registry.get(FILES_KEY)
    if fetcher is None:
        return
    factory = ctx.registry["dbsession_factory"]
    store = filestore.store_of(ctx.registry)
    fetcher.downloads.flush()  # the latest download times first: eviction goes by them
    quarantine(factory, store)
    evict(factory, store, fetcher.settings.cache_bytes)

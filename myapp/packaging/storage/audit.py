"""Which objects a store should hold, and which it holds that nobody needs.

Rows name objects: a release file its ``storage_path`` (and a wheel's
``<storage_path>.metadata``). Other domains that keep bytes in the same
store (the proxy of a public index) add a ``References`` of their own to
``registry[REFERENCES]`` in their ``includeme``; an object that no
``References`` claims is an orphan. The periodic sweep deletes orphans older
than a grace period (an upload in flight has written its object but not yet
committed its row); ``myapp-files check`` reports them and the damage.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from myapp.data.jobs import JobContext
from myapp.packaging.models import ReleaseFile
from myapp.packaging.storage.base import METADATA, FileStore, StoredObject

log = logging.getLogger(__name__)

REFERENCES = "file_store.references"  # registry: list[References]
BATCH = 1000
# An upload writes its object before its row commits; none takes a day.
ORPHAN_GRACE_SECONDS = 24 * 3600
ORPHAN_SWEEP_KIND = "files.sweep_orphans"
ORPHAN_SWEEP_EVERY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Expected:
    """An object a row names, and what the row says of it."""

    path: str
    size: int | None
    sha256: str | None


class References(Protocol):
    def expected(self, db: Session) -> Iterator[Expected]:
        """Every object rows name (read in batches)."""

    def lookup(self, db: Session, paths: list[str]) -> dict[str, Expected]:
        """Which of ``paths`` rows name."""


class ReleaseFileReferences:
    """Release files: the file, and a wheel's core metadata beside it."""

    def expected(self, db: Session) -> Iterator[Expected]:
        after = 0
        while True:
            rows = db.execute(
                select(
                    ReleaseFile.id,
                    ReleaseFile.storage_path,
                    ReleaseFile.size,
                    ReleaseFile.sha256,
                    ReleaseFile.metadata_sha256,
                )
                .where(ReleaseFile.id > after, ReleaseFile.storage_path.is_not(None))
                .order_by(ReleaseFile.id)
                .limit(BATCH)
            ).all()
            if not rows:
                return
            for row in rows:
                yield from self._objects(row.storage_path, row.size, row.sha256, row.metadata_sha256)
            after = rows[-1].id

    @staticmethod
    def _objects(path: str, size: int, sha256: str, metadata_sha256: str | None) -> Iterator[Expected]:
        yield Expected(path, size, sha256)
        if metadata_sha256:
            yield Expected(path + METADATA, None, metadata_sha256)

    def lookup(self, db: Session, paths: list[str]) -> dict[str, Expected]:
        # By filename (unique, indexed; the path's last part) rather than by storage_path (not indexed).
        names = {p.removesuffix(METADATA).rsplit("/", 1)[-1] for p in paths}
        rows = db.execute(
            select(ReleaseFile.storage_path, ReleaseFile.size, ReleaseFile.sha256, ReleaseFile.metadata_sha256).where(
                ReleaseFile.filename.in_(names), ReleaseFile.storage_path.is_not(None)
            )
        ).all()
        named = {e.path: e for row in rows for e in self._objects(*row)}
        return {p: named[p] for p in paths if p in named}


def references_of(registry: Any) -> list[References]:
    return list(registry.get(REFERENCES, None) or [ReleaseFileReferences()])


def named_by_rows(registry: Any, paths: list[str]) -> set[str]:
    """Which of ``paths`` committed rows name, read in a session of its own
    (``FileStore.in_use``: asked while a transaction aborts)."""
    with registry["dbsession_factory"]() as db:
        return {path for refs in references_of(registry) for path in refs.lookup(db, paths)}


def batched(items: Iterable[StoredObject], size: int = BATCH) -> Iterator[list[StoredObject]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def orphans(store: FileStore, db: Session, references: list[References], older_than: float) -> Iterator[StoredObject]:
    """Objects that no row names, last written more than ``older_than`` seconds ago."""
    cutoff = time.time() - older_than
    for batch in batched(store.iter_objects()):
        paths = [o.path for o in batch]
        named: set[str] = set()
        for refs in references:
            named.update(refs.lookup(db, paths))
        yield from (o for o in batch if o.path not in named and o.modified < cutoff)


def sweep_orphans(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The periodic job: delete objects no row names (an upload whose abort
    could not delete its object, a deletion that failed after its commit)."""
    store: FileStore = ctx.registry["file_store"]
    grace = float(ctx.registry.settings.get("myapp.files_orphan_grace_seconds", ORPHAN_GRACE_SECONDS))
    removed = 0
    for orphan in orphans(store, ctx.dbsession, references_of(ctx.registry), grace):
        store.delete(orphan.path)
        removed += 1
    if removed:
        log.warning("removed %d object(s) that no row names from %s", removed, store.url)


def sweep_incoming(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The periodic job: temporary files that no upload will finish."""
    ctx.registry["file_store"].sweep()

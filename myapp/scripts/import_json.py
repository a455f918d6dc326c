"""``myapp-import CONFIG PATH...``: import PyPI JSON API documents.

PATH is a ``.json`` document, a newline-delimited file of them (``.ndjson``
or ``.jsonl``, either optionally ``.gz``), a folder (searched recursively
for both), or ``-`` for newline-delimited documents on standard input, so a
dump can stream in without a million files.

Documents are read, checked and their descriptions rendered by a pool of
worker processes, and written by this one in batches, one transaction each.
Each document is all or nothing: a bad one is reported and skipped, and the
rest of its batch still lands. Importing the same documents again changes
nothing, and skips unread every document whose bytes were imported before.
Exit code 2 means some documents were skipped.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO, cast

from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from tqdm import tqdm

from myapp.data import DbSession
from myapp.packaging.importer import (
    ClassifierCache,
    DocumentError,
    ImportStats,
    NewRows,
    ProjectData,
    import_document,
    insert_new,
    new_rows,
    parse_document,
)
from myapp.packaging.models import NameWord, Package, Release, ReleaseFile, package_classifiers
from myapp.packaging.rendering import RENDERER, render_description
from myapp.packaging.services import counts
from myapp.scripts import OPTIONS, command, load_settings, managed_session

BATCH = 20_000  # documents per transaction: each rewrites pages all over the name indexes
READ_AHEAD = 2  # batches being read while one is written
SQLITE_CACHE_KB = 256 * 1024
SQLITE_CHECKPOINT_PAGES = 100_000  # 400 MB of WAL
# What an import grows (name_words through the packages' triggers).
BULK_TABLES: tuple[Table, ...] = tuple(
    cast(Table, t)
    for t in (Package.__table__, Release.__table__, ReleaseFile.__table__, package_classifiers, NameWord.__table__)
)
STREAMS = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
DOCUMENTS = (".json", ".json.gz")


@dataclass(frozen=True)
class Task:
    """One document to read: from a file, or bytes already read from a stream."""

    label: str
    path: str | None = None
    data: bytes | None = None
    error: str | None = None  # the stream it came from could not be read

    @property
    def source(self) -> str | bytes | None:
        """What a worker is sent: the path or the bytes (a Task would cost
        the writer 3 us a document to pickle); nothing for a failed task."""
        return None if self.error is not None else self.path if self.data is None else self.data


# A worker's answer for one document: the rows of a new project; None if the
# document is unchanged since it was last imported; or why it is bad. Plain
# values, the cheapest to send back through a pipe and unpickle in the writer
# (a dataclass around them cost the writer 5 us a document). Not the document
# itself: the writer reads it again from its task in the rare case that its
# project turns out not to be new.
Prepared = NewRows | str | None


# -- reading ------------------------------------------------------------------------


def _open(path: str, buffering: int = -1) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if path.endswith(".gz") else open(path, "rb", buffering=buffering)


def _lines(label: str, stream: IO[bytes]) -> Iterator[Task]:
    for number, line in enumerate(stream, 1):
        if document := line.strip():  # the same document, whatever line ending it came with
            yield Task(f"{label}:{number}", data=document)


def _walk(folder: Path) -> Iterator[str]:
    """The documents and streams in a folder and below, in name order, lazily,
    as strings: Path objects for every file (for rglob, then a sort) were a
    large share of the writer's time in a profile (README, "At a million
    projects")."""
    for parent, folders, names in os.walk(folder):
        folders.sort()
        for name in sorted(names):
            if name.endswith(DOCUMENTS + STREAMS):
                yield os.path.join(parent, name)


def tasks(paths: Iterable[str], stdin: IO[bytes] | None = None) -> Iterator[Task]:
    """Every document named by the command line, lazily."""
    for raw in paths:
        if raw == "-":
            yield from _lines("<stdin>", stdin or sys.stdin.buffer)
            continue
        for item in _walk(Path(raw)) if os.path.isdir(raw) else [raw]:
            if item.endswith(STREAMS):
                try:
                    with _open(item) as stream:
                        yield from _lines(item, stream)
                except (OSError, EOFError) as exc:
                    yield Task(item, error=f"cannot read: {exc}")
            else:
                yield Task(item, path=item)


# -- the workers: read, check, render -----------------------------------------------

# Set in the parent before the pool forks, so every worker shares them.
_known: set[bytes] = set()
_render = True


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(source: str | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    # Unbuffered: one read of the whole file, without a buffer object that a 1 kB document never needs.
    with _open(source, buffering=0) as fh:
        return fh.read()


def _project(task: Task, digest: str | None) -> ProjectData:
    """The document of a task, parsed again (by the writer)."""
    if task.source is None:
        raise DocumentError(task.error or "nothing to read")
    try:
        project = parse_document(json.loads(_read(task.source)))
    except (OSError, EOFError, ValueError) as exc:  # it changed or went since a worker read it
        raise DocumentError(f"cannot read it again: {exc}") from exc
    project.digest = digest
    return project


def prepare(source: str | bytes | None) -> Prepared:
    """Runs in a worker: the document (a file's path, or its bytes) checked
    and rendered, or why not."""
    if source is None:  # a task that failed already: the writer reports its error
        return None
    try:
        data = _read(source)
    except (OSError, EOFError) as exc:
        return f"cannot read: {getattr(exc, 'strerror', None) or exc}"
    digest = _digest(data)
    if bytes.fromhex(digest)[:16] in _known:
        return None
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"not valid JSON: {exc}"
    try:
        project = parse_document(document)
    except DocumentError as exc:
        return str(exc)
    project.digest = digest
    if _render:
        fields = project.fields
        fields["description_html"] = render_description(fields["description"], fields["description_content_type"])
        fields["description_renderer"] = RENDERER
    return new_rows(project, DbSession.engine.dialect)  # type: ignore[union-attr]


# -- the writer ---------------------------------------------------------------------


def write_batch(batch: list[tuple[Task, Prepared]], classifiers: ClassifierCache) -> ImportStats:
    """One transaction: new projects in bulk, the rest (and all of them, if
    the bulk write is refused) one savepoint each."""
    stats = ImportStats()
    documents: list[tuple[Task, NewRows]] = []
    for task, item in batch:
        if task.error is not None:
            stats.skipped.append((task.label, task.error))
        elif isinstance(item, str):
            stats.skipped.append((task.label, item))
        elif item is None:
            stats.projects += 1
            stats.unchanged_projects += 1
        else:
            documents.append((task, item))
    if not documents:
        return stats
    with managed_session() as db:
        classifiers.use(db)
        if db.get_bind().dialect.name == "sqlite":
            # A PyPI-sized index outgrows SQLite's 2 MB default page cache many times over.
            db.connection().exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KB}")
            # Each batch rewrites pages all over the indexes: copy them from the WAL into
            # the database every few batches, not after each (the default is 1,000 pages).
            db.connection().exec_driver_sql(f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}")
        names = {rows.name for _, rows in documents}
        stored = set(db.connection().execute(select(Package.name).where(Package.name.in_(names))).scalars())
        fresh: dict[str, NewRows] = {}
        for _, rows in documents:
            if rows.name not in stored:
                fresh.setdefault(rows.name, rows)
        known = set(classifiers.ids)
        savepoint = db.begin_nested()
        try:
            stats.add(insert_new(db, list(fresh.values()), classifiers))
            savepoint.commit()
        except IntegrityError:
            savepoint.rollback()
            classifiers.forget(set(classifiers.ids) - known)
            fresh = {}
        written = {id(rows) for rows in fresh.values()}
        for task, rows in documents:
            if id(rows) in written:
                continue
            try:
                stats.add(import_document(db, _project(task, rows.digest), classifiers))
            except DocumentError as exc:
                stats.skipped.append((task.label, str(exc)))
    return stats


def _known_digests() -> set[bytes]:
    with managed_session() as db:  # a million rows: Core, not ORM, rows
        rows = db.connection().execute(select(Package.import_digest).where(Package.import_digest.is_not(None)))
        return {bytes.fromhex(digest)[:16] for digest in rows.scalars() if digest}


def _chunks(items: Iterable[Task], size: int) -> Iterator[list[Task]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def import_all(
    work: Iterable[Task], *, total: int | None = None, render: bool = True, progress: bool = True, workers: int = 0
) -> ImportStats:
    """Workers prepare the next batches while this process writes one: at
    most READ_AHEAD + 1 batches are in memory, however long the input."""
    global _known, _render
    _known, _render = _known_digests(), render
    stats = ImportStats()
    with managed_session() as db:
        classifiers = ClassifierCache(db)
    context = multiprocessing.get_context("fork")
    # As many readers as CPUs: the writer waits on the database part of the time, and a
    # reader on the disk (one reader per CPU but one was 14% slower on two CPUs).
    processes = workers or os.cpu_count() or 1
    chunksize = max(1, BATCH // (4 * processes))

    def write(chunk: list[Task], prepared: list[Prepared]) -> None:
        done = write_batch(list(zip(chunk, prepared, strict=True)), classifiers)
        for label, reason in done.skipped:
            tqdm.write(f"skipped {label}: {reason}", file=sys.stderr)
        stats.add(done)
        bar.update(len(chunk))

    with (
        context.Pool(processes) as pool,
        tqdm(total=total, desc="Importing", unit="doc", disable=not progress, file=sys.stderr) as bar,
    ):
        # Batches the readers work on while this process writes: more than one, so
        # that they never wait for it to hand them the next.
        ahead: deque[tuple[list[Task], AsyncResult[list[Prepared]]]] = deque()
        for chunk in _chunks(work, BATCH):
            ahead.append((chunk, pool.map_async(prepare, [task.source for task in chunk], chunksize=chunksize)))
            if len(ahead) > READ_AHEAD:
                chunk, prepared = ahead.popleft()
                write(chunk, prepared.get())
        while ahead:
            chunk, prepared = ahead.popleft()
            write(chunk, prepared.get())
    _known = set()
    _tidy_up(stats)
    return stats


def _tidy_up(stats: ImportStats) -> None:
    """What the database would otherwise do in the middle of the site's next requests.

    SQLite: copy what the import left in the WAL into the database file.
    PostgreSQL, after an import that grew the tables by a fifth or more (when
    autovacuum would start on them soon anyway): VACUUM ANALYZE them now.
    Until then the planner knows nothing of the new rows, and an index-only
    scan visits the table for every one: ``/simple/`` and search slow down,
    and "did you mean" scans every word of ``name_words`` (README, "At a
    million projects", has the figures)."""
    engine = DbSession.engine
    if engine is None:
        return
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    with managed_session() as db:
        total = counts(db)
    grew = ((stats.new_projects, total.projects), (stats.new_releases, total.releases), (stats.new_files, total.files))
    if any(new and new * 5 >= now for new, now in grew):
        tables = ", ".join(table.name for table in BULK_TABLES)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {tables}")


def summary_line(stats: ImportStats, seconds: float) -> str:
    documents = stats.projects + len(stats.skipped)
    return (
        f"{stats.projects} projects ({stats.new_projects} new, {stats.updated_projects} updated, "
        f"{stats.unchanged_projects} unchanged), "
        f"{stats.releases} releases read ({stats.new_releases} new), "
        f"{stats.files} files read ({stats.new_files} new), "
        f"{len(stats.skipped)} skipped, in {seconds:.2f} s ({documents / max(seconds, 1e-9):,.0f} documents/s)"
    )


@command("myapp-import")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="myapp-import", description=__doc__.split("\n\n")[0], parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. development.ini")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="documents, NDJSON files, folders, or - for stdin")
    parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    parser.add_argument(
        "--defer-rendering",
        action="store_true",
        help="store descriptions unrendered (each renders on its first view, or run myapp-rerender): "
        "for imports too big to render now",
    )
    parser.add_argument("--workers", type=int, default=0, help="reading processes (default: one per CPU)")
    args = parser.parse_args(argv)

    load_settings(args.config_uri)
    files = [p for p in args.paths if p != "-" and Path(p).is_file() and not p.endswith(STREAMS)]
    total = len(files) if len(files) == len(args.paths) else None
    started = time.perf_counter()
    stats = import_all(
        tasks(args.paths),
        total=total,
        render=not args.defer_rendering,
        progress=not args.no_progress,
        workers=args.workers,
    )
    if not stats.projects and not stats.skipped:
        print("No documents found.", file=sys.stderr)
        return 1
    print(summary_line(stats, time.perf_counter() - started))
    return 0 if not stats.skipped else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Queries about projects, releases and files, and the serial that marks a change.

Views call these; they never build SQL themselves. Every function takes the
session as its first argument, so the same code serves requests
(``request.dbsession``), scripts and tests. The rest of the package's
services are by concern: ``search`` (full-text search and its ranking),
``roles`` (who maintains what), ``journal`` (who changed what),
``publish`` (new projects, releases and files) and ``maintain`` (yanking
and deleting).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    bindparam,
    false,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, defer, selectinload

from myapp.data.meta import table_of, utcnow
from myapp.data.paging import PER_PAGE
from myapp.packaging.models import IndexStats, Package, Release, ReleaseFile
from myapp.packaging.names import normalize
from myapp.packaging.rendering import RENDERER

SortOrder = Literal["name", "updated"]
SORT_ORDERS: tuple[SortOrder, ...] = ("name", "updated")


@dataclass(frozen=True)
class IndexCounts:
    projects: int
    releases: int
    files: int


@dataclass(frozen=True)
class ProjectRow:
    """A line in a list of projects: the package and its latest version."""

    package: Package
    latest_version: str | None


def latest_version_of(package_id_column: SQLColumnExpression[int]) -> ScalarSelect[str]:
    """Correlated subquery: the version ``pip install`` would pick, i.e. the
    newest non-yanked final release, else the newest non-yanked pre-release."""
    return (
        select(Release.version)
        .where(Release.package_id == package_id_column, Release.yanked == false())
        .order_by(Release.is_prerelease, Release.sort_key.desc())
        .limit(1)
        .scalar_subquery()
    )


def counts(db: Session) -> IndexCounts:
    """Projects, releases and files: one row that triggers keep (migration 0005)."""
    stats = db.get(IndexStats, 1)
    return IndexCounts(stats.projects, stats.releases, stats.files) if stats else IndexCounts(0, 0, 0)


def add_to_counts(db: Session, *, projects: int = 0, releases: int = 0, files: int = 0) -> None:
    """For bulk writes made with the counting triggers off; everything else is counted by them."""
    db.execute(
        update(IndexStats)
        .where(IndexStats.id == 1)
        .values(
            projects=IndexStats.projects + projects,
            releases=IndexStats.releases + releases,
            files=IndexStats.files + files,
        )
    )


def project_rows(db: Session, stmt: Select) -> list[ProjectRow]:
    """The packages ``stmt`` selects, each with its latest version: one statement."""
    # Lists never show the description (often tens of KB): leave it in the
    # database, and make any accidental use fail loudly instead of a query per row.
    stmt = stmt.add_columns(latest_version_of(Package.id).label("latest_version")).options(
        defer(Package.description, raiseload=True), defer(Package.description_html, raiseload=True)
    )
    return [ProjectRow(package, latest) for package, latest in db.execute(stmt)]


def recently_updated(db: Session, limit: int = 10) -> list[ProjectRow]:
    return project_rows(db, select(Package).order_by(Package.updated.desc(), Package.id.desc()).limit(limit))


# -- browsing: keyset pages, as fast deep in a million projects as on the first page ----


@dataclass(frozen=True)
class BrowsePage:
    """Projects after (or before) a cursor, which is a project's name."""

    items: list[ProjectRow]
    total: int
    next_after: str | None  # the cursor for the next page, if there is one
    previous_before: str | None  # the cursor for the previous page, if there is one


def browse(
    db: Session,
    *,
    sort: SortOrder = "name",
    after: str | None = None,
    before: str | None = None,
    start: str | None = None,
    per_page: int = PER_PAGE,
) -> BrowsePage:
    """One page of projects by name (from ``start``, inclusive) or by last
    update, after or before the named project: two statements (the page,
    and the total)."""
    if sort == "name":
        key: tuple[SQLColumnExpression[Any], ...] = (Package.name,)
        newest_first = False

        def cursor(name: str) -> tuple[Any, ...]:
            return (literal(name),)
    else:
        key = (Package.updated, Package.id)
        newest_first = True

        def cursor(name: str) -> tuple[Any, ...]:
            named = Package.name == name
            return (
                select(Package.updated).where(named).scalar_subquery(),
                select(Package.id).where(named).scalar_subquery(),
            )

    where: list[ColumnElement[bool]] = []
    backwards = before is not None
    if after is not None or before is not None:
        later = tuple_(*key) > tuple_(*cursor(after or before or ""))
        earlier = tuple_(*key) < tuple_(*cursor(after or before or ""))
        # "after" in page order: later keys by name, earlier keys newest-first.
        where.append((earlier if newest_first else later) if not backwards else (later if newest_first else earlier))
    elif start is not None and sort == "name":
        where.append(Package.name >= start)
    descending = newest_first != backwards
    order = [k.desc() if descending else k.asc() for k in key]
    rows = project_rows(db, select(Package).where(*where).order_by(*order).limit(per_page + 1))
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    first, last = (rows[0].package.name, rows[-1].package.name) if rows else (None, None)
    has_next = more if not backwards else True
    has_previous = (after is not None or (start is not None and sort == "name")) if not backwards else more
    return BrowsePage(
        rows,
        counts(db).projects,
        last if has_next and rows else None,
        first if has_previous and rows else None,
    )


# The page cache's check runs this on a raw connection (myapp.data.ReadProbe).
# Projects are never deleted, so the highest serial only grows: a value once
# seen never comes back with other data behind it.
INDEX_SERIAL_SQL = "SELECT max(last_serial) FROM packages"
# The project page's fragment key, on a raw connection too: the project's download
# total (a download bumps no serial) and the index's serial (a change to any
# project, such as one of its dependencies arriving here, bumps it).
PROJECT_FRAGMENT_KEY_SQL = "SELECT downloads, (SELECT max(last_serial) FROM packages) FROM packages WHERE name = :name"


def index_serial(db: Session) -> int:
    """The highest serial: it changes whenever any project does."""
    return db.scalar(select(func.max(Package.last_serial))) or 0


def bump_serial(db: Session, package: Package) -> int:
    """Mark a change to the project: its serial becomes the index's highest."""
    package.import_digest = None  # no longer what any imported document says
    package.last_serial = index_serial(db) + 1
    return package.last_serial


def next_serial() -> ScalarSelect[int]:
    """The index's next serial, for a Core UPDATE of a project (as ``bump_serial`` sets it on an object)."""
    others = table_of(Package).alias("others")  # not correlated with the row being updated
    return select(func.coalesce(func.max(others.c.last_serial), 0) + 1).scalar_subquery()


def touched() -> dict[str, Any]:
    """A Core UPDATE's values, besides ``next_serial``, for "the project changed now": its update
    time, and no imported document's digest (as ``bump_serial`` clears it)."""
    return {"updated": utcnow(), "import_digest": None}


def versions_of(db: Session, package_id: int) -> list[str]:
    """The project's versions, oldest first: one statement."""
    return list(db.scalars(select(Release.version).where(Release.package_id == package_id).order_by(Release.sort_key)))


def files_with_yank_reasons(db: Session, package_id: int) -> list[tuple[ReleaseFile, str | None]]:
    """Every file of the project, by release (oldest first) and name, with
    its release's yank reason: one statement."""
    stmt = (
        select(ReleaseFile, Release.yanked_reason)
        .join(Release)
        .where(Release.package_id == package_id)
        .order_by(Release.sort_key, ReleaseFile.filename)
    )
    return list(db.execute(stmt).tuples())


# Every project in the listing of /simple/, a million rows: plain tuples of
# just the columns each format needs, from the driver (half the time of
# SQLAlchemy's rows), formatted by the caller.
LISTING_HTML = "SELECT name, display_name FROM packages ORDER BY name"
LISTING_JSON = "SELECT display_name, last_serial FROM packages ORDER BY name"
LISTING_BATCH = 20_000


def listing_batches(session_factory: Callable[[], Session], sql: str) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql`` (``LISTING_HTML`` or ``LISTING_JSON``) a batch at a
    time, from a session of its own (a response streamed after the request's
    session has ended reads them); on PostgreSQL from a server-side cursor,
    so they never sit in memory together."""
    with session_factory() as db:
        connection = db.connection()  # in the session's transaction
        driver: Any = connection.connection.driver_connection  # the DBAPI connection: sqlite3 or psycopg
        postgresql = connection.dialect.name == "postgresql"
        cursor = driver.cursor(name="myapp_simple_index") if postgresql else driver.cursor()
        try:
            cursor.execute(sql)
            while batch := cursor.fetchmany(LISTING_BATCH):
                yield batch
        finally:
            cursor.close()


def find_package(db: Session, name: str, *, lean: bool = False) -> Package | None:
    """The package by (normalized) name, with classifiers loaded; ``lean``:
    without them and without the description (tool routes read neither)."""
    return db.scalar(_LEAN_PACKAGE if lean else _PACKAGE_WITH_CLASSIFIERS, {"name": normalize(name)})


# find_package's statements, built once (every project route's first read).
_PACKAGE = select(Package).where(Package.name == bindparam("name"))
_LEAN_PACKAGE = _PACKAGE.options(defer(Package.description), defer(Package.description_html))
_PACKAGE_WITH_CLASSIFIERS = _PACKAGE.options(selectinload(Package.classifiers))


def package_by_id(db: Session, package_id: int) -> Package | None:
    """Without the description, which no tool route reads."""
    return db.get(Package, package_id, options=[defer(Package.description), defer(Package.description_html)])


@dataclass(frozen=True)
class ProjectVersion:
    """What says whether a project's pages changed: the serial every write
    bumps, and its creation time (a project deleted and made again under the
    same name may get the same id and serial back on SQLite), as the database
    returns it (a key, not for display); and its download total, which moves
    without a serial (the JSON API shows each file's count)."""

    id: int
    name: str
    last_serial: int
    created: Any
    downloads: int


# One indexed row each, read by myapp.data.rawread (a ReadProbe): the hottest reads.
PROJECT_VERSION_SQL = "SELECT id, name, last_serial, created, downloads FROM packages WHERE name = :name"
DOWNLOAD_SQL = (
    "SELECT f.id, f.filename, f.storage_path, f.url, f.sha256, f.metadata_sha256, r.package_id "
    "FROM release_files f JOIN releases r ON r.id = f.release_id WHERE f.filename = :filename"
)
RowReader = Callable[..., tuple[Any, ...] | None]  # (sql, **params) -> the first row


def project_version(read: RowReader, name: str) -> ProjectVersion | None:
    """The project's id, name, serial, creation time and download total: one indexed row, no ORM object."""
    row = read(PROJECT_VERSION_SQL, name=normalize(name))
    return ProjectVersion(*row) if row is not None else None


HISTORY_SHOWN = 30  # releases on a project page; the rest are one click away


def release_history(db: Session, package: Package, limit: int | None = None) -> list[Release]:
    """Releases, newest first (all, or the newest ``limit``): one statement."""
    stmt = select(Release).where(Release.package_id == package.id).order_by(Release.sort_key.desc())
    return list(db.scalars(stmt.limit(limit)))


def latest_in_history(db: Session, package: Package, newest: list[Release], complete: bool) -> Release | None:
    """``latest_of``'s answer taken from the newest releases (newest first)
    when they settle it, with no statement: a live final release among them is
    the newest there is, and ``complete`` (they are all the releases) settles
    the rest. Otherwise ``latest_of`` asks the database."""
    for release in newest:
        if not (release.yanked or release.is_prerelease):
            return release
    if complete:  # latest_of's order; min() keeps the newest of equals
        return min(newest, key=lambda r: (r.yanked, r.is_prerelease), default=None)
    return latest_of(db, package)


def latest_of(db: Session, package: Package) -> Release | None:
    """The release ``pip install`` picks, as ``latest_version_of``; if every
    release is yanked, the newest final one. One statement."""
    return db.scalar(
        select(Release)
        .where(Release.package_id == package.id)
        .order_by(Release.yanked, Release.is_prerelease, Release.sort_key.desc())
        .limit(1)
    )


def store_description(db: Session, package_id: int, html: str, *, replace: bool = False) -> None:
    """Keep a description's rendering (not a change: no serial bump). One
    rendered on demand fills only a gap; ``replace`` overwrites what an older
    renderer made (``myapp-rerender``)."""
    stmt = update(Package).where(Package.id == package_id)
    if not replace:
        stmt = stmt.where(Package.description_renderer.is_(None))
    db.execute(stmt.values(description_html=html, description_renderer=RENDERER))


def downloads_by_release(db: Session, releases: list[Release]) -> dict[int, int]:
    """Release id -> downloads of its files, in one statement. A release
    without files is absent (its page shows no release date)."""
    rows = db.execute(
        select(ReleaseFile.release_id, func.sum(ReleaseFile.downloads))
        .where(ReleaseFile.release_id.in_([r.id for r in releases]))
        .group_by(ReleaseFile.release_id)
    )
    return {release_id: int(total or 0) for release_id, total in rows}


def releases_with_files(db: Session, package: Package) -> list[Release]:
    """All releases, newest first, with their files: two statements."""
    stmt = (
        select(Release)
        .where(Release.package_id == package.id)
        .order_by(Release.sort_key.desc())
        .options(selectinload(Release.files))
    )
    return list(db.scalars(stmt))


def latest_release(releases: list[Release]) -> Release | None:
    """From a newest-first history, the same choice as ``latest_version_of``;
    if every release is yanked, the newest."""
    live = [r for r in releases if not r.yanked]
    for choices in ([r for r in live if not r.is_prerelease], live, releases):
        if choices:
            return choices[0]
    return None


def find_release(db: Session, package: Package, version: str) -> Release | None:
    return db.scalar(
        select(Release)
        .where(Release.package_id == package.id, Release.version == version)
        .options(selectinload(Release.files))
    )


def files_of(db: Session, release: Release | None) -> list[ReleaseFile]:
    """A release's files by name, in one statement (none without a release)."""
    if release is None:
        return []
    return list(
        db.scalars(select(ReleaseFile).where(ReleaseFile.release_id == release.id).order_by(ReleaseFile.filename))
    )


def find_file(db: Session, filename: str) -> ReleaseFile | None:
    return db.scalar(select(ReleaseFile).where(ReleaseFile.filename == filename))


@dataclass(frozen=True)
class StoredFile:
    """What serving and counting a download need, as plain columns."""

    id: int
    filename: str
    storage_path: str | None
    url: str | None
    sha256: str
    metadata_sha256: str | None
    package_id: int


def find_download(read: RowReader, filename: str) -> StoredFile | None:
    """The file with its project's id: one joined row, no ORM object."""
    row = read(DOWNLOAD_SQL, filename=filename)
    return StoredFile(*row) if row is not None else None


def count_downloads(db: Session, files: dict[int, int], packages: dict[int, int]) -> None:
    """Add to download counts: file id -> downloads, project id -> downloads.

    Increments are done in SQL (``downloads = downloads + n``), so processes
    counting at the same time never lose a count on SQLite or PostgreSQL.
    Two statements (each run for many rows at once), whatever the numbers.
    """
    # On the session's connection, not through the ORM: a plain executemany.
    connection = db.connection()
    if files:
        rows = [{"file_id": key, "n": n} for key, n in sorted(files.items())]  # sorted: one lock order
        stmt = update(ReleaseFile).where(ReleaseFile.id == bindparam("file_id"))
        connection.execute(stmt.values(downloads=ReleaseFile.downloads + bindparam("n")), rows)
    if packages:
        # The project's total is search's popularity signal.
        rows = [{"package_id": key, "n": n} for key, n in sorted(packages.items())]
        stmt = update(Package).where(Package.id == bindparam("package_id"))
        connection.execute(stmt.values(downloads=Package.downloads + bindparam("n")), rows)

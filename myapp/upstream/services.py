"""Queries and writes about upstream projects, their files and the policy.
Every function takes the session first; the caller decides the transaction."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from myapp.data.meta import stored_time
from myapp.packaging.services import RowReader
from myapp.upstream.models import UpstreamFile, UpstreamPolicy, UpstreamProject, UpstreamRelease
from myapp.upstream.policy import ProjectPolicy, visible
from myapp.upstream.settings import UpstreamSettings


def find_project(db: Session, name: str) -> UpstreamProject | None:
    return db.scalar(select(UpstreamProject).where(UpstreamProject.name == name))


def live_files(db: Session, project_id: int) -> list[UpstreamFile]:
    """The project's files not removed upstream, by filename."""
    stmt = (
        select(UpstreamFile)
        .where(UpstreamFile.project_id == project_id, UpstreamFile.removed_at.is_(None))
        .order_by(UpstreamFile.filename)
    )
    return list(db.scalars(stmt))


# Whether a hosted name's owner asked for upstream files beside theirs: one indexed row, read raw.
ALSO_SERVE_SQL = "SELECT also_serve_upstream FROM upstream_policies WHERE name = :name"


@dataclass(frozen=True)
class PageState:
    """What a proxied project's kept page depends on, besides the clock: the
    stored project (id, creation, the serial every change to its files
    bumps), whether it is within the TTL and not missing upstream, and its
    policy (the exemption; the early releases, counted with the newest id)."""

    id: int
    created: Any  # as the database returns it: a key, not for display
    serial: int
    fresh: bool
    exempt: bool
    released: tuple[int, int | None]


# One indexed row, read raw (``myapp.data.rawread``): a warm proxied page reads nothing else.
PAGE_STATE_SQL = (
    "SELECT p.id, p.created, p.serial, p.fetched_at > :fresh_after AND NOT p.missing, "
    "(SELECT cooldown_exempt FROM upstream_policies WHERE name = :name), "
    "(SELECT count(*) FROM upstream_releases WHERE name = :name), "
    "(SELECT max(id) FROM upstream_releases WHERE name = :name) "
    "FROM upstream_projects p WHERE p.name = :name"
)


def page_state(read: RowReader, name: str, now: datetime, ttl: timedelta) -> PageState | None:
    """The proxied project ``name``'s ``PageState`` (None: never asked about)."""
    row = read(PAGE_STATE_SQL, name=name, fresh_after=stored_time(now - ttl))
    if row is None:
        return None
    return PageState(row[0], row[1], row[2], bool(row[3]), bool(row[4]), (row[5], row[6]))


def find_policy(db: Session, name: str) -> UpstreamPolicy | None:
    return db.scalar(select(UpstreamPolicy).where(UpstreamPolicy.name == name))


def project_policy(db: Session, settings: UpstreamSettings, name: str, row: UpstreamPolicy | None) -> ProjectPolicy:
    """The cooldown rules for one name: the settings, its exemption, its early releases
    (asked for only when a cooldown is on)."""
    released: frozenset[str] = frozenset()
    if settings.min_age:
        released = frozenset(db.scalars(select(UpstreamRelease.version).where(UpstreamRelease.name == name)))
    return ProjectPolicy(
        min_age=settings.min_age,
        freeze=settings.freeze,
        exempt=bool(row and row.cooldown_exempt),
        released=released,
    )


def shown(files: Iterable[UpstreamFile], policy: ProjectPolicy, now: datetime) -> list[UpstreamFile]:
    return [f for f in files if visible(f, policy, now)[0]]


def files_etag(files: Iterable[UpstreamFile]) -> str:
    """Short, and different whenever the shown set or a yank changes (the cooldown
    reveals files with no change upstream, so the serial alone would not do)."""
    text = "\n".join(f"{f.filename} {int(f.yanked)}" for f in files)
    return f"{zlib.crc32(text.encode()):08x}"


def _insert(db: Session) -> Any:
    return pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert


def cache_write(db: Session) -> None:
    """This transaction writes only what the upstream can give again (a claim,
    a page as fetched): on PostgreSQL its commit need not wait for the disk
    (a crash may lose the last few, which are then fetched again)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SET LOCAL synchronous_commit TO OFF"))


def create_claimed(db: Session, name: str, now: datetime, settings: UpstreamSettings) -> bool:
    """A row for a name never asked about, claimed by us; False when it exists
    (another request made it first: then ``claim`` decides)."""
    stmt = _insert(db)(UpstreamProject).values(
        name=name, display_name=name, serial=0, created=now, refreshing_until=now + settings.lease
    )
    # RETURNING, not rowcount: an ORM insert's rowcount is not reliable on every driver.
    made = db.scalar(stmt.on_conflict_do_nothing(index_elements=["name"]).returning(UpstreamProject.id))
    return made is not None


def stored_etag(db: Session, name: str) -> str | None:
    """The upstream's ETag of the page we keep (for If-None-Match), if we keep one."""
    return db.scalar(
        select(UpstreamProject.etag).where(
            UpstreamProject.name == name, UpstreamProject.fetched_at.isnot(None), UpstreamProject.missing.is_(False)
        )
    )


def claim(db: Session, name: str, now: datetime, settings: UpstreamSettings, seen_fetched_at: datetime | None) -> bool:
    """Become the one process that asks the upstream about ``name`` now: a
    conditional UPDATE, so of any number of threads and processes exactly one
    succeeds; none does while a recent failure is backing off, nor once the
    page has been fetched since the caller read it (``seen_fetched_at``: a
    request that found no page, then lost the race to one that has fetched
    it meanwhile, must not fetch it again)."""
    not_fetched_since: ColumnElement[bool]
    if seen_fetched_at is None:
        not_fetched_since = UpstreamProject.fetched_at.is_(None)
    else:
        not_fetched_since = or_(UpstreamProject.fetched_at.is_(None), UpstreamProject.fetched_at <= seen_fetched_at)
    claimed = db.scalar(
        update(UpstreamProject)
        .where(
            UpstreamProject.name == name,
            not_fetched_since,
            or_(UpstreamProject.refreshing_until.is_(None), UpstreamProject.refreshing_until < now),
            or_(UpstreamProject.last_error_at.is_(None), UpstreamProject.last_error_at < now - settings.retry_after),
        )
        .values(refreshing_until=now + settings.lease)
        .returning(UpstreamProject.id)
        .execution_options(synchronize_session=False)
    )
    return claimed is not None


# -- for operators ------------------------------------------------------------------------


def totals(db: Session, settings: UpstreamSettings, now: datetime) -> dict[str, int]:
    """Projects, pages past their TTL, files, cached files and bytes: two statements."""
    projects, stale, failing = db.execute(
        select(
            func.count(UpstreamProject.id),
            func.count(UpstreamProject.id).filter(UpstreamProject.fetched_at < now - settings.ttl),
            func.count(UpstreamProject.id).filter(
                and_(
                    UpstreamProject.last_error_at.isnot(None),
                    or_(
                        UpstreamProject.fetched_at.is_(None), UpstreamProject.last_error_at > UpstreamProject.fetched_at
                    ),
                )
            ),
        )
    ).one()
    files, cached, cached_bytes = db.execute(
        select(
            func.count(UpstreamFile.id),
            func.count(UpstreamFile.storage_path),
            func.coalesce(func.sum(UpstreamFile.cached_bytes), 0),
        )
    ).one()
    return {
        "projects": projects,
        "pages_past_ttl": stale,
        "pages_failing": failing,
        "files": files,
        "cached_files": cached,
        "cached_bytes": int(cached_bytes),
    }


def recent_errors(db: Session, limit: int = 20) -> list[UpstreamProject]:
    stmt = (
        select(UpstreamProject)
        .where(UpstreamProject.last_error_at.isnot(None))
        .order_by(UpstreamProject.last_error_at.desc())
        .limit(limit)
    )
    return list(db.scalars(stmt))


def find_release(db: Session, name: str, version: str) -> UpstreamRelease | None:
    return db.scalar(select(UpstreamRelease).where(UpstreamRelease.name == name, UpstreamRelease.version == version))


def releases(db: Session, limit: int = 100) -> list[UpstreamRelease]:
    return list(db.scalars(select(UpstreamRelease).order_by(UpstreamRelease.id.desc()).limit(limit)))


def exemptions(db: Session) -> list[UpstreamPolicy]:
    return list(db.scalars(select(UpstreamPolicy).where(UpstreamPolicy.cooldown_exempt).order_by(UpstreamPolicy.name)))


def last_attempt(db: Session) -> tuple[datetime, bool] | None:
    """When the upstream was last asked, and whether it answered (two indexed reads)."""
    ok = db.scalar(select(func.max(UpstreamProject.fetched_at)))
    failed = db.scalar(select(func.max(UpstreamProject.last_error_at)).where(UpstreamProject.page_status.is_(None)))
    if ok is None and failed is None:
        return None
    if failed is None or (ok is not None and ok >= failed):
        assert ok is not None
        return ok, True
    return failed, False


# /simple/ lists the hosted projects and the proxied ones fetched and found
# upstream (not every upstream name: we know only those asked for). A hosted
# name is listed once, as ours. Both in name order (C collation on PostgreSQL).
LISTING_HTML = (
    "SELECT name, display_name FROM ("
    " SELECT name, display_name FROM packages"
    " UNION ALL SELECT name, display_name FROM upstream_projects"
    " WHERE fetched_at IS NOT NULL AND NOT missing AND name NOT IN (SELECT name FROM packages)"
    ") AS listing ORDER BY name"
)
LISTING_JSON = (
    "SELECT display_name, serial FROM ("
    " SELECT name, display_name, last_serial AS serial FROM packages"
    " UNION ALL SELECT name, display_name, serial FROM upstream_projects"
    " WHERE fetched_at IS NOT NULL AND NOT missing AND name NOT IN (SELECT name FROM packages)"
    ") AS listing ORDER BY name"
)


def listing_version(db: Session) -> str:
    """Changes whenever a proxied name is listed or not, or its serial moves."""
    count, serials = db.execute(
        select(func.count(UpstreamProject.id), func.coalesce(func.sum(UpstreamProject.serial), 0)).where(
            UpstreamProject.fetched_at.isnot(None), UpstreamProject.missing.is_(False)
        )
    ).one()
    return f"-u{count}.{serials}"

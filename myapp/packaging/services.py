"""Queries about packages. Views call these; they never build SQL themselves.

Every function takes the session as its first argument, so the same code
serves requests (``request.dbsession``), scripts and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, ScalarSelect, Select, case, false, func, select, update
from sqlalchemy.orm import Session, contains_eager, defer, selectinload

from myapp.accounts.models import User
from myapp.data.meta import utcnow
from myapp.packaging.models import DeletedFilename, JournalEntry, Package, Release, ReleaseFile, Role, RoleName
from myapp.packaging.names import normalize
from myapp.web.pagination import PER_PAGE, Page, offset_for

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


def latest_version_of(package_id_column: ColumnElement[int]) -> ScalarSelect[str]:
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
    """Projects, releases and files, in one statement."""
    row = db.execute(
        select(
            select(func.count()).select_from(Package).scalar_subquery(),
            select(func.count()).select_from(Release).scalar_subquery(),
            select(func.count()).select_from(ReleaseFile).scalar_subquery(),
        )
    ).one()
    return IndexCounts(*row)


def _rows(db: Session, stmt: Select) -> list[ProjectRow]:
    # Lists never show the description (often tens of KB): leave it in the
    # database, and make any accidental use fail loudly instead of a query per row.
    stmt = stmt.add_columns(latest_version_of(Package.id).label("latest_version")).options(
        defer(Package.description, raiseload=True)
    )
    return [ProjectRow(package, latest) for package, latest in db.execute(stmt)]


def recently_updated(db: Session, limit: int = 10) -> list[ProjectRow]:
    return _rows(db, select(Package).order_by(Package.updated.desc(), Package.name).limit(limit))


def _page_of(
    db: Session, *, where: tuple[ColumnElement[bool], ...] = (), order: tuple[Any, ...], page: int, per_page: int
) -> Page[ProjectRow]:
    """One page of projects and the total count: two statements."""
    total = db.scalar(select(func.count()).select_from(Package).where(*where)) or 0
    stmt = select(Package).where(*where).order_by(*order).offset(offset_for(page, per_page)).limit(per_page)
    return Page(_rows(db, stmt), page, total, per_page).check_exists()


def browse(db: Session, *, sort: SortOrder = "name", page: int = 1, per_page: int = PER_PAGE) -> Page[ProjectRow]:
    order = (Package.name,) if sort == "name" else (Package.updated.desc(), Package.name)
    return _page_of(db, order=order, page=page, per_page=per_page)


def search(db: Session, query: str, *, page: int = 1, per_page: int = PER_PAGE) -> Page[ProjectRow]:
    """Projects whose name or summary contains ``query``: exact name first,
    then names that start with it, then the rest, each by name."""
    text = query.strip()
    wanted = normalize(text)
    matches = (
        Package.name.icontains(wanted, autoescape=True)
        | Package.display_name.icontains(text, autoescape=True)
        | Package.summary.icontains(text, autoescape=True)
    )
    rank = case(
        (Package.name == wanted, 0),
        (Package.name.startswith(wanted, autoescape=True), 1),
        else_=2,
    )
    return _page_of(db, where=(matches,), order=(rank, Package.name), page=page, per_page=per_page)


# The page cache's check runs this on a raw connection (myapp.data.ReadProbe).
INDEX_SERIAL_SQL = "SELECT max(last_serial) FROM packages"


def index_serial(db: Session) -> int:
    """The highest serial: it changes whenever any project does."""
    return db.scalar(select(func.max(Package.last_serial))) or 0


def bump_serial(db: Session, package: Package) -> int:
    """Mark a change to the project: its serial becomes the index's highest."""
    package.last_serial = index_serial(db) + 1
    return package.last_serial


def touch(db: Session, package: Package) -> None:
    """The project changed now: its update time and serial move on."""
    package.updated = utcnow()
    bump_serial(db, package)


def find_package(db: Session, name: str) -> Package | None:
    """The package by (normalized) name, with classifiers loaded."""
    return db.scalar(select(Package).where(Package.name == normalize(name)).options(selectinload(Package.classifiers)))


def release_history(db: Session, package: Package) -> list[Release]:
    """All releases, newest first, in one statement whatever their number."""
    return list(db.scalars(select(Release).where(Release.package_id == package.id).order_by(Release.sort_key.desc())))


def downloads_by_release(db: Session, package: Package) -> dict[int, int]:
    """Release id -> downloads of its files, in one statement. A release
    without files is absent (its page shows no release date)."""
    rows = db.execute(
        select(ReleaseFile.release_id, func.sum(ReleaseFile.downloads))
        .join(Release)
        .where(Release.package_id == package.id)
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


def count_download(db: Session, file_id: int) -> None:
    """Add one to a file's download count.

    The increment is done in SQL (``downloads = downloads + 1``), so
    concurrent downloads never lose a count on SQLite or PostgreSQL.
    """
    db.execute(update(ReleaseFile).where(ReleaseFile.id == file_id).values(downloads=ReleaseFile.downloads + 1))


# -- who maintains what -------------------------------------------------------------


class LastOwnerError(ValueError):
    """A project must keep at least one owner."""


def maintainers(db: Session, package: Package) -> list[Role]:
    """The project's roles with their users, owners first, then by name."""
    stmt = (
        select(Role)
        .join(Role.user)
        .where(Role.package_id == package.id)
        .options(contains_eager(Role.user))
        .order_by(Role.role != RoleName.OWNER, func.lower(User.username))
    )
    return list(db.scalars(stmt))


def projects_of(db: Session, user: User) -> list[Role]:
    """The user's roles with their projects, by project name."""
    stmt = (
        select(Role)
        .join(Role.package)
        .where(Role.user_id == user.id)
        .options(contains_eager(Role.package).defer(Package.description, raiseload=True))
        .order_by(Package.name)
    )
    return list(db.scalars(stmt))


def role_of(db: Session, user: User, package: Package) -> Role | None:
    return db.scalar(select(Role).where(Role.user_id == user.id, Role.package_id == package.id))


def _owners(db: Session, package: Package) -> int:
    stmt = select(func.count()).where(Role.package_id == package.id, Role.role == RoleName.OWNER)
    return db.scalar(stmt) or 0


def set_role(db: Session, package: Package, user: User, role: RoleName) -> Role:
    """Give ``user`` this role on the project (adding or changing it)."""
    current = role_of(db, user, package)
    if current is None:
        current = Role(user_id=user.id, package_id=package.id, role=role)
        db.add(current)
    elif current.role != role:
        if current.role == RoleName.OWNER and _owners(db, package) <= 1:
            raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
        current.role = role
    bump_serial(db, package)  # the project page lists its maintainers
    db.flush()
    return current


def remove_role(db: Session, package: Package, user: User) -> None:
    current = role_of(db, user, package)
    if current is None:
        return
    if current.role == RoleName.OWNER and _owners(db, package) <= 1:
        raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
    db.delete(current)
    bump_serial(db, package)
    db.flush()


# -- maintainers' changes: yank, delete, and the journal ------------------------------


def record(db: Session, package: Package, action: str, user: User | None, **where: str | None) -> None:
    """A journal entry: who did what to the project, and when."""
    db.add(
        JournalEntry(
            package_name=package.name,
            version=where.get("version"),
            filename=where.get("filename"),
            action=action,
            username=user.username if user else None,
        )
    )


def journal(db: Session, package: Package, limit: int = 100) -> list[JournalEntry]:
    stmt = select(JournalEntry).where(JournalEntry.package_name == package.name).order_by(JournalEntry.id.desc())
    return list(db.scalars(stmt.limit(limit)))


def set_yanked(db: Session, package: Package, release: Release, yanked: bool, reason: str | None, user: User) -> None:
    """Yank (pip skips it unless pinned to it, PEP 592) or un-yank a release and its files."""
    release.yanked, release.yanked_reason = yanked, (reason or None) if yanked else None
    for file in release.files:
        file.yanked = yanked
    bump_serial(db, package)
    action = f"yank release ({reason})" if yanked and reason else ("yank release" if yanked else "unyank release")
    record(db, package, action, user, version=release.version)


def is_deleted_filename(db: Session, filename: str) -> bool:
    return db.get(DeletedFilename, filename) is not None


def _forget_file(db: Session, package: Package, file: ReleaseFile, user: User) -> list[str]:
    """Journal and retire a file's name; the stored paths to remove after commit."""
    db.add(DeletedFilename(filename=file.filename))
    record(db, package, "remove file", user, version=file.release.version, filename=file.filename)
    return [p for p in (file.storage_path, file.storage_path and file.storage_path + ".metadata") if p]


def delete_file(db: Session, package: Package, file: ReleaseFile, user: User) -> list[str]:
    """Delete one file; its name is never used again. Returns the stored paths to remove."""
    paths = _forget_file(db, package, file, user)
    db.delete(file)
    bump_serial(db, package)
    return paths


def delete_release(db: Session, package: Package, release: Release, user: User) -> list[str]:
    """Delete a release and its files (the relationship's cascade deletes them)."""
    paths = [path for file in release.files for path in _forget_file(db, package, file, user)]
    db.delete(release)
    bump_serial(db, package)
    record(db, package, "remove release", user, version=release.version)
    return paths

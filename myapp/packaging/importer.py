"""Import PyPI JSON API documents (the public index's ``/pypi/<project>/json``).

Each document is validated in full first (``parse_document``), then written
all or nothing. Projects the database does not have yet are written many at
a time (``insert_new``: a few multi-row INSERTs for a whole batch); a
project it has is compared and updated inside its own SAVEPOINT
(``import_document``), and so is every document of a batch that the
database refused as a whole, so a bad document is reported and skipped,
never half-written. Importing the same document again changes nothing: rows
are matched by name, version and filename, only real differences are
written, and the document's digest lets a second run skip it unread.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from myapp.data.bulk import RowConverter, insert_rows, row_triggers_suspended
from myapp.data.meta import table_of, utcnow
from myapp.packaging.models import Classifier, Package, Release, ReleaseFile, package_classifiers
from myapp.packaging.names import is_valid_name, normalize
from myapp.packaging.publish import RELEASE_METADATA, FileFields, release_values
from myapp.packaging.search import index as search_index
from myapp.packaging.services import add_to_counts, bump_serial

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$")
# info fields copied as they are, with the longest value the column holds.
_TEXT_FIELDS = {
    "summary": 512,
    "description": None,
    "description_content_type": 128,
    "home_page": 1024,
    "license": None,
    "author": 512,
    "author_email": 512,
    "maintainer": 512,
    "maintainer_email": 512,
    "keywords": None,
    "requires_python": 255,
}


# Set by the importer's workers when they render descriptions (not compared:
# a stored rendering of the same text is as good).
RENDERED = ("description_html", "description_renderer")


class DocumentError(ValueError):
    """The document cannot be imported; the message says why."""


@dataclass(frozen=True)
class FileData(FileFields):
    """A file as the document lists it: stored elsewhere (``url``), not here."""

    upload_time: datetime
    yanked: bool
    url: str | None

    def columns(self) -> tuple[Any, ...]:
        """The row's values, in the order of ``_FILE_COLUMNS`` after ``release_id``."""
        return (
            self.filename,
            self.packagetype,
            self.python_version,
            self.requires_python,
            self.size,
            self.sha256,
            self.upload_time,
            self.yanked,
            self.url,
        )


# A document gives a release's own core metadata for its ``info.version``
# only: None for the others (unknown, kept as stored).
_RELEASE_FIELDS = RELEASE_METADATA
_NO_CORE = dict.fromkeys(_RELEASE_FIELDS)


@dataclass
class ReleaseData:
    version: str
    files: list[FileData] = field(default_factory=list)
    summary: str | None = None
    core: dict[str, Any] | None = None  # _RELEASE_FIELDS -> value, for info.version's release
    # Worked out with the rest of the document (in the importer's workers, not its writer).
    sort_key: str = ""
    is_prerelease: bool = False

    def __post_init__(self) -> None:
        values = release_values(self.version)
        self.sort_key, self.is_prerelease = values["sort_key"], values["is_prerelease"]

    def columns(self, project_created: datetime) -> tuple[Any, ...]:
        """The row's values, in the order of ``_RELEASE_COLUMNS`` after ``package_id``.
        The column needs a date even without files (the project's first upload);
        pages show none for such a release."""
        created = self.created or project_created
        return (
            self.version,
            self.sort_key,
            self.is_prerelease,
            self.summary,
            self.requires_python,
            self.yanked,
            created,
            *(self.core or _NO_CORE).values(),
        )

    @property
    def created(self) -> datetime | None:
        return min((f.upload_time for f in self.files), default=None)

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked for f in self.files)

    @property
    def requires_python(self) -> str | None:
        return next((f.requires_python for f in self.files if f.requires_python), None)


@dataclass
class ProjectData:
    name: str
    fields: dict[str, Any]
    classifiers: list[str]
    releases: list[ReleaseData]
    digest: str | None = None  # of the document's bytes, stored as Package.import_digest

    def upload_times(self) -> list[datetime]:
        return [f.upload_time for r in self.releases for f in r.files]


@dataclass
class ImportStats:
    projects: int = 0
    new_projects: int = 0
    updated_projects: int = 0
    unchanged_projects: int = 0  # of the documents skipped unread (their digest is stored)
    releases: int = 0
    new_releases: int = 0
    files: int = 0
    new_files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    COUNTS = (
        "projects",
        "new_projects",
        "updated_projects",
        "unchanged_projects",
        "releases",
        "new_releases",
        "files",
        "new_files",
    )

    def add(self, other: ImportStats) -> None:
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.extend(other.skipped)


# -- validation ---------------------------------------------------------------


def _text(value: Any, what: str, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DocumentError(f"{what} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise DocumentError(f"{what} contains a NUL character")
    value = value.strip()
    if value in ("", "UNKNOWN"):  # old metadata spells "missing" as UNKNOWN
        return None
    if limit is not None and len(value) > limit:
        raise DocumentError(f"{what} is longer than {limit} characters")
    return value


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise DocumentError(f"{what} is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DocumentError(f"{what} is not an ISO 8601 time: {value[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _file(raw: Any, version: str) -> FileData:
    if not isinstance(raw, Mapping):
        raise DocumentError(f"release {version!r}: a file entry is not an object")
    filename = raw.get("filename")
    if not isinstance(filename, str) or not _FILENAME.match(filename):
        raise DocumentError(f"release {version!r}: bad filename {str(filename)[:80]!r}")
    where = f"file {filename!r}"
    digests = raw.get("digests")
    sha256 = digests.get("sha256") if isinstance(digests, Mapping) else None
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise DocumentError(f"{where}: digests.sha256 is missing or not 64 hex digits")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise DocumentError(f"{where}: size must be a non-negative integer")
    packagetype = _text(raw.get("packagetype"), f"{where}: packagetype", 32)
    if not packagetype:
        raise DocumentError(f"{where}: packagetype is missing")
    url = _text(raw.get("url"), f"{where}: url", 2048)
    if url is not None and not url.startswith(("https://", "http://")):
        raise DocumentError(f"{where}: url must be http(s)")
    return FileData(
        filename=filename,
        packagetype=packagetype,
        python_version=_text(raw.get("python_version"), f"{where}: python_version", 64),
        requires_python=_text(raw.get("requires_python"), f"{where}: requires_python", 255),
        size=size,
        sha256=sha256,
        upload_time=_time(raw.get("upload_time_iso_8601") or raw.get("upload_time"), f"{where}: upload_time"),
        yanked=bool(raw.get("yanked", False)),
        url=url,
    )


def parse_document(doc: Any) -> ProjectData:
    """Check a whole document and turn it into plain data, or raise DocumentError."""
    if not isinstance(doc, Mapping):
        raise DocumentError("the document is not a JSON object")
    info = doc.get("info")
    releases = doc.get("releases")
    if not isinstance(info, Mapping):
        raise DocumentError("'info' is missing or not an object")
    if not isinstance(releases, Mapping):
        raise DocumentError("'releases' is missing or not an object")
    display_name = _text(info.get("name"), "info.name", 200)
    if not display_name or not is_valid_name(display_name):
        raise DocumentError(f"info.name {info.get('name')!r} is not a valid project name")

    fields: dict[str, Any] = {
        name: _text(info.get(name), f"info.{name}", limit) for name, limit in _TEXT_FIELDS.items()
    }
    fields["display_name"] = display_name
    fields["project_urls"] = _project_urls(info)

    classifiers = info.get("classifiers") or []
    if not isinstance(classifiers, list):
        raise DocumentError("info.classifiers must be a list")
    clean_classifiers = sorted({c for c in (_text(c, "a classifier", 255) for c in classifiers) if c})

    parsed: list[ReleaseData] = []
    seen_files: set[str] = set()
    for version, files in releases.items():
        if not isinstance(version, str) or not version or len(version) > 100 or "\x00" in version:
            raise DocumentError(f"bad version {str(version)[:40]!r}")
        if not isinstance(files, list):
            raise DocumentError(f"release {version!r}: files must be a list")
        release = ReleaseData(version=version, files=[_file(f, version) for f in files])
        for f in release.files:
            if f.filename in seen_files:
                raise DocumentError(f"file {f.filename!r} appears twice")
            seen_files.add(f.filename)
        if version == info.get("version"):
            release.summary = fields["summary"]
            release.core = _release_core(info)
        parsed.append(release)
    return ProjectData(normalize(display_name), fields, clean_classifiers, parsed)


def _texts(value: Any, what: str) -> list[str] | None:
    """A list of strings (Requires-Dist, ...), or None as PyPI serves "none"."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 1000:
        raise DocumentError(f"{what} must be a list of at most 1000 strings")
    texts = [t for t in (_text(item, f"an entry of {what}", 1000) for item in value) if t]
    return texts or None


def _release_core(info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``info`` fields that belong to its release, by ``Release`` column."""
    core: dict[str, Any] = {
        name: _texts(info.get(name), f"info.{name}")
        for name in ("requires_dist", "provides_extra", "license_files", "dynamic")
    }
    core["license_expression"] = _text(info.get("license_expression"), "info.license_expression", 1000)
    platform = _text(info.get("platform"), "info.platform", 1000)  # a string in PyPI's JSON
    core["platform"] = [platform] if platform else None
    core["download_url"] = _text(info.get("download_url"), "info.download_url", 1024)
    return {name: core[name] for name in _RELEASE_FIELDS}


def _project_urls(info: Mapping[str, Any]) -> dict[str, str]:
    urls: dict[str, str] = {}
    raw = info.get("project_urls")
    if isinstance(raw, Mapping):
        for label, url in raw.items():
            label_text = _text(label, "a project URL label", 100)
            url_text = _text(url, f"project URL {label!r}", 1024)
            if label_text and url_text:
                urls[label_text] = url_text
    for key, label in (("download_url", "Download"), ("docs_url", "Documentation")):
        value = _text(info.get(key), f"info.{key}", 1024)
        if value and label not in urls:
            urls[label] = value
    return urls


# -- writing ------------------------------------------------------------------


class ClassifierCache:
    """Classifier text -> id, loaded once per import and extended as needed."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.ids: dict[str, int] = {name: id_ for name, id_ in db.execute(select(Classifier.classifier, Classifier.id))}

    def ids_for(self, names: Iterable[str]) -> set[int]:
        missing = [n for n in names if n not in self.ids]
        if missing:
            rows = self.db.execute(
                insert(Classifier).returning(Classifier.classifier, Classifier.id),
                [{"classifier": n} for n in missing],
            )
            self.ids.update({name: id_ for name, id_ in rows})
        return {self.ids[n] for n in names}

    def use(self, db: Session) -> ClassifierCache:
        """Write new classifiers through ``db`` from now on (one session per batch)."""
        self.db = db
        return self

    def forget(self, names: Iterable[str]) -> None:
        """Drop ids that a rolled-back savepoint created."""
        for n in names:
            self.ids.pop(n, None)


def import_document(db: Session, project: ProjectData, classifiers: ClassifierCache) -> ImportStats:
    """Write one validated project in a SAVEPOINT; raise DocumentError (with
    nothing written) if the database refuses it."""
    known_classifiers = set(classifiers.ids)
    savepoint = db.begin_nested()
    try:
        stats = _write(db, project, classifiers)
        savepoint.commit()
    except IntegrityError as exc:
        savepoint.rollback()
        classifiers.forget(set(classifiers.ids) - known_classifiers)
        raise DocumentError(f"conflicts with data already stored: {exc.orig}") from None
    return stats


def _write(db: Session, project: ProjectData, classifiers: ClassifierCache) -> ImportStats:
    stats = ImportStats(projects=1, releases=len(project.releases))
    stats.files = sum(len(r.files) for r in project.releases)
    times = project.upload_times()
    now = utcnow()

    package = db.scalar(select(Package).where(Package.name == project.name))
    if package is None:
        package = Package(name=project.name, created=min(times, default=now), updated=max(times, default=now))
        db.add(package)
        stats.new_projects = 1
    changed = False
    described = package.description, package.description_content_type
    for key, value in project.fields.items():
        if key not in RENDERED and getattr(package, key) != value:
            setattr(package, key, value)
            changed = True
    if described != (package.description, package.description_content_type) or package.description_renderer is None:
        # Rendered by the worker, or (--defer-rendering) on first view or by myapp-rerender.
        package.description_html, package.description_renderer = (project.fields.get(k) for k in RENDERED)
    if times and (package.updated is None or max(times) > package.updated):
        package.updated = max(times)
        changed = True
    db.flush()

    _write_classifiers(db, package.id, classifiers.ids_for(project.classifiers))

    core_columns = [getattr(Release, name) for name in _RELEASE_FIELDS]
    existing = {
        version: (release_id, yanked, summary, requires_python, dict(zip(_RELEASE_FIELDS, core, strict=True)))
        for release_id, version, yanked, summary, requires_python, *core in db.execute(
            select(
                Release.id, Release.version, Release.yanked, Release.summary, Release.requires_python, *core_columns
            ).where(Release.package_id == package.id)
        )
    }
    new_releases = [r for r in project.releases if r.version not in existing]
    release_ids = {v: row[0] for v, row in existing.items()}
    if new_releases:
        rows = db.execute(
            insert(Release).returning(Release.id, Release.version),
            [dict(zip(_RELEASE_COLUMNS, (package.id, *r.columns(package.created)), strict=True)) for r in new_releases],
        )
        release_ids.update({version: rid for rid, version in rows})
        stats.new_releases = len(new_releases)
    touched = bool(new_releases)
    for r in project.releases:
        if r.version in existing:
            _, yanked, summary, requires_python, core = existing[r.version]
            wanted = (r.yanked, r.summary or summary, r.requires_python, r.core or core)
            if (yanked, summary, requires_python, core) != wanted:
                touched = True
                db.execute(
                    update(Release)
                    .where(Release.id == release_ids[r.version])
                    .values(yanked=wanted[0], summary=wanted[1], requires_python=wanted[2], **wanted[3])
                )

    stats.new_files, files_touched = _write_files(db, project, release_ids)
    if changed or touched or files_touched or stats.new_projects:
        bump_serial(db, package)
        if not stats.new_projects:
            stats.updated_projects = 1
    package.import_digest = project.digest
    return stats


def _write_classifiers(db: Session, package_id: int, wanted: set[int]) -> None:
    have = set(
        db.scalars(select(package_classifiers.c.classifier_id).where(package_classifiers.c.package_id == package_id))
    )
    if wanted - have:
        db.execute(insert(package_classifiers), [{"package_id": package_id, "classifier_id": c} for c in wanted - have])
    if have - wanted:
        db.execute(
            delete(package_classifiers).where(
                package_classifiers.c.package_id == package_id, package_classifiers.c.classifier_id.in_(have - wanted)
            )
        )


def _write_files(db: Session, project: ProjectData, release_ids: dict[str, int]) -> tuple[int, bool]:
    """Insert new files and update yanked flags: (new files, anything changed)."""
    have: dict[str, bool] = {}
    if release_ids:
        rows = db.execute(
            select(ReleaseFile.filename, ReleaseFile.yanked).where(ReleaseFile.release_id.in_(release_ids.values()))
        )
        have = {filename: yanked for filename, yanked in rows}
    new_rows = []
    touched = False
    for r in project.releases:
        for f in r.files:
            if f.filename not in have:
                new_rows.append(dict(zip(_FILE_COLUMNS, (release_ids[r.version], *f.columns()), strict=True)))
            elif have[f.filename] != f.yanked:
                touched = True
                db.execute(update(ReleaseFile).where(ReleaseFile.filename == f.filename).values(yanked=f.yanked))
    if new_rows:
        db.execute(insert(ReleaseFile), new_rows)
    return len(new_rows), touched or bool(new_rows)


# -- many new projects at once ------------------------------------------------------


class NewRows(NamedTuple):
    """A new project's rows for ``insert_new``, converted for the database
    (in the importer's workers; a tuple, cheap to pass between processes);
    the writer puts the ids in front."""

    name: str
    classifiers: tuple[str, ...]
    package: tuple[Any, ...]  # _PACKAGE_COLUMNS after last_serial
    releases: list[tuple[Any, ...]]  # _RELEASE_COLUMNS after package_id
    files: list[tuple[str, tuple[Any, ...]]]  # (version, _FILE_COLUMNS after release_id)

    @property
    def digest(self) -> str | None:
        return self.package[-1]


def new_rows(project: ProjectData, dialect: Any) -> NewRows:
    packages, releases, files = _converters(dialect)
    times = project.upload_times()
    now = utcnow()
    first, last = min(times, default=now), max(times, default=now)
    fields = {**_PACKAGE_DEFAULTS, **project.fields}
    package = (project.name, *(fields[c] for c in _PACKAGE_FIELDS), first, last, project.digest)
    release_rows = [releases(r.columns(first)) for r in project.releases]
    file_rows = [(r.version, files(f.columns())) for r in project.releases for f in r.files]
    return NewRows(project.name, tuple(project.classifiers), packages(package), release_rows, file_rows)


@functools.cache
def _converters(dialect: Any) -> tuple[RowConverter, RowConverter, RowConverter]:
    return (
        RowConverter(table_of(Package), _PACKAGE_COLUMNS[1:], dialect),
        RowConverter(table_of(Release), _RELEASE_COLUMNS[1:], dialect),
        RowConverter(table_of(ReleaseFile), _FILE_COLUMNS[1:], dialect),
    )


def insert_new(db: Session, projects: list[NewRows], classifiers: ClassifierCache) -> ImportStats:
    """Write projects the database does not have (``new_rows`` of each), with
    one bulk INSERT (or COPY) per table for the lot; raises IntegrityError
    (the caller rolls back and goes document by document) if the database
    refuses any of it."""
    stats = ImportStats()
    if not projects:
        return stats
    with row_triggers_suspended(db, "packages", "releases", "release_files") as suspended:
        # New rows get ids above today's highest: read them back by range, not a list.
        serial, last_package, last_release = db.execute(
            select(func.max(Package.last_serial), func.max(Package.id), select(func.max(Release.id)).scalar_subquery())
        ).one()
        serial, last_package, last_release = serial or 0, last_package or 0, last_release or 0
        package_rows = [(serial + i, *p.package) for i, p in enumerate(projects, 1)]
        insert_rows(db, table_of(Package), _PACKAGE_COLUMNS, package_rows, converted=True)
        connection = db.connection()  # plain rows, no ORM loading, for these two reads
        ids = dict(connection.execute(select(Package.name, Package.id).where(Package.id > last_package)).tuples().all())

        release_rows = [(ids[p.name], *release) for p in projects for release in p.releases]
        insert_rows(db, table_of(Release), _RELEASE_COLUMNS, release_rows, converted=True)
        stmt = select(Release.package_id, Release.version, Release.id).where(Release.id > last_release)
        release_ids = {(package_id, version): id_ for package_id, version, id_ in connection.execute(stmt)}

        file_rows = [(release_ids[(ids[p.name], version)], *file) for p in projects for version, file in p.files]
        insert_rows(db, table_of(ReleaseFile), _FILE_COLUMNS, file_rows, converted=True)
        links = [(ids[p.name], cid) for p in projects for cid in sorted(classifiers.ids_for(p.classifiers))]
        insert_rows(db, package_classifiers, ("package_id", "classifier_id"), links)

        stats.projects, stats.releases, stats.files = len(projects), len(release_rows), len(file_rows)
        if suspended:  # the triggers' work, once for the batch
            search_index.index_for(db).add(db, after_id=last_package)
            add_to_counts(db, projects=stats.projects, releases=stats.releases, files=stats.files)
    stats.new_projects, stats.new_releases, stats.new_files = stats.projects, stats.releases, stats.files
    return stats


# The columns of a bulk insert, in the order of its tuples (ids first); the rest take their defaults.
_PACKAGE_FIELDS = (*_TEXT_FIELDS, "display_name", "project_urls", "description_html", "description_renderer")
_PACKAGE_COLUMNS = ("last_serial", "name", *_PACKAGE_FIELDS, "created", "updated", "import_digest")
_PACKAGE_DEFAULTS: dict[str, Any] = {"project_urls": {}, "description_html": None, "description_renderer": None}
_RELEASE_COLUMNS = (
    "package_id",
    "version",
    "sort_key",
    "is_prerelease",
    "summary",
    "requires_python",
    "yanked",
    "created",
    *_RELEASE_FIELDS,
)
_FILE_COLUMNS = (
    "release_id",
    "filename",
    "packagetype",
    "python_version",
    "requires_python",
    "size",
    "sha256",
    "upload_time",
    "yanked",
    "url",
)

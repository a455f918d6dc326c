"""New projects, releases and files: the one place their rows are built.

The demo data, the importer and the tests' factories build a project with
``new_package`` (an upload's ``create_package`` inserts the same columns)
and a release with ``new_release``, so a name is normalized, and a version
given its sort key and pre-release flag, the same way everywhere. The importer's bulk path
writes many projects with multi-row INSERTs, not through the ORM; it takes
a release's columns from ``release_values`` all the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sqlalchemy import ScalarSelect, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from myapp.data.meta import table_of
from myapp.packaging import journal
from myapp.packaging.classifiers import set_classifiers
from myapp.packaging.models import DeletedFilename, Package, Release, ReleaseFile, Role, RoleName
from myapp.packaging.names import is_prerelease, normalize, version_sort_key
from myapp.packaging.rendering import RENDERER, render_description
from myapp.packaging.services import next_serial, touched

# Core metadata copied to the project's own columns is cut to this (the description is kept whole).
FIELD_LIMIT = 10_000
# A release's own core metadata: ``Release`` columns an upload (``ProjectMetadata.release``)
# and the importer fill, and the JSON API serves in ``info`` as PyPI does, per release.
RELEASE_METADATA = (
    "requires_dist",
    "provides_extra",
    "license_expression",
    "license_files",
    "dynamic",
    "platform",
    "download_url",
)


# Tables, for the Core statements of ``upload_target`` and ``add_file``.
PACKAGES, RELEASES, FILES, ROLES = table_of(Package), table_of(Release), table_of(ReleaseFile), table_of(Role)


def release_values(version: str) -> dict[str, Any]:
    """The columns a release's version decides: itself, its sort key, and
    whether it is a pre-release."""
    return {"version": version, "sort_key": version_sort_key(version), "is_prerelease": is_prerelease(version)}


def new_release(version: str, **fields: Any) -> Release:
    """A release of ``version`` (not yet added to a session)."""
    return Release(**release_values(version), **fields)


def new_package(display_name: str, **fields: Any) -> Package:
    """A project as its uploader spelled it, under its normalized name (not yet added)."""
    return Package(name=normalize(display_name), display_name=display_name, **fields)


class Project(Protocol):
    """A project as ``add_file`` reads it: an upload's ``ProjectRow``, or a ``Package``."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str | None: ...

    @property
    def description_content_type(self) -> str | None: ...

    @property
    def description_renderer(self) -> str | None: ...


@dataclass(frozen=True)
class ProjectRow:
    """The columns of a project that an upload reads: plain values, no ORM object."""

    id: int
    name: str
    display_name: str
    description: str | None = None
    description_content_type: str | None = None
    description_renderer: str | None = None


@dataclass(frozen=True)
class UploadTarget:
    """What an upload must know before it writes: its project (None: a new
    one), the uploader's role on it, and what the filename already means
    here (the sha256 of the file of that name; whether one was deleted)."""

    project: ProjectRow | None
    role: RoleName | None
    filename_sha256: str | None
    filename_deleted: bool


def upload_target(db: Session, name: str, user_id: int, filename: str) -> UploadTarget:
    """One statement, in the upload's transaction (on SQLite, after its
    ``BEGIN IMMEDIATE``): three reads and an ORM object were a fifth of an
    upload's time in process (``bench/upload_speed.py``)."""
    params = {"name": normalize(name), "user_id": user_id, "filename": filename}
    row = db.connection().execute(_UPLOAD_TARGET, params).one()
    project = ProjectRow(*row[:6]) if row[0] is not None else None
    return UploadTarget(project, row.role, row.filename_sha256, bool(row.filename_deleted))


def create_package(db: Session, display_name: str, owner: journal.Actor) -> ProjectRow:
    """Add a project with ``owner`` as its first owner: two Core INSERTs."""
    conn = db.connection()
    values = {"name": normalize(display_name), "display_name": display_name}
    package_id = conn.execute(_NEW_PACKAGE, values).scalar_one()
    conn.execute(_NEW_ROLE, {"user_id": owner.id, "package_id": package_id, "role": RoleName.OWNER})
    return ProjectRow(package_id, values["name"], display_name)


@dataclass(frozen=True)
class FileFields:
    """The columns every new file has, however it arrives (uploaded or imported)."""

    filename: str
    packagetype: str
    python_version: str | None
    requires_python: str | None
    size: int
    sha256: str


@dataclass(frozen=True)
class NewFile(FileFields):
    """An uploaded file already on its way into the store (placed when the transaction commits)."""

    storage_path: str
    metadata_sha256: str | None


@dataclass(frozen=True)
class ProjectMetadata:
    """What an uploaded file says about its project: core metadata fields by
    column (None where the file says nothing), project URLs by label, and
    known classifiers."""

    fields: dict[str, str | None]
    project_urls: dict[str, str]
    classifiers: list[str]
    # The release's own core metadata (``Release`` columns: requires_dist,
    # license_expression, ...), set when the release is new.
    release: dict[str, Any] = field(default_factory=dict)


def add_file(
    db: Session,
    user: journal.Actor,
    project: Project | None,
    display_name: str,
    version: str,
    file: NewFile,
    metadata: ProjectMetadata,
    *,
    spelled: str,
) -> int:
    """Add an uploaded file, and its project (``user`` its owner) and release
    if they are new; the new file's id. A release stored under another
    spelling of the version (``spelled``, as the uploader wrote it) is the
    same release. The project takes ``metadata`` when the file is for its
    newest release. Journalled; the project's update time and serial move on.

    Written with statements built once (below), not the ORM's unit of work:
    this is the index's hottest write (``bench/upload_speed.py``), and the
    ORM's flush, then building Core statements per call, were most of its
    time. A ``Package`` of the project loaded in ``db`` is expired afterwards,
    so that it reads back what was written."""
    if project is None:
        project = create_package(db, display_name, user)
    conn = db.connection()
    which = {"package_id": project.id, "exact": version, "spelled": spelled}
    exact_id, spelled_id, newest = conn.execute(_RELEASE_AND_NEWEST, which).one()
    release_id, release = exact_id or spelled_id, release_values(version)  # one sort key for every spelling
    if release_id is None:
        values = {**release, **metadata.release, "package_id": project.id}
        values.update(summary=metadata.fields.get("summary"), requires_python=metadata.fields.get("requires_python"))
        release_id = conn.execute(_NEW_RELEASE, values).scalar_one()
    changes = project_values(db, project, metadata) if newest is None or release["sort_key"] >= newest else {}
    file_id: int = conn.execute(_NEW_FILE, {**asdict(file), "release_id": release_id}).scalar_one()
    journal.add_entry(db, project, "add file", user, version=version, filename=file.filename)
    conn.execute(_TOUCH, {**changes, **touched(), "package_id_": project.id})
    _expire_loaded(db, project.id)
    return file_id


def _expire_loaded(db: Session, package_id: int) -> None:
    """The Core statements bypassed the session: a ``Package`` it holds for
    this project (its columns, releases, classifiers) is read again when next used."""
    loaded = db.identity_map.get(db.identity_key(Package, package_id))
    if loaded is not None:
        db.expire(loaded)


# add_file's statements. The release of a version, by either spelling (the exact one is preferred),
# and the project's newest sort key: one row always, each part an index lookup.
_found = RELEASES.alias("found")


def _release_spelled(spelling: str) -> ScalarSelect[int]:
    return (
        select(_found.c.id)
        .where(_found.c.package_id == bindparam("package_id"), _found.c.version == bindparam(spelling))
        .scalar_subquery()
    )


_newest = func.max(RELEASES.c.sort_key)
_RELEASE_AND_NEWEST = select(_release_spelled("exact"), _release_spelled("spelled"), _newest).where(
    RELEASES.c.package_id == bindparam("package_id")
)


# upload_target's: one row always (the project's columns are NULL for a new one).
_project = PACKAGES.outerjoin(ROLES, (ROLES.c.package_id == PACKAGES.c.id) & (ROLES.c.user_id == bindparam("user_id")))
_UPLOAD_TARGET = select(
    PACKAGES.c.id,
    PACKAGES.c.name,
    PACKAGES.c.display_name,
    PACKAGES.c.description,
    PACKAGES.c.description_content_type,
    PACKAGES.c.description_renderer,
    ROLES.c.role,
    select(FILES.c.sha256).where(FILES.c.filename == bindparam("filename")).scalar_subquery().label("filename_sha256"),
    exists().where(table_of(DeletedFilename).c.filename == bindparam("filename")).label("filename_deleted"),
).select_from(select(literal(1)).subquery().outerjoin(_project, PACKAGES.c.name == bindparam("name")))
_NEW_PACKAGE = insert(PACKAGES).returning(PACKAGES.c.id)
_NEW_ROLE = insert(table_of(Role))
_NEW_RELEASE = insert(RELEASES).returning(RELEASES.c.id)
_NEW_FILE = insert(FILES).returning(FILES.c.id)
# The columns to set are the execution's parameters; the serial is the index's next, read in the same statement.
_TOUCH = update(PACKAGES).where(PACKAGES.c.id == bindparam("package_id_")).values(last_serial=next_serial())


def project_values(db: Session, project: Project, metadata: ProjectMetadata) -> dict[str, Any]:
    """The project's columns from its newest release's file, and its
    classifiers set: the file is the truth, so what it leaves out is cleared,
    and a classifier no project uses any more goes (``set_classifiers``)."""
    values: dict[str, Any] = {
        column: value if value is None or column == "description" else value[:FIELD_LIMIT]
        for column, value in metadata.fields.items()
    }
    values["project_urls"] = metadata.project_urls
    # Once per upload, not per page view; and not again for a file whose description is the one
    # already rendered by this renderer (a release's wheel and sdist, a release after a release).
    described = (values.get("description"), values.get("description_content_type"), RENDERER)
    if described != (project.description, project.description_content_type, project.description_renderer):
        values["description_html"] = render_description(*described[:2])
        values["description_renderer"] = RENDERER
    set_classifiers(db, project.id, metadata.classifiers)
    return values

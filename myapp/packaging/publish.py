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
from typing import Any

from sqlalchemy import ScalarSelect, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from myapp.data.meta import table_of
from myapp.packaging import journal
from myapp.packaging.classifiers import set_classifiers
from myapp.packaging.models import (
    Classifier,
    DeletedFilename,
    Package,
    Release,
    ReleaseFile,
    Role,
    RoleName,
    package_classifiers,
)
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
CLASSIFIERS = table_of(Classifier)


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
    one), the uploader's role on it, what the filename already means here
    (the sha256 of the file of that name; whether one was deleted), the
    release of the version (by either spelling), the project's newest
    release (its sort key) and its classifiers."""

    project: ProjectRow | None
    role: RoleName | None
    filename_sha256: str | None
    filename_deleted: bool
    release_id: int | None = None
    newest: str | None = None
    classifiers: tuple[str, ...] = ()


def upload_target(db: Session, name: str, version: str, *, spelled: str, user_id: int, filename: str) -> UploadTarget:
    """All of it in one statement of index lookups, in the upload's
    transaction (on SQLite, after its ``BEGIN IMMEDIATE``): six reads and an
    ORM object were a quarter of an upload's time in process
    (``bench/upload_speed.py``). ``spelled`` is the version as the uploader
    wrote it: a release stored under that spelling is the same release."""
    params = {"name": normalize(name), "exact": version, "spelled": spelled, "user_id": user_id, "filename": filename}
    row = db.connection().execute(_UPLOAD_TARGET, params).one()
    if row.id is None:
        return UploadTarget(None, None, row.filename_sha256, bool(row.filename_deleted))
    return UploadTarget(
        ProjectRow(*row[:6]),
        row.role,
        row.filename_sha256,
        bool(row.filename_deleted),
        row.exact_release or row.spelled_release,
        row.newest,
        tuple(row.classifiers.split(_CLASSIFIERS_APART)) if row.classifiers else (),
    )


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
    target: UploadTarget,
    display_name: str,
    version: str,
    file: NewFile,
    metadata: ProjectMetadata,
) -> int:
    """Add an uploaded file, and its project (``user`` its owner) and release
    if they are new (``target``, as ``upload_target`` read them); the new
    file's id. The project takes ``metadata`` when the file is for its
    newest release. Journalled; the project's update time and serial move on.

    Written with statements built once (below), not the ORM's unit of work:
    this is the index's hottest write (``bench/upload_speed.py``), and the
    ORM's flush, then building Core statements per call, were most of its
    time. A ``Package`` of the project loaded in ``db`` is expired afterwards,
    so that it reads back what was written."""
    project = target.project or create_package(db, display_name, user)
    conn = db.connection()
    release, release_id = release_values(version), target.release_id  # one sort key for every spelling
    if release_id is None:
        values = {**release, **metadata.release, "package_id": project.id}
        values.update(summary=metadata.fields.get("summary"), requires_python=metadata.fields.get("requires_python"))
        release_id = conn.execute(_NEW_RELEASE, values).scalar_one()
    changes = {}
    if target.newest is None or release["sort_key"] >= target.newest:
        changes = project_values(db, project, metadata, target.classifiers)
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


# upload_target's, one row always (the project's columns are NULL for a new one); correlated to the
# project: the release of either spelling of the version, the newest sort key, the classifiers.
_releases = RELEASES.alias("found")


def _release_spelled(spelling: str) -> ScalarSelect[int]:
    same = (_releases.c.package_id == PACKAGES.c.id) & (_releases.c.version == bindparam(spelling))
    return select(_releases.c.id).where(same).scalar_subquery()


_CLASSIFIERS_APART = "\n"  # a classifier is one line
_classifier_names = (
    select(func.aggregate_strings(CLASSIFIERS.c.classifier, _CLASSIFIERS_APART))
    .select_from(package_classifiers.join(CLASSIFIERS, CLASSIFIERS.c.id == package_classifiers.c.classifier_id))
    .where(package_classifiers.c.package_id == PACKAGES.c.id)
    .scalar_subquery()
)
_newest = select(func.max(_releases.c.sort_key)).where(_releases.c.package_id == PACKAGES.c.id).scalar_subquery()
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
    _release_spelled("exact").label("exact_release"),
    _release_spelled("spelled").label("spelled_release"),
    _newest.label("newest"),
    _classifier_names.label("classifiers"),
).select_from(select(literal(1)).subquery().outerjoin(_project, PACKAGES.c.name == bindparam("name")))
# add_file's.
_NEW_PACKAGE = insert(PACKAGES).returning(PACKAGES.c.id)
_NEW_ROLE = insert(table_of(Role))
_NEW_RELEASE = insert(RELEASES).returning(RELEASES.c.id)
_NEW_FILE = insert(FILES).returning(FILES.c.id)
# The columns to set are the execution's parameters; the serial is the index's next, read in the same statement.
_TOUCH = update(PACKAGES).where(PACKAGES.c.id == bindparam("package_id_")).values(last_serial=next_serial())


def project_values(
    db: Session, project: ProjectRow, metadata: ProjectMetadata, classifiers: tuple[str, ...]
) -> dict[str, Any]:
    """The project's columns from its newest release's file, and its
    classifiers (``classifiers`` now) set: the file is the truth, so what it
    leaves out is cleared, and a classifier no project uses any more goes
    (``set_classifiers``)."""
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
    set_classifiers(db, project.id, metadata.classifiers, now=classifiers)
    return values

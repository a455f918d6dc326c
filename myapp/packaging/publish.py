"""New projects, releases and files: the one place their rows are built.

An upload (``add_file``), the demo data, the importer and the tests'
factories all build a project with ``new_package`` and a release with
``new_release``, so a name is normalized, and a version given its sort key
and pre-release flag, the same way everywhere. The importer's bulk path
writes many projects with multi-row INSERTs, not through the ORM; it takes
a release's columns from ``release_values`` all the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from myapp.packaging import journal
from myapp.packaging.classifiers import set_classifiers
from myapp.packaging.models import Package, Release, ReleaseFile, Role, RoleName
from myapp.packaging.names import is_prerelease, normalize, version_sort_key
from myapp.packaging.rendering import RENDERER, render_into
from myapp.packaging.services import find_release, touch

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


def create_package(db: Session, display_name: str, owner: journal.Actor) -> Package:
    """Add a project with ``owner`` as its first owner."""
    package = new_package(display_name)
    db.add(package)
    db.flush()
    db.add(Role(user_id=owner.id, package_id=package.id, role=RoleName.OWNER))
    return package


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
    package: Package | None,
    display_name: str,
    version: str,
    file: NewFile,
    metadata: ProjectMetadata,
    *,
    spelled: str,
) -> ReleaseFile:
    """Add an uploaded file, and its project (``user`` its owner) and release
    if they are new. A release stored under another spelling of the version
    (``spelled``, as the uploader wrote it) is the same release. The project
    takes ``metadata`` when the file is for its newest release. Journalled;
    the project's update time and serial move on."""
    release = None
    if package is None:
        package = create_package(db, display_name, user)  # a new project has no release to find
    else:
        release = find_release(db, package, version)
        if release is None and spelled != version:
            release = find_release(db, package, spelled)
    if release is None:
        release = new_release(
            version,
            package_id=package.id,
            summary=metadata.fields.get("summary"),
            requires_python=metadata.fields.get("requires_python"),
            **metadata.release,
        )
        db.add(release)
        db.flush()
    if release.sort_key == _newest_sort_key(db, package):
        apply_metadata(db, package, metadata)
    # The serial first, without an autoflush: only a touch changes max(last_serial), and none is pending
    # (each add_file ends with a flush); then one flush writes the project, the file and the journal entry.
    with db.no_autoflush:
        touch(db, package)
    added = ReleaseFile(release_id=release.id, **asdict(file))
    db.add(added)
    journal.add_entry(db, package, "add file", user, version=version, filename=file.filename)
    db.flush()
    return added


def _newest_sort_key(db: Session, package: Package) -> str | None:
    stmt = select(Release.sort_key).where(Release.package_id == package.id)
    return db.scalar(stmt.order_by(Release.sort_key.desc()).limit(1))


def apply_metadata(db: Session, package: Package, metadata: ProjectMetadata) -> None:
    """The project's columns, URLs and classifiers from its newest release's
    file: the file is the truth, so what it leaves out is cleared, and a
    classifier no project uses any more goes (``set_classifiers``)."""
    rendered = (package.description, package.description_content_type, package.description_renderer)
    for column, value in metadata.fields.items():
        setattr(package, column, value if value is None or column == "description" else value[:FIELD_LIMIT])
    # Once per upload, not per page view; and not again for a file whose description is the one
    # already rendered by this renderer (a release's wheel and sdist, a release after a release).
    if (package.description, package.description_content_type, RENDERER) != rendered:
        render_into(package)
    package.project_urls = metadata.project_urls
    set_classifiers(db, package, metadata.classifiers)

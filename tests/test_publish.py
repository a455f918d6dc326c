"""The one service that creates projects, releases and files, called with a
session alone, as a script would (uploads go through it too: test_upload)."""

from __future__ import annotations

from sqlalchemy import select

from myapp.packaging import journal, publish, roles, services
from myapp.packaging.models import JournalEntry, ReleaseFile, RoleName
from tests.accounts import make_user


def _file(filename: str) -> publish.NewFile:
    return publish.NewFile(
        filename=filename,
        packagetype="sdist",
        python_version="source",
        requires_python=None,
        size=3,
        sha256="ab" * 32,
        storage_path=f"ab/ab/{filename}",
        metadata_sha256=None,
    )


def _add(dbsession, user, display_name: str, version: str, spelled: str, metadata: publish.ProjectMetadata) -> int:
    """As an upload does: what the file's project and release are, then the file added."""
    filename = f"made_here-{version}.tar.gz"
    given = {"spelled": spelled, "user_id": user.id, "filename": filename}
    target = publish.upload_target(dbsession, display_name, version, **given)
    return publish.add_file(dbsession, user, target, display_name, version, _file(filename), metadata)


def test_add_file_creates_the_project_its_owner_the_release_and_journals_it(dbsession):
    user = make_user(dbsession, "publisher")
    metadata = publish.ProjectMetadata({"summary": "Made by a script", "license": "MIT"}, {"Docs": "https://x"}, ["A"])
    serial = services.index_serial(dbsession)

    added_id = _add(dbsession, user, "Made-Here", "1.0", "1.0", metadata)
    package = services.find_package(dbsession, "made-here")
    assert package is not None and package.display_name == "Made-Here"
    assert (package.summary, package.license, package.project_urls) == (
        "Made by a script",
        "MIT",
        {"Docs": "https://x"},
    )
    assert [c.classifier for c in package.classifiers] == ["A"]
    assert package.last_serial == serial + 1
    assert [(r.user.username, r.role) for r in roles.maintainers(dbsession, package)] == [("publisher", RoleName.OWNER)]
    assert [e.action for e in journal.entries(dbsession, package)] == ["add file"]
    added = dbsession.get(ReleaseFile, added_id)
    assert added is not None and added.filename == "made_here-1.0.tar.gz"
    assert added.release.version == "1.0" and added.release.summary == "Made by a script"

    # An older release's file leaves the project's metadata alone; a second
    # spelling of a stored version is the same release.
    older = publish.ProjectMetadata({"summary": "Old words"}, {}, [])
    _add(dbsession, user, "Made-Here", "0.9", "0.9", older)
    _add(dbsession, user, "Made-Here", "1", "1.0", metadata)
    assert package.summary == "Made by a script"
    assert [r.version for r in services.release_history(dbsession, package)] == ["1.0", "0.9"]
    assert len(services.files_of(dbsession, services.find_release(dbsession, package, "1.0"))) == 2
    assert dbsession.scalar(select(JournalEntry.version).order_by(JournalEntry.id.desc()).limit(1)) == "1"


def test_the_upload_target_reads_all_an_upload_needs_in_one_statement(dbsession, count_queries):
    user = make_user(dbsession, "classy")
    other = make_user(dbsession, "stranger")
    names = ["Framework :: Django", "Programming Language :: Python :: 3"]
    _add(dbsession, user, "Made-Here", "1.0", "1.0", publish.ProjectMetadata({}, {}, names))
    count_queries.clear()
    target = publish.upload_target(dbsession, "Made_Here", "2.0", spelled="2.0", user_id=user.id, filename="x.whl")
    assert count_queries.count == 1, count_queries.statements
    assert target.project is not None and target.project.display_name == "Made-Here"
    assert (target.role, target.release_id, sorted(target.classifiers)) == (RoleName.OWNER, None, names)
    assert target.newest is not None and (target.filename_sha256, target.filename_deleted) == (None, False)
    # Either spelling finds the stored release; a stranger has no role; a stored file is known by its name.
    again = publish.upload_target(
        dbsession, "made-here", "1", spelled="1.0", user_id=other.id, filename="made_here-1.0.tar.gz"
    )
    assert again.release_id is not None and again.role is None and again.filename_sha256 == "ab" * 32
    assert publish.upload_target(dbsession, "new-one", "1", spelled="1", user_id=user.id, filename="y") == (
        publish.UploadTarget(None, None, None, False)
    )

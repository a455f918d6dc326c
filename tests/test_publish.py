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


def test_add_file_creates_the_project_its_owner_the_release_and_journals_it(dbsession):
    user = make_user(dbsession, "publisher")
    metadata = publish.ProjectMetadata({"summary": "Made by a script", "license": "MIT"}, {"Docs": "https://x"}, ["A"])
    serial = services.index_serial(dbsession)

    added_id = publish.add_file(
        dbsession, user, None, "Made-Here", "1.0", _file("made_here-1.0.tar.gz"), metadata, spelled="1.0"
    )
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
    publish.add_file(dbsession, user, package, "Made-Here", "0.9", _file("made_here-0.9.tar.gz"), older, spelled="0.9")
    publish.add_file(dbsession, user, package, "Made-Here", "1", _file("made_here-1.tar.gz"), metadata, spelled="1.0")
    assert package.summary == "Made by a script"
    assert [r.version for r in services.release_history(dbsession, package)] == ["1.0", "0.9"]
    assert len(services.files_of(dbsession, services.find_release(dbsession, package, "1.0"))) == 2
    assert dbsession.scalar(select(JournalEntry.version).order_by(JournalEntry.id.desc()).limit(1)) == "1"

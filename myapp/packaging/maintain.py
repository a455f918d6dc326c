"""What maintainers change after publishing: yank or un-yank a release,
delete a file or a release. Each change is journalled and bumps the
project's serial; a deleted file's name is never used again."""

from __future__ import annotations

from sqlalchemy.orm import Session

from myapp.accounts.models import User
from myapp.packaging import journal
from myapp.packaging.models import DeletedFilename, Package, Release, ReleaseFile
from myapp.packaging.services import bump_serial


def mark_yanked(release: Release, yanked: bool, reason: str | None) -> None:
    """Set the release's yank and its files' (each file's flag is what the simple API shows)."""
    release.yanked, release.yanked_reason = yanked, (reason or None) if yanked else None
    for file in release.files:
        file.yanked = yanked


def set_yanked(db: Session, package: Package, release: Release, yanked: bool, reason: str | None, user: User) -> None:
    """Yank (pip skips it unless pinned to it, PEP 592) or un-yank a release and its files."""
    mark_yanked(release, yanked, reason)
    bump_serial(db, package)
    action = f"yank release ({reason})" if yanked and reason else ("yank release" if yanked else "unyank release")
    journal.add_entry(db, package, action, user, version=release.version)


def is_deleted_filename(db: Session, filename: str) -> bool:
    return db.get(DeletedFilename, filename) is not None


def _forget_file(db: Session, package: Package, file: ReleaseFile, user: User) -> list[str]:
    """Journal and retire a file's name; the stored paths to remove after commit."""
    db.add(DeletedFilename(filename=file.filename))
    journal.add_entry(db, package, "remove file", user, version=file.release.version, filename=file.filename)
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
    journal.add_entry(db, package, "remove release", user, version=release.version)
    return paths

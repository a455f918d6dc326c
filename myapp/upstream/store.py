"""Writing what the upstream answered into the tables: a page's files
(new, yanked, unyanked, removed), a 304, a 404, or a failure.

A file keeps its first sha256 for good: if the upstream later lists the same
filename with other bytes, the change is refused and logged (a filename
always means the same bytes, here as on the index itself).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from myapp.upstream.models import UpstreamFile, UpstreamProject
from myapp.upstream.parse import ParsedFile, ParsedPage

log = logging.getLogger(__name__)
MAX_ERROR = 2000


def apply_page(db: Session, project: UpstreamProject, page: ParsedPage, now: datetime) -> bool:
    """Make the stored files what ``page`` lists; True when anything shown changed."""
    existing: dict[str, UpstreamFile] = {}
    if project.fetched_at is not None:  # a first fetch has no files yet (only this function adds them)
        stmt = select(UpstreamFile).where(UpstreamFile.project_id == project.id)
        existing = {f.filename: f for f in db.scalars(stmt)}
    listed = {f.filename for f in page.files}
    taken = _taken_elsewhere(db, project.id, listed - existing.keys())
    changed = False
    notes = list(page.reasons)
    new: list[dict[str, Any]] = []
    for parsed in page.files:
        row = existing.get(parsed.filename)
        if row is None:
            if parsed.filename in taken:
                notes.append(f"{parsed.filename}: listed by another project too; left out")
                continue
            new.append(_new_file(project.id, parsed, now))
        elif row.sha256 != parsed.sha256:
            log.warning(
                "upstream changed the bytes of %s (sha256 %s -> %s); kept the first",
                row.filename,
                row.sha256,
                parsed.sha256,
            )
            notes.append(f"{row.filename}: the upstream lists other bytes than before; kept the first")
        else:
            changed |= _update_file(row, parsed)
    if new:  # one multi-row INSERT: a first fetch of a project with thousands of files
        db.execute(insert(UpstreamFile), new)
        changed = True
    for filename, row in existing.items():
        if filename not in listed and row.removed_at is None:
            row.removed_at = now  # hidden here; the files part quarantines its cached bytes
            changed = True
    project.missing = False
    _fetched(project, now, 200)
    if notes:
        project.last_error = _clip(f"{len(notes)} entries refused: " + "; ".join(notes[:5]))
        project.last_error_at = now
    if changed:
        project.serial += 1
    return changed


def apply_not_modified(project: UpstreamProject, now: datetime) -> None:
    _fetched(project, now, 304)


def apply_missing(db: Session, project: UpstreamProject, now: datetime) -> None:
    """The upstream has no such project (404): answered 404 here; files it had are hidden."""
    for row in db.scalars(select(UpstreamFile).where(UpstreamFile.project_id == project.id)):
        if row.removed_at is None:
            row.removed_at = now
            project.serial += 1
    project.missing = True
    _fetched(project, now, 404)


def apply_failure(project: UpstreamProject, now: datetime, message: str, status: int | None) -> None:
    """Keep what is stored (served stale) and say why the refresh failed."""
    project.last_error = _clip(message)
    project.last_error_at = now
    project.page_status = status
    project.refreshing_until = None


def _fetched(project: UpstreamProject, now: datetime, status: int) -> None:
    project.fetched_at = now
    project.page_status = status
    project.refreshing_until = None
    project.last_error = None
    project.last_error_at = None


def _taken_elsewhere(db: Session, project_id: int, filenames: set[str]) -> set[str]:
    """New filenames another upstream project already has (a hostile page, or a rename)."""
    if not filenames:
        return set()
    stmt = select(UpstreamFile.filename).where(
        UpstreamFile.filename.in_(sorted(filenames)), UpstreamFile.project_id != project_id
    )
    return set(db.scalars(stmt))


def _new_file(project_id: int, parsed: ParsedFile, now: datetime) -> dict[str, Any]:
    return dict(
        project_id=project_id,
        filename=parsed.filename,
        version=parsed.version,
        packagetype=parsed.packagetype,
        url=parsed.url,
        sha256=parsed.sha256,
        size=parsed.size,
        requires_python=parsed.requires_python,
        upload_time=parsed.upload_time,
        first_seen_at=now,
        yanked=parsed.yanked,
        yanked_reason=parsed.yanked_reason,
        core_metadata=parsed.core_metadata,
        core_metadata_sha256=parsed.core_metadata_sha256,
        cached_bytes=0,
        downloads=0,
    )


def _update_file(row: UpstreamFile, parsed: ParsedFile) -> bool:
    """Follow the upstream on what may change about a file: its yank, its URL,
    metadata it did not give before. True when what we show changed."""
    before = (row.yanked, row.yanked_reason, row.removed_at, row.requires_python, row.core_metadata_sha256)
    row.yanked, row.yanked_reason = parsed.yanked, parsed.yanked_reason
    row.removed_at = None  # listed again
    row.url = parsed.url
    row.requires_python = parsed.requires_python
    if row.size is None:
        row.size = parsed.size
    if row.upload_time is None:
        row.upload_time = parsed.upload_time
    if parsed.core_metadata:
        row.core_metadata = True
        row.core_metadata_sha256 = parsed.core_metadata_sha256 or row.core_metadata_sha256
    return before != (row.yanked, row.yanked_reason, row.removed_at, row.requires_python, row.core_metadata_sha256)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"

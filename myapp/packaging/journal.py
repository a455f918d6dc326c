"""The journal: who did what to a project, and when (uploads, yanks,
deletions, collaborators). Entries name the project rather than point at
it, so they outlive a deleted release or file."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from myapp.data.meta import table_of
from myapp.packaging.models import JournalEntry, Package

_ADD = insert(table_of(JournalEntry))


class Actor(Protocol):
    """Who acts, as a journal entry and a new project's owner role need it: a
    ``User``, or the ``Account`` a request's credentials were read as (an
    upload then loads no ORM user)."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


class Named(Protocol):
    """A project as an entry names it: a ``Package``, or an upload's plain row."""

    @property
    def name(self) -> str: ...


def add_entry(db: Session, package: Named, action: str, user: Actor | None, **where: str | None) -> None:
    """A journal entry: who did what to the project, and when (written at
    once, with a Core INSERT: nothing reads the entry back as an object)."""
    entry = {"package_name": package.name, "action": action, "username": user.username if user else None}
    db.connection().execute(_ADD, {**entry, "version": where.get("version"), "filename": where.get("filename")})


def entries(db: Session, package: Package, limit: int = 100) -> list[JournalEntry]:
    """The project's newest entries, newest first."""
    stmt = select(JournalEntry).where(JournalEntry.package_name == package.name).order_by(JournalEntry.id.desc())
    return list(db.scalars(stmt.limit(limit)))

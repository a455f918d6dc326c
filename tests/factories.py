"""Small builders for test data: rows built as the app builds them (``myapp.packaging.publish``)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from myapp.packaging.models import Classifier, Package, ReleaseFile
from myapp.packaging.names import normalize
from myapp.packaging.publish import new_package, new_release
from myapp.packaging.rendering import render_into

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_package(
    db: Session,
    name: str,
    *,
    versions: list[str] | None = None,
    files_per_release: int = 1,
    summary: str | None = None,
    description: str | None = None,
    description_content_type: str | None = "text/markdown",
    classifiers: list[str] | None = None,
    yanked: set[str] | None = None,
    **fields: object,
) -> Package:
    versions = ["1.0"] if versions is None else versions
    package = new_package(
        name,
        summary=summary if summary is not None else f"The {name} project",
        description=description,
        description_content_type=description_content_type,
        created=T0,
        updated=T0 + timedelta(days=len(versions)),
        **fields,
    )
    render_into(package)  # as an upload or an import does
    for c in classifiers or []:
        known = db.scalar(select(Classifier).where(Classifier.classifier == c))
        package.classifiers.append(known or Classifier(classifier=c))
    for i, version in enumerate(versions):
        release = new_release(version, created=T0 + timedelta(days=i), yanked=version in (yanked or set()))
        for n in range(files_per_release):
            filename = f"{normalize(name).replace('-', '_')}-{version}-{n}.tar.gz"
            release.files.append(
                ReleaseFile(
                    filename=filename,
                    packagetype="sdist",
                    python_version="source",
                    size=1000 + n,
                    sha256=hashlib.sha256(filename.encode()).hexdigest(),
                    upload_time=T0 + timedelta(days=i),
                )
            )
        package.releases.append(release)
    db.add(package)
    db.flush()
    return package


def refuse(db: Session, table: str, event: str) -> None:
    """A trigger that makes the database refuse every ``event`` (INSERT, UPDATE)
    on ``table``, on SQLite or PostgreSQL: a database that will not take a write."""
    name = f"refuse_{event.lower()}_{table}"
    if db.get_bind().dialect.name == "sqlite":
        db.execute(text(f"CREATE TRIGGER {name} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        return
    db.execute(
        text(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$")
    )
    db.execute(text(f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"))

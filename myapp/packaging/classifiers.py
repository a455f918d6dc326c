"""A project's trove classifiers, and no classifier that no project uses.

The classifiers table feeds the search page's filters, so a classifier that
no project has any more is deleted with the change that dropped it. Two
uploads may race: one adding a project to a classifier while another removes
the classifier's last project. On PostgreSQL the adder holds its classifier
rows ``FOR KEY SHARE`` and the remover locks its candidates ``FOR UPDATE``
before it looks again for users, so neither deletes a classifier the other
has just linked (a deadlock between the two is retried, as serialization
failures are). SQLite runs one writer at a time, which settles it as well.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import bindparam, delete, exists, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from myapp.packaging.models import Classifier, Package, package_classifiers


def set_classifiers(db: Session, package: Package, names: Collection[str]) -> None:
    """Give the project exactly these (already checked) classifiers."""
    wanted = sorted(set(names))
    if _current(db, package) == wanted:
        return  # the usual upload: what the last one said (no statements beyond reading them)
    before = {c.id for c in package.classifiers}
    rows = _rows(db, wanted)
    package.classifiers = rows
    db.flush()
    drop_unused(db, before - {c.id for c in rows})


def _current(db: Session, package: Package) -> list[str]:
    """The project's classifiers, sorted: from its collection if loaded, else
    read as plain names (cheaper than loading the collection, which only a
    change needs)."""
    if "classifiers" not in inspect(package).unloaded:
        return sorted(c.classifier for c in package.classifiers)
    with db.no_autoflush:  # only a change to the collection would matter, and it is not loaded
        return sorted(db.scalars(_NAMES, {"package_id": package.id}))


_NAMES = (  # built once: an upload reads them
    select(Classifier.classifier)
    .join(package_classifiers, package_classifiers.c.classifier_id == Classifier.id)
    .where(package_classifiers.c.package_id == bindparam("package_id"))
)


def _rows(db: Session, names: list[str]) -> list[Classifier]:
    if not names:
        return []
    dialect = db.get_bind().dialect.name
    insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(Classifier)
    add_missing = insert.values([{"classifier": n} for n in names]).on_conflict_do_nothing(
        index_elements=["classifier"]
    )
    locked = select(Classifier).where(Classifier.classifier.in_(names)).with_for_update(read=True, key_share=True)
    # A row another transaction was deleting is gone once we get its lock: add it again.
    for _ in range(3):
        db.execute(add_missing)
        rows = list(db.scalars(locked))
        if len(rows) == len(names):
            return sorted(rows, key=lambda c: c.classifier)
    raise RuntimeError("classifier rows keep disappearing")  # pragma: no cover - needs three lost races in a row


def drop_unused(db: Session, ids: Collection[int]) -> None:
    """Delete those of these classifiers that no project uses."""
    if not ids:
        return
    # Wait for transactions linking one of them; the DELETE then sees their links.
    db.execute(select(Classifier.id).where(Classifier.id.in_(ids)).with_for_update())
    in_use = exists().where(package_classifiers.c.classifier_id == Classifier.id)
    db.execute(delete(Classifier).where(Classifier.id.in_(ids), ~in_use).execution_options(synchronize_session=False))

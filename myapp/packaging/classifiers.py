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

from sqlalchemy import bindparam, delete, exists, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from myapp.packaging.models import Classifier, package_classifiers


def set_classifiers(
    db: Session, package_id: int, names: Collection[str], *, now: Collection[str] | None = None
) -> None:
    """Give the project exactly these (already checked) classifiers: Core
    statements on the links, no ORM collection (the caller expires a loaded
    ``Package``, as ``publish.add_file`` does). ``now``: its classifiers, if
    the caller read them already (an upload's one read)."""
    wanted = sorted(set(names))
    if now is not None and sorted(set(now)) == wanted:
        return  # the usual upload: what the last one said
    conn = db.connection()
    linked: dict[str, int] = {name: id_ for name, id_ in conn.execute(_LINKED, {"package_id": package_id})}
    if sorted(linked) == wanted:
        return
    before = set(linked.values())
    after = {row.id for row in _rows(db, wanted)}
    if before - after:
        conn.execute(_UNLINK, {"package_id": package_id, "ids": sorted(before - after)})
    if after - before:
        links = [{"package_id": package_id, "classifier_id": i} for i in sorted(after - before)]
        conn.execute(insert(package_classifiers), links)
    drop_unused(db, before - after)


_LINKED = (  # built once: an upload reads them
    select(Classifier.classifier, Classifier.id)
    .join(package_classifiers, package_classifiers.c.classifier_id == Classifier.id)
    .where(package_classifiers.c.package_id == bindparam("package_id"))
)
_UNLINK = delete(package_classifiers).where(
    package_classifiers.c.package_id == bindparam("package_id"),
    package_classifiers.c.classifier_id.in_(bindparam("ids", expanding=True)),
)


def _rows(db: Session, names: list[str]) -> list[Classifier]:
    if not names:
        return []
    dialect = db.get_bind().dialect.name
    upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(Classifier)
    add_missing = upsert.values([{"classifier": n} for n in names]).on_conflict_do_nothing(
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

"""SQLite's search index: rewrite a project's row only when its name or summary changed

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Every upload of a project's newest release sets its summary, most often to
what it already was. ``AFTER UPDATE OF name, summary`` fired on the column
being set, not on its value changing: the FTS5 row was deleted and written
again, and each transaction wrote a new FTS5 segment. A ``WHEN`` clause now
compares the values. (PostgreSQL's search vector is a generated column.)
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_REMOVE = (
    "INSERT INTO package_search (package_search, rowid, name, summary) "
    "VALUES ('delete', old.id, old.name, old.summary);"
)
_ADD = "INSERT INTO package_search (rowid, name, summary) VALUES (new.id, new.name, new.summary);"
_CHANGED = "WHEN old.name IS NOT new.name OR old.summary IS NOT new.summary"


def _replace_trigger(when: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER packages_search_update")
    op.execute(
        f"CREATE TRIGGER packages_search_update AFTER UPDATE OF name, summary ON packages {when} "
        f"BEGIN {_REMOVE} {_ADD} END"
    )


def upgrade() -> None:
    _replace_trigger(_CHANGED)


def downgrade() -> None:
    _replace_trigger("")

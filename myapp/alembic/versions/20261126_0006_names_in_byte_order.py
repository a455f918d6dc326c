"""project names in byte order on PostgreSQL (collation "C")

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

Normalized names are ASCII. In the "C" collation a name prefix (``LIKE
'python-%'``) is a range of the name's B-tree indexes, as it is on SQLite,
and names sort the same on both databases (and in Python). In a language
collation it is neither: search had to read every "python-*" project and
sort them. The generated search vector reads ``name``, so it is rebuilt.
SQLite compares bytes already: nothing to do there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As in 0005: a migration keeps the definition it was written with.
PG_VECTOR = (
    "setweight(to_tsvector('simple', replace(name, '-', ' ')), 'A') || "
    "setweight(to_tsvector('simple', regexp_replace(coalesce(summary, ''), '[^[:alnum:]]+', ' ', 'g')), 'B')"
)


def _set_collation(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE packages DROP COLUMN search_vector")  # a generated column pins the type of name
    op.alter_column("packages", "name", type_=sa.String(200, collation=collation), existing_nullable=False)
    op.execute(f"ALTER TABLE packages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({PG_VECTOR}) STORED")
    op.execute("CREATE INDEX ix_packages_search_vector ON packages USING gin (search_vector)")


def upgrade() -> None:
    _set_collation("C")


def downgrade() -> None:
    _set_collation("default")

"""releases keep their files' dependencies, extras, license expression and files, dynamic fields

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Lists as JSON (JSON on PostgreSQL, text on SQLite): read whole, never queried inside.
_LISTS = ("requires_dist", "provides_extra", "license_files", "dynamic", "platform")


# Plain ALTER TABLE, not batch mode: SQLite (3.35+) adds and drops columns in
# place, where a batch copy of the table would lose the triggers on it (0005).


def upgrade() -> None:
    for name in _LISTS:
        op.add_column("releases", sa.Column(name, sa.JSON(), nullable=True))
    op.add_column("releases", sa.Column("license_expression", sa.Text(), nullable=True))
    op.add_column("releases", sa.Column("download_url", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    op.drop_column("releases", "download_url")
    op.drop_column("releases", "license_expression")
    for name in reversed(_LISTS):
        op.drop_column("releases", name)

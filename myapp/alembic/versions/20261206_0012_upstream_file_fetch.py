"""the proxy's files part: a single-flight claim on fetching a file's bytes, and its last failure

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

``upstream_files.fetching_until``: whoever set it (in the future) is fetching
the file's bytes from the upstream; the others wait for it.
``fetch_error``/``fetch_failed_at``: why the last fetch failed (a hash
mismatch, a short answer), for the waiters and the operators.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upstream_files") as batch:
        batch.add_column(sa.Column("fetching_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("fetch_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fetch_failed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upstream_files") as batch:
        batch.drop_column("fetch_failed_at")
        batch.drop_column("fetch_error")
        batch.drop_column("fetching_until")

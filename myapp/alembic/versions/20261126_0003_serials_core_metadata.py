"""project serials, wheels' core metadata (PEP 658)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.add_column(sa.Column("last_serial", sa.Integer(), server_default="0", nullable=False))
        batch.create_index(op.f("ix_packages_last_serial"), ["last_serial"])
    with op.batch_alter_table("release_files") as batch:
        batch.add_column(sa.Column("metadata_sha256", sa.String(length=64), nullable=True))
    # Every existing project gets a serial of its own, in the order they were last updated.
    op.execute(
        "UPDATE packages SET last_serial = "
        "(SELECT count(*) FROM packages AS p WHERE p.updated < packages.updated OR "
        "(p.updated = packages.updated AND p.id <= packages.id))"
    )


def downgrade() -> None:
    with op.batch_alter_table("release_files") as batch:
        batch.drop_column("metadata_sha256")
    with op.batch_alter_table("packages") as batch:
        batch.drop_index(op.f("ix_packages_last_serial"))
        batch.drop_column("last_serial")

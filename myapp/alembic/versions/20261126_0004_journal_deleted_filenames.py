"""the journal of changes to projects, and the names of deleted files

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=50), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal")),
    )
    op.create_index("ix_journal_package_name_id", "journal", ["package_name", "id"])
    op.create_table(
        "deleted_filenames",
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("filename", name=op.f("pk_deleted_filenames")),
    )


def downgrade() -> None:
    op.drop_table("deleted_filenames")
    op.drop_table("journal")

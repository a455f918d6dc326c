"""the proxy of a public index: upstream projects and files, per-name policy, early releases

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

See ``myapp.upstream.models`` for what each table holds and which part of
the proxy writes which columns.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _name() -> sa.String:
    return sa.String(length=200).with_variant(sa.String(length=200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "upstream_projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_serial", sa.Integer(), nullable=True),
        sa.Column("fetched_at", sa.DateTime(), nullable=True),
        sa.Column("page_status", sa.Integer(), nullable=True),
        sa.Column("missing", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("refreshing_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("serial", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_upstream_projects_name")),
    )
    op.create_table(
        "upstream_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("packagetype", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("requires_python", sa.String(length=255), nullable=True),
        sa.Column("upload_time", sa.DateTime(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("yanked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("yanked_reason", sa.Text(), nullable=True),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.Column("core_metadata", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("core_metadata_sha256", sa.String(length=64), nullable=True),
        sa.Column("storage_path", sa.String(length=1024), nullable=True),
        sa.Column("cached_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_downloaded_at", sa.DateTime(), nullable=True),
        sa.Column("quarantined_at", sa.DateTime(), nullable=True),
        sa.Column("downloads", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["upstream_projects.id"],
            name=op.f("fk_upstream_files_project_id_upstream_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_files")),
        sa.UniqueConstraint("filename", name=op.f("uq_upstream_files_filename")),
    )
    op.create_index("ix_upstream_files_project_id", "upstream_files", ["project_id"])
    op.create_index("ix_upstream_files_lru", "upstream_files", ["last_downloaded_at"])
    op.create_table(
        "upstream_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("also_serve_upstream", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("cooldown_exempt", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_by", sa.String(length=50), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_upstream_policies_name")),
    )
    op.create_table(
        "upstream_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _name(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("released_by", sa.String(length=50), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstream_releases")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_upstream_releases_name_version")),
    )


def downgrade() -> None:
    op.drop_table("upstream_releases")
    op.drop_table("upstream_policies")
    op.drop_index("ix_upstream_files_lru", table_name="upstream_files")
    op.drop_index("ix_upstream_files_project_id", table_name="upstream_files")
    op.drop_table("upstream_files")
    op.drop_table("upstream_projects")

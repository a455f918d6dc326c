"""packages, releases, files, classifiers

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the model types: a migration must not change when models do.
SortKey = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql")
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "classifiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("classifier", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classifiers")),
        sa.UniqueConstraint("classifier", name=op.f("uq_classifiers_classifier")),
    )
    op.create_table(
        "packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.String(length=512), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("description_content_type", sa.String(length=128), nullable=True),
        sa.Column("home_page", sa.String(length=1024), nullable=True),
        sa.Column("project_urls", JsonDoc, nullable=False),
        sa.Column("license", sa.Text(), nullable=True),
        sa.Column("author", sa.String(length=512), nullable=True),
        sa.Column("author_email", sa.String(length=512), nullable=True),
        sa.Column("maintainer", sa.String(length=512), nullable=True),
        sa.Column("maintainer_email", sa.String(length=512), nullable=True),
        sa.Column("keywords", sa.Text(), nullable=True),
        sa.Column("requires_python", sa.String(length=255), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
        sa.UniqueConstraint("name", name=op.f("uq_packages_name")),
    )
    op.create_index(op.f("ix_packages_updated"), "packages", ["updated"])
    op.create_table(
        "package_classifiers",
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("classifier_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["classifier_id"],
            ["classifiers.id"],
            name=op.f("fk_package_classifiers_classifier_id_classifiers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"], name=op.f("fk_package_classifiers_package_id_packages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("package_id", "classifier_id", name=op.f("pk_package_classifiers")),
    )
    op.create_index(op.f("ix_package_classifiers_classifier_id"), "package_classifiers", ["classifier_id"])
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("sort_key", SortKey, nullable=False),
        sa.Column("is_prerelease", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("summary", sa.String(length=512), nullable=True),
        sa.Column("requires_python", sa.String(length=255), nullable=True),
        sa.Column("yanked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("yanked_reason", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"], name=op.f("fk_releases_package_id_packages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("package_id", "version", name=op.f("uq_releases_package_id_version")),
    )
    op.create_index("ix_releases_package_id_sort_key", "releases", ["package_id", "sort_key"])
    op.create_table(
        "release_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("packagetype", sa.String(length=32), nullable=False),
        sa.Column("python_version", sa.String(length=64), nullable=True),
        sa.Column("requires_python", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("upload_time", sa.DateTime(), nullable=False),
        sa.Column("yanked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("storage_path", sa.String(length=1024), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("downloads", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name=op.f("fk_release_files_release_id_releases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release_files")),
        sa.UniqueConstraint("filename", name=op.f("uq_release_files_filename")),
    )
    op.create_index(op.f("ix_release_files_release_id"), "release_files", ["release_id"])


def downgrade() -> None:
    op.drop_table("release_files")
    op.drop_table("releases")
    op.drop_table("package_classifiers")
    op.drop_table("packages")
    op.drop_table("classifiers")

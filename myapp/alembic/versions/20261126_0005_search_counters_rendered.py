"""full-text search, maintained counts, popularity, stored description HTML, import digests

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Search lives outside the ORM models (see ``myapp.packaging.search``):

* SQLite: two FTS5 tables with ``packages`` as their external content, kept
  in sync by triggers: ``package_search`` (name and summary words, with
  prefix indexes) and ``package_names`` (name trigrams, for "did you mean").
* PostgreSQL: a generated ``tsvector`` column with a GIN index (name words
  weighted A, summary words B), and a ``pg_trgm`` GIN index on the name.

``index_stats`` is one row of counts, kept by triggers in the same
transaction as the rows they count, so the home page never counts a million
rows. On PostgreSQL they are statement-level (one update per INSERT or
DELETE statement, however many rows), so bulk imports stay fast.

A later migration that makes Alembic rebuild ``packages`` on SQLite (batch
mode "recreate") drops these triggers: create them again there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Table -> its count. The DDL below is built from these constants only.
COUNTED = {"packages": "projects", "releases": "releases", "release_files": "files"}

# Summary words on PostgreSQL are split the way SQLite's unicode61 tokenizer
# splits them (letters and digits, nothing else), so both find the same rows.
PG_VECTOR = (
    "setweight(to_tsvector('simple', replace(name, '-', ' ')), 'A') || "
    "setweight(to_tsvector('simple', regexp_replace(coalesce(summary, ''), '[^[:alnum:]]+', ' ', 'g')), 'B')"
)


def upgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.add_column(sa.Column("downloads", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("description_html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("description_renderer", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("import_digest", sa.String(length=64), nullable=True))
        # Keyset pagination by last update: (updated, id) is unique and ordered.
        batch.drop_index("ix_packages_updated")
        batch.create_index("ix_packages_updated_id", ["updated", "id"])
        # /simple/ lists every project by name: read from this index alone, in order.
        batch.create_index("ix_packages_listing", ["name", "display_name", "last_serial"])
    # Search walks a large set of matches most popular first.
    op.create_index("ix_packages_popularity", "packages", [sa.text("downloads DESC"), "name"])
    op.execute(
        "UPDATE packages SET downloads = coalesce((SELECT sum(f.downloads) FROM release_files AS f "
        "JOIN releases AS r ON r.id = f.release_id WHERE r.package_id = packages.id), 0)"
    )

    op.create_table(
        "index_stats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("projects", sa.BigInteger(), nullable=False),
        sa.Column("releases", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_stats")),
        sa.CheckConstraint("id = 1", name=op.f("ck_index_stats_one_row")),
    )
    op.execute(
        "INSERT INTO index_stats (id, projects, releases, files) SELECT 1, "
        "(SELECT count(*) FROM packages), (SELECT count(*) FROM releases), (SELECT count(*) FROM release_files)"
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()
    else:
        _sqlite_upgrade()


def _sqlite_upgrade() -> None:
    for table, column in COUNTED.items():
        for event, sign in (("INSERT", "+"), ("DELETE", "-")):
            op.execute(
                f"CREATE TRIGGER {table}_count_{event.lower()} AFTER {event} ON {table} BEGIN "  # noqa: S608  # nosec B608 (constants only)
                f"UPDATE index_stats SET {column} = {column} {sign} 1 WHERE id = 1; END"
            )
    op.execute(
        "CREATE VIRTUAL TABLE package_search USING fts5(name, summary, content='packages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 0', prefix='2 3')"
    )
    op.execute(
        "CREATE VIRTUAL TABLE package_names USING fts5(name, content='packages', "
        "content_rowid='id', tokenize='trigram', detail='none')"
    )
    add = (
        "INSERT INTO package_search (rowid, name, summary) VALUES (new.id, new.name, new.summary); "
        "INSERT INTO package_names (rowid, name) VALUES (new.id, new.name);"
    )
    remove = (
        "INSERT INTO package_search (package_search, rowid, name, summary) "
        "VALUES ('delete', old.id, old.name, old.summary); "
        "INSERT INTO package_names (package_names, rowid, name) VALUES ('delete', old.id, old.name);"
    )
    op.execute(f"CREATE TRIGGER packages_search_insert AFTER INSERT ON packages BEGIN {add} END")
    op.execute(f"CREATE TRIGGER packages_search_delete AFTER DELETE ON packages BEGIN {remove} END")
    op.execute(
        f"CREATE TRIGGER packages_search_update AFTER UPDATE OF name, summary ON packages BEGIN {remove} {add} END"
    )
    op.execute("INSERT INTO package_search (package_search) VALUES ('rebuild')")
    op.execute("INSERT INTO package_names (package_names) VALUES ('rebuild')")


def _postgresql_upgrade() -> None:
    for sign, name, table in (("+", "added", "new_rows"), ("-", "removed", "old_rows")):
        op.execute(
            f"CREATE FUNCTION index_stats_{name}() RETURNS trigger LANGUAGE plpgsql AS $$ "  # noqa: S608  # nosec B608 (constants only)
            f"DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM {table}; "
            f"IF n > 0 THEN EXECUTE format('UPDATE index_stats SET %1$I = %1$I {sign} $1 WHERE id = 1', TG_ARGV[0]) "
            "USING n; END IF; RETURN NULL; END $$"
        )
    for table, column in COUNTED.items():
        op.execute(
            f"CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION index_stats_added('{column}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION index_stats_removed('{column}')"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"ALTER TABLE packages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ({PG_VECTOR}) STORED")
    op.execute("CREATE INDEX ix_packages_search_vector ON packages USING gin (search_vector)")
    op.execute("CREATE INDEX ix_packages_name_trgm ON packages USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_packages_name_trgm")
        op.execute("ALTER TABLE packages DROP COLUMN search_vector")
        for table in COUNTED:
            op.execute(f"DROP TRIGGER {table}_count_insert ON {table}")
            op.execute(f"DROP TRIGGER {table}_count_delete ON {table}")
        op.execute("DROP FUNCTION index_stats_added()")
        op.execute("DROP FUNCTION index_stats_removed()")
    else:
        for trigger in ("packages_search_insert", "packages_search_delete", "packages_search_update"):
            op.execute(f"DROP TRIGGER {trigger}")
        for table in COUNTED:
            op.execute(f"DROP TRIGGER {table}_count_insert")
            op.execute(f"DROP TRIGGER {table}_count_delete")
        op.execute("DROP TABLE package_names")
        op.execute("DROP TABLE package_search")
    op.drop_table("index_stats")
    op.drop_index("ix_packages_popularity", "packages")
    with op.batch_alter_table("packages") as batch:
        batch.drop_index("ix_packages_listing")
        batch.drop_index("ix_packages_updated_id")
        batch.create_index("ix_packages_updated", ["updated"])
        batch.drop_column("import_digest")
        batch.drop_column("description_renderer")
        batch.drop_column("description_html")
        batch.drop_column("downloads")

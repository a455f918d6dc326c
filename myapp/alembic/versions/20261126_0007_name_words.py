"""the words of project names, with trigram indexes, for "did you mean"

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

"Did you mean" used to compare a misspelt name with every project's name
by trigrams: at a million projects a common part ("django", "google-cloud")
matches a large share of them (README, "At a million projects"). It now corrects each
word against the distinct words of all names (about 46,000 at a million
projects), so ``name_words`` holds each word and how many projects' names
have it, kept by triggers in the same transaction as ``packages``:

* SQLite: row triggers (the bulk import does their work once per batch,
  ``myapp.packaging.search.index.SqliteSearch.add``), and ``name_word_grams``, a
  contentless FTS5 trigram table of each word padded as pg_trgm pads it
  ("  word "), so it has the same trigrams as PostgreSQL.
* PostgreSQL: statement triggers for INSERT and DELETE, a row trigger for a
  rename, and a ``pg_trgm`` GIN index on the word.

The trigram index on every name (0005's ``package_names`` and
``ix_packages_name_trgm``) has no other use: it goes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# -- SQLite -------------------------------------------------------------------------


def _sqlite_words(name: str) -> str:
    """The words of a normalized name (``name`` is an SQL expression), as
    rows of ``value``: SQLite has no split, and no CTE inside a trigger, but
    it has ``json_each``. ``json_quote`` escapes what JSON must; a "-" is
    never part of an escape."""
    return f"json_each('[' || replace(json_quote({name}), '-', '\",\"') || ']')"


def _sqlite_add(name: str) -> str:
    return (
        f"INSERT INTO name_words (word, projects) SELECT DISTINCT value, 1 FROM {_sqlite_words(name)} WHERE true "  # noqa: S608  # nosec B608 (constants only)
        "ON CONFLICT (word) DO UPDATE SET projects = projects + 1;"
    )


def _sqlite_remove(name: str) -> str:
    words = f"(SELECT value FROM {_sqlite_words(name)})"  # noqa: S608  # nosec B608 (constants only)
    return (
        f"UPDATE name_words SET projects = projects - 1 WHERE word IN {words}; "  # noqa: S608  # nosec B608 (constants only)
        f"DELETE FROM name_words WHERE projects <= 0 AND word IN {words};"
    )


PADDED = "'  ' || {}.word || ' '"  # pg_trgm's padding: two spaces before a word, one after

# 0005's triggers without package_names (and with it, for the downgrade).
SEARCH_ADD = "INSERT INTO package_search (rowid, name, summary) VALUES (new.id, new.name, new.summary);"
SEARCH_REMOVE = (
    "INSERT INTO package_search (package_search, rowid, name, summary) "
    "VALUES ('delete', old.id, old.name, old.summary);"
)
NAMES_ADD = "INSERT INTO package_names (rowid, name) VALUES (new.id, new.name);"
NAMES_REMOVE = "INSERT INTO package_names (package_names, rowid, name) VALUES ('delete', old.id, old.name);"


def _sqlite_search_triggers(with_names: bool) -> None:
    add, remove = (SEARCH_ADD + NAMES_ADD, SEARCH_REMOVE + NAMES_REMOVE) if with_names else (SEARCH_ADD, SEARCH_REMOVE)
    for trigger in ("packages_search_insert", "packages_search_delete", "packages_search_update"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute(f"CREATE TRIGGER packages_search_insert AFTER INSERT ON packages BEGIN {add} END")
    op.execute(f"CREATE TRIGGER packages_search_delete AFTER DELETE ON packages BEGIN {remove} END")
    op.execute(
        f"CREATE TRIGGER packages_search_update AFTER UPDATE OF name, summary ON packages BEGIN {remove} {add} END"
    )


def _sqlite_upgrade() -> None:
    op.execute(
        "INSERT INTO name_words (word, projects) SELECT value, count(DISTINCT packages.id) "  # noqa: S608  # nosec B608 (constants only)
        f"FROM packages, {_sqlite_words('packages.name')} GROUP BY value"
    )
    op.execute("CREATE VIRTUAL TABLE name_word_grams USING fts5(word, content='', tokenize='trigram', detail='none')")
    op.execute(f"INSERT INTO name_word_grams (rowid, word) SELECT id, {PADDED.format('name_words')} FROM name_words")  # noqa: S608  # nosec B608 (constants only)
    op.execute(
        "CREATE TRIGGER name_words_insert AFTER INSERT ON name_words BEGIN "  # noqa: S608  # nosec B608 (constants only)
        f"INSERT INTO name_word_grams (rowid, word) VALUES (new.id, {PADDED.format('new')}); END"
    )
    op.execute(
        "CREATE TRIGGER name_words_delete AFTER DELETE ON name_words BEGIN "  # noqa: S608  # nosec B608 (constants only)
        f"INSERT INTO name_word_grams (name_word_grams, rowid, word) VALUES ('delete', old.id, {PADDED.format('old')}); "
        "END"
    )
    op.execute(f"CREATE TRIGGER packages_words_insert AFTER INSERT ON packages BEGIN {_sqlite_add('new.name')} END")
    op.execute(f"CREATE TRIGGER packages_words_delete AFTER DELETE ON packages BEGIN {_sqlite_remove('old.name')} END")
    op.execute(
        "CREATE TRIGGER packages_words_update AFTER UPDATE OF name ON packages WHEN old.name <> new.name BEGIN "
        f"{_sqlite_remove('old.name')} {_sqlite_add('new.name')} END"
    )
    _sqlite_search_triggers(with_names=False)
    op.execute("DROP TABLE package_names")


def _sqlite_downgrade() -> None:
    for trigger in ("packages_words_insert", "packages_words_delete", "packages_words_update"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE name_word_grams")  # its triggers go with name_words
    op.execute(
        "CREATE VIRTUAL TABLE package_names USING fts5(name, content='packages', "
        "content_rowid='id', tokenize='trigram', detail='none')"
    )
    op.execute("INSERT INTO package_names (package_names) VALUES ('rebuild')")
    _sqlite_search_triggers(with_names=True)


# -- PostgreSQL ---------------------------------------------------------------------

# Words are upserted in order, so two transactions lock the rows they share in the same
# order. (They already take turns: PostgreSQL fires triggers by name, so 0005's
# packages_count_* lock the one index_stats row before these run.)
PG_ADD = (
    "INSERT INTO name_words (word, projects) SELECT word, count(DISTINCT id) "
    "FROM {rows}, regexp_split_to_table(name, '-') AS word GROUP BY word ORDER BY word "
    "ON CONFLICT (word) DO UPDATE SET projects = name_words.projects + excluded.projects;"
)
PG_REMOVE = (
    "UPDATE name_words SET projects = projects - gone.n FROM (SELECT word, count(DISTINCT id) AS n "
    "FROM {rows}, regexp_split_to_table(name, '-') AS word GROUP BY word) AS gone "
    "WHERE name_words.word = gone.word; "
    "DELETE FROM name_words WHERE projects <= 0 AND word IN "
    "(SELECT regexp_split_to_table(name, '-') FROM {rows});"
)


def _postgresql_upgrade() -> None:
    op.execute("DROP INDEX ix_packages_name_trgm")
    op.execute(PG_ADD.format(rows="packages"))
    op.execute("CREATE INDEX ix_name_words_trgm ON name_words USING gin (word gin_trgm_ops)")
    # Statistics now: without them the planner scans every word, not the index (README, "At a million projects").
    op.execute("ANALYZE name_words")
    for name, sql in (("added", PG_ADD.format(rows="new_rows")), ("removed", PG_REMOVE.format(rows="old_rows"))):
        op.execute(
            f"CREATE FUNCTION name_words_{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {sql} RETURN NULL; END $$"
        )
    # A rename is one row at a time: transition tables cannot go with "UPDATE OF name".
    renamed = PG_REMOVE.format(rows="(SELECT OLD.id, OLD.name) AS o") + PG_ADD.format(
        rows="(SELECT NEW.id, NEW.name) AS n"
    )
    op.execute(
        f"CREATE FUNCTION name_words_renamed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {renamed} RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER packages_words_insert AFTER INSERT ON packages REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION name_words_added()"
    )
    op.execute(
        "CREATE TRIGGER packages_words_delete AFTER DELETE ON packages REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION name_words_removed()"
    )
    op.execute(
        "CREATE TRIGGER packages_words_update AFTER UPDATE OF name ON packages FOR EACH ROW "
        "WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION name_words_renamed()"
    )


def _postgresql_downgrade() -> None:
    for trigger in ("packages_words_insert", "packages_words_delete", "packages_words_update"):
        op.execute(f"DROP TRIGGER {trigger} ON packages")
    for name in ("added", "removed", "renamed"):
        op.execute(f"DROP FUNCTION name_words_{name}()")
    op.execute("CREATE INDEX ix_packages_name_trgm ON packages USING gin (name gin_trgm_ops)")


def upgrade() -> None:
    op.create_table(
        "name_words",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("word", sa.String(length=200), nullable=False),
        sa.Column("projects", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_name_words")),
        sa.UniqueConstraint("word", name=op.f("uq_name_words_word")),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()
    else:
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_downgrade()
    else:
        _sqlite_downgrade()
    op.drop_table("name_words")

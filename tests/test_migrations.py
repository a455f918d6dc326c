"""The migrations, on a fresh database of each kind: they build what the
models declare (Alembic's autogenerate finds nothing to add), and every one
of them goes back down and up again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from myapp.data.migrations import alembic_config
from tests.conftest import fresh_database


# SQLite's reflection cannot read an expression index (lower(email)); it is the migration's.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrations_match_the_models_and_go_down_and_up_again(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        engine = create_engine(url)
        config = alembic_config()
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                command.check(config)  # raises when the models and the schema differ
                command.downgrade(config, "base")
                assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
                command.upgrade(config, "head")
                command.check(config)
        finally:
            engine.dispose()


def test_names_sort_as_bytes_on_both_databases(dbsession):
    # Migration 0006: "C" on PostgreSQL, as SQLite's BINARY; a prefix is then an index range.
    from sqlalchemy import select

    from myapp.packaging.models import Package
    from tests.factories import make_package

    for name in ("a-b", "a0", "ab", "a-c", "aa"):
        make_package(dbsession, name)
    assert list(dbsession.scalars(select(Package.name).order_by(Package.name))) == sorted(
        ["a-b", "a0", "ab", "a-c", "aa"]
    )

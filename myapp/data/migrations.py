"""Running the Alembic migrations from code (``myapp-initdb``, tests)."""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

SCRIPT_LOCATION = "myapp:alembic"


def alembic_config(ini_path: str | None = None) -> Config:
    """The ``[alembic]`` section of an ini file, or just the script location."""
    config = Config(ini_path) if ini_path else Config()
    if not config.get_main_option("script_location"):
        config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade_to_head(engine: Engine, ini_path: str | None = None) -> None:
    """Migrate the database behind ``engine`` to the newest schema."""
    config = alembic_config(ini_path)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) this code's migrations lead to."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_problem(connection: Connection) -> str | None:
    """None if the database is at the schema this code expects, else what is wrong."""
    current = frozenset(MigrationContext.configure(connection).get_current_heads())
    if current == head_revisions():
        return None
    if not current:
        return "not migrated; run myapp-initdb CONFIG"
    at, needs = ", ".join(sorted(current)), ", ".join(sorted(head_revisions()))
    return f"at {at}, the code needs {needs}; run myapp-initdb CONFIG"

"""Running the Alembic migrations from code (``myapp-initdb``, tests), and
checking that a database is at the schema this code expects (start-up, scripts,
``/health``)."""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine

from myapp.data.db_session import DbConfigError, connect, safe_url

SCRIPT_LOCATION = "myapp:alembic"


def alembic_config(ini_path: str | None = None) -> Config:
    """The ``[alembic]`` section of an ini file, or just the script location."""
    config = Config(ini_path) if ini_path else Config()
    try:
        location = config.get_main_option("script_location")
    except CommandError:  # an ini file without an [alembic] section
        location = None
    if not location:
        config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def upgrade_to_head(engine: Engine, ini_path: str | None = None) -> None:
    """Migrate the database behind ``engine`` to the newest schema."""
    config = alembic_config(ini_path)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) this code's migrations lead to."""
    return frozenset(_scripts().get_heads())


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code has a migration for."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revision(s) the database is at; empty if it was never migrated."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def revision_names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


def schema_problem(connection: Connection, config_file: str = "CONFIG") -> str | None:
    """None if the database is at the schema this code expects, else what is
    wrong and what to do, worded to follow "the database is"."""
    return _problem(current_revisions(connection), config_file)


def _problem(current: frozenset[str], config_file: str) -> str | None:
    head = head_revisions()
    if current == head:
        return None
    revisions = f"(revision {revision_names(current)}, code needs {revision_names(head)})"
    if not current:
        return f"not migrated {revisions}; run: myapp-initdb {config_file}"
    if current <= known_revisions():
        return f"behind the code {revisions}; run: myapp-initdb {config_file}"
    # Newer code migrated it: no migration here can bring it back.
    return f"ahead of the code {revisions}; deploy the code that migrated it"


def require_schema(engine: Engine, config_file: str = "CONFIG", *, upgradable: bool = False) -> frozenset[str]:
    """The database's revision(s). Raises ``DbConfigError`` (one line, naming
    what to run) unless the database answers and is at the schema this code
    expects or, with ``upgradable``, this code's migrations can bring it there."""
    with connect(engine) as connection:
        current = current_revisions(connection)
    problem = _problem(current, config_file)
    if problem and not (upgradable and current <= known_revisions()):
        raise DbConfigError(f"the database at {safe_url(engine.url)} is {problem}")
    return current

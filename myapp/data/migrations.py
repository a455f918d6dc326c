"""Running the Alembic migrations from code (``myapp-initdb``, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

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

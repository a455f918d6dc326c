"""Alembic environment: the URL comes from the same ini file as the app.

``alembic -c development.ini upgrade head`` reads ``sqlalchemy.url`` (or
``DATABASE_URL``) from the ``[app:main]`` section. ``myapp-initdb`` and the
tests pass an open connection in ``config.attributes["connection"]`` instead.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from pyramid.paster import get_appsettings, setup_logging
from sqlalchemy import Connection, create_engine, pool

import myapp.models
from myapp.data.db_session import to_url
from myapp.data.meta import UTCDateTime
from myapp.data.settings import database_url
from myapp.packaging.search.index import NOT_IN_MODELS

config = context.config
target_metadata = myapp.models.Base.metadata


def _url() -> str:
    if config.config_file_name is None:
        raise RuntimeError("run alembic with -c <ini file>")
    setup_logging(config.config_file_name)
    return to_url(database_url(get_appsettings(config.config_file_name))).render_as_string(hide_password=False)


def _in_models(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate compares only what the models declare: the search index
    (migration 0005) is built by hand for each database."""
    return name not in NOT_IN_MODELS and not (name or "").startswith(tuple(NOT_IN_MODELS))


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Autogenerate writes UTC datetimes as the plain ``sa.DateTime()`` that
    migrations use (the conversion lives in the model's type, not the table)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        include_object=_in_models,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Console scripts. Each reads the same ini file as the web app and opens the
database through ``DbSession.global_init``, without starting the web app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import transaction
from pyramid.paster import get_appsettings, setup_logging
from sqlalchemy.orm import Session

from myapp.data import DbSession, get_tm_session
from myapp.data.settings import database_url, engine_options


def load_settings(config_uri: str) -> dict[str, Any]:
    """Logging set up from the ini, then the app's settings; the database opened."""
    setup_logging(config_uri)
    settings = dict(get_appsettings(config_uri))
    DbSession.global_init(database_url(settings), **engine_options(settings))
    return settings


@contextmanager
def managed_session() -> Iterator[Session]:
    """A session in its own transaction: committed when the block ends, rolled
    back if it raises, just as in a request."""
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        yield get_tm_session(DbSession.factory, tm, write=True)  # type: ignore[arg-type]

"""Console scripts. Each reads the same ini file as the web app and opens the
database through ``DbSession.global_init``, without starting the web app.

``@command("myapp-x")`` on a script's ``main`` turns what an operator can fix
(no such ini file, a bad setting, a database that is down or not migrated)
into one line on stderr and exit code 1; ``--traceback`` (``OPTIONS``, a
parent parser) or ``MYAPP_TRACEBACK=1`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import configparser
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import transaction
from pyramid.paster import get_appsettings, setup_logging
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from myapp import TRACEBACK_ENV, tracebacks_wanted
from myapp.data import DbConfigError, DbSession, driver_message, get_tm_session, require_schema
from myapp.data.settings import database_url, engine_options
from myapp.security import SettingsError


class ScriptError(Exception):
    """Something the operator must fix; the script says it in one line."""


# What the operator can fix; anything else is a bug and keeps its traceback.
OPERATOR_ERRORS = (ScriptError, SettingsError, DbConfigError, OperationalError, OSError)

OPTIONS = argparse.ArgumentParser(add_help=False)
OPTIONS.add_argument(
    "--traceback", action="store_true", help=f"on an error, show the full traceback (or set {TRACEBACK_ENV}=1)"
)


class Main(Protocol):
    """A script's ``main``: ``argv`` defaults to the command line (console scripts call ``main()``)."""

    def __call__(self, argv: list[str] | None = None) -> int: ...


def command(prog: str) -> Callable[[Main], Main]:
    """Run a script's ``main(argv)``, reporting an operator's error in one line."""

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except OPERATOR_ERRORS as exc:
                if tracebacks_wanted() or OPTIONS.parse_known_args(argv)[0].traceback:
                    raise
                print(f"{prog}: {one_line(exc)}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130

        return run

    return decorate


def one_line(exc: BaseException) -> str:
    if isinstance(exc, OperationalError):
        return f"database error: {driver_message(exc)}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def load_settings(config_uri: str, *, check_schema: bool = True) -> dict[str, Any]:
    """Logging set up from the ini, then the app's settings; the database
    opened and (unless ``check_schema`` is false, as for ``myapp-initdb``)
    checked to be at this code's schema."""
    path = config_uri.partition("#")[0]
    if not Path(path).is_file():
        raise ScriptError(f"no such file {path!r}; name the ini file, e.g. development.ini or production.ini")
    try:
        setup_logging(config_uri)
        settings = dict(get_appsettings(config_uri))
    except (configparser.Error, LookupError) as exc:
        raise ScriptError(f"cannot read {path}: {one_line(exc)}") from exc
    DbSession.global_init(database_url(settings), **engine_options(settings))
    if check_schema:
        require_schema(DbSession.engine, config_uri)  # type: ignore[arg-type]
    return settings


@contextmanager
def managed_session() -> Iterator[Session]:
    """A session in its own transaction: committed when the block ends, rolled
    back if it raises, just as in a request."""
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        yield get_tm_session(DbSession.factory, tm, write=True)  # type: ignore[arg-type]

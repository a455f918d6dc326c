"""One engine and one session factory per process: ``DbSession``.

``myapp.main()`` calls ``DbSession.global_init(url)`` once at start-up; every
request then gets its own session from ``DbSession.factory`` (see
``myapp.data.includeme``). Command-line tools and tests call the same method.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

SETTING = "sqlalchemy.url"


class DbConfigError(RuntimeError):
    """The database setting is missing, malformed or conflicts with the live one."""


def to_url(url_or_file: str | URL | os.PathLike[str]) -> URL:
    """Turn a database URL, or a bare path to a SQLite file, into a ``URL``."""
    if isinstance(url_or_file, URL):
        return url_or_file
    text = os.fspath(url_or_file).strip() if url_or_file is not None else ""
    if not text:
        raise DbConfigError(f"The database setting {SETTING!r} is empty; set it in the ini file.")
    if "://" not in text:
        # A bare path: a SQLite file, made absolute so the URL means the same
        # file whatever the working directory of a later process.
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    try:
        return make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise DbConfigError(f"The database setting {SETTING!r} is not a valid URL: {exc}") from None


def safe_url(url: str | URL) -> str:
    """The URL as text, with any password replaced by ``***``."""
    return to_url(url).render_as_string(hide_password=True)


def driver_message(exc: DBAPIError) -> str:
    """The first line of the driver's own message (no SQL, no parameters)."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """``engine.connect()``; a database that cannot be reached is a
    ``DbConfigError`` whose one line says which one, why, and what to do."""
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        raise DbConfigError(
            f"cannot reach the database at {safe_url(engine.url)} ({driver_message(exc)}); "
            f"start it, or point {SETTING} (or DATABASE_URL) at one that runs"
        ) from exc
    with connection:
        yield connection


@functools.lru_cache(maxsize=256)
def regexp(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled as SQLite's ``REGEXP`` runs it here (ignoring case),
    for Python code that must test rows the same way."""
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


def _regexp(pattern: str, value: str | None) -> bool:
    return value is not None and regexp(pattern).search(value) is not None


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, a busy timeout and real transactions for pysqlite.

    pysqlite's own transaction handling issues BEGIN lazily and never for
    SELECT, which breaks SAVEPOINTs and repeatable reads; SQLAlchemy's
    documented recipe is to switch that off and emit BEGIN ourselves. A
    connection (or session) may ask for ``BEGIN IMMEDIATE`` through the
    ``sqlite_begin`` execution option: it takes the write lock up front, so a
    read-modify-write transaction waits for other writers instead of failing.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        # SQLite parses `x REGEXP p` but ships no function for it: Python's re.
        dbapi_conn.create_function("regexp", 2, _regexp, deterministic=True)
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown sqlite_begin mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")

    @event.listens_for(engine, "handle_error")
    def _busy_is_retryable(ctx: Any) -> None:
        # "database is locked" means another writer held the lock past the
        # busy timeout; the whole request can safely run again.
        if "database is locked" in str(ctx.original_exception):
            _mark_retryable(ctx.sqlalchemy_exception)


def _mark_retryable(exc: BaseException | None) -> None:
    if exc is None:
        return
    try:
        from pyramid_retry import mark_error_retryable
    except ImportError:  # pragma: no cover - pyramid_retry is a dependency
        return
    mark_error_retryable(exc)


class DbSession:
    """The process-wide engine and session factory.

    Class attributes rather than module globals so that there is one obvious
    place to look: ``DbSession.engine`` and ``DbSession.factory``.
    """

    engine: ClassVar[Engine | None] = None
    factory: ClassVar[sessionmaker[Session] | None] = None
    url: ClassVar[URL | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _fork_hook_installed: ClassVar[bool] = False

    @classmethod
    def global_init(
        cls,
        url_or_file: str | URL | os.PathLike[str],
        *,
        echo: bool = False,
        busy_timeout_ms: int = 5000,
        **engine_options: Any,
    ) -> sessionmaker[Session]:
        """Create the engine and session factory, once.

        A second call with the same URL returns the existing factory; a call
        with a different URL raises ``DbConfigError`` (call ``dispose()``
        first to switch databases, as tests do).
        """
        url = to_url(url_or_file)
        with cls._lock:
            if cls.engine is not None:
                if cls.url == url:
                    return cls.factory  # type: ignore[return-value]
                raise DbConfigError(
                    f"DbSession is already connected to {safe_url(cls.url or '')}; "
                    f"refusing to reconnect to {safe_url(url)} (call DbSession.dispose() first)."
                )
            log.info("Connecting to DB at %s", safe_url(url))
            engine = cls._create_engine(url, echo=echo, busy_timeout_ms=busy_timeout_ms, **engine_options)
            cls.engine = engine
            cls.url = url
            cls.factory = sessionmaker(bind=engine, expire_on_commit=False)
            cls._install_fork_hook()
            return cls.factory

    @staticmethod
    def _create_engine(url: URL, *, echo: bool, busy_timeout_ms: int, **options: Any) -> Engine:
        database = url.database or ""
        is_file = database not in ("", ":memory:") and not database.startswith("file:")  # not a URI
        if url.get_backend_name() == "sqlite" and is_file:
            folder = Path(database).parent
            if not folder.is_dir():
                raise DbConfigError(f"The folder for the SQLite file {url.database!r} does not exist.")
        # A server's connection may have been dropped while it sat in the pool: ask
        # first. A SQLite file is opened in this process, with nothing to drop.
        options.setdefault("pool_pre_ping", url.get_backend_name() != "sqlite")
        # Bound parameters (user input, later password hashes) stay out of
        # error messages and logs; pass hide_parameters=False to debug.
        options.setdefault("hide_parameters", True)
        try:
            engine = create_engine(url, echo=echo, **options)
        except (ArgumentError, ImportError, TypeError) as exc:
            raise DbConfigError(f"Cannot use {SETTING}={safe_url(url)}: {exc}") from None
        if engine.dialect.name == "sqlite":
            _configure_sqlite(engine, busy_timeout_ms)
        return engine

    @classmethod
    def _install_fork_hook(cls) -> None:
        # A forked worker must not reuse the parent's sockets: drop the
        # inherited pool (without closing the parent's connections).
        if not cls._fork_hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=cls._after_fork)
            cls._fork_hook_installed = True

    @classmethod
    def _after_fork(cls) -> None:
        if cls.engine is not None:
            cls.engine.dispose(close=False)

    @classmethod
    def dispose(cls) -> None:
        """Close every pooled connection and forget the engine (tests, shutdown)."""
        with cls._lock:
            if cls.engine is not None:
                cls.engine.dispose()
            cls.engine = None
            cls.factory = None
            cls.url = None

    @classmethod
    def new_session(cls) -> Session:
        """A plain session outside any request (scripts); the caller commits."""
        if cls.factory is None:
            raise DbConfigError("DbSession.global_init() has not been called.")
        return cls.factory()

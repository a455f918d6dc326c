"""The data layer: engine, session factory, and one managed session per request.

``includeme`` wires ``DbSession.factory`` (created by ``myapp.main`` through
``DbSession.global_init``) to the transaction manager:

* ``pyramid_tm`` opens a transaction per request, commits it when the view
  returns a 2xx/3xx response and aborts it on an exception or a 4xx/5xx
  response (``tm.commit_veto``). Views never commit.
* ``pyramid_retry`` runs the whole request again (3 attempts) when the failure
  was transient: a PostgreSQL serialization failure or deadlock, or SQLite's
  "database is locked".
* ``request.dbsession`` is created on first use, joined to ``request.tm``
  through ``zope.sqlalchemy``, and closed when the transaction ends.
* ``myapp.data.jobs`` is the job queue: work queued in the request's
  transaction and done by a worker after it commits (mail).
* ``write_after_response`` is for bookkeeping that must never fail the
  request it belongs to (download counts): a short transaction of its own,
  after the request's has committed.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyramid_tm
import transaction.interfaces
import zope.sqlalchemy
import zope.sqlalchemy.datamanager
from pyramid.httpexceptions import HTTPException
from pyramid_retry import IRetryableError, is_last_attempt
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from zope.sqlalchemy.datamanager import ZopeTransactionEvents

from myapp.data.db_session import DbConfigError, DbSession, connect, driver_message, safe_url, to_url
from myapp.data.meta import Base
from myapp.data.migrations import require_schema, schema_problem

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request
    from pyramid.response import Response

log = logging.getLogger(__name__)

__all__ = [
    "Base",
    "DbConfigError",
    "DbSession",
    "ReadProbe",
    "connect",
    "database_accepts_writes",
    "database_answers",
    "driver_message",
    "get_tm_session",
    "request_failed",
    "require_schema",
    "retry_transient",
    "safe_url",
    "schema_problem",
    "take_write_lock",
    "to_url",
    "will_retry",
    "write_after_response",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BOOKKEEPING_ATTEMPTS = 3
# PostgreSQL's serialization failure and deadlock: the same write may succeed if run again.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})


# zope.sqlalchemy.register(session) listens for these seven events on each new session,
# and an instance's listeners cost SQLAlchemy 0.2 ms to set up: a twentieth of an upload's
# time. Instead the factory listens once and hands each event to the session's own
# zope.sqlalchemy listeners, kept in its info (none: a session made outside get_tm_session).
_ZOPE_EVENTS = "zope.sqlalchemy events"
_ZOPE_EVENT_NAMES = (
    "after_begin",
    "after_attach",
    "after_flush",
    "after_bulk_update",
    "after_bulk_delete",
    "before_commit",
    "do_orm_execute",
)
_dispatching: weakref.WeakSet[sessionmaker[Session]] = weakref.WeakSet()
_dispatching_lock = threading.Lock()


def _dispatch_zope_events(factory: sessionmaker[Session]) -> None:
    if factory in _dispatching:  # every request after the first: no lock taken
        return
    with _dispatching_lock:
        if factory in _dispatching:
            return
        for name in _ZOPE_EVENT_NAMES:
            event.listen(factory, name, _to_session_listener(name))
        _dispatching.add(factory)


def _to_session_listener(name: str) -> Callable[..., None]:
    def listener(first: Any, *args: Any) -> None:
        session = getattr(first, "session", first)  # bulk and execute events pass a context
        events = session.info.get(_ZOPE_EVENTS)
        if events is not None:
            getattr(events, name)(first, *args)

    return listener


def get_tm_session(
    factory: sessionmaker[Session],
    transaction_manager: transaction.TransactionManager,
    *,
    write: bool = False,
) -> Session:
    """A new session whose commit and rollback belong to ``transaction_manager``.

    The session joins zope.sqlalchemy here, when it is made: each request
    has its own explicit manager (``request.tm``), kept with the session's
    zope.sqlalchemy listeners in its ``info``; the listeners themselves are
    registered once per factory (``_dispatch_zope_events``).
    ``write=True`` asks SQLite for ``BEGIN IMMEDIATE`` (take the write lock
    first, so concurrent read-modify-write requests queue instead of racing);
    other databases ignore it.
    """
    _dispatch_zope_events(factory)
    dbsession = factory()
    # STATUS_CHANGED: commit even when only raw SQL ran. zope.sqlalchemy's
    # default would silently roll back a text("UPDATE ...") unless someone
    # remembered mark_changed(); a read-only COMMIT costs the same as ROLLBACK.
    dbsession.info[_ZOPE_EVENTS] = ZopeTransactionEvents(
        initial_state=zope.sqlalchemy.datamanager.STATUS_CHANGED, transaction_manager=transaction_manager
    )
    if write:
        take_write_lock(dbsession)
    return dbsession


def take_write_lock(dbsession: Session) -> None:
    """On SQLite, begin with ``BEGIN IMMEDIATE``; other databases lock rows as they write."""
    if dbsession.get_bind().dialect.name == "sqlite":
        dbsession.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def _is_transient(exc: SQLAlchemyError) -> bool:
    return IRetryableError.providedBy(exc) or getattr(getattr(exc, "orig", None), "sqlstate", None) in (
        _TRANSIENT_SQLSTATES
    )


def write_after_response(request: Request, work: Callable[[Session], object], *, what: str) -> None:
    """Run ``work(session)`` in a transaction of its own once the request's
    transaction has committed and its response is decided.

    For bookkeeping that must never turn a good response into an error: a
    transient failure is tried again, a lasting one (a read-only database) is
    logged and the response goes out as it is. Not run when the request fails:
    a view (or the commit) raised, whatever page the error view then rendered.
    """
    factory = request.registry["dbsession_factory"]

    def run(request: Request, response: Response) -> None:
        if request_failed(request, response):
            return
        try:
            retry_transient(work, factory)
        except SQLAlchemyError as exc:
            log.error("could not record %s: %s", what, type(getattr(exc, "orig", None) or exc).__name__)

    request.add_response_callback(run)


def retry_transient(work: Callable[[Session], object], factory: sessionmaker[Session]) -> None:
    """Run ``work(session)`` in a write transaction of its own, again if the
    failure was transient (up to three times); a lasting failure is raised."""
    for attempt in range(1, BOOKKEEPING_ATTEMPTS + 1):
        try:
            with factory() as session, session.begin():
                take_write_lock(session)
                work(session)
            return
        except SQLAlchemyError as exc:
            if attempt < BOOKKEEPING_ATTEMPTS and _is_transient(exc):
                continue
            raise


def request_failed(request: Request, response: Response) -> bool:
    """An error page for an exception other than an HTTP answer (a 4xx the
    view chose, such as a form's 400 or a throttle's 429, is not a failure)."""
    exception = getattr(request, "exception", None)
    return response.status_code >= 500 or (exception is not None and not isinstance(exception, HTTPException))


def commit_veto(request: Request, response: Response) -> bool:
    """Abort on a 4xx/5xx response, after marking a transient error retryable.

    pyramid_tm consults the veto *before* it checks whether an exception view
    swallowed a retryable error (a PostgreSQL serialization failure rendered
    as our 500 page), so with the stock veto such requests are never retried.
    Tagging the error here, while the transaction still knows its data
    managers, lets pyramid_retry run the request again.
    """
    exc_info = getattr(request, "exc_info", None)
    if exc_info is not None:
        pyramid_tm.maybe_tag_retryable(request, exc_info)
    return pyramid_tm.default_commit_veto(request, response)


def database_answers(dbsession: Session) -> bool:
    """True if the database runs a trivial query (for /health)."""
    try:
        dbsession.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        return False
    return True


class ReadProbe:
    """One tiny read on every request, as cheaply as the database allows: on
    a connection of the thread's own, outside the pool (no checkout, no ping,
    no transaction: each statement commits on its own and sees the latest
    committed data). The page cache asks it "has anything changed?", the
    project page "which rendering of this project is current?".

    ``sql`` may name parameters as ``:name`` (``probe.row(bind, name=...)``);
    they are sent as the driver's own placeholders. Every probe of a thread
    shares that thread's connection to an engine, so a process holds one
    such connection per thread however many probes there are.

    Bound to a ``Connection`` instead of an ``Engine`` (tests, whose data is
    never committed), it reads on that connection. A failure drops the
    thread's connection and raises; the next call connects again.
    """

    _local = threading.local()  # shared by every probe: one connection per thread

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._statement = text(sql)
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def __call__(self, bind: Engine | Connection) -> Any:
        """The first column of the first row (None if there is no row)."""
        row = self.row(bind)
        return None if row is None else row[0]

    def row(self, bind: Engine | Connection, **params: Any) -> tuple[Any, ...] | None:
        """The first row, as a tuple, or None."""
        if isinstance(bind, Connection):
            found = bind.execute(self._statement, params).first()
            return None if found is None else tuple(found)
        sql, order = self._for(bind.dialect)
        arguments: Any = tuple(params[name] for name in order) if order is not None else params
        held = getattr(self._local, "held", None)
        try:
            if held is None or held[0] is not bind:
                if held is not None:
                    held[1].close()
                held = self._local.held = (bind, self._connect(bind))
            cursor = held[1].cursor()
            try:
                cursor.execute(sql, arguments) if params else cursor.execute(sql)
                found = cursor.fetchone()
                return None if found is None else tuple(found)
            finally:
                cursor.close()
        except Exception as exc:
            self._local.held = None
            driver_error = bind.dialect.loaded_dbapi.Error
            if not isinstance(exc, driver_error):
                raise
            # As SQLAlchemy would raise it (OperationalError...): the exception views
            # answer a database failure with the 503 page, whichever way it was read.
            raise DBAPIError.instance(sql, arguments, exc, driver_error, dialect=bind.dialect) from exc

    def _for(self, dialect: Any) -> tuple[str, tuple[str, ...] | None]:
        """The statement in the driver's paramstyle, and the order of positional parameters."""
        done = self._compiled.get(dialect.name)
        if done is None:
            compiled = self._statement.compile(dialect=dialect)
            order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
            done = self._compiled[dialect.name] = (str(compiled), order if compiled.positional else None)
        return done

    @staticmethod
    def _connect(engine: Engine) -> Any:
        dialect = engine.dialect
        cargs, cparams = dialect.create_connect_args(engine.url)
        connection = dialect.connect(*cargs, **cparams)
        if engine.dialect.name == "sqlite":
            connection.isolation_level = None  # autocommit: no transaction left open
        else:
            connection.autocommit = True
        return connection


def database_accepts_writes(dbsession: Session) -> bool:
    """True if the database takes a write (a no-op update, rolled back):
    catches a read-only file or replica that still answers reads."""
    savepoint = dbsession.begin_nested()
    try:
        dbsession.execute(text("UPDATE alembic_version SET version_num = version_num"))
    except SQLAlchemyError as exc:
        log.warning("database refuses writes: %s", type(getattr(exc, "orig", None) or exc).__name__)
        return False
    finally:
        savepoint.rollback()
    return True


def will_retry(request: Request, exc: BaseException) -> bool:
    """Whether pyramid_retry will run this request again after ``exc``."""
    if is_last_attempt(request):
        return False
    if IRetryableError.providedBy(exc):
        return True
    try:
        return bool(request.tm.get().isRetryableError(exc))
    except transaction.interfaces.NoTransaction:
        return False


def _request_dbsession(request: Request) -> Session:
    factory = request.registry["dbsession_factory"]
    return get_tm_session(factory, request.tm, write=request.method not in SAFE_METHODS)


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    # Secure defaults that a deployment should not have to remember.
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    settings.setdefault("tm.commit_veto", "myapp.data.commit_veto")
    settings.setdefault("retry.attempts", 3)

    if DbSession.factory is None:
        raise DbConfigError("Call DbSession.global_init() before including myapp.data.")
    config.registry["dbsession_factory"] = DbSession.factory

    config.include("pyramid_tm")
    config.include("pyramid_retry")
    config.add_request_method(_request_dbsession, "dbsession", reify=True)
    config.include("myapp.data.jobs")

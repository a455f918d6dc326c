"""One-row reads on the hottest paths, without a session.

A request's session costs a pool checkout (and ping), ``BEGIN``, the ORM's
statement machinery and ``COMMIT`` around its first statement: more than the
statement itself when the answer is one indexed row (a project's serial for
its simple page, a file for its download). ``RawReader`` runs such a
statement as ``ReadProbe`` does: on a DBAPI connection of the thread's own,
outside the pool, in autocommit, so it sees the latest committed data.

Bound to a ``Connection`` instead of an ``Engine`` (tests, whose data is
never committed), it reads on that connection. A failure drops the thread's
connection and raises; the next call connects again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from myapp.data import ReadProbe

if TYPE_CHECKING:
    from pyramid.request import Request

log = logging.getLogger(__name__)


class RawReader:
    """``first(bind, sql, params)``: the statement's first row as a tuple, or None.
    ``sql`` uses ``?`` placeholders (made ``%s`` for PostgreSQL's driver)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def first(self, bind: Engine | Connection, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        sql = _placeholders(bind.dialect.paramstyle, sql)
        if isinstance(bind, Connection):
            row = bind.exec_driver_sql(sql, params).first()
            return tuple(row) if row is not None else None
        held = getattr(self._local, "held", None)
        if held is None or held[0] is not bind:
            held = self._local.held = (bind, ReadProbe._connect(bind))
        try:
            cursor = held[1].cursor()
            try:
                cursor.execute(sql, params)
                found = cursor.fetchone()
                return tuple(found) if found is not None else None
            finally:
                cursor.close()
        except Exception:
            self._local.held = None
            raise


_reader = RawReader()


def read_first(request: Request, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``sql``'s first row, read as ``RawReader`` reads; if that fails, on
    the request's session, whose errors the app knows how to answer (503)."""
    bind = request.registry["dbsession_factory"].kw["bind"]
    try:
        return _reader.first(bind, sql, params)
    except Exception as exc:
        log.warning("raw read failed (%s); reading through the session", type(exc).__name__)
    connection = request.dbsession.connection()
    row = connection.exec_driver_sql(_placeholders(connection.dialect.paramstyle, sql), params).first()
    return tuple(row) if row is not None else None


def _placeholders(paramstyle: str, sql: str) -> str:
    return sql if paramstyle == "qmark" else sql.replace("?", "%s")

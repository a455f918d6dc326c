"""One-row reads on the hottest paths, without a session.

A request's session costs a pool checkout (and ping), ``BEGIN``, the ORM's
statement machinery and ``COMMIT`` around its first statement: more than the
statement itself when the answer is one indexed row (a project's serial for
its simple page, a file for its download). ``read_first`` runs such a
statement through a ``ReadProbe``: on the thread's own DBAPI connection,
outside the pool, in autocommit, so it sees the latest committed data.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from myapp.data import ReadProbe

if TYPE_CHECKING:
    from pyramid.request import Request

log = logging.getLogger(__name__)

# One probe per statement (it keeps the statement compiled for each dialect);
# the statements are the services' constants, so this stays small.
_probes: dict[str, ReadProbe] = {}


def read_first(request: Request, sql: str, **params: Any) -> tuple[Any, ...] | None:
    """``sql``'s first row (``:name`` parameters), read by a ``ReadProbe``; if
    that fails, on the request's session, whose errors the app knows how to
    answer (503)."""
    probe = _probes.get(sql) or _probes.setdefault(sql, ReadProbe(sql))
    bind = request.registry["dbsession_factory"].kw["bind"]
    try:
        return probe.row(bind, **params)
    except Exception as exc:
        log.warning("raw read failed (%s); reading through the session", type(exc).__name__)
    row = request.dbsession.execute(text(sql), params).first()
    return tuple(row) if row is not None else None

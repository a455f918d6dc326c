"""myapp: a Pyramid + SQLAlchemy scaffold whose example site is a package index.

How a request reaches the database::

    development.ini ──► main() ──► DbSession.global_init(url)   (once per process)
                                   ├─► config.configure(): includes + scan
                                   └─► require_schema(): the database answers, at this code's head
    request ──► pyramid_retry ──► pyramid_tm (request.tm) ──► view
                                   view uses request.dbsession (joined to request.tm)
                                   2xx/3xx: commit · exception/4xx/5xx: abort
    after the commit ──► a worker runs the jobs the request queued (mail)
                         myapp-worker, or (myapp.worker_thread = true) a thread that
                         the first request served starts (not pshell's or a script's)
"""

from __future__ import annotations

import gc
import os
from typing import Any

from pyramid.router import Router
from pyramid.settings import asbool

from myapp.config import configure
from myapp.data import DbConfigError, DbSession, require_schema
from myapp.data.settings import database_url, engine_options
from myapp.logs import AccessLog, summarize_queue_warnings
from myapp.security import SettingsError

# Set to 1 to see the traceback behind a one-line start-up or command-line error.
TRACEBACK_ENV = "MYAPP_TRACEBACK"


def tracebacks_wanted() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() in ("1", "true", "yes")


def main(global_config: dict[str, Any] | None = None, **settings: Any) -> Router | AccessLog:
    """The WSGI application, as ``pserve`` and ``waitress`` call it; with
    ``myapp.access_log = true``, inside the access log.

    A setting the operator must fix, a database that does not answer or is
    not at this code's schema (``myapp.check_schema``, on by default) stops
    start-up with one line that says what to do, not a traceback."""
    try:
        DbSession.global_init(database_url(settings), **engine_options(settings))
        config = configure(settings)
        if asbool(settings.get("myapp.check_schema", True)):
            require_schema(DbSession.engine, _config_file(global_config))  # type: ignore[arg-type]
        app = config.make_wsgi_app()
    except (SettingsError, DbConfigError) as exc:
        if tracebacks_wanted():
            raise
        raise SystemExit(f"myapp: {exc}") from None
    summarize_queue_warnings()  # waitress would warn once per queued request under load
    if asbool(settings.get("myapp.gc_freeze", True)):
        # What start-up built lives as long as the process: out of the collector's
        # sight, or each full collection walks all of it again, every few requests
        # that make many objects, such as a search of a million projects (README,
        # "Deploying", has what that walk cost).
        gc.freeze()
    return AccessLog(app) if asbool(settings.get("myapp.access_log", False)) else app


def _config_file(global_config: dict[str, Any] | None) -> str:
    """The ini file pserve read, as the operator would type it."""
    path = (global_config or {}).get("__file__")
    if not path:
        return "CONFIG"
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative

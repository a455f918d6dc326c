"""myapp: a Pyramid + SQLAlchemy scaffold whose example site is a package index.

How a request reaches the database::

    development.ini ──► main() ──► DbSession.global_init(url)   (once per process)
                                   │
                                   └─► config.configure(): includes + scan
    request ──► pyramid_retry ──► pyramid_tm (request.tm) ──► view
                                   view uses request.dbsession (joined to request.tm)
                                   2xx/3xx: commit · exception/4xx/5xx: abort
"""

from __future__ import annotations

from typing import Any

from pyramid.router import Router
from pyramid.settings import asbool

from myapp.config import configure
from myapp.data import DbConfigError, DbSession
from myapp.data.settings import database_url, engine_options
from myapp.logs import AccessLog
from myapp.security import SettingsError


def main(global_config: dict[str, Any] | None = None, **settings: Any) -> Router | AccessLog:
    """The WSGI application, as ``pserve`` and ``waitress`` call it; with
    ``myapp.access_log = true``, inside the access log.

    A setting the operator must fix stops start-up with one line that says
    what to do, not a traceback."""
    try:
        DbSession.global_init(database_url(settings), **engine_options(settings))
        app = configure(settings).make_wsgi_app()
    except (SettingsError, DbConfigError) as exc:
        raise SystemExit(f"myapp: {exc}") from None
    return AccessLog(app) if asbool(settings.get("myapp.access_log", False)) else app

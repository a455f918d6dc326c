"""How the application is put together: an ordered list of includes, then a scan.

Each include is a domain package with its own ``includeme`` (routes,
settings, request methods); the scan registers the ``@view_config`` views.
Read top to bottom: that is the order in which things are set up.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator

INCLUDES = (
    "myapp.data",  # request.dbsession + pyramid_tm + pyramid_retry
    "myapp.security",  # session cookie, CSRF, allowed methods, headers
    "myapp.web",  # Jinja2, request guard, page cache, static files, health, error pages
    "myapp.accounts",  # users, sign-in, security policy, mail
    "myapp.packaging",  # the package index
    "myapp.upstream",  # the proxy of a public index (myapp.upstream), when set
    "myapp.manage",  # maintainers' pages: projects, collaborators, API tokens
)


def configure(settings: dict[str, Any]) -> Configurator:
    """A Configurator with everything registered; ``main()`` makes the WSGI app
    from it, and tests may add to it first."""
    config = Configurator(settings=settings)
    for name in INCLUDES:
        config.include(name)
    config.scan("myapp", ignore=["myapp.alembic", "myapp.scripts"])
    return config

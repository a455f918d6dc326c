"""The request class, made once at start-up instead of once per request.

``config.add_request_method(..., reify=True)`` (``request.dbsession``,
pyramid_tm's ``request.tm``) makes Pyramid build a new subclass of the
request for every request it serves, to hang the properties on (about 8%
of the time of a page served from the page cache, in a profile). After
every include has added its methods and properties, this moves them onto
one subclass, made here once, and registers it as the request factory:
each request then has them as any class attribute, with the same reify and
method semantics, and Pyramid has no extensions left to apply.
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.interfaces import IRequestExtensions, IRequestFactory
from pyramid.request import Request

# After the default order (0) of add_request_method's actions, in the same commit.
AFTER_REQUEST_METHODS = 10


def _bake(config: Configurator) -> None:
    registry = config.registry
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None:
        return
    base = registry.queryUtility(IRequestFactory, default=Request)
    attributes = {**extensions.methods, **extensions.descriptors}
    baked = type("AppRequest", (base,), {"__module__": __name__, **attributes})
    registry.registerUtility(baked, IRequestFactory)
    registry.unregisterUtility(provided=IRequestExtensions)


def includeme(config: Configurator) -> None:
    config.action(("myapp.web.requests",), lambda: _bake(config), order=AFTER_REQUEST_METHODS)

"""The pull-through proxy of a public index (``myapp.upstream``).

Above ``packaging`` in the layers: packaging never imports this package; its
simple, JSON and project views offer hooks (registry entries) that this
package's ``includeme`` fills when ``myapp.upstream`` is set. Unset, nothing
here is registered and the index is as before.
"""

from __future__ import annotations

from pyramid.config import Configurator

from myapp.upstream import urls
from myapp.upstream.settings import REGISTRY_KEY, read_settings


def includeme(config: Configurator) -> None:
    upstream = read_settings(config.get_settings())
    config.registry[REGISTRY_KEY] = upstream
    if upstream is None:
        return
    # The files part's download view answers here (see urls.py for the layout).
    config.add_route(urls.ROUTE, urls.PATTERN)

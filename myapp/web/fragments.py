"""Rendered pieces of pages, kept by a key that names everything they show.

The page cache (``cache.py``) serves whole pages, to anonymous visitors only.
A fragment is the part of a page that is the same for everyone who may see
it (a project page's article: no account menu, no CSRF token), so it also
serves signed-in visitors and the members of a private index, after the
permission check, inside the page's own layout. Whoever puts a fragment
chooses a key that changes whenever what it shows may have: the project
page's holds the index's serial and the project's download total, read on a
raw connection (``myapp.data.ReadProbe``) before rendering, so a change
committed by any process is never hidden by an older rendering.

Bounded in bytes (``myapp.fragment_cache_bytes``) and in age
(``myapp.fragment_cache_seconds``, which bounds what no key can see, such as
``myapp-rerender`` storing a description's new rendering); 0 seconds turns
it off. Thread-safe; the least recently used entry goes first (``web.bounded``).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from pyramid.config import Configurator
from pyramid.request import Request

from myapp.web.bounded import BoundedMap

DEFAULT_SECONDS = 300.0
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_ENTRY_OVERHEAD = 400  # bytes of Python objects around each entry, roughly
REGISTRY_KEY = "fragment_cache"


@dataclass(frozen=True)
class Fragment:
    """A page's title and its rendered body (safe HTML)."""

    title: str
    html: str


class FragmentCache(BoundedMap[Fragment]):
    """Key -> fragment, bounded in bytes and in age; off at 0 seconds."""

    @property
    def enabled(self) -> bool:
        return self.seconds is not None

    def keep(self, key: Hashable, fragment: Fragment) -> None:
        if self.enabled:
            self.put(key, fragment, len(fragment.html) + len(fragment.title) + len(repr(key)) + _ENTRY_OVERHEAD)


def fragment_cache(request: Request) -> FragmentCache:
    cache: FragmentCache = request.registry[REGISTRY_KEY]
    return cache


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    seconds = float(settings.get("myapp.fragment_cache_seconds", DEFAULT_SECONDS) or 0)
    max_bytes = int(settings.get("myapp.fragment_cache_bytes", DEFAULT_MAX_BYTES))
    config.registry[REGISTRY_KEY] = FragmentCache(max_bytes, seconds)

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
it off. Thread-safe; the oldest entry goes first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from pyramid.config import Configurator
from pyramid.request import Request

DEFAULT_SECONDS = 300.0
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_ENTRY_OVERHEAD = 400  # bytes of Python objects around each entry, roughly
REGISTRY_KEY = "fragment_cache"


@dataclass(frozen=True)
class Fragment:
    """A page's title and its rendered body (safe HTML)."""

    title: str
    html: str


class FragmentCache:
    """Key -> fragment. Every entry lives the same number of seconds, so
    insertion order is expiry order: the first entry is both the first to
    expire and the first to go when the byte budget is reached."""

    def __init__(self, seconds: float = DEFAULT_SECONDS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Fragment, float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def get(self, key: Hashable) -> Fragment | None:
        found = self._entries.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    def put(self, key: Hashable, fragment: Fragment) -> None:
        if not self.enabled:
            return
        size = len(fragment.html) + len(fragment.title) + len(repr(key)) + _ENTRY_OVERHEAD
        if size > self.max_bytes // 8:  # one entry never takes a large share of the budget
            return
        now = time.monotonic()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[key] = (fragment, now + self.seconds, size)
            self.bytes += size
            while self._entries:
                _, expires, oldest_size = next(iter(self._entries.values()))
                if expires >= now and self.bytes <= self.max_bytes:
                    break
                self._entries.popitem(last=False)
                self.bytes -= oldest_size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


def fragment_cache(request: Request) -> FragmentCache:
    cache: FragmentCache = request.registry[REGISTRY_KEY]
    return cache


def includeme(config: Configurator) -> None:
    settings = config.get_settings()
    seconds = float(settings.get("myapp.fragment_cache_seconds", DEFAULT_SECONDS) or 0)
    max_bytes = int(settings.get("myapp.fragment_cache_bytes", DEFAULT_MAX_BYTES))
    config.registry[REGISTRY_KEY] = FragmentCache(seconds, max_bytes)

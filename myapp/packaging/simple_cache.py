"""Rendered ``/simple/<name>/`` pages kept in this process's memory.

pip and uv ask for a project's simple page on every install, and the page
changes only when the project does: every write that changes it bumps the
project's serial (``services.bump_serial``). So a page is kept under the
project's id, creation time and serial, the format and the app's mount point,
and a request first reads those (one indexed statement, no ORM object). Any
process sees another's write at once, as the serial it reads is the new one:
there is nothing to invalidate, and an old entry just ages out.

The memory is bounded by bytes (``myapp.simple_cache_bytes``, 0 turns the cache
off): least recently used pages go first, and a page larger than an eighth
of the bound is never kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from pyramid.registry import Registry

SETTING = "myapp.simple_cache_bytes"
DEFAULT_BYTES = 32 * 1024 * 1024
REGISTRY_KEY = "simple_cache"


@dataclass(frozen=True)
class Page:
    """A rendered page: its body and its whole ``Content-Type`` header."""

    body: bytes
    content_type: str


class PageLRU:
    """A least-recently-used map of pages, bounded by the bytes of their bodies; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, Page] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> Page | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: Page) -> None:
        size = len(page.body)
        if size > self.max_bytes // 8:
            return  # one huge project must not flush every other page out
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._pages[key] = page
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._pages.popitem(last=False)
                self._bytes -= len(evicted.body)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def get_or_render(self, key: Hashable, render: Callable[[], Page]) -> Page:
        """The kept page, or a new rendering (kept). Two threads missing at
        once both render: the same bytes, and no lock held while rendering."""
        page = self.get(key)
        if page is None:
            page = render()
            self.put(key, page)
        return page


def install(registry: Registry, settings: dict[str, str]) -> None:
    """The kept pages of this process, bounded by ``myapp.simple_cache_bytes``."""
    registry[REGISTRY_KEY] = PageLRU(int(settings.get(SETTING, DEFAULT_BYTES)))


def cache_of(registry: Registry) -> PageLRU:
    cache: PageLRU = registry[REGISTRY_KEY]
    return cache

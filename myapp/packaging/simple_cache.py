"""Rendered ``/simple/<name>/`` pages (and ``/pypi/<name>/json`` documents,
``jsonapi``) kept in this process's memory.

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

from dataclasses import dataclass
from datetime import datetime

from pyramid.registry import Registry

from myapp.web.bounded import BoundedMap

SETTING = "myapp.simple_cache_bytes"
DEFAULT_BYTES = 32 * 1024 * 1024
REGISTRY_KEY = "simple_cache"


@dataclass(frozen=True)
class Page:
    """A rendered page: its body and its whole ``Content-Type`` header; for a
    page kept under a key that does not say everything it shows (a proxied
    page, whose files the cooldown lets out as they age), its ETag's own part
    and the time it stops holding (None: never by itself)."""

    body: bytes
    content_type: str
    etag: str = ""
    until: datetime | None = None

    def holds(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def install(registry: Registry, settings: dict[str, str]) -> None:
    """The kept pages of this process, bounded by ``myapp.simple_cache_bytes``."""
    registry[REGISTRY_KEY] = BoundedMap[Page](int(settings.get(SETTING, DEFAULT_BYTES)))


def cache_of(registry: Registry) -> BoundedMap[Page]:
    cache: BoundedMap[Page] = registry[REGISTRY_KEY]
    return cache


def sized(page: Page) -> tuple[Page, int]:
    """A page with its size, as the cache counts it: its body's bytes."""
    return page, len(page.body)

"""One in-memory map bounded by bytes, for what a process keeps of rendered output.

The kept simple pages (``packaging.simple_cache``) and the page fragments
(``web.fragments``) are both "key -> rendered bytes, least recently used out
first, never more than N bytes, never one entry over an eighth of them"; the
fragments also expire. Thread-safe: a lock around each change (a read only
moves its entry to the end).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedMap(Generic[V]):
    """Key -> value with a size in bytes; the least recently used go first
    once the total passes ``max_bytes``, and with ``seconds``, an entry older
    than that is gone (0 or None: entries do not expire)."""

    def __init__(
        self, max_bytes: int, seconds: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.seconds = seconds or None
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[V, int, float]] = OrderedDict()  # value, size, expiry
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The bytes held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if self.seconds is not None and found[2] < self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Keep ``value`` (``size`` bytes), unless it alone is over an eighth of
        the bound: one huge entry must not flush every other one out."""
        if size > self.max_bytes // 8:
            return
        expires = self._clock() + self.seconds if self.seconds is not None else 0.0
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (value, size, expires)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def get_or_make(self, key: Hashable, make: Callable[[], tuple[V, int]]) -> V:
        """The kept value, or a new one (kept). Two threads missing at once
        both make it: no lock is held while making."""
        value = self.get(key)
        if value is None:
            value, size = make()
            self.put(key, value, size)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key)[1]

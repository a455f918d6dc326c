"""A proxied file's first download as it grows, for the other requests of
this process that want the same file.

The leader (``filefetch.Pull``) writes the upstream's bytes to a temporary
file and says how far it got (``advance``), then whether the bytes were
verified and stored (``settle``). A follower reads that file as it grows and
sends each chunk on, holding back its last one until the verdict, as the
leader does: on a refusal its response is cut short too, so no client ever
completes a bad file. A follower's first byte so comes with the leader's,
not after its last, so a client's read timeout (pip's is 15 s) is not spent
waiting for a large wheel.

Followers open the file before the leader is done with it: a POSIX file
stays readable through its descriptor after it is moved into the store or
removed. Requests in other processes still wait for the stored file
(``filefetch.FileFetcher.first_download``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


class Abandoned(Exception):
    """The leader's fetch ended without a verified file: the follower's response is cut short."""


class Growing:
    """One file being fetched by this process: its temporary file, how many
    bytes are in it, and the verdict (None while it is still coming)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = threading.Condition()
        self._written = 0
        self._verdict: bool | None = None

    def advance(self, written: int) -> None:
        """``written`` bytes are in the file (flushed)."""
        with self._changed:
            self._written = written
            self._changed.notify_all()

    def settle(self, verified: bool) -> None:
        """The last word: verified and stored, or not (refused, or the leader's client left)."""
        with self._changed:
            if self._verdict is None:
                self._verdict = verified
            self._changed.notify_all()

    def open(self) -> BinaryIO | None:
        """The file, for a follower; None if it is settled already or gone (the caller serves the store)."""
        if self._verdict is not None:
            return None
        try:
            return self.path.open("rb")
        except FileNotFoundError:
            return None

    def follow(self, source: BinaryIO, chunk: int, patience: float) -> Iterator[bytes]:
        """The file's bytes from ``source`` as they arrive, the last chunk held
        back until the verdict; ``Abandoned`` on a refusal, or when no byte and no
        verdict came for ``patience`` seconds."""
        with source:
            sent, held = 0, None
            while True:
                written, verdict = self._wait(sent, patience)
                while sent < written:
                    data = source.read(min(chunk, written - sent))
                    if not data:
                        raise Abandoned(f"{self.path.name}: the file ended at {sent} of {written} bytes")
                    sent += len(data)
                    if held is not None:
                        yield held
                    held = data
                if verdict is not None:
                    if not verdict:
                        raise Abandoned(f"{self.path.name}: the fetch was not verified")
                    if held is not None:
                        yield held
                    return

    def _wait(self, sent: int, patience: float) -> tuple[int, bool | None]:
        with self._changed:
            if not self._changed.wait_for(lambda: self._written > sent or self._verdict is not None, patience):
                raise Abandoned(f"{self.path.name}: nothing came for {patience:.0f} s")
            # The leader says how far it got before it gives its verdict: with a verdict, ``written`` is all.
            return self._written, self._verdict


class Fetches:
    """The files this process is fetching, by id (``FileFetcher.growing``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, Growing] = {}

    def start(self, file_id: int, path: Path) -> Growing:
        growing = Growing(path)
        with self._lock:
            self._by_id[file_id] = growing
        return growing

    def get(self, file_id: int) -> Growing | None:
        with self._lock:
            return self._by_id.get(file_id)

    def end(self, file_id: int, growing: Growing) -> None:
        with self._lock:
            if self._by_id.get(file_id) is growing:
                del self._by_id[file_id]

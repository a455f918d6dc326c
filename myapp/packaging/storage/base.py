"""The ``FileStore`` interface every caller uses, and what all stores share:
node-local temporary files, and writes and deletions that follow the
request's transaction.

A store keeps bytes under a relative path (``ab/cd/name.whl``, or anything
else a caller chooses) and streams them back; it knows nothing of releases.
Two kinds: a local folder (``LocalFileStore``) and an S3 bucket
(``S3FileStore``).

Transactions: a new file is first a temporary file on this node
(``incoming()``), then handed to ``place_on_commit``. A local store renames
it into place as the transaction votes; an object store uploads it at once,
during the request, under its content address (no row names that key until
the database commits, so nothing can reach it before), and deletes it again
if the transaction aborts. ``remove_on_commit`` deletes only after the
commit. Whatever a killed process leaves behind (a temporary file, an object
no row names) is swept by periodic jobs (``storage.sweep``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import transaction
from pyramid.request import Request
from transaction.interfaces import IDataManager
from zope.interface import implementer

from myapp.web.files import Served

log = logging.getLogger(__name__)

INCOMING = ".incoming"
# An upload in flight writes its temporary file within seconds to minutes; one
# untouched for an hour was left by a process that died (kill -9, power loss).
STALE_SECONDS = 3600
CHUNK = 1024 * 1024
METADATA = ".metadata"
# By ending; anything else is plain bytes. (Never a Content-Encoding: clients would unpack the file.)
CONTENT_TYPES = {
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar.gz": "application/gzip",
    METADATA: "text/plain; charset=utf-8",
}


def content_type_of(name: str) -> str:
    return next((t for end, t in CONTENT_TYPES.items() if name.endswith(end)), "application/octet-stream")


def relative_path(sha256: str, filename: str) -> str:
    """A distribution file's content address: ``sha256[:2]/sha256[2:4]/filename``."""
    return f"{sha256[:2]}/{sha256[2:4]}/{filename}"


def is_content_path(relative: str) -> bool:
    """What a store may hold: a relative path of plain names (no ``..``, no
    backslash or NUL, nothing hidden: ``.incoming`` and ``.cache`` live
    beside the objects in a local store)."""
    if not relative or "\\" in relative or "\x00" in relative:
        return False
    return all(part and not part.startswith(".") for part in relative.split("/"))


class Readable(Protocol):
    """What a store reads bytes from: a file, or anything with ``read``."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class StoredObject:
    path: str  # relative to the store
    size: int
    modified: float  # seconds since the epoch


class StoreUnavailable(Exception):
    """The store did not answer (network, credentials, a missing bucket): the
    request is worth retrying later; a 503, never a 500."""


class FileStore(ABC):
    """Bytes under relative paths, written and removed with the transaction."""

    #: Where this node keeps its temporary files (uploads being received).
    scratch: Path
    #: True: ``place_on_commit`` writes at once (during the request) and
    #: deletes on abort; False: it writes as the transaction votes.
    writes_early = False

    #: Which of these paths committed rows name (set by the app, see
    #: ``audit.named_by_rows``). An aborted upload takes back only objects
    #: that no row names: with ``writes_early``, an upload of the very same
    #: bytes under the same name may have found this transaction's object
    #: there, skipped its own, and committed its row first.
    in_use: Callable[[list[str]], set[str]] | None = None

    relative_path = staticmethod(relative_path)

    @property
    @abstractmethod
    def url(self) -> str:
        """What the operator wrote: a folder or ``s3://bucket/prefix``."""

    # -- primitive operations ------------------------------------------------------

    @abstractmethod
    def stat(self, relative: str) -> StoredObject | None:
        """The object's size and date, or None if there is none."""

    def exists(self, relative: str) -> bool:
        return self.stat(relative) is not None

    @abstractmethod
    def open(self, relative: str) -> IO[bytes]:
        """The object's bytes as a stream (FileNotFoundError if there is none)."""

    @abstractmethod
    def write(self, relative: str, stream: Readable) -> None:
        """Store what ``stream`` holds under ``relative`` (read in chunks, never whole)."""

    def put_file(self, source: Path, relative: str) -> None:
        """Store the local file ``source`` under ``relative``; ``source`` is used up."""
        with source.open("rb") as stream:
            self.write(relative, stream)
        source.unlink(missing_ok=True)

    @abstractmethod
    def delete(self, relative: str) -> None:
        """Remove the object (nothing if there is none)."""

    @abstractmethod
    def iter_objects(self) -> Iterator[StoredObject]:
        """Every object in the store (temporary files excluded), a page at a time."""

    @abstractmethod
    def health(self, settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """("ok" or what is wrong, extra facts for /health)."""

    @abstractmethod
    def serve(self, request: Request, relative: str, *, etag: str | None, content_type: str) -> Served:
        """The answer to a download of ``relative`` (the caller has checked
        that the client may have it): the bytes, or a redirect to them."""

    # -- temporary files on this node -------------------------------------------

    def incoming(self) -> IO[bytes]:
        """A new temporary file on this node, for an upload being received."""
        folder = self.scratch / INCOMING
        try:
            return tempfile.NamedTemporaryFile(dir=folder, delete=False, prefix="upload-")
        except FileNotFoundError:  # the first upload (a mkdir on every upload was a tenth of its file work)
            folder.mkdir(parents=True, exist_ok=True)
            return tempfile.NamedTemporaryFile(dir=folder, delete=False, prefix="upload-")

    def write_incoming(self, data: bytes) -> Path:
        """``data`` in a new temporary file (none is left behind if writing fails)."""
        out = self.incoming()
        try:
            with out:
                out.write(data)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
        return Path(out.name)

    def sweep(self, older_than: float = STALE_SECONDS) -> int:
        """Remove temporary files not modified for ``older_than`` seconds (left
        by a process that died mid-upload); the number removed."""
        cutoff = time.time() - older_than
        removed = 0
        for path in (self.scratch / INCOMING).glob("upload-*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # its upload finished (or another sweep won) meanwhile
                continue
        if removed:
            log.warning("removed %d stale temporary upload file(s) from %s", removed, self.scratch / INCOMING)
        return removed

    def scratch_space(self, settings: dict[str, Any]) -> tuple[str, int | None]:
        """Whether this node's folder for temporary files can take one more upload."""
        folder = self.scratch
        free = shutil.disk_usage(folder).free if folder.is_dir() else None
        floor = int(settings.get("myapp.min_free_bytes", 0))
        if free is None:
            return "missing", None
        if not _writable(folder):
            return "not writable", free
        if free < floor:
            return f"low on space: {free} bytes free, less than myapp.min_free_bytes ({floor})", free
        return "ok", free

    # -- with the transaction ----------------------------------------------------

    def place_on_commit(self, tm: transaction.TransactionManager, moves: list[tuple[Path, str]]) -> None:
        """Store each temporary file under its relative path, visible when ``tm`` commits."""
        placing = _PlaceFiles(self, tm, moves)
        tm.get().join(placing)
        if self.writes_early:
            placing.place()

    def still_named(self, relatives: list[str]) -> set[str]:
        """Which of ``relatives`` a committed row names; all of them if that
        cannot be known now (the orphan sweep decides later)."""
        if self.in_use is None or not relatives:
            return set()
        try:
            return self.in_use(relatives)
        except Exception as exc:  # the database is down: keep them, never lose one a row names
            log.warning("cannot tell whether rows name %s (left to the sweep): %s", relatives, exc)
            return set(relatives)

    def remove_on_commit(self, tm: transaction.TransactionManager, relatives: list[str]) -> None:
        """Delete stored objects once ``tm`` has committed (before, a rollback would need them).
        One that cannot be deleted now is logged and left to the orphan sweep."""

        def remove(committed: bool) -> None:
            if not committed:
                return
            for relative in relatives:
                try:
                    self.delete(relative)
                except (OSError, StoreUnavailable) as exc:
                    log.warning("could not delete %s from %s (the sweep will): %s", relative, self.url, exc)

        tm.get().addAfterCommitHook(remove)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


@implementer(IDataManager)
class _PlaceFiles:
    """Joins the transaction: places the files (at once, or as it votes),
    and takes back what it placed if the transaction aborts."""

    def __init__(self, store: FileStore, tm: transaction.TransactionManager, moves: list[tuple[Path, str]]) -> None:
        self.store = store
        self.transaction_manager = tm
        self.moves = moves
        self.placed: list[str] = []
        self.done = False

    def place(self) -> None:
        for source, relative in self.moves:
            if self.store.exists(relative):  # the same bytes under the same name: keep the one there
                source.unlink(missing_ok=True)
                continue
            self.store.put_file(source, relative)
            self.placed.append(relative)
        self.done = True

    def sortKey(self) -> str:
        # Before zope.sqlalchemy's "~sqlalchemy:...": a file that cannot be placed stops the commit.
        return "0-myapp-files"

    def tpc_vote(self, txn: Any) -> None:
        if not self.done:
            self.place()

    def tpc_abort(self, txn: Any) -> None:
        self.abort(txn)

    def abort(self, txn: Any) -> None:
        placed, self.placed = self.placed, []
        named = self.store.still_named(placed)
        for relative in placed:
            if relative in named:  # another upload of the same bytes committed a row for it
                continue
            try:
                self.store.delete(relative)
            except (OSError, StoreUnavailable) as exc:  # no row names it: the orphan sweep will
                log.warning("could not take back %s from %s: %s", relative, self.store.url, exc)
        for source, _ in self.moves:
            source.unlink(missing_ok=True)

    def tpc_begin(self, txn: Any) -> None:
        pass

    def commit(self, txn: Any) -> None:
        pass

    def tpc_finish(self, txn: Any) -> None:
        self.moves, self.placed = [], []

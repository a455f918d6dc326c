"""Where distribution files live: a folder, content-addressed by sha256.

A new file is written to a temporary file first and moved into place only as
the request's transaction commits (a data manager that votes before the
database does); if the transaction aborts, or the database refuses the
commit, the file is gone again. An object store can replace this class: the
views use only ``incoming``, ``relative_path`` and ``place_on_commit``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import transaction
from transaction.interfaces import IDataManager
from zope.interface import implementer

from myapp.data.jobs import JobContext

log = logging.getLogger(__name__)

INCOMING = ".incoming"
# An upload in flight writes its temporary file within seconds to minutes; one
# untouched for an hour was left by a process that died (kill -9, power loss).
STALE_SECONDS = 3600
SWEEP_KIND = "uploads.sweep"
SWEEP_EVERY_SECONDS = 15 * 60


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def relative_path(sha256: str, filename: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{filename}"

    def incoming(self) -> IO[bytes]:
        """A temporary file in the store (so that the final move is a rename)."""
        folder = self.root / INCOMING
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
        for path in (self.root / INCOMING).glob("upload-*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # its upload finished (or another sweep won) meanwhile
                continue
        if removed:
            log.warning("removed %d stale temporary upload file(s) from %s", removed, self.root / INCOMING)
        return removed

    def remove_on_commit(self, tm: transaction.TransactionManager, relatives: list[str]) -> None:
        """Delete stored files once ``tm`` has committed (before, a rollback would need them)."""

        def remove(committed: bool) -> None:
            if committed:
                for relative in relatives:
                    (self.root / relative).unlink(missing_ok=True)

        tm.get().addAfterCommitHook(remove)

    def place_on_commit(self, tm: transaction.TransactionManager, moves: list[tuple[Path, str]]) -> None:
        """Move each temporary file to its relative path when ``tm`` commits."""
        tm.get().join(_PlaceFiles(tm, [(source, self.root / relative) for source, relative in moves]))


@implementer(IDataManager)
class _PlaceFiles:
    def __init__(self, tm: transaction.TransactionManager, moves: list[tuple[Path, Path]]) -> None:
        self.transaction_manager = tm
        self.moves = moves
        self.placed: list[Path] = []

    def sortKey(self) -> str:
        # Before zope.sqlalchemy's "~sqlalchemy:...": a file that cannot be placed stops the commit.
        return "0-myapp-files"

    def tpc_vote(self, txn: Any) -> None:
        for source, target in self.moves:
            if target.exists():  # the same bytes under the same name: keep the one there
                source.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            self.placed.append(target)

    def tpc_abort(self, txn: Any) -> None:
        for target in self.placed:
            target.unlink(missing_ok=True)
        self.abort(txn)

    def abort(self, txn: Any) -> None:
        for source, _ in self.moves:
            source.unlink(missing_ok=True)

    def tpc_begin(self, txn: Any) -> None:
        pass

    def commit(self, txn: Any) -> None:
        pass

    def tpc_finish(self, txn: Any) -> None:
        self.moves, self.placed = [], []


def sweep_incoming(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The periodic job: temporary files that no upload will finish."""
    ctx.registry["file_store"].sweep()

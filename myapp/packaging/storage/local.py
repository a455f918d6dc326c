"""A folder on this machine (``myapp.files_dir``): the default store.

Temporary files live in the same folder (``.incoming``), so that placing a
file is a rename; objects are plain files, served by ``serve_file`` with
ranges and conditional requests.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pyramid.httpexceptions import HTTPServiceUnavailable
from pyramid.request import Request

from myapp.packaging.storage.accel import hand_to_proxy
from myapp.packaging.storage.base import CHUNK, FileStore, Readable, StoredObject, is_content_path
from myapp.web.files import Served, serve_file

log = logging.getLogger(__name__)

UNAVAILABLE = "This file is temporarily unavailable. The site's operators have been told."


class LocalFileStore(FileStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.scratch = root  # the same filesystem: placing a file is a rename

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, relative: str) -> Path:
        if not is_content_path(relative):
            raise ValueError(f"not a stored file's path: {relative!r}")
        return self.root / relative

    def stat(self, relative: str) -> StoredObject | None:
        try:
            st = self._path(relative).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return StoredObject(relative, st.st_size, st.st_mtime)

    def open(self, relative: str) -> IO[bytes]:
        return self._path(relative).open("rb")

    def write(self, relative: str, stream: Readable) -> None:
        target = self._path(relative)
        with self.incoming() as out:
            try:
                shutil.copyfileobj(stream, out, CHUNK)
            except BaseException:
                out.close()
                Path(out.name).unlink(missing_ok=True)
                raise
        self._move(Path(out.name), target)

    def put_file(self, source: Path, relative: str) -> None:
        self._move(source, self._path(relative))

    @staticmethod
    def _move(source: Path, target: Path) -> None:
        try:
            try:
                os.replace(source, target)
            except FileNotFoundError:  # the target's folder is new (tried first: it is usually there)
                if not source.exists():
                    raise
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
        except OSError:
            source.unlink(missing_ok=True)
            raise

    def delete(self, relative: str) -> None:
        self._path(relative).unlink(missing_ok=True)

    def iter_objects(self) -> Iterator[StoredObject]:
        """Every stored file, folders in name order; hidden folders
        (``.incoming``, ``.cache``) are not the store's."""
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            base = Path(folder).relative_to(self.root)
            for name in sorted(files):
                if name.startswith("."):
                    continue
                relative = (base / name).as_posix()
                try:
                    st = os.stat(os.path.join(folder, name))
                except FileNotFoundError:  # deleted meanwhile
                    continue
                yield StoredObject(relative, st.st_size, st.st_mtime)

    def health(self, settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        state, free = self.scratch_space(settings)
        return state, {"files_free_bytes": free}

    def serve(self, request: Request, relative: str, *, etag: str | None, content_type: str) -> Served:
        # Checked by its text, not by resolving it (a realpath is a system call per folder, and was
        # 9% of a download's time): a stored path is plain names under the root, never ".." or hidden.
        path = self.root / relative
        try:
            if not is_content_path(relative):
                raise FileNotFoundError(relative)
            served = serve_file(request, path, etag=etag, content_type=content_type)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # The database says we have it: a lost file or an unmounted store is ours to fix.
            log.error("stored file missing: %s (expected at %s)", relative.rsplit("/", 1)[-1], path)
            raise HTTPServiceUnavailable(UNAVAILABLE) from None
        hand_to_proxy(request, served.response, relative, path)
        return served

"""The file-store operations the proxy's files part uses, in one place.

The proxy keeps upstream files in the same ``FileStore`` as our own uploads
(a local folder or an object store), under the same content-addressed paths
(``sha256[:2]/sha256[2:4]/filename``), so they are served exactly like ours
(ranges, ETag, cache headers, or a redirect to a signed URL). Unlike an
upload, a proxied file is not placed with a request's transaction: its bytes
are verified *after* the response began, so it is placed at once and its row
updated in a transaction of its own right after (a crash in between leaves an
object no row names, which the store's orphan sweep, or the next fetch of
the same file, takes care of).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from pyramid.request import Request

from myapp.packaging.storage import FileStore, relative_path
from myapp.web.files import Served

__all__ = ["delete", "incoming", "put", "relative_path", "serve", "store_of"]


def store_of(request_or_registry: Any) -> FileStore:
    registry = getattr(request_or_registry, "registry", request_or_registry)
    store: FileStore = registry["file_store"]
    return store


def incoming(store: FileStore) -> IO[bytes]:
    """A new temporary file on this node (removed by the store's sweep if left behind)."""
    return store.incoming()


def put(store: FileStore, source: Path, relative: str) -> None:
    """Store the temporary file ``source`` under ``relative`` (``source`` is used up).
    The same path already there holds the same bytes (content-addressed): kept."""
    if store.exists(relative):
        source.unlink(missing_ok=True)
    else:
        store.put_file(source, relative)


def delete(store: FileStore, relative: str) -> None:
    """Remove the stored object (nothing if there is none)."""
    store.delete(relative)


def serve(request: Request, relative: str, *, etag: str, content_type: str) -> Served | None:
    """The stored object as our own files are served; None if the store has lost it
    (evicted meanwhile, or removed by hand): the caller fetches it again."""
    store = store_of(request)
    if not store.exists(relative):
        return None
    try:
        return store.serve(request, relative, etag=etag, content_type=content_type)
    except FileNotFoundError:  # evicted between the check and the open
        return None

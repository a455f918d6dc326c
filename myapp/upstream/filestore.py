"""The few file-store operations the proxy's files part uses, in one place:
put a verified temporary file under its content address, delete it, serve it.

The proxy keeps upstream files in the same ``FileStore`` as our own uploads,
under the same content-addressed paths (``sha256[:2]/sha256[2:4]/filename``),
so they are served exactly like ours (ranges, ETag, cache headers). Unlike an
upload, a proxied file is not placed with a request's transaction: its bytes
are verified *after* the response began, so it is placed at once and its row
updated in a transaction of its own right after (a crash in between leaves an
object no row names, which the store's orphan sweep, or the next fetch of
the same file, takes care of).

The store is becoming an interface (a local folder or an object store: ``put_file``,
``delete``, ``stat``, ``serve``); until then it is a local folder with a ``root``.
These functions use the interface when the store has it, the folder otherwise,
so the rest of the files part names neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from pyramid.request import Request

from myapp.web.files import Served, serve_file


def store_of(request_or_registry: Any) -> Any:
    registry = getattr(request_or_registry, "registry", request_or_registry)
    return registry["file_store"]


def relative_path(sha256: str, filename: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{filename}"


def incoming(store: Any) -> IO[bytes]:
    """A new temporary file on this node (removed by the store's sweep if left behind)."""
    out: IO[bytes] = store.incoming()
    return out


def _local(store: Any, relative: str) -> Path | None:
    """The path of ``relative`` in a local folder store (never outside it)."""
    root = Path(store.root).resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path != root else None


def put(store: Any, source: Path, relative: str) -> None:
    """Store the temporary file ``source`` under ``relative`` (``source`` is used up).
    The same path already there holds the same bytes (content-addressed): kept."""
    if hasattr(store, "put_file"):
        if store.exists(relative):
            source.unlink(missing_ok=True)
        else:
            store.put_file(source, relative)
        return
    target = _local(store, relative)
    if target is None:
        source.unlink(missing_ok=True)
        raise ValueError(f"not a path in the store: {relative!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def delete(store: Any, relative: str) -> None:
    """Remove the stored object (nothing if there is none)."""
    if hasattr(store, "put_file"):
        store.delete(relative)
        return
    target = _local(store, relative)
    if target is not None:
        target.unlink(missing_ok=True)


def serve(request: Request, relative: str, *, etag: str, content_type: str) -> Served | None:
    """The stored object as our own files are served; None if the store has lost it
    (evicted meanwhile, or removed by hand): the caller fetches it again."""
    store = store_of(request)
    if hasattr(store, "serve"):
        if not store.exists(relative):
            return None
        served: Served = store.serve(request, relative, etag=etag, content_type=content_type)
        return served
    path = _local(store, relative)
    if path is None or not path.is_file():
        return None
    try:
        return serve_file(request, path, etag=etag, content_type=content_type)
    except FileNotFoundError:  # evicted between the check and the open
        return None

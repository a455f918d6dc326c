"""Where distribution files live: a folder, or an S3 bucket.

``myapp.files_store`` chooses: ``s3://bucket/prefix`` is an object store;
a folder, or nothing (then ``myapp.files_dir``), a local one. Every caller
(uploads, deletions, downloads, the demo data, the sweeps, ``myapp-files``)
goes through the ``FileStore`` interface (``base.py``).

``myapp.cache_dir`` is this node's own folder (the saved ``/simple/``
listing, an object store's temporary files): nothing in it is needed by
another node, and it may be lost at any time. By default it is
``myapp.files_dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from myapp.packaging.storage.base import (
    CHUNK,
    CONTENT_TYPES,
    INCOMING,
    METADATA,
    STALE_SECONDS,
    FileStore,
    StoredObject,
    StoreUnavailable,
    content_type_of,
    is_content_path,
    relative_path,
)
from myapp.packaging.storage.local import LocalFileStore

__all__ = [
    "CHUNK",
    "CONTENT_TYPES",
    "INCOMING",
    "METADATA",
    "STALE_SECONDS",
    "FileStore",
    "LocalFileStore",
    "StoreUnavailable",
    "StoredObject",
    "cache_dir",
    "content_type_of",
    "is_content_path",
    "make_store",
    "relative_path",
]

STORE_SETTING = "myapp.files_store"
S3_SCHEME = "s3://"


class StoreConfigError(ValueError):
    """A store setting the operator must fix."""


def cache_dir(settings: dict[str, Any]) -> Path:
    """This node's own folder: ``myapp.cache_dir``, else ``myapp.files_dir``."""
    value = str(settings.get("myapp.cache_dir") or settings.get("myapp.files_dir") or "").strip()
    if not value:
        raise StoreConfigError("Set myapp.cache_dir (or myapp.files_dir): a folder of this node's own.")
    return Path(value)


def make_store(settings: dict[str, Any], url: str | None = None) -> FileStore:
    """The store named by ``url``, else by the settings."""
    where = str(url if url is not None else settings.get(STORE_SETTING) or settings.get("myapp.files_dir") or "")
    where = where.strip()
    if not where:
        raise StoreConfigError(f"Set {STORE_SETTING} (s3://bucket/prefix or a folder) or myapp.files_dir.")
    if where.startswith(S3_SCHEME):
        from myapp.packaging.storage.s3 import S3FileStore  # boto3 is imported only when it is used

        return S3FileStore.from_url(where, settings, scratch=cache_dir(settings))
    if "://" in where:
        raise StoreConfigError(f"{STORE_SETTING}: unknown kind of store {where!r}; use s3://bucket/prefix or a folder.")
    return LocalFileStore(Path(where))

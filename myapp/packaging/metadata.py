"""A wheel's core metadata, as PEP 658 serves it beside the wheel."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from myapp.packaging.archives import ArchiveRefused, wheel_metadata
from myapp.packaging.storage import METADATA, FileStore


def store_wheel_metadata(store: FileStore, wheel: Path, storage_path: str) -> str | None:
    """Store the metadata of the wheel at ``wheel`` (a local file) as
    ``<storage_path>.metadata``; its sha256, or None if it has none."""
    try:
        metadata = wheel_metadata(wheel)
    except ArchiveRefused:
        return None
    store.write(storage_path + METADATA, io.BytesIO(metadata))
    return hashlib.sha256(metadata).hexdigest()

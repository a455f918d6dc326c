"""A wheel's core metadata, as PEP 658 serves it beside the wheel."""

from __future__ import annotations

import hashlib
from pathlib import Path

from myapp.packaging.archives import ArchiveRefused, wheel_metadata


def store_wheel_metadata(files_dir: Path, storage_path: str) -> str | None:
    """Write the stored wheel's metadata to ``<storage_path>.metadata``; its sha256."""
    try:
        metadata = wheel_metadata(files_dir / storage_path)
    except ArchiveRefused:
        return None
    (files_dir / f"{storage_path}.metadata").write_bytes(metadata)
    return hashlib.sha256(metadata).hexdigest()

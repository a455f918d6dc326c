"""A wheel's core metadata, as PEP 658 serves it beside the wheel."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import IO


def wheel_metadata(wheel: Path | IO[bytes]) -> bytes | None:
    """The bytes of the wheel's ``<name>.dist-info/METADATA``, or None if the
    wheel is not a zip with exactly one such file at its top level."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            found = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            return zf.read(found[0]) if len(found) == 1 else None
    except (zipfile.BadZipFile, OSError, KeyError):
        return None


def store_wheel_metadata(files_dir: Path, storage_path: str) -> str | None:
    """Write the stored wheel's metadata to ``<storage_path>.metadata``; its sha256."""
    metadata = wheel_metadata(files_dir / storage_path)
    if metadata is None:
        return None
    (files_dir / f"{storage_path}.metadata").write_bytes(metadata)
    return hashlib.sha256(metadata).hexdigest()

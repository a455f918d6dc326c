"""Reading an uploaded distribution's core metadata with bounded work.

A wheel is a zip holding ``{name}-{version}.dist-info/METADATA``; an sdist is a
gzip-compressed tar holding ``{name}-{version}/PKG-INFO`` under its one
top-level folder. Both come from strangers, so every read is capped before it
happens: the number of members, the size of the zip's central directory, the
metadata member's size, and the ratio of unpacked to packed bytes. Metadata is
read in chunks and the reading stops at the cap, so a zip or gzip bomb costs a
few kilobytes of memory and a moment of CPU. Nothing is ever extracted to disk.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

CHUNK = 64 * 1024


class ArchiveRefused(ValueError):
    """The archive is not what it claims, or would cost too much to read."""


@dataclass(frozen=True)
class Limits:
    """Caps on the work one archive may cost (settings ``myapp.max_archive_*``)."""

    members: int = 50_000
    metadata_bytes: int = 2 * 1024 * 1024
    # Text compresses about 3-10x; deflate cannot pass about 1030x, a bomb sits near it.
    ratio: int = 100
    # zipfile reads the whole central directory into memory, one ZipInfo for
    # every 46 bytes at worst: bounded by the members it may hold.
    directory_bytes_per_member: int = 128

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Limits:
        return cls(
            members=int(settings.get("myapp.max_archive_members", cls.members)),
            metadata_bytes=int(settings.get("myapp.max_metadata_bytes", cls.metadata_bytes)),
            ratio=int(settings.get("myapp.max_archive_ratio", cls.ratio)),
        )


def is_unsafe_path(name: str) -> bool:
    """A member that would land outside the folder it is unpacked in (or nowhere)."""
    return name.startswith("/") or ".." in name.split("/") or "\\" in name or "\x00" in name


def _bounded_read(stream: IO[bytes], limit: int, what: str) -> bytes:
    """Read to the end of ``stream``, refusing once it passes ``limit`` bytes."""
    parts, size = [], 0
    while chunk := stream.read(min(CHUNK, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            raise ArchiveRefused(f"{what} is larger than {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)


# -- wheels ------------------------------------------------------------------------------


def _check_zip_directory(fp: IO[bytes], limits: Limits) -> None:
    """Refuse a central directory too large to parse, before zipfile parses it."""
    # zipfile's own reader of the end-of-central-directory record (zip64 too).
    end = zipfile._EndRecData(fp)  # type: ignore[attr-defined]
    if not end:
        raise ArchiveRefused("Invalid wheel: not a zip file.")
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.members or size > limits.members * limits.directory_bytes_per_member:
        raise ArchiveRefused(f"Invalid wheel: more than {limits.members} files.")


def _metadata_member(infos: list[zipfile.ZipInfo], packed: int, limits: Limits) -> zipfile.ZipInfo:
    """The METADATA entry, once the entries as a whole pass the caps (by their declared sizes)."""
    if len(infos) > limits.members:
        raise ArchiveRefused(f"Invalid wheel: more than {limits.members} files.")
    if sum(i.file_size for i in infos) > limits.ratio * packed:
        raise ArchiveRefused(f"Invalid wheel: it unpacks to more than {limits.ratio} times its size.")
    unsafe = next((i.filename for i in infos if is_unsafe_path(i.filename)), None)
    if unsafe is not None:
        raise ArchiveRefused(f"Invalid wheel: unsafe path {unsafe[:100]!r}.")
    found = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")]
    if len(found) != 1:
        raise ArchiveRefused("Invalid wheel: not a zip with one .dist-info/METADATA.")
    if found[0].file_size > limits.metadata_bytes:
        raise ArchiveRefused(f"Invalid wheel: its METADATA is larger than {limits.metadata_bytes} bytes.")
    return found[0]


def wheel_metadata(path: Path, limits: Limits = Limits()) -> bytes:
    """The bytes of the wheel's one top-level ``*.dist-info/METADATA``."""
    try:
        with path.open("rb") as fp:
            _check_zip_directory(fp, limits)
            with zipfile.ZipFile(fp) as zf:
                info = _metadata_member(zf.infolist(), max(path.stat().st_size, 1), limits)
                # ZipExtFile never yields more than the declared size, and a
                # member that unpacks to more fails its CRC check.
                with zf.open(info) as member:
                    return _bounded_read(member, limits.metadata_bytes, "The wheel's METADATA")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, EOFError, OSError) as exc:
        raise ArchiveRefused(f"Invalid wheel: {type(exc).__name__}.") from None


# -- sdists ------------------------------------------------------------------------------


class _Capped:
    """A read-only stream that refuses to yield more than ``limit`` bytes."""

    def __init__(self, raw: IO[bytes] | gzip.GzipFile, limit: int, refusal: str) -> None:
        self.raw, self.limit, self.count, self.refusal = raw, limit, 0, refusal

    def read(self, size: int = -1) -> bytes:
        want = CHUNK if size is None or size < 0 else size
        data = self.raw.read(min(want, self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveRefused(self.refusal)
        return data


def _root_matches(root: str, name: str, version: Version) -> bool:
    """``{name}-{version}`` naming this project and version (any spelling of the name)."""
    folder_name, _, folder_version = root.rpartition("-")
    try:
        return canonicalize_name(folder_name) == canonicalize_name(name) and Version(folder_version) == version
    except InvalidVersion:
        return False


def _check_member(member: tarfile.TarInfo, root: str | None) -> str:
    """The member's top-level folder; refuses links, devices and escaping paths."""
    parts = member.name.split("/")
    if is_unsafe_path(member.name):
        raise ArchiveRefused(f"Invalid sdist: unsafe path {member.name[:100]!r}.")
    if not (member.isfile() or member.isdir()):
        raise ArchiveRefused(f"Invalid sdist: {member.name[:100]!r} is a link or a special file.")
    if root is not None and parts[0] != root:
        raise ArchiveRefused("Invalid sdist: it must hold exactly one top-level folder.")
    return parts[0]


def _scan(tar: tarfile.TarFile, limits: Limits) -> tuple[str | None, bytes | None]:
    """(top-level folder, its PKG-INFO's bytes), checking every member in turn."""
    root: str | None = None
    pkg_info: bytes | None = None
    count = 0
    while (member := tar.next()) is not None:
        count += 1
        if count > limits.members:
            raise ArchiveRefused(f"Invalid sdist: more than {limits.members} files.")
        root = _check_member(member, root)
        if member.name == f"{root}/PKG-INFO" and member.isfile():
            if member.size > limits.metadata_bytes:
                raise ArchiveRefused(f"Invalid sdist: PKG-INFO is larger than {limits.metadata_bytes} bytes.")
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file
            pkg_info = _bounded_read(extracted, limits.metadata_bytes, "PKG-INFO")
        tar.members.clear()  # type: ignore[attr-defined]  # a stream is read once: no need to keep every header
    return root, pkg_info


def sdist_metadata(path: Path, name: str, version: Version, limits: Limits = Limits()) -> bytes:
    """The bytes of ``{name}-{version}/PKG-INFO``, after checking every member.

    Read as a stream (``r|``): each member once, in order, none written anywhere.
    """
    refusal = f"Invalid sdist: it unpacks to more than {limits.ratio} times its size."
    try:
        with gzip.open(path, "rb") as unzipped:
            stream = _Capped(unzipped, limits.ratio * max(path.stat().st_size, 1), refusal)
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                root, pkg_info = _scan(tar, limits)
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveRefused(f"Invalid sdist: not a gzip-compressed tar ({type(exc).__name__}).") from None
    if root is None:
        raise ArchiveRefused("Invalid sdist: the archive is empty.")
    if not _root_matches(root, name, version):
        raise ArchiveRefused(f"Invalid sdist: its top-level folder {root[:100]!r} is not {{name}}-{{version}}.")
    if pkg_info is None:
        raise ArchiveRefused(f"Invalid sdist: no PKG-INFO in {root[:100]}/.")
    return pkg_info

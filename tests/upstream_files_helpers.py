"""Helpers for the proxy's files tests: real wheels published on a live upstream
(this app), their bytes tampered with on its disk, and the proxy's rows."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from myapp.packaging.models import Package, ReleaseFile
from myapp.packaging.names import normalize
from myapp.packaging.publish import new_package, new_release
from myapp.packaging.services import bump_serial
from tests.conftest import LiveServer
from tests.upstream_helpers import make_wheel, upstream_db


@dataclass(frozen=True)
class Published:
    name: str
    version: str
    filename: str
    sha256: str
    size: int
    path: Path  # where the upstream keeps it

    @property
    def packages_path(self) -> str:
        """Its path on the proxy: PyPI's layout."""
        s = self.sha256
        return f"/packages/{s[:2]}/{s[2:4]}/{s[4:]}/{self.filename}"


def build_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), padding: int = 0) -> Path:
    """A small real wheel (``make_wheel``'s), with ``Requires-Dist`` lines and
    ``padding`` random bytes (incompressible: the file really is that large)."""
    wheel = make_wheel(folder, name, version)
    if not requires and not padding:
        return wheel
    dist = normalize(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    lines = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(wheel) as old:
        members = {n: old.read(n) for n in old.namelist()}
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{lines}".encode()
    if padding:
        members[f"{dist}/padding.bin"] = os.urandom(padding)
    with zipfile.ZipFile(wheel, "w") as new:
        for member, data in members.items():
            new.writestr(member, data)
    return wheel


def publish_wheel(
    server: LiveServer,
    name: str,
    version: str,
    uploaded: datetime | None = None,
    padding: int = 0,
    requires: tuple[str, ...] = (),
) -> Published:
    """A real wheel of ``name`` ``version`` stored on ``server`` (with its PEP 658
    metadata), listed on its pages. ``padding`` adds that many bytes to the wheel."""
    scratch = server.folder / "wheels"
    scratch.mkdir(exist_ok=True)
    wheel = build_wheel(scratch, name, version, requires, padding)
    data = wheel.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    relative = f"{sha256[:2]}/{sha256[2:4]}/{wheel.name}"
    target = server.folder / "files" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info)
    (target.parent / (wheel.name + ".metadata")).write_bytes(metadata)
    when = uploaded or datetime(2020, 1, 1, tzinfo=UTC)
    with upstream_db(server) as db:
        package = db.scalar(select(Package).where(Package.name == normalize(name)))
        if package is None:
            package = new_package(name, summary=f"The {name} project")
            db.add(package)
        release = new_release(version, created=when)
        release.files.append(
            ReleaseFile(
                filename=wheel.name,
                packagetype="bdist_wheel",
                python_version="py3",
                size=len(data),
                sha256=sha256,
                upload_time=when,
                storage_path=relative,
                metadata_sha256=hashlib.sha256(metadata).hexdigest(),
            )
        )
        package.releases.append(release)
        db.flush()
        bump_serial(db, package)
    return Published(normalize(name), version, wheel.name, sha256, len(data), target)

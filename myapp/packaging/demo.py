"""Demo data made by code (no network): a few dozen plausible projects, each
with a release history and real, small wheel and sdist files on disk."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from myapp.packaging.maintain import mark_yanked
from myapp.packaging.metadata import store_wheel_metadata
from myapp.packaging.models import Classifier, Package, ReleaseFile
from myapp.packaging.publish import new_package, new_release
from myapp.packaging.rendering import render_into
from myapp.packaging.services import bump_serial
from myapp.packaging.storage import FileStore, LocalFileStore, relative_path

PREFIXES = ["aero", "blue", "quick", "tiny", "deep", "py", "smart", "open", "fast", "micro", "hyper", "lazy"]
STEMS = [
    "cache",
    "config",
    "queue",
    "parser",
    "router",
    "schema",
    "crypt",
    "metrics",
    "retry",
    "shell",
    "graph",
    "frame",
]
TOPICS = {
    "cache": "in-memory and on-disk caching",
    "config": "typed configuration from files and the environment",
    "queue": "background job queues",
    "parser": "fast incremental parsing",
    "router": "URL routing for WSGI apps",
    "schema": "data validation with schemas",
    "crypt": "password hashing and signing",
    "metrics": "application metrics and counters",
    "retry": "retrying flaky operations with back-off",
    "shell": "friendlier interactive shells",
    "graph": "graph algorithms",
    "frame": "tabular data frames",
}
CLASSIFIERS = [
    "Development Status :: 4 - Beta",
    "Development Status :: 5 - Production/Stable",
    "Intended Audience :: Developers",
    "License :: OSI Approved :: MIT License",
    "License :: OSI Approved :: Apache Software License",
    "Operating System :: OS Independent",
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Topic :: Software Development :: Libraries",
]
# Each project's license, and the one License classifier that says the same.
LICENSES = {
    "MIT": "License :: OSI Approved :: MIT License",
    "Apache-2.0": "License :: OSI Approved :: Apache Software License",
}
START = datetime(2021, 1, 4, 9, 30, tzinfo=UTC)


def is_empty(db: Session) -> bool:
    return not db.scalar(select(func.count()).select_from(Package))


def _versions(rng: random.Random, count: int) -> list[str]:
    major, minor, patch = 0, 1, 0
    out = []
    for _ in range(count):
        step = rng.random()
        if step < 0.1:
            major, minor, patch = major + 1, 0, 0
            out.append(f"{major}.{minor}.{patch}rc1")
        elif step < 0.45:
            minor, patch = minor + 1, 0
        else:
            patch += 1
        out.append(f"{major}.{minor}.{patch}")
    return out[:count]


def _metadata(dist: str, version: str, summary: str, core: str) -> str:
    """Core metadata text; with ``core`` lines (License-Expression...), of the version that has them."""
    return f"Metadata-Version: {'2.4' if core else '2.1'}\nName: {dist}\nVersion: {version}\nSummary: {summary}\n{core}"


def _wheel(dist: str, version: str, summary: str, core: str = "") -> bytes:
    module = dist.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'"""{summary}"""\n__version__ = "{version}"\n',
        f"{info}/METADATA": _metadata(dist, version, summary, core),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: myapp-demo\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            data = text.encode()
            zf.writestr(zipfile.ZipInfo(name, date_time=(2021, 1, 1, 0, 0, 0)), data)
            digest = hashlib.sha256(data).hexdigest()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(2021, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return buf.getvalue()


def _sdist(dist: str, version: str, summary: str, core: str = "") -> bytes:
    module = dist.replace("-", "_")
    root = f"{module}-{version}"
    files = {
        f"{root}/PKG-INFO": _metadata(dist, version, summary, core),
        f"{root}/{module}/__init__.py": f'"""{summary}"""\n__version__ = "{version}"\n',
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size, member.mtime = len(data), 1609459200
            tf.addfile(member, io.BytesIO(data))
    return buf.getvalue()


def _store(store: FileStore, filename: str, data: bytes) -> tuple[str, str, str | None]:
    """Store the bytes under their hash (and a wheel's core metadata beside
    them); return (storage path, sha256, the metadata's sha256)."""
    digest = hashlib.sha256(data).hexdigest()
    relative = relative_path(digest, filename)
    source = store.write_incoming(data)
    try:
        metadata = store_wheel_metadata(store, source, relative) if filename.endswith(".whl") else None
        store.put_file(source, relative)
    finally:
        source.unlink(missing_ok=True)
    return relative, digest, metadata


def _license_of(picked: list[Classifier]) -> str:
    """Apache-2.0 if the sample drew only its classifier, else MIT."""
    drawn = {c.classifier for c in picked}
    apache = LICENSES["Apache-2.0"]
    return "Apache-2.0" if apache in drawn and LICENSES["MIT"] not in drawn else "MIT"


def _release_core(license: str, needs: str | None) -> dict[str, Any]:
    """A release's dependencies and license (``Release`` columns): a test
    extra, and another demo project (so the project page links one hosted here)."""
    requires = [needs] if needs else []
    return {
        "license_expression": license,
        "requires_dist": [*requires, "pytest>=8 ; extra == 'test'"],
        "provides_extra": ["test"],
    }


def _core_text(core: dict[str, Any]) -> str:
    """The same, as core metadata lines in the release's files."""
    lines = [f"License-Expression: {core['license_expression']}"]
    lines += [f"Requires-Dist: {r}" for r in core["requires_dist"]]
    lines += [f"Provides-Extra: {e}" for e in core["provides_extra"]]
    return "".join(line + "\n" for line in lines)


def _files(
    store: FileStore, display: str, version: str, summary: str, when: datetime, core: str = ""
) -> list[ReleaseFile]:
    """A wheel and an sdist of the release, stored (with the wheel's core metadata)."""
    module = display.replace("-", "_")
    files = []
    for filename, data, packagetype, pyver in (
        (f"{module}-{version}-py3-none-any.whl", _wheel(display, version, summary, core), "bdist_wheel", "py3"),
        (f"{module}-{version}.tar.gz", _sdist(display, version, summary, core), "sdist", "source"),
    ):
        path, digest, metadata = _store(store, filename, data)
        files.append(
            ReleaseFile(
                filename=filename,
                packagetype=packagetype,
                python_version=pyver,
                requires_python=">=3.9",
                size=len(data),
                sha256=digest,
                upload_time=when,
                storage_path=path,
                metadata_sha256=metadata,
            )
        )
    return files


DEMO_PROJECTS = 36  # what `myapp-initdb --demo` loads


def load_demo(db: Session, files: FileStore | Path, *, projects: int = DEMO_PROJECTS, seed: int = 2024) -> int:
    """Add demo projects, their files written to ``files`` (a store, or a
    local folder); returns how many. Deterministic for a given seed."""
    store = files if isinstance(files, FileStore) else LocalFileStore(files)
    rng = random.Random(seed)
    yanks = random.Random(seed + 1)  # its own stream, so the projects stay the same
    classifiers = [Classifier(classifier=c) for c in CLASSIFIERS]
    by_text = {c.classifier: c for c in classifiers}
    db.add_all(classifiers)
    names = [f"{p}-{s}" for p in PREFIXES for s in STEMS]
    rng.shuffle(names)
    for number, display in enumerate(names[:projects]):
        stem = display.split("-")[1]
        summary = f"{display.replace('-', ' ').title()}: {TOPICS[stem]}."
        when = START + timedelta(days=rng.randint(0, 300), minutes=rng.randint(0, 1440))
        picked = rng.sample(classifiers, 4)  # drawn where it always was: the same projects as before
        license = _license_of(picked)
        package = new_package(
            display,
            summary=summary,
            description=(
                f"# {display}\n\n{summary}\n\n## Install\n\n```\npip install {display}\n```\n\n"
                f"## Use\n\n```python\nimport {display.replace('-', '_')}\n```\n"
            ),
            description_content_type="text/markdown",
            home_page=f"https://example.org/{display}",
            project_urls={
                "Source": f"https://example.org/{display}/src",
                "Docs": f"https://example.org/{display}/docs",
            },
            license=license,
            author="Demo Author",
            author_email="demo@example.org",
            keywords=f"{stem}, demo",
            requires_python=">=3.9",
            classifiers=[c for c in picked if not c.classifier.startswith("License ::")] + [by_text[LICENSES[license]]],
            created=when,
        )
        render_into(package)
        # Needs an earlier demo project (none for the first): no random draw, so the projects stay the same.
        core = _release_core(license, names[number // 2] if number else None)
        for version in _versions(rng, rng.randint(1, 14)):
            when += timedelta(days=rng.randint(3, 60), minutes=rng.randint(0, 600))
            release = new_release(version, summary=summary, requires_python=">=3.9", created=when, **core)
            release.files.extend(_files(store, display, version, summary, when, _core_text(core)))
            package.releases.append(release)
        if len(package.releases) >= 4 and yanks.random() < 0.3:
            # Some history worth showing: a yanked release below the newest.
            mark_yanked(package.releases[-2], True, "Broken packaging; use the next release.")
        package.updated = when
        db.add(package)
        db.flush()
        bump_serial(db, package)
    db.flush()
    return projects

"""``myapp-files``: check the file store against the database, or copy it to another store.

``myapp-files check CONFIG [--repair] [--quick]``
    Every object a row names is there, with the row's size and sha256 (read
    and hashed; ``--quick``: sizes only), and every object belongs to a row.
    Reports what is missing, damaged and orphaned; exit status 2 if anything
    is wrong. ``--repair`` deletes orphans last written more than ``--grace``
    seconds ago (an upload in flight writes its object before its row
    commits); it never touches an object a row names.

``myapp-files copy CONFIG --to URL``
    Copies every object of the configured store (``myapp.files_store``) to
    ``URL`` (a folder, or ``s3://bucket/prefix``), verifying each object a row
    names as it streams (size and sha256) and never copying a damaged one.
    Resumable: an object already at the target with the right size is
    skipped (``--verify`` reads and hashes it too). Then point
    ``myapp.files_store`` at ``URL`` and restart the app.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from tqdm import tqdm

from myapp.packaging.storage import CHUNK, FileStore, StoredObject, make_store
from myapp.packaging.storage.audit import Expected, References, batched, orphans, references_of
from myapp.scripts import OPTIONS, command, load_settings, managed_session
from myapp.scripts.worker import registry_for

DEFAULT_GRACE = 3600


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="myapp-files", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", parents=[OPTIONS], help="check the store against the database")
    check.add_argument("config_uri", help="the ini file, e.g. production.ini")
    check.add_argument("--repair", action="store_true", help="delete orphans (never an object a row names)")
    check.add_argument("--quick", action="store_true", help="compare sizes only; do not read and hash every object")
    check.add_argument(
        "--grace", type=float, default=DEFAULT_GRACE, help=f"spare orphans younger than this, seconds ({DEFAULT_GRACE})"
    )
    copy = commands.add_parser("copy", parents=[OPTIONS], help="copy the store to another")
    copy.add_argument("config_uri", help="the ini file, e.g. production.ini")
    copy.add_argument("--to", required=True, metavar="URL", help="a folder, or s3://bucket/prefix")
    copy.add_argument("--verify", action="store_true", help="hash objects already at the target before skipping them")
    copy.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


class Hashing:
    """A reader that hashes (and counts) what passes through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def sha256_of(store: FileStore, relative: str) -> tuple[str, int]:
    with store.open(relative) as stream:
        reader = Hashing(stream)
        reader.drain()
    return reader.digest.hexdigest(), reader.size


def damage(expected: Expected, size: int, sha256: str | None) -> str | None:
    """What is wrong with an object of ``size`` bytes (and ``sha256``, if read)."""
    if expected.size is not None and size != expected.size:
        return f"size {size}, the row says {expected.size}"
    if sha256 is not None and expected.sha256 is not None and sha256 != expected.sha256:
        return f"sha256 {sha256[:12]}..., the row says {expected.sha256[:12]}..."
    return None


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, message: str | None = None) -> None:
        self.counts[kind] += 1
        if message:
            self.problems.append(message)
            tqdm.write(message, file=sys.stderr)


def check(registry: Any, args: argparse.Namespace) -> int:
    store: FileStore = registry["file_store"]
    references = references_of(registry)
    report = Report()
    with managed_session() as db:
        for refs in references:
            for expected in tqdm(refs.expected(db), desc="rows", unit=" objects", disable=None):
                found = store.stat(expected.path)
                if found is None:
                    report.add("missing", f"missing: {expected.path}")
                    continue
                sha256 = None if args.quick else sha256_of(store, expected.path)[0]
                wrong = damage(expected, found.size, sha256)
                report.add("damaged" if wrong else "ok", f"damaged: {expected.path}: {wrong}" if wrong else None)
        grace = args.grace if args.repair else 0.0
        for orphan in tqdm(orphans(store, db, references, 0.0), desc="orphans", unit=" objects", disable=None):
            young = orphan.modified >= time.time() - grace
            if args.repair and not young:
                store.delete(orphan.path)
                report.add("orphans removed", f"orphan removed: {orphan.path} ({orphan.size} bytes)")
            else:
                note = " (younger than --grace: kept)" if args.repair else ""
                report.add("orphans", f"orphan: {orphan.path} ({orphan.size} bytes){note}")
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items())) or "the store is empty"
    print(f"myapp-files check {store.url}: {summary}")
    bad = report.counts["missing"] + report.counts["damaged"] + report.counts["orphans"]
    return 2 if bad else 0


def copy(registry: Any, settings: dict[str, Any], args: argparse.Namespace) -> int:
    source: FileStore = registry["file_store"]
    target = make_store(settings, url=args.to)
    if target.url.rstrip("/") == source.url.rstrip("/"):
        print("myapp-files: --to names the store being copied", file=sys.stderr)
        return 1
    references = references_of(registry)
    report = Report()
    total = sum(o.size for o in source.iter_objects())
    with (
        managed_session() as db,
        tqdm(total=total, unit="B", unit_scale=True, desc="copy", disable=True if args.quiet else None) as bar,
    ):
        for batch in batched(source.iter_objects()):
            expected = _lookup(db, references, [o.path for o in batch])
            for obj in batch:
                _copy_one(source, target, obj, expected.get(obj.path), args.verify, report)
                bar.update(obj.size)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts.items())) or "nothing to copy"
    print(f"myapp-files copy {source.url} -> {target.url}: {summary}")
    return 2 if report.counts["damaged"] else 0


def _lookup(db: Any, references: list[References], paths: list[str]) -> dict[str, Expected]:
    found: dict[str, Expected] = {}
    for refs in references:
        found.update(refs.lookup(db, paths))
    return found


def _copy_one(
    source: FileStore, target: FileStore, obj: StoredObject, expected: Expected | None, verify: bool, report: Report
) -> None:
    there = target.stat(obj.path)
    if there is not None and there.size == obj.size:
        if not verify or expected is None or expected.sha256 is None:
            report.add("skipped (already there)")
            return
        if sha256_of(target, obj.path)[0] == expected.sha256:
            report.add("skipped (already there, verified)")
            return
    with source.open(obj.path) as stream:
        reader = Hashing(stream)
        target.write(obj.path, reader)
    wrong = damage(expected, reader.size, reader.digest.hexdigest()) if expected else None
    if wrong is None and reader.size != obj.size:
        wrong = f"read {reader.size} bytes of {obj.size}"
    if wrong:
        target.delete(obj.path)  # a damaged copy is no copy
        report.add("damaged", f"damaged, not copied: {obj.path}: {wrong}")
        return
    report.add("copied")


@command("myapp-files")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(args.config_uri)
    registry = registry_for(settings)
    if args.command == "check":
        return check(registry, args)
    return copy(registry, registry.settings, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``myapp-import CONFIG PATH...``: import PyPI JSON API documents.

PATH is a ``.json`` file or a folder of them (searched recursively). Each
document is imported on its own: a bad one is reported and skipped, the
others still land. Importing the same documents again changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from myapp.packaging.importer import ClassifierCache, DocumentError, ImportStats, import_document, parse_document
from myapp.scripts import OPTIONS, command, load_settings, managed_session


def document_paths(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.json") if p.is_file())
        else:
            yield path


def read_document(path: Path) -> Any:
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentError(f"not valid JSON: {exc}") from None


def import_paths(paths: list[Path], *, progress: bool = True) -> ImportStats:
    """Import every document in ``paths``; one transaction, a savepoint each."""
    stats = ImportStats()
    with managed_session() as db:
        classifiers = ClassifierCache(db)
        for path in tqdm(paths, desc="Importing", unit="doc", disable=not progress, file=sys.stderr):
            try:
                stats.add(import_document(db, parse_document(read_document(path)), classifiers))
            except DocumentError as exc:
                stats.skipped.append((str(path), str(exc)))
                tqdm.write(f"skipped {path}: {exc}", file=sys.stderr)
    return stats


def summary_line(stats: ImportStats, seconds: float) -> str:
    return (
        f"{stats.projects} projects ({stats.new_projects} new, {stats.updated_projects} updated), "
        f"{stats.releases} releases ({stats.new_releases} new), "
        f"{stats.files} files ({stats.new_files} new), "
        f"{len(stats.skipped)} skipped, in {seconds:.2f} s"
    )


@command("myapp-import")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="myapp-import", description=__doc__.split("\n\n")[0], parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. development.ini")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a .json document or a folder of them")
    parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    args = parser.parse_args(argv)

    load_settings(args.config_uri)
    paths = list(document_paths(args.paths))
    if not paths:
        print("No .json documents found.", file=sys.stderr)
        return 1
    started = time.perf_counter()
    stats = import_paths(paths, progress=not args.no_progress)
    print(summary_line(stats, time.perf_counter() - started))
    return 0 if not stats.skipped else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

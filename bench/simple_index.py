"""``/simple/`` with a PyPI-sized index: how long the whole listing takes
cold (first request after start-up) and warm, and a ``304`` for a client that
has it, in HTML and in JSON.

    .venv/bin/python bench/simple_index.py [--projects 886000]

In process (WebTest, which reads the whole streamed body) on a fresh SQLite
file filled with synthetic project names by plain INSERTs.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import webtest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from myapp import main
from myapp.data import DbSession
from myapp.data.migrations import upgrade_to_head

JSON = "application/vnd.pypi.simple.v1+json"


def fill(path: Path, count: int) -> None:
    """``count`` projects, straight into the file (the importer is not what is measured)."""
    with sqlite3.connect(path) as db:
        rows = ((f"project-{i:07d}", f"Project-{i:07d}", i + 1) for i in range(count))
        db.executemany(
            "INSERT INTO packages (name, display_name, project_urls, created, updated, last_serial) "
            "VALUES (?, ?, '{}', '2024-01-01 00:00:00', '2024-01-01 00:00:00', ?)",
            rows,
        )


def timed(app: webtest.TestApp, headers: dict[str, str], status: int = 200) -> tuple[float, webtest.TestResponse]:
    started = time.perf_counter()
    res = app.get("/simple/", headers=headers, status=status)
    return time.perf_counter() - started, res


def run(count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="myapp-simple-bench-"))
    url = f"sqlite:///{folder / 'index.sqlite'}"
    settings = {"sqlalchemy.url": url, "myapp.secret": "bench-" + "x" * 40, "myapp.files_dir": str(folder)}
    DbSession.global_init(url)
    upgrade_to_head(DbSession.engine)  # type: ignore[arg-type]
    DbSession.dispose()
    started = time.perf_counter()
    fill(folder / "index.sqlite", count)
    print(f"{count:,} projects written in {time.perf_counter() - started:.1f} s")
    app = webtest.TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "localhost"})
    for label, headers in (("html", {}), ("json", {"Accept": JSON})):
        cold, res = timed(app, headers)
        warm, _ = timed(app, headers)
        not_modified, _ = timed(app, headers | {"If-None-Match": res.headers["ETag"]}, status=304)
        size = len(res.body) / 1e6
        print(
            f"/simple/ {label:4}: cold {cold:.2f} s, warm {warm:.2f} s, {size:.1f} MB; "
            f"304 in {not_modified * 1000:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=886_000)
    run(parser.parse_args().projects)

"""``myapp-initdb CONFIG [--demo [--demo-projects N]]``: migrate the database to the newest
schema, make the files folder (of a local store), and with ``--demo`` load demo data (36
projects, or N) if the database has no projects yet."""

from __future__ import annotations

import argparse
import sys

from myapp.data import DbSession, require_schema, safe_url
from myapp.data.migrations import head_revisions, revision_names, upgrade_to_head
from myapp.packaging.demo import DEMO_PROJECTS, is_empty, load_demo
from myapp.packaging.storage import LocalFileStore, make_store
from myapp.scripts import OPTIONS, command, load_settings, managed_session


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="myapp-initdb", description=__doc__, parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. development.ini")
    parser.add_argument("--demo", action="store_true", help="load demo data into an empty database")
    parser.add_argument(
        "--demo-projects",
        type=_project_count,
        default=DEMO_PROJECTS,
        metavar="N",
        help=f"how many demo projects (1 to {DEMO_PROJECTS}; default {DEMO_PROJECTS})",
    )
    return parser.parse_args(argv)


def _project_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= DEMO_PROJECTS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {DEMO_PROJECTS}")
    return count


@command("myapp-initdb")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = load_settings(args.config_uri, check_schema=False)
    engine = DbSession.engine
    assert engine is not None
    before = require_schema(engine, args.config_uri, upgradable=True)
    upgrade_to_head(engine, args.config_uri)
    head = revision_names(head_revisions())
    change = "is at" if before == head_revisions() else f"migrated from {revision_names(before)} to"
    print(f"myapp: database at {safe_url(engine.url)} {change} revision {head} (head)")
    store = make_store(settings)
    if isinstance(store, LocalFileStore):
        store.root.mkdir(parents=True, exist_ok=True)
    if args.demo:
        with managed_session() as db:
            if is_empty(db):
                count = load_demo(db, store, projects=args.demo_projects)
                print(f"Loaded {count} demo projects.")
            else:
                print("The database already has projects; demo data not loaded.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

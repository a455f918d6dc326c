"""``myapp-rerender CONFIG``: render project descriptions again.

Descriptions are rendered to HTML once, when they arrive, and stored with
the renderer's name. After an upgrade of readme_renderer or docutils, this
renders again every description an older renderer made (or all of them with
``--all``), in batches, on every CPU.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor

from sqlalchemy import or_, select
from tqdm import tqdm

from myapp.packaging.models import Package
from myapp.packaging.rendering import RENDERER, render_description
from myapp.packaging.services import store_description
from myapp.scripts import OPTIONS, command, load_settings, managed_session

BATCH = 500


def _render(item: tuple[int, str | None, str | None]) -> tuple[int, str]:
    package_id, text, content_type = item
    return package_id, render_description(text, content_type)


def rerender(*, everything: bool = False, progress: bool = True) -> int:
    """Render the descriptions that need it; returns how many were rendered."""
    stale = or_(Package.description_renderer.is_(None), Package.description_renderer != RENDERER)
    done, after = 0, 0
    with ProcessPoolExecutor() as pool, tqdm(desc="Rendering", unit="project", disable=not progress) as bar:
        while True:
            with managed_session() as db:
                # Keyset by id, so each batch is an index range however far in.
                stmt = select(Package.id, Package.description, Package.description_content_type).where(
                    Package.id > after
                )
                batch = db.execute((stmt if everything else stmt.where(stale)).order_by(Package.id).limit(BATCH)).all()
                if not batch:
                    return done
                for package_id, html in pool.map(_render, batch, chunksize=16):
                    store_description(db, package_id, html, replace=True)
            after = batch[-1][0]
            done += len(batch)
            bar.update(len(batch))


@command("myapp-rerender")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="myapp-rerender", description=__doc__.split("\n\n")[0], parents=[OPTIONS])
    parser.add_argument("config_uri", help="the ini file, e.g. production.ini")
    parser.add_argument("--all", action="store_true", help="render every description, not just stale ones")
    parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    args = parser.parse_args(argv)
    load_settings(args.config_uri)
    count = rerender(everything=args.all, progress=not args.no_progress)
    print(f"{count} descriptions rendered with {RENDERER}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

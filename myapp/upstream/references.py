"""Which objects in the file store the proxy's rows name.

Proxied files live in the same store as our own uploads; the store's orphan
sweep and ``myapp-files check`` delete or report any object that no
``References`` claims, so the proxy claims the files it has cached.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from myapp.packaging.storage.audit import BATCH, Expected
from myapp.upstream.models import UpstreamFile


class UpstreamFileReferences:
    """Cached proxied files: ``storage_path`` set once verified and stored."""

    def expected(self, db: Session) -> Iterator[Expected]:
        after = 0
        while True:
            rows = db.execute(
                select(UpstreamFile.id, UpstreamFile.storage_path, UpstreamFile.cached_bytes, UpstreamFile.sha256)
                .where(UpstreamFile.id > after, UpstreamFile.storage_path.is_not(None))
                .order_by(UpstreamFile.id)
                .limit(BATCH)
            ).all()
            if not rows:
                return
            yield from (Expected(row.storage_path, row.cached_bytes or None, row.sha256) for row in rows)
            after = rows[-1].id

    def lookup(self, db: Session, paths: list[str]) -> dict[str, Expected]:
        # By filename (unique, indexed; the path's last part), as the release files are.
        names = {p.rsplit("/", 1)[-1] for p in paths}
        rows = db.execute(
            select(UpstreamFile.storage_path, UpstreamFile.cached_bytes, UpstreamFile.sha256).where(
                UpstreamFile.filename.in_(names), UpstreamFile.storage_path.is_not(None)
            )
        ).all()
        named = {row.storage_path: Expected(row.storage_path, row.cached_bytes or None, row.sha256) for row in rows}
        return {p: named[p] for p in paths if p in named}

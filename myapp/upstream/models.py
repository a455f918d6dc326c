"""What the proxy keeps of the upstream index: its projects' simple pages
(as rows), their files, and the operators' and owners' policy.

Layout agreed between the pages and the files parts of the proxy:

* ``UpstreamProject``: one row per *normalized* name we have asked the
  upstream about. ``fetched_at`` None means never fetched successfully (a
  request for it while the upstream is down is a 502). ``refreshing_until``
  is the single-flight claim: a process that sets it with a conditional
  UPDATE (``WHERE refreshing_until IS NULL OR refreshing_until < now``) is the
  one that asks the upstream; the others serve what is stored, or, for a
  project never fetched, poll the row briefly.
* ``UpstreamFile``: one row per file the upstream listed (``filename`` is
  unique, as on the index itself). A file that disappears from the upstream
  page gets ``removed_at`` (hidden here; its cached bytes are quarantined).
  ``storage_path`` is None while the bytes are not cached; the files part
  sets it (and ``cached_bytes``, ``last_downloaded_at``) when it has streamed
  and verified them into the FileStore, and ``quarantined_at`` when it moves
  them aside (yanked-and-removed or removed upstream).
* Our pages link a proxied file at **``/packages/{h1}/{h2}/{rest}/{filename}``**,
  route name ``upstream.file`` (``h1 = sha256[:2]``, ``h2 = sha256[2:4]``,
  ``rest = sha256[4:]``; see ``urls.file_path``), and its PEP 658 metadata at
  the same path plus ``.metadata``. The layout is PyPI's, so bandersnatch
  keeps the path; the file is looked up by ``filename`` and the hash in the
  path must match ``sha256``.
* ``UpstreamPolicy``: per-name switches, for hosted and proxied names alike
  (keyed by normalized name, so the packaging layer knows nothing of it):
  ``also_serve_upstream`` (an owner's opt-in for a hosted name: upstream
  files listed beside ours, with PEP 708 ``tracks``) and ``cooldown_exempt``
  (an admin's exemption from ``myapp.upstream_min_age``).
* ``UpstreamRelease``: a version released early from the cooldown ("break
  glass") by an admin, with who, why and when (also written to the journal).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from myapp.data.meta import Base, UTCDateTime, utcnow

# Normalized names compared byte-wise on PostgreSQL too, as packages.name is (migration 0006).
NameColumn = String(200).with_variant(String(200, collation="C"), "postgresql")


class UpstreamProject(Base):
    """A project of the upstream index, as its simple page last said."""

    __tablename__ = "upstream_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(NameColumn, unique=True)  # PEP 503 normalized
    display_name: Mapped[str] = mapped_column(String(200))
    # The upstream's validators and serial: a refresh asks If-None-Match.
    etag: Mapped[str | None] = mapped_column(String(512))
    last_serial: Mapped[int | None] = mapped_column(Integer)
    # Last successful answer (200 or 304); None: never fetched.
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The upstream's status for the page at the last attempt (200, 304, 404, ...).
    page_status: Mapped[int | None] = mapped_column(Integer)
    # 404 upstream: the name does not exist there (answered 404 here, cached for the TTL).
    missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Single flight: whoever set this (in the future) is fetching the page.
    refreshing_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped whenever the stored files change: our pages' ETag and X-PyPI-Last-Serial.
    serial: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[UpstreamFile]] = relationship(
        back_populates="project", cascade="all, delete-orphan", passive_deletes=True, order_by="UpstreamFile.filename"
    )

    def __repr__(self) -> str:
        return f"<UpstreamProject {self.name!r}>"


class UpstreamFile(Base):
    """A file the upstream lists for a project (validated on the way in)."""

    __tablename__ = "upstream_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("upstream_projects.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255), unique=True)
    version: Mapped[str] = mapped_column(String(100))  # parsed from the filename (packaging.utils)
    packagetype: Mapped[str] = mapped_column(String(32))  # bdist_wheel or sdist
    url: Mapped[str] = mapped_column(String(2048))  # where the upstream has it (absolute, http(s))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)  # PEP 700; None where the upstream gives none
    requires_python: Mapped[str | None] = mapped_column(String(255))
    upload_time: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the upstream's (PEP 700)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # PEP 658/714: the upstream serves <url>.metadata; its sha256 when given.
    core_metadata: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    core_metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    # The files part: where the verified bytes are in the FileStore (None: not cached).
    storage_path: Mapped[str | None] = mapped_column(String(1024))
    cached_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    quarantined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    downloads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The files part's single flight (migration 0012): whoever set this (in the
    # future) is fetching the bytes; the last failed fetch and why.
    fetching_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetch_error: Mapped[str | None] = mapped_column(Text)
    fetch_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    project: Mapped[UpstreamProject] = relationship(back_populates="files")

    def __repr__(self) -> str:
        return f"<UpstreamFile {self.filename!r}>"


# Eviction walks cached files least recently downloaded first.
Index("ix_upstream_files_lru", UpstreamFile.last_downloaded_at)


class UpstreamPolicy(Base):
    """Per-name switches (hosted or proxied names), changed on the manage and admin pages."""

    __tablename__ = "upstream_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(NameColumn, unique=True)  # PEP 503 normalized
    # A hosted name's owner opts in: upstream files listed beside ours (PEP 708 tracks).
    also_serve_upstream: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # An admin exempts the name from the release-age cooldown.
    cooldown_exempt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    updated_by: Mapped[str | None] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamRelease(Base):
    """One version released from the cooldown before its time, by an admin, with a reason."""

    __tablename__ = "upstream_releases"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(NameColumn)
    version: Mapped[str] = mapped_column(String(100))
    released_by: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

"""Projects, their releases and release files, trove classifiers, and who
may manage a project (``Role``)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from myapp.accounts.models import User
from myapp.data.meta import Base, UTCDateTime, str_enum, utcnow

# Byte-wise ordering for version sort keys: PostgreSQL's locale collations
# ignore punctuation, which would break the encoding. SQLite already compares
# bytes.
SortKey = String(400).with_variant(String(400, collation="C"), "postgresql")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


def is_http_url(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


package_classifiers = Table(
    "package_classifiers",
    Base.metadata,
    Column("package_id", ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True),
    Column("classifier_id", ForeignKey("classifiers.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Classifier(Base):
    __tablename__ = "classifiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    classifier: Mapped[str] = mapped_column(String(255), unique=True)

    def __repr__(self) -> str:
        return f"<Classifier {self.classifier!r}>"


class Package(Base):
    """A project on the index. ``name`` is the PEP 503 normalized name."""

    __tablename__ = "packages"
    __table_args__ = (
        # Keyset pagination by last update: (updated, id) is unique and ordered.
        Index("ix_packages_updated_id", "updated", "id"),
        # /simple/ lists every project by name: read from this index alone, in order.
        Index("ix_packages_listing", "name", "display_name", "last_serial"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Byte order on PostgreSQL too (migration 0006): a name prefix is an index range.
    name: Mapped[str] = mapped_column(String(200).with_variant(String(200, collation="C"), "postgresql"), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text)
    description_content_type: Mapped[str | None] = mapped_column(String(128))
    home_page: Mapped[str | None] = mapped_column(String(1024))
    project_urls: Mapped[dict[str, str]] = mapped_column(JsonDoc, default=dict)
    license: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(512))
    author_email: Mapped[str | None] = mapped_column(String(512))
    maintainer: Mapped[str | None] = mapped_column(String(512))
    maintainer_email: Mapped[str | None] = mapped_column(String(512))
    keywords: Mapped[str | None] = mapped_column(Text)
    requires_python: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped (to one past the index's highest) on every change: the simple
    # API's X-PyPI-Last-Serial, which mirrors and caches compare.
    last_serial: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)
    # Downloads of all its files: the popularity that breaks ties in search.
    downloads: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # ``description`` rendered once, at import or upload, and by which
    # renderer (``myapp-rerender`` redoes what an older one rendered).
    description_html: Mapped[str | None] = mapped_column(Text)
    description_renderer: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 of the PyPI JSON document this project was last imported from;
    # any other change clears it (``services.bump_serial``), so ``myapp-import``
    # can skip a document it has already applied without parsing it.
    import_digest: Mapped[str | None] = mapped_column(String(64))

    releases: Mapped[list[Release]] = relationship(
        back_populates="package",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="desc(Release.sort_key)",
    )
    classifiers: Mapped[list[Classifier]] = relationship(secondary=package_classifiers, order_by=Classifier.classifier)
    roles: Mapped[list[Role]] = relationship(
        back_populates="package", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def links(self) -> list[tuple[str, str]]:
        """Home page and project URLs that are http(s): metadata may hold
        ``javascript:`` links, which must never reach a page."""
        pairs = [("Homepage", self.home_page), *(self.project_urls or {}).items()]
        return [(label, url) for label, url in pairs if url is not None and is_http_url(url)]

    def __repr__(self) -> str:
        return f"<Package {self.name!r}>"


# Search walks a large set of matches most popular first (search.ranking.search_projects).
Index("ix_packages_popularity", Package.downloads.desc(), Package.name)


class IndexStats(Base):
    """The index's totals in one row, kept by database triggers (migration
    0005) in the same transaction as the rows they count."""

    __tablename__ = "index_stats"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    projects: Mapped[int] = mapped_column(BigInteger)
    releases: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int] = mapped_column(BigInteger)


class NameWord(Base):
    """A word of project names ("django", "cloud") and how many projects'
    names have it, kept by database triggers (migration 0007): the
    vocabulary "did you mean" corrects misspelt words against."""

    __tablename__ = "name_words"

    id: Mapped[int] = mapped_column(primary_key=True)
    word: Mapped[str] = mapped_column(String(200), unique=True)
    projects: Mapped[int] = mapped_column(Integer)


class Release(Base):
    """One version of a package."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("package_id", "version"),
        Index("ix_releases_package_id_sort_key", "package_id", "sort_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(100))
    sort_key: Mapped[str] = mapped_column(SortKey)
    # Pre- and dev releases are not "latest" while a final release exists.
    is_prerelease: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    summary: Mapped[str | None] = mapped_column(String(512))
    requires_python: Mapped[str | None] = mapped_column(String(255))
    yanked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Core metadata of the release's files (migration 0010), served in the
    # JSON API's ``info`` as PyPI does: per release, None where the file says nothing.
    requires_dist: Mapped[list[str] | None] = mapped_column(JSON)
    provides_extra: Mapped[list[str] | None] = mapped_column(JSON)
    license_expression: Mapped[str | None] = mapped_column(Text)
    license_files: Mapped[list[str] | None] = mapped_column(JSON)
    dynamic: Mapped[list[str] | None] = mapped_column(JSON)
    platform: Mapped[list[str] | None] = mapped_column(JSON)
    download_url: Mapped[str | None] = mapped_column(String(1024))

    package: Mapped[Package] = relationship(back_populates="releases")
    files: Mapped[list[ReleaseFile]] = relationship(
        back_populates="release",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ReleaseFile.filename",
    )

    def __repr__(self) -> str:
        return f"<Release {self.version!r} of package {self.package_id}>"


class ReleaseFile(Base):
    """A distribution file. Its bytes are either stored here or at ``url``."""

    __tablename__ = "release_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255), unique=True)
    packagetype: Mapped[str] = mapped_column(String(32))
    python_version: Mapped[str | None] = mapped_column(String(64))
    requires_python: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    upload_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    storage_path: Mapped[str | None] = mapped_column(String(1024))
    # A wheel's core metadata (its .dist-info/METADATA), stored beside it as
    # <storage_path>.metadata and served at <file URL>.metadata (PEP 658).
    metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(2048))
    downloads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    release: Mapped[Release] = relationship(back_populates="files")

    def __repr__(self) -> str:
        return f"<ReleaseFile {self.filename!r}>"


class RoleName(enum.StrEnum):
    OWNER = "owner"  # uploads, and manages who else may
    MAINTAINER = "maintainer"  # uploads


class Role(Base):
    """A user's role on a project: one per user and project."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("user_id", "package_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), index=True)
    role: Mapped[RoleName] = mapped_column(str_enum(RoleName, 20))

    user: Mapped[User] = relationship()
    package: Mapped[Package] = relationship(back_populates="roles")

    def __repr__(self) -> str:
        return f"<Role {self.role} of user {self.user_id} on package {self.package_id}>"


class JournalEntry(Base):
    """One change to a project (an upload, a yank, a deletion, a role):
    who, what and when, kept even when the project or user is gone."""

    __tablename__ = "journal"
    __table_args__ = (Index("ix_journal_package_name_id", "package_name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    package_name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(100))
    filename: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(200))
    username: Mapped[str | None] = mapped_column(String(50))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeletedFilename(Base):
    """The name of a file that was deleted: it is never used again, so a name
    always means the same bytes (as on PyPI)."""

    __tablename__ = "deleted_filenames"

    filename: Mapped[str] = mapped_column(String(255), primary_key=True)

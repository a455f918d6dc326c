"""Queries about packages. Views call these; they never build SQL themselves.

Every function takes the session as its first argument, so the same code
serves requests (``request.dbsession``), scripts and tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, ScalarSelect, Select, case, false, func, literal, select, tuple_, update
from sqlalchemy.orm import Session, contains_eager, defer, selectinload

from myapp.accounts.models import User
from myapp.data.meta import utcnow
from myapp.packaging import search as search_index
from myapp.packaging.models import (
    Classifier,
    DeletedFilename,
    IndexStats,
    JournalEntry,
    Package,
    Release,
    ReleaseFile,
    Role,
    RoleName,
)
from myapp.packaging.names import normalize
from myapp.packaging.rendering import RENDERER
from myapp.web.pagination import PER_PAGE, Page, offset_for

SortOrder = Literal["name", "updated"]
SORT_ORDERS: tuple[SortOrder, ...] = ("name", "updated")


@dataclass(frozen=True)
class IndexCounts:
    projects: int
    releases: int
    files: int


@dataclass(frozen=True)
class ProjectRow:
    """A line in a list of projects: the package and its latest version."""

    package: Package
    latest_version: str | None


def latest_version_of(package_id_column: ColumnElement[int]) -> ScalarSelect[str]:
    """Correlated subquery: the version ``pip install`` would pick, i.e. the
    newest non-yanked final release, else the newest non-yanked pre-release."""
    return (
        select(Release.version)
        .where(Release.package_id == package_id_column, Release.yanked == false())
        .order_by(Release.is_prerelease, Release.sort_key.desc())
        .limit(1)
        .scalar_subquery()
    )


def counts(db: Session) -> IndexCounts:
    """Projects, releases and files: one row that triggers keep (migration 0005)."""
    stats = db.get(IndexStats, 1)
    return IndexCounts(stats.projects, stats.releases, stats.files) if stats else IndexCounts(0, 0, 0)


def add_to_counts(db: Session, *, projects: int = 0, releases: int = 0, files: int = 0) -> None:
    """For bulk writes made with the counting triggers off; everything else is counted by them."""
    db.execute(
        update(IndexStats)
        .where(IndexStats.id == 1)
        .values(
            projects=IndexStats.projects + projects,
            releases=IndexStats.releases + releases,
            files=IndexStats.files + files,
        )
    )


def _rows(db: Session, stmt: Select) -> list[ProjectRow]:
    # Lists never show the description (often tens of KB): leave it in the
    # database, and make any accidental use fail loudly instead of a query per row.
    stmt = stmt.add_columns(latest_version_of(Package.id).label("latest_version")).options(
        defer(Package.description, raiseload=True), defer(Package.description_html, raiseload=True)
    )
    return [ProjectRow(package, latest) for package, latest in db.execute(stmt)]


def recently_updated(db: Session, limit: int = 10) -> list[ProjectRow]:
    return _rows(db, select(Package).order_by(Package.updated.desc(), Package.id.desc()).limit(limit))


# -- browsing: keyset pages, as fast a million rows in as on the first ----------------


@dataclass(frozen=True)
class BrowsePage:
    """Projects after (or before) a cursor, which is a project's name."""

    items: list[ProjectRow]
    total: int
    next_after: str | None  # the cursor for the next page, if there is one
    previous_before: str | None  # the cursor for the previous page, if there is one


def browse(
    db: Session,
    *,
    sort: SortOrder = "name",
    after: str | None = None,
    before: str | None = None,
    start: str | None = None,
    per_page: int = PER_PAGE,
) -> BrowsePage:
    """One page of projects by name (from ``start``, inclusive) or by last
    update, after or before the named project: three statements."""
    if sort == "name":
        key: tuple[ColumnElement[Any], ...] = (Package.name,)
        newest_first = False

        def cursor(name: str) -> tuple[Any, ...]:
            return (literal(name),)
    else:
        key = (Package.updated, Package.id)
        newest_first = True

        def cursor(name: str) -> tuple[Any, ...]:
            named = Package.name == name
            return (
                select(Package.updated).where(named).scalar_subquery(),
                select(Package.id).where(named).scalar_subquery(),
            )

    where: list[ColumnElement[bool]] = []
    backwards = before is not None
    if after is not None or before is not None:
        later = tuple_(*key) > tuple_(*cursor(after or before or ""))
        earlier = tuple_(*key) < tuple_(*cursor(after or before or ""))
        # "after" in page order: later keys by name, earlier keys newest-first.
        where.append((earlier if newest_first else later) if not backwards else (later if newest_first else earlier))
    elif start is not None and sort == "name":
        where.append(Package.name >= start)
    descending = newest_first != backwards
    order = [k.desc() if descending else k.asc() for k in key]
    rows = _rows(db, select(Package).where(*where).order_by(*order).limit(per_page + 1))
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    first, last = (rows[0].package.name, rows[-1].package.name) if rows else (None, None)
    has_next = more if not backwards else True
    has_previous = (after is not None or (start is not None and sort == "name")) if not backwards else more
    return BrowsePage(
        rows,
        counts(db).projects,
        last if has_next and rows else None,
        first if has_previous and rows else None,
    )


# -- search -------------------------------------------------------------------------

SearchOrder = Literal["relevance", "updated"]
SEARCH_ORDERS: tuple[SearchOrder, ...] = ("relevance", "updated")
# Counted exactly up to here; past it the page says "1,000+". A count costs a
# visit to each row on PostgreSQL (its GIN index holds no counts): 10,000 was 35 ms.
RESULT_CAP = 1_000


@dataclass(frozen=True)
class SearchResults:
    page: Page[ProjectRow]
    capped: bool  # more matched than RESULT_CAP
    suggestions: list[str]  # when nothing matched: the closest project names


def classifier_ids(db: Session, names: Iterable[str]) -> list[int] | None:
    """Ids of these classifiers, or None if any of them does not exist."""
    wanted = set(names)
    if not wanted:
        return []
    ids = list(db.scalars(select(Classifier.id).where(Classifier.classifier.in_(wanted))))
    return ids if len(ids) == len(wanted) else None


def _rows_in_order(db: Session, ids: list[int]) -> list[ProjectRow]:
    """The rows of these packages, in this order: one statement."""
    rows = {row.package.id: row for row in _rows(db, select(Package).where(Package.id.in_(ids)))}
    return [rows[i] for i in ids]


def _ranked_ids(
    db: Session, where: list[ColumnElement[bool]], ordering: tuple[Any, ...], offset: int, limit: int
) -> list[int]:
    """One page of a ranking, as ids: the database sorts narrow rows, however many match."""
    return list(db.scalars(select(Package.id).where(*where).order_by(*ordering).offset(offset).limit(limit)))


# Relevance. Most searches match a few hundred projects at most: up to
# RESULT_CAP, they are fetched once, narrow, and ranked here. A larger set is
# ranked tier by tier.
SORT_ALL = 5_000  # a tier up to this size is sorted; a larger one, walked
SCAN_DEPTH = 200  # pages past this many results are ranked whole too (by the database)
POPULAR = (Package.downloads.desc(), Package.name)  # ties by downloads, then name: ix_packages_popularity
# The same order, but one no index gives: a small tier is read by its own index and
# sorted, where a planner may otherwise walk all of ix_packages_popularity to find it.
SORTED = ((Package.downloads + 0).desc(), Package.name)


class _Match(NamedTuple):
    id: int
    name: str
    downloads: int


def _few_matches(
    db: Session, index: search_index.SearchIndex, terms: search_index.Terms, filters: list[ColumnElement[bool]]
) -> list[_Match]:
    """Up to RESULT_CAP + 1 matches, as narrow rows: one pass over the index."""
    stmt = index.matching(select(Package.id, Package.name, Package.downloads), terms).where(*filters)
    return [_Match(*row) for row in db.execute(stmt.limit(RESULT_CAP + 1))]


def _count(
    db: Session,
    index: search_index.SearchIndex,
    terms: search_index.Terms,
    filters: list[ColumnElement[bool]],
    cap: int,
    *,
    name_only: bool = False,
) -> int:
    """Matches (of the name alone, with ``name_only``) counted up to ``cap``:
    from the index alone unless classifiers filter them."""
    if not filters:
        return index.count(db, terms, cap, name_only=name_only)
    matched = index.name_matches(terms) if name_only else index.matches(terms)
    return search_index.count_up_to(db, select(Package.id).where(matched, *filters), cap)


def _any_match(
    db: Session, index: search_index.SearchIndex, terms: search_index.Terms, filters: list[ColumnElement[bool]]
) -> bool:
    return bool(search_index.count_up_to(db, index.matching(select(Package.id), terms).where(*filters), 1))


def _may_widen(
    db: Session, index: search_index.SearchIndex, terms: search_index.Terms, filters: list[ColumnElement[bool]]
) -> bool:
    """Whether the words before the last match something, as they must for
    the last as a prefix to: a misspelt word ("sycn graph py") rules the
    prefix out, and a short one ("py*") is the dearest query there is (25 ms
    at a million projects on PostgreSQL, against 0.4 for this check)."""
    rest = search_index.Terms(terms.words[:-1])
    return not rest.words or _any_match(db, index, rest, filters)


def _ranked_here(terms: search_index.Terms, matches: list[_Match]) -> list[int]:
    """The ids of a small set of matches by relevance: exact name, name prefix,
    every word in the name, the rest; ties by downloads, then name."""
    in_name = search_index.in_name(terms).search

    def rank(m: _Match) -> tuple[int, int, str]:
        tier = 0 if m.name == terms.name else 1 if m.name.startswith(terms.name_start) else 2 if in_name(m.name) else 3
        return tier, -m.downloads, m.name

    return [m.id for m in sorted(matches, key=rank)]


def _walk(
    db: Session, test: ColumnElement[bool], unpopular_test: ColumnElement[bool], filters: list[Any], limit: int
) -> list[int]:
    """The first ``limit`` packages passing ``test``, most popular first: down
    ix_packages_popularity through those with downloads, then through those
    without (most of a private index) in name order, with ``unpopular_test``:
    a test on the name that the name index can serve (a prefix is a range
    there) instead of a walk from "a" to it."""
    found = list(
        db.scalars(select(Package.id).where(test, Package.downloads > 0, *filters).order_by(*POPULAR).limit(limit))
    )
    if len(found) < limit:
        rest = select(Package.id).where(unpopular_test, Package.downloads == 0, *filters).order_by(Package.name)
        found += db.scalars(rest.limit(limit - len(found)))
    return found


def _tiered_ids(
    db: Session,
    index: search_index.SearchIndex,
    terms: search_index.Terms,
    filters: list[ColumnElement[bool]],
    matched: int,
    offset: int,
    limit: int,
) -> list[int]:
    """The page of a relevance ranking that too many projects match
    (``matched``, counted up to RESULT_CAP + 1) to rank them here. Each tier
    (exact name, name prefix, a name holding every word, the rest) is a sort
    when it is small, a walk (``_walk``) when it is large; a large set is
    dense, so the walk is short. A statement or two per tier, and only as
    many tiers as the page needs."""
    exact = Package.name == terms.name
    starts = index.name_prefix(terms.name_start) & ~exact  # a range of the name index
    in_name = index.name_matches(terms) & ~exact & ~starts
    tiers = [  # (the tier, the same as a cheap test of each row of a walk, the test among the unpopular)
        (exact, exact, exact),
        (starts, Package.name.startswith(terms.name_start, autoescape=True) & ~exact, starts),
        (in_name, index.row_test(terms, name_only=True) & ~exact & ~starts, None),
        (
            index.matches(terms) & ~index.name_matches(terms),
            index.row_test(terms) & ~index.row_test(terms, name_only=True),
            None,
        ),
    ]

    named = 0  # every name match (tiers 0 to 2), counted on reaching tier 2

    def size(tier: int, indexed: ColumnElement[bool]) -> int:
        nonlocal named
        if tier == 2:  # an upper bound for this tier, and what tier 3 is not
            named = _count(db, index, terms, filters, SORT_ALL + 1, name_only=True)
            return named
        if tier == 3:
            # Exact when both counts are. Otherwise walked: the page reaches this tier
            # only when tiers 0 to 2 hold fewer than SCAN_DEPTH, so it holds more than
            # RESULT_CAP - SCAN_DEPTH matches.
            return matched - named if matched <= RESULT_CAP and named <= SORT_ALL else SORT_ALL + 1
        return search_index.count_up_to(db, select(Package.id).where(indexed, *filters), SORT_ALL + 1)

    found: list[int] = []
    for tier, (indexed, row_test, unpopular_test) in enumerate(tiers):
        wanted_rows = offset + limit - len(found)
        rows = size(tier, indexed)
        if not rows:
            continue
        if rows <= SORT_ALL:
            found += db.scalars(select(Package.id).where(indexed, *filters).order_by(*SORTED).limit(wanted_rows))
        else:
            found += _walk(db, row_test, row_test if unpopular_test is None else unpopular_test, filters, wanted_rows)
        if len(found) >= offset + limit:
            break
    return found[offset : offset + limit]


SUGGESTIONS = 5
SUGGESTION_POOL = 20  # results of the corrected search that may be suggested


def _suggestions(db: Session, index: search_index.SearchIndex, terms: search_index.Terms) -> list[str]:
    """Display names of the projects closest to what found nothing: of the
    first results of the search with each unknown word corrected
    (``search_index.corrected``), those whose names are still like the text
    typed (pg_trgm's similarity), most alike first. When every word was
    kept, corrected or not, the corrected name itself comes first."""
    fixed = search_index.corrected(db, index, terms)
    if fixed is None:
        return []
    results = search(db, " ".join(fixed.words), per_page=SUGGESTION_POOL, suggest=False).page.items
    meant = fixed.name if len(fixed.words) == len(terms.words) else None
    close = []
    for rank, package in enumerate(row.package for row in results):
        likeness = search_index.similarity(terms.name, package.name)
        if package.name == meant or likeness >= search_index.SIMILARITY:
            close.append((package.name != meant, -likeness, rank, package.display_name))
    return [display for *_, display in sorted(close)[:SUGGESTIONS]]


def classifier_groups(db: Session) -> dict[str, list[str]]:
    """Every classifier in use, grouped by its first part (for search filters)."""
    groups: dict[str, list[str]] = {}
    for name in db.scalars(select(Classifier.classifier).order_by(Classifier.classifier)):
        groups.setdefault(name.split(" :: ", 1)[0], []).append(name)
    return groups


def search(
    db: Session,
    text: str,
    *,
    classifiers: Iterable[str] = (),
    order: SearchOrder = "relevance",
    page: int = 1,
    per_page: int = PER_PAGE,
    suggest: bool = True,
) -> SearchResults:
    """Projects with every word of ``text`` in their name or summary and
    every one of ``classifiers``.

    By relevance: the exact (normalized) name first, then names that start
    with the text, then names holding every word, then summary matches; ties
    by downloads, then name. Or by last update, newest first.

    By relevance, two statements when at most RESULT_CAP projects match (the
    matches, then the page's rows), plus one for classifiers, and when
    nothing matched two for the last word as a prefix and a few for
    suggestions (``_suggestions``); a larger set is ranked a tier at a time.
    """
    index = search_index.index_for(db)
    terms = search_index.terms(text)
    words = terms.words
    ids = classifier_ids(db, classifiers)
    if (text.strip() and not words) or ids is None or not (words or ids):
        return SearchResults(Page([], 1, 0, per_page), False, [])
    filters = [search_index.has_classifier(i) for i in ids]
    offset = offset_for(page, per_page)

    def results(ids: list[int], found: int) -> SearchResults:
        result_page = Page([], page, min(found, RESULT_CAP), per_page).check_exists()
        items = _rows_in_order(db, ids) if ids else []
        suggestions = _suggestions(db, index, search_index.Terms(words)) if suggest and not found and words else []
        return SearchResults(Page(items, page, result_page.total, per_page), found > RESULT_CAP, suggestions)

    # When no project has the last word whole, it may be the start of one ("pars").
    found = -1
    if order == "relevance" and words:
        few = _few_matches(db, index, terms, filters)
        if not few and (wider := terms.widened()) and _may_widen(db, index, terms, filters):
            terms, few = wider, _few_matches(db, index, wider, filters)
        if len(few) <= RESULT_CAP:
            return results(_ranked_here(terms, few)[offset : offset + per_page], len(few))
        found = len(few)  # past the cap: counted no further
    elif (
        (wider := terms.widened())
        and not _any_match(db, index, terms, filters)
        and _may_widen(db, index, terms, filters)
    ):
        terms = wider
    where = ([index.matches(terms)] if words else []) + filters
    if found < 0:
        found = (
            _count(db, index, terms, filters, RESULT_CAP + 1)
            if words
            else search_index.count_up_to(db, select(Package.id).where(*filters), RESULT_CAP + 1)
        )
    Page([], page, min(found, RESULT_CAP), per_page).check_exists()  # before ranking a page
    if order == "relevance" and words and offset + per_page <= SCAN_DEPTH:
        return results(_tiered_ids(db, index, terms, filters, found, offset, per_page), found)
    if order == "updated":
        ordering: tuple[Any, ...] = (Package.updated.desc(), Package.id.desc())
    elif words:
        rank = case(
            (Package.name == terms.name, 0),
            (Package.name.startswith(terms.name_start, autoescape=True), 1),
            (index.name_matches(terms), 2),
            else_=3,
        )
        ordering = (rank, *POPULAR)
    else:
        ordering = POPULAR
    return results(_ranked_ids(db, where, ordering, offset, per_page) if found else [], found)


# The page cache's check runs this on a raw connection (myapp.data.ReadProbe).
INDEX_SERIAL_SQL = "SELECT max(last_serial) FROM packages"


def index_serial(db: Session) -> int:
    """The highest serial: it changes whenever any project does."""
    return db.scalar(select(func.max(Package.last_serial))) or 0


def bump_serial(db: Session, package: Package) -> int:
    """Mark a change to the project: its serial becomes the index's highest."""
    package.import_digest = None  # no longer what any imported document says
    package.last_serial = index_serial(db) + 1
    return package.last_serial


def touch(db: Session, package: Package) -> None:
    """The project changed now: its update time and serial move on."""
    package.updated = utcnow()
    bump_serial(db, package)


def find_package(db: Session, name: str) -> Package | None:
    """The package by (normalized) name, with classifiers loaded."""
    return db.scalar(select(Package).where(Package.name == normalize(name)).options(selectinload(Package.classifiers)))


HISTORY_SHOWN = 30  # releases on a project page; the rest are one click away


def release_history(db: Session, package: Package, limit: int | None = None) -> list[Release]:
    """Releases, newest first (all, or the newest ``limit``): one statement."""
    stmt = select(Release).where(Release.package_id == package.id).order_by(Release.sort_key.desc())
    return list(db.scalars(stmt.limit(limit)))


def latest_of(db: Session, package: Package) -> Release | None:
    """The release ``pip install`` picks, as ``latest_version_of``; if every
    release is yanked, the newest final one. One statement."""
    return db.scalar(
        select(Release)
        .where(Release.package_id == package.id)
        .order_by(Release.yanked, Release.is_prerelease, Release.sort_key.desc())
        .limit(1)
    )


def store_description(db: Session, package_id: int, html: str, *, replace: bool = False) -> None:
    """Keep a description's rendering (not a change: no serial bump). One
    rendered on demand fills only a gap; ``replace`` overwrites what an older
    renderer made (``myapp-rerender``)."""
    stmt = update(Package).where(Package.id == package_id)
    if not replace:
        stmt = stmt.where(Package.description_renderer.is_(None))
    db.execute(stmt.values(description_html=html, description_renderer=RENDERER))


def downloads_by_release(db: Session, releases: list[Release]) -> dict[int, int]:
    """Release id -> downloads of its files, in one statement. A release
    without files is absent (its page shows no release date)."""
    rows = db.execute(
        select(ReleaseFile.release_id, func.sum(ReleaseFile.downloads))
        .where(ReleaseFile.release_id.in_([r.id for r in releases]))
        .group_by(ReleaseFile.release_id)
    )
    return {release_id: int(total or 0) for release_id, total in rows}


def releases_with_files(db: Session, package: Package) -> list[Release]:
    """All releases, newest first, with their files: two statements."""
    stmt = (
        select(Release)
        .where(Release.package_id == package.id)
        .order_by(Release.sort_key.desc())
        .options(selectinload(Release.files))
    )
    return list(db.scalars(stmt))


def latest_release(releases: list[Release]) -> Release | None:
    """From a newest-first history, the same choice as ``latest_version_of``;
    if every release is yanked, the newest."""
    live = [r for r in releases if not r.yanked]
    for choices in ([r for r in live if not r.is_prerelease], live, releases):
        if choices:
            return choices[0]
    return None


def find_release(db: Session, package: Package, version: str) -> Release | None:
    return db.scalar(
        select(Release)
        .where(Release.package_id == package.id, Release.version == version)
        .options(selectinload(Release.files))
    )


def files_of(db: Session, release: Release | None) -> list[ReleaseFile]:
    """A release's files by name, in one statement (none without a release)."""
    if release is None:
        return []
    return list(
        db.scalars(select(ReleaseFile).where(ReleaseFile.release_id == release.id).order_by(ReleaseFile.filename))
    )


def find_file(db: Session, filename: str) -> ReleaseFile | None:
    return db.scalar(select(ReleaseFile).where(ReleaseFile.filename == filename))


def count_download(db: Session, file_id: int) -> None:
    """Add one to a file's download count.

    The increment is done in SQL (``downloads = downloads + 1``), so
    concurrent downloads never lose a count on SQLite or PostgreSQL.
    """
    db.execute(update(ReleaseFile).where(ReleaseFile.id == file_id).values(downloads=ReleaseFile.downloads + 1))
    # The project's total is search's popularity signal.
    package_id = select(Release.package_id).join(ReleaseFile).where(ReleaseFile.id == file_id).scalar_subquery()
    db.execute(update(Package).where(Package.id == package_id).values(downloads=Package.downloads + 1))


# -- who maintains what -------------------------------------------------------------


class LastOwnerError(ValueError):
    """A project must keep at least one owner."""


def maintainers(db: Session, package: Package) -> list[Role]:
    """The project's roles with their users, owners first, then by name."""
    stmt = (
        select(Role)
        .join(Role.user)
        .where(Role.package_id == package.id)
        .options(contains_eager(Role.user))
        .order_by(Role.role != RoleName.OWNER, func.lower(User.username))
    )
    return list(db.scalars(stmt))


def projects_of(db: Session, user: User) -> list[Role]:
    """The user's roles with their projects, by project name."""
    stmt = (
        select(Role)
        .join(Role.package)
        .where(Role.user_id == user.id)
        .options(contains_eager(Role.package).defer(Package.description, raiseload=True))
        .order_by(Package.name)
    )
    return list(db.scalars(stmt))


def role_of(db: Session, user: User, package: Package) -> Role | None:
    # populate_existing: the role as it is now (after lock_project_roles), not as first loaded.
    stmt = select(Role).where(Role.user_id == user.id, Role.package_id == package.id)
    return db.scalar(stmt.execution_options(populate_existing=True))


def _owners(db: Session, package: Package) -> int:
    stmt = select(func.count()).where(Role.package_id == package.id, Role.role == RoleName.OWNER)
    return db.scalar(stmt) or 0


def lock_project_roles(db: Session, package_id: int) -> None:
    """Hold the project's row until the transaction ends, so that two changes
    to its roles take turns: otherwise two owners removing each other each
    count two owners, and both go (PostgreSQL; SQLite's write lock already
    serializes them, and SQLAlchemy leaves FOR UPDATE out there)."""
    db.execute(select(Package.id).where(Package.id == package_id).with_for_update())


def set_role(db: Session, package: Package, user: User, role: RoleName) -> Role:
    """Give ``user`` this role on the project (adding or changing it)."""
    lock_project_roles(db, package.id)
    current = role_of(db, user, package)
    if current is None:
        current = Role(user_id=user.id, package_id=package.id, role=role)
        db.add(current)
    elif current.role != role:
        if current.role == RoleName.OWNER and _owners(db, package) <= 1:
            raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
        current.role = role
    bump_serial(db, package)  # the project page lists its maintainers
    db.flush()
    return current


def remove_role(db: Session, package: Package, user: User) -> None:
    lock_project_roles(db, package.id)
    current = role_of(db, user, package)
    if current is None:
        return
    if current.role == RoleName.OWNER and _owners(db, package) <= 1:
        raise LastOwnerError(f"{user.username} is the last owner of {package.display_name}.")
    db.delete(current)
    bump_serial(db, package)
    db.flush()


# -- maintainers' changes: yank, delete, and the journal ------------------------------


def record(db: Session, package: Package, action: str, user: User | None, **where: str | None) -> None:
    """A journal entry: who did what to the project, and when."""
    db.add(
        JournalEntry(
            package_name=package.name,
            version=where.get("version"),
            filename=where.get("filename"),
            action=action,
            username=user.username if user else None,
        )
    )


def journal(db: Session, package: Package, limit: int = 100) -> list[JournalEntry]:
    stmt = select(JournalEntry).where(JournalEntry.package_name == package.name).order_by(JournalEntry.id.desc())
    return list(db.scalars(stmt.limit(limit)))


def set_yanked(db: Session, package: Package, release: Release, yanked: bool, reason: str | None, user: User) -> None:
    """Yank (pip skips it unless pinned to it, PEP 592) or un-yank a release and its files."""
    release.yanked, release.yanked_reason = yanked, (reason or None) if yanked else None
    for file in release.files:
        file.yanked = yanked
    bump_serial(db, package)
    action = f"yank release ({reason})" if yanked and reason else ("yank release" if yanked else "unyank release")
    record(db, package, action, user, version=release.version)


def is_deleted_filename(db: Session, filename: str) -> bool:
    return db.get(DeletedFilename, filename) is not None


def _forget_file(db: Session, package: Package, file: ReleaseFile, user: User) -> list[str]:
    """Journal and retire a file's name; the stored paths to remove after commit."""
    db.add(DeletedFilename(filename=file.filename))
    record(db, package, "remove file", user, version=file.release.version, filename=file.filename)
    return [p for p in (file.storage_path, file.storage_path and file.storage_path + ".metadata") if p]


def delete_file(db: Session, package: Package, file: ReleaseFile, user: User) -> list[str]:
    """Delete one file; its name is never used again. Returns the stored paths to remove."""
    paths = _forget_file(db, package, file, user)
    db.delete(file)
    bump_serial(db, package)
    return paths


def delete_release(db: Session, package: Package, release: Release, user: User) -> list[str]:
    """Delete a release and its files (the relationship's cascade deletes them)."""
    paths = [path for file in release.files for path in _forget_file(db, package, file, user)]
    db.delete(release)
    bump_serial(db, package)
    record(db, package, "remove release", user, version=release.version)
    return paths

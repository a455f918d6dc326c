"""Search results by relevance or by last update: which projects match, in
what order, and what to suggest when none does.

``index`` turns the text into the database's full-text query; this module
decides how much of the ranking the database does. A few hundred matches
are fetched narrow and ranked here; a larger set is ranked a tier at a time
(exact name, name prefix, every word in the name, the rest), each tier a
sort when it is small and a walk down the popularity index when it is large.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, case, select
from sqlalchemy.orm import Session

from myapp.data.paging import PER_PAGE, Page, offset_for
from myapp.packaging.models import Classifier, Package
from myapp.packaging.search import index as search_index
from myapp.packaging.services import ProjectRow, project_rows

SearchOrder = Literal["relevance", "updated"]
SEARCH_ORDERS: tuple[SearchOrder, ...] = ("relevance", "updated")
# Counted exactly up to here; past it the page says "1,000+". A count costs a
# visit to each row on PostgreSQL (its GIN index holds no counts).
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
    rows = {row.package.id: row for row in project_rows(db, select(Package).where(Package.id.in_(ids)))}
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
    prefix out, and a short one ("py*") is the dearest query there is, where
    this check costs a small fraction of it (the README's "At a million
    projects" has the figures)."""
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
    results = search_projects(db, " ".join(fixed.words), per_page=SUGGESTION_POOL, suggest=False).page.items
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


def search_projects(
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
        result_page: Page[ProjectRow] = Page([], page, min(found, RESULT_CAP), per_page).check_exists()
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
    ordering = _database_order(index, terms, order)
    return results(_ranked_ids(db, where, ordering, offset, per_page) if found else [], found)


def _database_order(index: search_index.SearchIndex, terms: search_index.Terms, order: SearchOrder) -> tuple[Any, ...]:
    """The ranking as an ORDER BY, for pages past SCAN_DEPTH and for sorting by update."""
    if order == "updated":
        return (Package.updated.desc(), Package.id.desc())
    if not terms.words:
        return POPULAR
    rank = case(
        (Package.name == terms.name, 0),
        (Package.name.startswith(terms.name_start, autoescape=True), 1),
        (index.name_matches(terms), 2),
        else_=3,
    )
    return (rank, *POPULAR)

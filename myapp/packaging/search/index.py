"""Full-text search over project names and summaries, on either database.

The index itself is built by migration 0005: FTS5 tables on SQLite, a
``tsvector`` column and ``pg_trgm`` on PostgreSQL. This module turns what a
user typed into that index's query language, so that no input can be an FTS
syntax error: the text is split into words of letters and digits (the same
split both indexes make), and every word must match a word of the name or
summary, whole, in any order. When nothing matches, the last word may be
the start of one (``Terms.widened``): "pars" finds "parser". Whole words
are what an index answers fastest: a prefix is a merge of every word it
starts, and "lib" starts "library", in half the summaries.

"Did you mean" (``corrected``) swaps each word that is in no project's
name for the closest one that is, by pg_trgm's trigram similarity, from
``name_words`` (migration 0007): tens of thousands of words, where a million
names would be too many to compare.

``SearchIndex`` is the small interface ``ranking`` uses; ``index_for``
picks the implementation for the session's database.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Select,
    column,
    exists,
    func,
    insert,
    literal_column,
    select,
    table,
    union_all,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from myapp.data.db_session import regexp
from myapp.packaging.models import NameWord, Package, package_classifiers
from myapp.packaging.names import normalize

MAX_TERMS = 8
# A one-letter prefix would match most of the index; such words must match whole.
MIN_PREFIX = 2
SIMILARITY = 0.3  # pg_trgm's default threshold for "similar"
WORD_CANDIDATES = 20  # the likeliest words a misspelt one might be, ranked exactly here

# What Alembic's autogenerate must leave alone: it is not in the models.
NOT_IN_MODELS = frozenset(
    {"package_search", "name_word_grams", "search_vector", "ix_packages_search_vector", "ix_name_words_trgm"}
)
_WORD = re.compile(r"[^\W_]+")
# Where a word starts and ends, in Python's re (SQLite's REGEXP, myapp.data.db_session).
_WORD_START, _WORD_END = r"(?<![^\W_])", r"(?![^\W_])"


@dataclass(frozen=True)
class Terms:
    """What a search asks the index: every word, whole; with ``prefix``, the
    last one may also be the start of a longer word."""

    words: tuple[str, ...]
    prefix: bool = False

    def is_prefix(self, i: int) -> bool:
        """Whether the ``i``-th word matches as a prefix (never a single letter)."""
        return self.prefix and i == len(self.words) - 1 and len(self.words[i]) >= MIN_PREFIX

    @property
    def name(self) -> str:
        """The words as a project name: "Requests OAuthlib" is requests-oauthlib."""
        return normalize("-".join(self.words))

    @property
    def name_start(self) -> str:
        """How a name that matches and starts with ``name`` starts: "web" is
        not the start of "webob" unless the last word is a prefix."""
        return self.name if self.prefix else self.name + "-"

    def widened(self) -> Terms | None:
        """The same words with the last one as a prefix, if that asks for more."""
        widened = Terms(self.words, prefix=True)
        return widened if self.words and not self.prefix and widened.is_prefix(len(self.words) - 1) else None


def terms(text: str) -> Terms:
    """The words of a query, lowercased, at most ``MAX_TERMS`` of them."""
    return Terms(tuple(word[:64] for word in _WORD.findall(text.lower()))[:MAX_TERMS])


def count_up_to(db: Session, stmt: Select[Any], cap: int) -> int:
    """How many rows ``stmt`` gives, counting no further than ``cap``."""
    return db.scalar(select(func.count()).select_from(stmt.limit(cap).subquery())) or 0


def word_pattern(terms: Terms) -> str:
    """A regular expression (``re``, ignoring case) true of a text holding
    every word as the index matches them. unicode61's words are runs of
    letters and digits: one starts where such a character follows none."""
    return "^" + "".join(
        f"(?=.*{_WORD_START}{re.escape(w)}{'' if terms.is_prefix(i) else _WORD_END})" for i, w in enumerate(terms.words)
    )


def in_name(terms: Terms) -> re.Pattern[str]:
    """``word_pattern`` compiled as ``row_test`` runs it, to test names here
    as ``name_matches`` does in the database."""
    return regexp(word_pattern(terms))


def trigrams(text: str) -> set[str]:
    """pg_trgm's trigrams: each word padded with two spaces before, one after."""
    return {f"  {word} "[i : i + 3] for word in _WORD.findall(text.lower()) for i in range(len(word) + 1)}


def similarity(a: str, b: str) -> float:
    """pg_trgm's ``similarity()``: shared trigrams over all trigrams."""
    ta, tb = trigrams(a), trigrams(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


class SearchIndex(Protocol):
    def add(self, db: Session, after_id: int) -> None:
        """Index the packages with ids above ``after_id`` (their words, and the
        words of their names in ``name_words``), written while the database's
        own triggers were off (``myapp.data.bulk.row_triggers_suspended``)."""

    def matches(self, terms: Terms) -> ColumnElement[bool]:
        """Packages whose name or summary has every word."""

    def name_matches(self, terms: Terms) -> ColumnElement[bool]:
        """Packages whose name alone has every word."""

    def matching(self, stmt: Select[Any], terms: Terms) -> Select[Any]:
        """``stmt`` (over packages) narrowed to ``matches``, the index driving, so that a LIMIT stops it early."""

    def similar_words(self, db: Session, word: str) -> list[tuple[str, int]]:
        """Up to ``WORD_CANDIDATES`` words of names (with how many projects
        have each) whose similarity to ``word`` is at least SIMILARITY, the
        most similar first."""

    def name_prefix(self, prefix: str) -> ColumnElement[bool]:
        """Packages whose (normalized) name starts with ``prefix``, by the name index."""

    def count(self, db: Session, terms: Terms, cap: int, *, name_only: bool = False) -> int:
        """How many packages match (``name_matches`` if ``name_only``), counted up to ``cap``."""

    def row_test(self, terms: Terms, *, name_only: bool = False) -> ColumnElement[bool]:
        """The same test as ``matches`` (or ``name_matches``), cheap to run on
        each row of a walk down ``ix_packages_popularity``; no index needed."""


class SqliteSearch:
    """FTS5: ``package_search`` (words, prefix-indexed) and ``name_word_grams``
    (the trigrams of ``name_words``, padded as pg_trgm pads them)."""

    words = table("package_search", column("rowid"), column("package_search"), column("name"), column("summary"))
    grams = table("name_word_grams", column("rowid"), column("name_word_grams"))

    def add(self, db: Session, after_id: int) -> None:
        # One statement per table: FTS5 builds one segment for the lot.
        chosen = select(Package.id, Package.name, Package.summary).where(Package.id > after_id)
        db.execute(insert(self.words).from_select(["rowid", "name", "summary"], chosen))
        # The words of the new names, as migration 0007's triggers split them (json_each).
        word = func.json_each("[" + func.replace(func.json_quote(Package.name), "-", '","') + "]").table_valued("value")
        counted = select(word.c.value, func.count(Package.id.distinct())).where(Package.id > after_id)
        new_words = sqlite_insert(NameWord).from_select(["word", "projects"], counted.group_by(word.c.value))
        db.execute(
            new_words.on_conflict_do_update(
                index_elements=[NameWord.word], set_={"projects": NameWord.projects + new_words.excluded.projects}
            )
        )

    @staticmethod
    def _query(terms: Terms) -> str:
        # Words hold letters and digits only, so quoting each is all the escaping needed.
        return " AND ".join(f'"{w}"*' if terms.is_prefix(i) else f'"{w}"' for i, w in enumerate(terms.words))

    def _hits(self, terms: Terms, *, name_only: bool = False) -> Select[Any]:
        """The rowids (package ids) the FTS index matches."""
        match = f"name : ({self._query(terms)})" if name_only else self._query(terms)
        return select(self.words.c.rowid).where(self.words.c.package_search.op("MATCH")(match))

    def matches(self, terms: Terms) -> ColumnElement[bool]:
        return Package.id.in_(self._hits(terms))

    def name_matches(self, terms: Terms) -> ColumnElement[bool]:
        return Package.id.in_(self._hits(terms, name_only=True))

    def matching(self, stmt: Select[Any], terms: Terms) -> Select[Any]:
        # A join, not IN: SQLite builds an IN list whole before the first row.
        hits = self._hits(terms).subquery()
        return stmt.join(hits, hits.c.rowid == Package.id)

    def similar_words(self, db: Session, word: str) -> list[tuple[str, int]]:
        # Each trigram's posting list, counted per word: how many trigrams they share.
        grams = trigrams(word)
        if not grams:
            return []
        fts = self.grams
        hits = union_all(
            *(select(fts.c.rowid).where(fts.c.name_word_grams.op("MATCH")(f'"{g}"')) for g in sorted(grams))
        ).subquery()
        # Similarity is shared / (mine + theirs - shared), and theirs >= shared:
        # below this many shared trigrams no word can reach SIMILARITY.
        shared = (
            select(hits.c.rowid, func.count().label("n"))
            .group_by(hits.c.rowid)
            .having(func.count() >= math.ceil(SIMILARITY * len(grams)))
            .subquery()
        )
        # pg_trgm's similarity, taking a word's trigrams to be its length + 1 (they are, unless one repeats).
        score = shared.c.n * 1.0 / (len(grams) + func.length(NameWord.word) + 1 - shared.c.n)
        stmt = (
            select(NameWord.word, NameWord.projects)
            .join(shared, NameWord.id == shared.c.rowid)
            .order_by(score.desc(), NameWord.projects.desc(), NameWord.word)
            .limit(WORD_CANDIDATES)
        )
        return _similar_enough(word, db.execute(stmt).tuples())

    def name_prefix(self, prefix: str) -> ColumnElement[bool]:
        # GLOB (case-sensitive, like the index) with a plain parameter is a range on the
        # name index; LIKE is not. Normalized names hold no GLOB wildcards.
        return Package.name.op("GLOB")(prefix.replace("*", "").replace("?", "").replace("[", "") + "*")

    def count(self, db: Session, terms: Terms, cap: int, *, name_only: bool = False) -> int:
        # From the FTS index alone, so the LIMIT stops it early (an IN list would be built whole first).
        return count_up_to(db, self._hits(terms, name_only=name_only), cap)

    def row_test(self, terms: Terms, *, name_only: bool = False) -> ColumnElement[bool]:
        # REGEXP is Python's re (myapp.data.db_session).
        text = Package.name if name_only else Package.name + " " + func.coalesce(Package.summary, "")
        return text.regexp_match(word_pattern(terms))


class PostgresSearch:
    """A weighted ``tsvector`` (name A, summary B) and a trigram index on the name."""

    vector: ColumnClause[Any] = literal_column("packages.search_vector")

    def add(self, db: Session, after_id: int) -> None:
        """Nothing to do: the vector is a generated column."""

    @staticmethod
    def _query(terms: Terms, weight: str = "") -> ColumnElement[bool]:
        # Words hold letters and digits only: nothing in them is tsquery syntax.
        # "w:*" is a prefix, "w:*A" a prefix in the name (weight A), "w:A" the whole word there.
        parts = [f"{w}:{'*' if terms.is_prefix(i) else ''}{weight}".rstrip(":") for i, w in enumerate(terms.words)]
        return func.to_tsquery(literal_column("'simple'"), " & ".join(parts))

    def matches(self, terms: Terms) -> ColumnElement[bool]:
        return self.vector.bool_op("@@")(self._query(terms))

    def name_matches(self, terms: Terms) -> ColumnElement[bool]:
        return self.vector.bool_op("@@")(self._query(terms, "A"))

    def matching(self, stmt: Select[Any], terms: Terms) -> Select[Any]:
        return stmt.where(self.matches(terms))

    def name_prefix(self, prefix: str) -> ColumnElement[bool]:
        return Package.name.startswith(prefix, autoescape=True)

    def count(self, db: Session, terms: Terms, cap: int, *, name_only: bool = False) -> int:
        return count_up_to(
            db, select(Package.id).where(self.name_matches(terms) if name_only else self.matches(terms)), cap
        )

    def row_test(self, terms: Terms, *, name_only: bool = False) -> ColumnElement[bool]:
        # The stored vector is in the row: the planner picks the index or the scan.
        return self.name_matches(terms) if name_only else self.matches(terms)

    def similar_words(self, db: Session, word: str) -> list[tuple[str, int]]:
        # "%" is pg_trgm's similarity >= its threshold (0.3, SIMILARITY), by ix_name_words_trgm.
        stmt = (
            select(NameWord.word, NameWord.projects)
            .where(NameWord.word.bool_op("%")(word))
            .order_by(func.similarity(NameWord.word, word).desc(), NameWord.projects.desc(), NameWord.word)
            .limit(WORD_CANDIDATES)
        )
        return _similar_enough(word, db.execute(stmt).tuples())


def _similar_enough(word: str, candidates: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """The candidates at least SIMILARITY like ``word``, the most similar
    first, then the commoner, then by the word: the same order from either
    database, whatever order it found them in."""
    scored = sorted((-similarity(word, other), -projects, other) for other, projects in candidates)
    return [(other, -projects) for score, projects, other in scored if -score >= SIMILARITY]


def slips(word: str) -> set[str]:
    """The commonest typing slips undone: two neighbouring letters swapped
    back, or one letter too many taken out ("djnago", "djangoo": django)."""
    swapped = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    shorter = {word[:i] + word[i + 1 :] for i in range(len(word))} if len(word) > 2 else set()
    return (swapped | shorter) - {word}


def moved_letter(first: str, second: str) -> list[tuple[str, str]]:
    """Two neighbouring words with a letter moved back across the gap
    between them ("clouds tat": cloud stat), the slip of a swap with the "-"."""
    moved = [(first[:-1], first[-1] + second)] if len(first) > 1 else []
    return moved + ([(first + second[0], second[1:])] if len(second) > 1 else [])


def known_words(db: Session, words: Iterable[str]) -> dict[str, int]:
    """Those of ``words`` that some project's name has, with how many have it."""
    return dict(
        db.execute(select(NameWord.word, NameWord.projects).where(NameWord.word.in_(set(words)))).tuples().all()
    )


def corrected(db: Session, index: SearchIndex, terms: Terms) -> Terms | None:
    """``terms`` with each word that no project's name has swapped for one
    that some name has ("djangoo" is "django"), or left out when none is like
    it; None when every word is known (nothing to correct) or none is left.

    A slip undone is the likeliest fix: a letter moved back across the gap
    to a neighbour (``moved_letter``) when that makes both words known, or
    else a slip within the word (``slips``), the commonest word if several
    are. Failing those, the most similar word by trigrams
    (``SearchIndex.similar_words``). One statement for every word and slip,
    and one more per word that no slip explains."""
    words = list(terms.words)
    moved = {w for pair in itertools.pairwise(words) for both in moved_letter(*pair) for w in both}
    known = known_words(db, {*words, *moved, *(slip for word in words for slip in slips(word))})
    if all(word in known for word in words):
        return None
    for i in range(len(words) - 1):
        pair = (words[i], words[i + 1])
        if not all(word in known for word in pair):
            words[i : i + 2] = next((both for both in moved_letter(*pair) if all(w in known for w in both)), pair)
    fixed: list[str] = []
    for word in words:
        if word not in known:
            undone = sorted((-known[s], -similarity(word, s), s) for s in slips(word) if s in known)
            similar = [w for w, _ in index.similar_words(db, word)] if not undone else []
            word = undone[0][2] if undone else similar[0] if similar else ""
        if word and word not in fixed:
            fixed.append(word)
    return Terms(tuple(fixed)) if fixed else None


def index_for(db: Session) -> SearchIndex:
    return PostgresSearch() if db.get_bind().dialect.name == "postgresql" else SqliteSearch()


def has_classifier(classifier_id: int) -> ColumnElement[bool]:
    """Packages with this classifier: a primary-key probe per candidate row."""
    pc = package_classifiers
    return exists().where(pc.c.package_id == Package.id, pc.c.classifier_id == classifier_id)

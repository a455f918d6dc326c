"""Full-text search (migration 0005): the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text, update

from myapp.packaging import services
from myapp.packaging.models import Package
from myapp.packaging.search import ranking
from myapp.packaging.search.index import moved_letter, similarity, slips, terms
from tests.conftest import SHARED_DATA
from tests.factories import make_package

WEB = "Framework :: Pyramid"
PY3 = "Programming Language :: Python :: 3"

CORPUS = [
    # name, summary, downloads, classifiers
    ("httpx", "The next generation HTTP client.", 900, [PY3]),
    ("requests", "Python HTTP for Humans.", 5000, [PY3]),
    ("requests-oauthlib", "OAuthlib authentication support for Requests.", 300, [PY3]),
    ("urllib3", "HTTP library with thread-safe connection pooling, file post, and more.", 4000, [PY3]),
    ("aiohttp", "Async http client/server framework (asyncio)", 800, [PY3]),
    ("http-client", "A tiny client for HTTP/1.1", 10, []),
    ("client", "Generic client helpers", 5, []),
    ("django", "A high-level Python web framework that encourages rapid development.", 3000, [PY3]),
    ("flask", "A simple framework for building complex web applications.", 2500, [PY3]),
    ("pyramid", "The Pyramid Web Framework, a Pylons project", 400, [PY3, WEB]),
    ("webob", "WSGI request and response object", 700, [PY3, WEB]),
    ("web-framework-lite", "Small and simple", 1, []),
]


@pytest.fixture
def corpus(dbsession):
    for name, summary, downloads, classifiers in CORPUS:
        make_package(dbsession, name, summary=summary, classifiers=classifiers, downloads=downloads)
    return dbsession


def names(testapp, query: str, **params: str) -> list[str]:
    page = testapp.get("/search", params={"q": query, "format": "json", **params})
    return [r["name"] for r in page.json["results"]]


def test_every_word_must_match_in_any_order(testapp, corpus):
    expected = ["http-client", "httpx", "aiohttp"]
    assert names(testapp, "http client") == expected
    assert names(testapp, "client http") == expected
    assert names(testapp, "CLIENT, http!") == expected
    assert names(testapp, "web framework") == ["web-framework-lite", "django", "flask", "pyramid"]


def test_ranking_exact_then_prefix_then_name_word_then_summary_by_downloads(testapp, corpus):
    # exact name; names starting with it (as a word); a name holding the word; summaries by downloads, then name
    assert names(testapp, "requests") == ["requests", "requests-oauthlib"]
    assert names(testapp, "http") == ["http-client", "requests", "urllib3", "httpx", "aiohttp"]
    assert names(testapp, "requests oauthlib")[0] == "requests-oauthlib"  # words joined like a name: exact
    assert names(testapp, "client") == ["client", "http-client", "httpx", "aiohttp"]
    assert names(testapp, "oauthlib") == ["requests-oauthlib"]  # a word of the name
    assert names(testapp, "Requests_OAuthlib") == ["requests-oauthlib"]  # normalized like a name


def test_words_match_whole_and_the_last_as_a_prefix_when_nothing_else_does(testapp, corpus):
    assert "webob" not in names(testapp, "web")  # "web" is a word of pyramid's summary, not of "webob"
    assert names(testapp, "webo") == ["webob"]  # no project has the word "webo": it is a prefix
    assert names(testapp, "frame") == ["web-framework-lite", "django", "flask", "aiohttp", "pyramid"]
    assert names(testapp, "simple fram") == ["flask", "web-framework-lite"]  # the last word only
    assert names(testapp, "simp framework") == []
    assert names(testapp, "h") == []  # one letter: never a prefix


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"http',
        "'",
        "*",
        "http*",
        "AND",
        "http AND",
        "OR OR",
        "NOT http",
        "NEAR(http client)",
        "name:http",
        "{name summary}: http",
        "^http",
        "-http",
        "+http",
        "http:*",
        "http & client | !x",
        "(",
        ")",
        "%",
        "_",
        "\\",
        "http\x00client",
        "\u00e9\u4e2d\U0001f600",
        "a" * 200,
        " ".join("abcdefghijklmnopqrstuvwxyz"),
    ],
)
def test_hostile_input_is_never_an_error(testapp, corpus, query):
    expected = 400 if "\x00" in query else 200  # the request guard refuses NUL (test_unstorable.py)
    page = testapp.get("/search", params={"q": query}, status="*")
    assert page.status_int == expected
    assert testapp.get("/search", params={"q": query, "format": "json"}, status="*").status_int == expected


def test_fts_operators_are_words(testapp, corpus):
    assert names(testapp, "NOT http") == []  # "not" is a word nothing holds
    assert names(testapp, '"http" AND "client"') == []  # "and" likewise
    assert names(testapp, "http* client*") == ["http-client", "httpx", "aiohttp"]


def test_did_you_mean(testapp, corpus):
    page = testapp.get("/search?q=requsts")
    assert "0 results" in page.text
    assert page.html.select_one(".suggestions a").text == "requests"
    assert testapp.get("/search?q=requsts&format=json").json["suggestions"][0] == "requests"
    assert testapp.get("/search?q=zzzzqqqq&format=json").json["suggestions"] == []


def test_did_you_mean_corrects_each_word_to_the_closest_in_any_name(testapp, dbsession, count_queries):
    """A misspelt word is swapped for the most like it among the words of all
    names, then searched for. Comparing whole names instead, longer names that
    share more trigrams with "djangoo" ("django-google-*") crowd out django."""
    make_package(dbsession, "django", downloads=10)
    make_package(dbsession, "djangogo")  # a less similar word (0.55 against 0.67)
    for i in range(30):
        make_package(dbsession, f"django-google-tls-extras-{i}", downloads=1000)
    make_package(dbsession, "flask-sqlalchemy")
    make_package(dbsession, "google-cloud-storage")
    make_package(dbsession, "google-cloud-storage-tools")

    def suggested(query: str) -> list[str]:
        return testapp.get("/search", params={"q": query, "format": "json"}).json["suggestions"]

    count_queries.clear()
    # django's own name; the django-google-* results of "django" are too unlike what was typed.
    assert suggested("djangoo") == ["django"]
    # Nothing, nothing as a prefix; the words and their slips ("django" is one); the search for "django" (two).
    assert count_queries.count == 5, count_queries.statements
    assert suggested("flask sqlalchemi") == ["flask-sqlalchemy"]  # by trigrams
    assert suggested("falsk-sqlalchemy") == ["flask-sqlalchemy"]  # a slip undone: "falsk" shares no inner trigram
    assert suggested("google-cluod-storage") == ["google-cloud-storage", "google-cloud-storage-tools"]
    assert names(testapp, "google-cloud-storag")[0] == "google-cloud-storage"  # no need: the last word is a prefix
    assert suggested("Google Cloudd Storage zzqqxx")[0] == "google-cloud-storage"  # the hopeless word left out
    assert suggested("google-clou-dstorage") == ["google-cloud-storage", "google-cloud-storage-tools"]  # "-" moved
    assert suggested("django flask") == []  # no word is misspelt: nothing to correct
    assert suggested("zzzzqqqq") == []


def test_name_words_are_kept_by_the_database(dbsession):
    """Migration 0007's triggers: each word of the names, and how many names have it."""
    from collections import Counter

    from sqlalchemy import delete

    from myapp.packaging.models import NameWord

    def vocabulary() -> dict[str, int]:
        dbsession.flush()
        return dict(dbsession.execute(select(NameWord.word, NameWord.projects)).tuples().all())

    def expected() -> dict[str, int]:
        return dict(Counter(w for n in dbsession.scalars(select(Package.name)) for w in set(n.split("-"))))

    for name in ("py-py", "django", "django-cms", "flask-cms", "a-b-c"):
        make_package(dbsession, name)
    assert vocabulary() == expected() == {"py": 1, "django": 2, "cms": 2, "flask": 1, "a": 1, "b": 1, "c": 1}
    dbsession.execute(update(Package).where(Package.name == "flask-cms").values(name="flask-admin"))
    assert vocabulary() == expected() and "admin" in vocabulary() and vocabulary()["cms"] == 1
    dbsession.execute(delete(Package).where(Package.name.in_(["django-cms", "a-b-c"])))  # several rows at once
    assert vocabulary() == expected() == {"py": 1, "django": 1, "flask": 1, "admin": 1}


def test_the_search_row_is_written_again_only_when_the_name_or_summary_changes(testapp, dbsession, backend):
    """Migration 0013: an upload sets the summary, most often to what it was;
    SQLite's full-text row is then left alone (no delete and insert, no new segment)."""
    package = make_package(dbsession, "quiet-thing", summary="Same old words")
    dbsession.flush()
    touched: list[str] = []
    if backend == "sqlite":
        dbsession.connection().connection.driver_connection.set_trace_callback(touched.append)

    def set_summary(summary: str) -> list[str]:
        touched.clear()
        dbsession.execute(update(Package).where(Package.id == package.id).values(summary=summary))
        return [s for s in touched if "package_search" in s]

    try:
        assert set_summary("Same old words") == []
        assert set_summary("Brand new words") or backend != "sqlite"
    finally:
        if backend == "sqlite":
            dbsession.connection().connection.driver_connection.set_trace_callback(None)
    assert names(testapp, "brand") == ["quiet-thing"] and names(testapp, "old") == []


@pytest.mark.postgresql_only
def test_projects_sharing_words_added_at_once_keep_exact_counts(backend, tmp_path):
    """Two transactions add projects whose names share words, at the same
    time, a statement per project: both land, none deadlocks, no count is lost."""
    import threading

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from myapp.data.migrations import upgrade_to_head
    from myapp.packaging.models import NameWord
    from tests.conftest import fresh_database

    with fresh_database(backend, tmp_path) as url:
        engine = create_engine(url)
        upgrade_to_head(engine)
        ready, errors = threading.Barrier(2), []

        def add(names: list[str]) -> None:
            try:
                with Session(engine) as db:
                    ready.wait()
                    for name in names:
                        make_package(db, name)
                        db.flush()
                    db.commit()
            except Exception as exc:  # reported below, from the test's thread
                errors.append(exc)

        threads = [
            threading.Thread(target=add, args=(["alpha-beta", "beta-gamma", "delta"],)),
            threading.Thread(target=add, args=(["gamma-beta", "beta-alpha", "delta-x"],)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        with Session(engine) as db:
            words = dict(db.execute(select(NameWord.word, NameWord.projects)).tuples().all())
        engine.dispose()
    assert errors == []
    assert words == {"alpha": 2, "beta": 4, "gamma": 2, "delta": 2, "x": 1}


def test_slips_undo_a_swap_or_one_letter_too_many():
    assert slips("djnago") >= {"django"} and slips("djangoo") >= {"django"} and slips("falsk") >= {"flask"}
    assert "djnago" not in slips("djnago") and slips("ab") == {"ba"} and slips("a") == set()
    assert moved_letter("clouds", "tat") == [("cloud", "stat"), ("cloudst", "at")] and moved_letter("a", "b") == []


def test_pg_trgm_similarity_in_python():
    assert similarity("requsts", "requests") == pytest.approx(6 / 11)
    assert similarity("word", "word") == 1.0 and similarity("", "x") == 0.0
    assert terms("Foo_bar-BAZ 3.10 é").words == ("foo", "bar", "baz", "3", "10", "é")


def test_classifier_filters_and_sorting(testapp, corpus):
    assert names(testapp, "web framework", c=WEB) == ["pyramid"]
    assert names(testapp, "", c=WEB) == ["webob", "pyramid"]  # by downloads
    both = testapp.get("/search", params=[("c", WEB), ("c", PY3), ("format", "json")]).json
    assert [r["name"] for r in both["results"]] == ["webob", "pyramid"]
    assert names(testapp, "web", c="No :: Such") == []
    page = testapp.get("/search", params={"q": "web framework"})
    assert page.html.select_one(f'input[name=c][value="{WEB}"]') is not None
    assert testapp.get("/search", params={"q": "x", "sort": "evil"}, status=400)


def test_sort_by_last_update(testapp, dbsession):
    make_package(dbsession, "old-tool", summary="a tool", versions=["1"])
    make_package(dbsession, "new-tool", summary="a tool", versions=["1", "2", "3"])  # updated later
    make_package(dbsession, "tool", summary="a tool", versions=["1", "2"])
    assert names(testapp, "tool") == ["tool", "new-tool", "old-tool"]
    assert names(testapp, "tool", sort="updated") == ["new-tool", "tool", "old-tool"]


def test_json_by_accept_header_and_the_page_cache_keeps_them_apart(cached_app, corpus):
    html = cached_app.get("/search?q=http")
    assert html.content_type == "text/html" and html.headers["Vary"] == "Accept"
    as_json = cached_app.get("/search?q=http", headers={"Accept": "application/json"})
    assert as_json.content_type == "application/json"
    assert as_json.json["total"] == 5 and as_json.json["results"][0]["url"] == "http://localhost/project/http-client/"
    assert cached_app.get("/search?q=http").content_type == "text/html"
    again = cached_app.get("/search?q=http", headers={"Accept": "application/json"})
    assert again.headers.get("X-Page-Cache") == "hit" and again.content_type == "application/json"
    assert cached_app.get("/search?q=http", headers={"Accept": "image/png"}).content_type == "text/html"
    cached_app.get("/search?q=http&format=xml", status=406)


def test_results_past_the_cap_say_so(testapp, dbsession, monkeypatch):
    for i in range(5):
        make_package(dbsession, f"lib-{i}")
    monkeypatch.setattr(ranking, "RESULT_CAP", 3)
    page = testapp.get("/search?q=lib")
    assert "3+ results" in page.text
    assert testapp.get("/search?q=lib&format=json").json["total_is_lower_bound"] is True


def _search_plans(
    dbsession, count_queries, testapp, query: str, markers: tuple[str, ...] = ("package_search", "search_vector")
) -> list[str]:
    count_queries.clear()
    testapp.get("/search", params={"q": query})
    plans = []
    connection = dbsession.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether an index can serve
    captured = list(zip(count_queries.statements, count_queries.parameters, strict=True))
    for statement, parameters in captured:
        if any(marker in statement for marker in markers):
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            plans.append("\n".join(str(row[-1]) for row in rows))
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = on")
    return plans


@pytest.mark.parametrize("rank_here", [1000, 0])
def test_search_uses_the_full_text_index_not_a_scan(testapp, corpus, count_queries, monkeypatch, rank_here):
    monkeypatch.setattr(ranking, "RESULT_CAP", rank_here)
    plans = _search_plans(corpus, count_queries, testapp, "http client")
    # A small set: one pass over the index gives every match. A large one: the count, then the tiers.
    assert len(plans) == 1 if rank_here else len(plans) > 2
    for plan in plans:
        if corpus.get_bind().dialect.name == "sqlite":
            assert "VIRTUAL TABLE INDEX" in plan, plan
            assert "SCAN packages" not in plan and "SCAN p" not in plan.replace("SCAN package_search", ""), plan
        else:  # the GIN index, or a walk down the popularity index testing the stored vector
            assert "ix_packages_search_vector" in plan or "ix_packages_popularity" in plan, plan
            assert "Seq Scan" not in plan, plan


def test_did_you_mean_uses_the_indexes_of_the_words(testapp, corpus, count_queries):
    plans = _search_plans(corpus, count_queries, testapp, "requsts", markers=("name_words",))
    assert len(plans) == 2, plans  # the known words, then the candidates for "requsts"
    for plan in plans:
        if corpus.get_bind().dialect.name == "sqlite":
            assert "SCAN name_words" not in plan, plan  # looked up by the unique word, or by id from FTS5
        else:
            assert "Seq Scan" not in plan and ("uq_name_words_word" in plan or "ix_name_words_trgm" in plan), plan
    assert "VIRTUAL TABLE INDEX" in plans[1] or "ix_name_words_trgm" in plans[1], plans[1]


def test_browse_deep_pages_use_the_name_index(testapp, dbsession, count_queries):
    for i in range(5):
        make_package(dbsession, f"pkg-{i}")
    count_queries.clear()
    testapp.get("/projects/?after=pkg-2")
    page, params = next(
        (s, p) for s, p in zip(count_queries.statements, count_queries.parameters, strict=True) if "name) >" in s
    )
    connection = dbsession.connection()
    if connection.dialect.name == "sqlite":
        plan = "\n".join(r[-1] for r in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + page, params))
        assert "SEARCH packages USING INDEX" in plan and "(name>?)" in plan, plan
    else:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in connection.exec_driver_sql("EXPLAIN " + page, params))
        connection.exec_driver_sql("SET LOCAL enable_seqscan = on")
        assert ("uq_packages_name" in plan or "ix_packages_listing" in plan) and "Seq Scan" not in plan, plan


# -- the same top results on both databases, for real PyPI documents ----------------

SHARED = SHARED_DATA
QUERIES = ["http", "http client", "client http", "requests", "aws", "test", "json", "python", "google api", "pars"]


@pytest.mark.postgresql_only
def test_same_results_on_sqlite_and_postgresql_for_real_documents(tmp_path):
    from tests.conftest import fresh_database, missing

    if not SHARED.is_dir():
        missing(f"no shared PyPI documents at {SHARED}")
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from myapp.data.migrations import upgrade_to_head
    from myapp.packaging.importer import ClassifierCache, import_document, parse_document

    documents = [parse_document(json.loads(p.read_bytes())) for p in sorted(SHARED.glob("*.json"))]
    answers = {}
    for backend in ("sqlite", "postgresql"):
        (tmp_path / backend).mkdir()
        with fresh_database(backend, tmp_path / backend) as url:
            engine = create_engine(url)
            upgrade_to_head(engine)
            with Session(engine) as db:
                classifiers = ClassifierCache(db)
                for doc in documents:
                    import_document(db, doc, classifiers)
                db.commit()
                answers[backend] = {
                    q: [row.package.name for row in ranking.search_projects(db, q).page.items[:10]] for q in QUERIES
                }
                answers[backend]["requsts?"] = ranking.search_projects(db, "requsts").suggestions
            engine.dispose()
    assert answers["sqlite"] == answers["postgresql"]
    assert answers["sqlite"]["requests"][0] == "requests"
    assert answers["sqlite"]["requsts?"][0] == "requests"


def test_counts_are_kept_by_the_database(testapp, dbsession, count_queries):
    make_package(dbsession, "one", versions=["1.0", "2.0"], files_per_release=2)
    gone = make_package(dbsession, "two", versions=["1.0"], files_per_release=3)
    stats = services.counts(dbsession)
    assert (stats.projects, stats.releases, stats.files) == (2, 3, 7)
    dbsession.delete(gone)  # the database's cascade removes its release and files
    dbsession.flush()
    dbsession.expire_all()
    stats = services.counts(dbsession)
    tables = ("packages", "releases", "release_files")
    real = dbsession.execute(text("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in tables))).one()
    assert (stats.projects, stats.releases, stats.files) == tuple(real) == (1, 2, 4)
    count_queries.clear()
    home = testapp.get("/")
    assert "count(" not in " ".join(count_queries.statements).lower()
    assert "1" in home.html.select_one(".counts").text


@pytest.mark.parametrize("unpopular", [False, True])
@pytest.mark.parametrize("how", ["walk", "sort", "database"])
@pytest.mark.parametrize(
    "query", ["http", "http client", "client", "web framework", "requests", "frame", "Requests_OAuthlib", "h", "web"]
)
def test_large_result_sets_rank_as_small_ones(testapp, corpus, monkeypatch, query, how, unpopular):
    """A small set of matches is ranked in Python. A large one tier by tier:
    each tier sorted, or walked most popular first with a per-row test
    (REGEXP on SQLite, the stored vector on PostgreSQL) and then through the
    projects without downloads in name order; or, past SCAN_DEPTH, sorted
    whole by the database. All give the same order."""
    if unpopular:
        never = ["httpx", "http-client", "client", "django", "pyramid", "webob", "requests-oauthlib"]
        corpus.execute(update(Package).where(Package.name.in_(never)).values(downloads=0))
    expected = names(testapp, query)
    filtered = names(testapp, query, c=PY3)
    monkeypatch.setattr(ranking, "RESULT_CAP", 0)
    monkeypatch.setattr(ranking, "SORT_ALL", {"walk": 0, "sort": 10_000, "database": 10_000}[how])
    if how == "database":
        monkeypatch.setattr(ranking, "SCAN_DEPTH", 0)
    assert names(testapp, query) == expected
    assert names(testapp, query, c=PY3) == filtered


def test_the_popularity_walk_reads_the_popularity_index(testapp, corpus, count_queries, monkeypatch):
    monkeypatch.setattr(ranking, "RESULT_CAP", 0)
    monkeypatch.setattr(ranking, "SORT_ALL", 0)
    count_queries.clear()
    testapp.get("/search", params={"q": "web"})
    captured = list(zip(count_queries.statements, count_queries.parameters, strict=True))
    walks = [(s, p) for s, p in captured if "ORDER BY packages.downloads DESC" in s and "count(" not in s]
    assert walks, count_queries.statements
    connection = corpus.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    for statement, parameters in walks:
        rows = connection.exec_driver_sql(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters)
        plan = "\n".join(str(row[-1]) for row in rows)
        if postgres:  # its planner weighs the walk against the GIN index itself
            assert "Seq Scan" not in plan, plan
        else:
            assert "ix_packages_popularity" in plan and "TEMP B-TREE" not in plan, plan
    if postgres:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = on")


def test_a_page_past_the_end_is_the_services_own_error_and_a_404_in_the_view(testapp, corpus, dbsession):
    """Services raise no HTTP exceptions: the view maps PageOutOfRange to a 404."""
    from pyramid.httpexceptions import HTTPException

    from myapp.data.paging import PageOutOfRange

    with pytest.raises(PageOutOfRange) as raised:
        ranking.search_projects(dbsession, "web", page=50)
    assert not isinstance(raised.value, HTTPException)
    assert "There is no page 50" in testapp.get("/search?q=web&page=50", status=404).text

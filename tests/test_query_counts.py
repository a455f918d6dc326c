"""SQL statements per page: constant however much data a project has (no N+1)."""

from __future__ import annotations

from myapp.packaging import services
from tests.factories import make_package


def statements_for(testapp, count_queries, path: str) -> int:
    count_queries.clear()
    testapp.get(path)
    return count_queries.count


def test_project_page_statements_do_not_grow_with_releases(testapp, dbsession, count_queries):
    make_package(dbsession, "small", versions=["1.0", "2.0"], classifiers=["Topic :: A"])
    make_package(
        dbsession,
        "large",
        versions=[f"{i}.0" for i in range(200)],
        files_per_release=2,
        classifiers=["Topic :: B", "Topic :: C"],
    )
    small = statements_for(testapp, count_queries, "/project/small/")
    large = statements_for(testapp, count_queries, "/project/large/")
    # the article's key (the fragment cache), package, classifiers, newest releases (which settle the
    # latest release: no statement of its own), its files, maintainers, downloads
    assert small == large == 7, count_queries.statements


def test_release_page_statements_do_not_grow_with_files(testapp, dbsession, count_queries):
    make_package(dbsession, "few", versions=["1.0"], files_per_release=1)
    make_package(dbsession, "many", versions=["1.0"], files_per_release=60)
    few = statements_for(testapp, count_queries, "/project/few/1.0/")
    many = statements_for(testapp, count_queries, "/project/many/1.0/")
    assert few == many <= 4, count_queries.statements


def test_list_pages_are_a_fixed_number_of_statements(testapp, dbsession, count_queries):
    for i in range(30):
        make_package(dbsession, f"lib-{i:02d}", versions=["1.0", "1.1", "2.0rc1"])
    assert statements_for(testapp, count_queries, "/") == 3  # the body's key, counts, recent with latest versions
    assert statements_for(testapp, count_queries, "/projects/") == 2  # total + page
    # every match (narrow rows, ranked here), the page's rows, and the classifier filters
    assert statements_for(testapp, count_queries, "/search?q=lib") == 3


def test_project_page_looks_up_all_its_dependencies_at_once(testapp, dbsession, count_queries):
    for name, count in (("one-dep", 1), ("many-deps", 40)):
        package = make_package(dbsession, name, versions=["1.0"])
        package.releases[0].requires_dist = [f"dep{i}>=1" for i in range(count)]
    make_package(dbsession, "dep3")
    dbsession.flush()
    # the seven of a project page, and one for which of the dependencies are hosted here
    assert statements_for(testapp, count_queries, "/project/one-dep/") == 8, count_queries.statements
    assert statements_for(testapp, count_queries, "/project/many-deps/") == 8, count_queries.statements


def test_a_project_page_seen_before_is_one_statement_and_one_more_signed_in(testapp, dbsession, count_queries):
    """The article comes from the fragment cache after its key (one raw read);
    a signed-in visitor's account is one raw read more, with no ORM session."""
    from tests.accounts import log_in, make_user

    make_package(dbsession, "seen", versions=[f"{i}.0" for i in range(50)], classifiers=["Topic :: A"])
    assert statements_for(testapp, count_queries, "/project/seen/") == 7  # rendered: the seven above
    assert statements_for(testapp, count_queries, "/project/seen/") == 1, count_queries.statements
    log_in(testapp, make_user(dbsession).username)
    assert statements_for(testapp, count_queries, "/project/seen/") == 2, count_queries.statements
    assert count_queries.statements[0].startswith("SELECT u.id, u.username")


def test_a_token_costs_one_small_read_and_no_orm_session(testapp, dbsession, count_queries):
    """pip's token on a tool route: the address's attempts and the token with
    its account, in one raw read; the page's own statements are unchanged."""
    from myapp.accounts import services
    from tests.accounts import make_user
    from tests.test_accounts import basic

    make_package(dbsession, "fetched", versions=["1.0", "2.0"])
    record, token = services.create_token(dbsession, make_user(dbsession), "ci")
    record.last_used = record.created  # used just now: nothing to write
    dbsession.flush()
    statements_for(testapp, count_queries, "/pypi/fetched/json")  # rendered and kept
    anonymous = statements_for(testapp, count_queries, "/pypi/fetched/json")
    count_queries.clear()
    testapp.get("/pypi/fetched/json", headers=basic("__token__", token))
    assert count_queries.count == anonymous + 1, count_queries.statements
    assert not any("FROM users WHERE" in s or "FROM api_tokens WHERE" in s for s in count_queries.statements)


def test_simple_page_is_one_statement_once_rendered(testapp, dbsession, count_queries):
    make_package(dbsession, "tool", versions=[f"{i}.0" for i in range(20)], files_per_release=3)
    for accept in ("text/html", "application/vnd.pypi.simple.v1+json"):
        headers = {"Accept": accept}
        first = testapp.get("/simple/tool/", headers=headers)
        count_queries.clear()
        again = testapp.get("/simple/tool/", headers=headers)
        # the project's serial; the page itself comes from memory
        assert count_queries.count == 1, count_queries.statements
        assert again.body == first.body
        assert again.headerlist == first.headerlist
        count_queries.clear()
        testapp.get("/simple/tool/", headers={**headers, "If-None-Match": first.headers["ETag"]}, status=304)
        assert count_queries.count == 1, count_queries.statements
        assert all(s.lstrip().upper().startswith("SELECT") for s in count_queries.statements)


def test_simple_page_reads_neither_classifiers_nor_description(testapp, dbsession, count_queries):
    make_package(dbsession, "tool", classifiers=["Topic :: A"], description="x" * 10_000)
    count_queries.clear()
    testapp.get("/simple/tool/")
    # serial, versions, files: no classifiers, and no description column read
    assert count_queries.count == 3, count_queries.statements
    assert not any("classifier" in s or "description" in s for s in count_queries.statements)


def test_an_upload_to_a_known_project_is_a_fixed_number_of_statements(testapp, dbsession, count_queries):
    from myapp.packaging.demo import _wheel
    from tests.accounts import PASSWORD, make_user
    from tests.test_upload import upload

    make_user(dbsession, "uploader")
    assert upload(testapp, "uploader", PASSWORD, "tiny_thing-1.0-py3-none-any.whl", _wheel("Tiny-Thing", "1.0", "x"))
    counts = []
    for version in ("1.1", "1.2"):
        data = _wheel("Tiny-Thing", version, "x")
        count_queries.clear()
        res = upload(testapp, "uploader", PASSWORD, f"tiny_thing-{version}-py3-none-any.whl", data, version=version)
        assert res.status_int == 200, res.text
        counts.append(count_queries.count)
    # credentials (both throttles in one raw read, the account by name raw: no session of their own);
    # what the upload must know (the project, the uploader's role, what the filename means here, the
    # release of the version, the newest release, the classifiers) in one; release insert, file
    # insert, journal, and one project update that also takes the next serial. No ORM object: the
    # journal and a new project's owner role take the account the credentials were read as, and the
    # project is a plain row.
    assert counts[0] == counts[1] == 7, count_queries.statements


def test_json_document_is_one_statement_once_rendered_and_follows_writes_and_downloads(
    testapp, dbsession, files_dir, count_queries
):
    """/pypi/<name>/json is kept under the project's serial and download total:
    warm, one indexed read; a counted download or a write shows at once."""
    from tests.test_hardening import stored_file

    file = stored_file(dbsession, files_dir, "documented")
    first = testapp.get("/pypi/documented/json")
    count_queries.clear()
    again = testapp.get("/pypi/documented/json")
    assert count_queries.count == 1, count_queries.statements  # the serial and download total
    assert again.body == first.body and again.headers["X-PyPI-Last-Serial"] == first.headers["X-PyPI-Last-Serial"]
    assert again.content_type == "application/json"

    testapp.get(f"/files/{file.filename}")  # counted at once in tests (myapp.download_flush_seconds = 0)
    counted = testapp.get("/pypi/documented/json").json
    assert [f["downloads"] for f in counted["urls"]] == [1]

    package = services.find_package(dbsession, "documented")
    package.summary = "Changed."
    services.bump_serial(dbsession, package)
    dbsession.flush()
    changed = testapp.get("/pypi/documented/json")
    assert changed.json["info"]["summary"] == "Changed."
    assert int(changed.headers["X-PyPI-Last-Serial"]) > int(first.headers["X-PyPI-Last-Serial"])
    # Each address its own: the links are absolute.
    other = testapp.get("/pypi/documented/json", extra_environ={"HTTP_HOST": "127.0.0.1"})
    assert other.json["urls"][0]["url"].startswith("http://127.0.0.1/")
    assert changed.json["urls"][0]["url"].startswith("http://localhost/")


def test_the_home_page_seen_before_is_one_statement_and_shows_a_change_at_once(testapp, dbsession, count_queries):
    """Its body (counts, recently updated) is kept under the index's serial,
    for anyone: seen before, one raw read; after a change, rendered again."""
    from tests.accounts import log_in, make_user

    make_package(dbsession, "first-one")
    rendered = statements_for(testapp, count_queries, "/")
    assert statements_for(testapp, count_queries, "/") == 1 < rendered, count_queries.statements
    services.bump_serial(dbsession, make_package(dbsession, "second-one"))  # as every write does
    dbsession.flush()
    page = testapp.get("/")
    assert "<strong>2</strong> projects" in page.text and "second-one" in page.text
    log_in(testapp, make_user(dbsession).username)
    count_queries.clear()
    signed_in = testapp.get("/")
    assert count_queries.count == 2, count_queries.statements  # the key and the account
    assert signed_in.html.select_one("main").decode() == page.html.select_one("main").decode()


def test_an_empty_index_home_is_not_kept_it_differs_by_who_asks(testapp, dbsession):
    from tests.accounts import log_in, make_user

    assert "register" in testapp.get("/").html.select_one("main .empty-index").text
    log_in(testapp, make_user(dbsession).username)
    assert "API token" in testapp.get("/").html.select_one("main .empty-index").text

"""The pages, through WebTest, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
import webtest

from tests.factories import make_package


def test_home_shows_counts_and_recent_projects(testapp, dbsession):
    make_package(dbsession, "alpha-one", versions=["1.0", "1.1"], files_per_release=2)
    make_package(dbsession, "beta-two", versions=["0.1"])
    page = testapp.get("/")
    assert "<strong>2</strong> projects" in page.text
    assert "<strong>3</strong> releases" in page.text
    assert "<strong>5</strong> files" in page.text
    recent = page.html.select(".project-list li")
    assert [li.select_one(".project-name").text for li in recent] == ["alpha-one", "beta-two"]
    assert recent[0].select_one(".version").text == "1.1"


@pytest.mark.parametrize("path", ["/", "/projects/"])
def test_an_empty_index_says_how_to_add_projects(testapp, path):
    page = testapp.get(path)
    empty = page.html.select_one("main .empty-index")
    assert empty.select_one("h2").text == "No projects yet"
    commands = [pre.text for pre in empty.select("pre.install")]
    assert "twine upload --repository-url http://localhost/legacy/ dist/*" in commands
    assert "myapp-import CONFIG PATH..." in commands
    assert [b["data-copy"] for b in empty.select("button.copy")] == commands
    assert page.html.select(".project-list, .sort") == []  # no empty list, nothing to sort
    assert "<strong>0</strong> projects" in page.text or "(0)" in page.text


def test_browse_pages_by_cursor_and_sorts(testapp, dbsession):
    for i in range(25):
        make_package(dbsession, f"pkg-{i:02d}", versions=["1.0"] * 1)
    make_package(dbsession, "zz-newest", versions=["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"] * 1)
    first = testapp.get("/projects/")
    names = [a.text for a in first.html.select(".project-name")]
    assert len(names) == 20 and names[0] == "pkg-00"
    assert "(26)" in first.html.select_one("h1").text
    assert first.html.select_one("a[rel=prev]") is None
    second = first.click(linkid=None, href="after=pkg-19")
    assert [a.text for a in second.html.select(".project-name")] == [f"pkg-{i}" for i in range(20, 25)] + ["zz-newest"]
    assert second.html.select_one("a[rel=next]") is None
    back = second.click(href="before=pkg-20")
    assert [a.text for a in back.html.select(".project-name")] == names
    assert [a.text for a in testapp.get("/projects/?start=z").html.select(".project-name")] == ["zz-newest"]

    by_update = testapp.get("/projects/?sort=updated")
    assert by_update.html.select_one(".project-name").text == "zz-newest"
    assert by_update.html.select_one(".version").text == "11"
    following = by_update.click(href="after=")
    assert len(following.html.select(".project-name")) == 6
    assert following.click(href="before=").html.select_one(".project-name").text == "zz-newest"
    assert "No more projects" in testapp.get("/projects/?after=zzzz").text


@pytest.mark.parametrize(
    "query", ["?sort=evil", "?after=<b>", "?after=a&before=b", "?start=A", "?before=" + "a" * 201, "?after="]
)
def test_browse_rejects_bad_parameters(testapp, query):
    page = testapp.get("/projects/" + query, status=400)
    assert "Bad Request" in page.text


def test_project_page(testapp, dbsession):
    make_package(
        dbsession,
        "Flask_Thing",
        versions=["0.9", "1.0rc1", "1.0", "1.0.post1", "2.0.dev1", "10.0"],
        yanked={"10.0"},
        description="# Hello\n\n<script>alert('x')</script>\n\n[bad](javascript:alert(1))",
        classifiers=["Programming Language :: Python :: 3"],
        home_page="https://example.org/thing",
        project_urls={"Evil": "javascript:alert(1)", "Source": "https://example.org/src"},
        license="MIT",
        requires_python=">=3.9",
    )
    page = testapp.get("/project/flask-thing/")
    h1 = page.html.select_one("h1").text
    # 10.0 is yanked and 2.0.dev1 is a pre-release: pip would install 1.0.post1
    assert h1 == "Flask_Thing 1.0.post1"
    assert "pip install --index-url http://localhost/simple/ flask-thing" in page.text
    history = [a.text for a in page.html.select(".releases a")]
    assert history == ["10.0", "2.0.dev1", "1.0.post1", "1.0", "1.0rc1", "0.9"]
    assert page.html.select_one(".releases li.yanked a").text == "10.0"
    description = page.html.select_one(".description")
    # The README sits in its own box, so its headings can be sized below the page's (tests/test_browser.py).
    assert description.select_one(".readme h1").text == "Hello"
    assert description.select("script") == []
    assert "javascript:" not in page.text
    assert [a.text for a in page.html.select(".links a")] == ["Homepage", "Source"]
    assert "Programming Language :: Python :: 3" in page.text


def test_project_page_lists_the_shown_releases_files(testapp, dbsession):
    package = make_package(dbsession, "tool", versions=["1.0", "2.0", "3.0b1"], files_per_release=2)
    wheel = next(r for r in package.releases if r.version == "2.0").files[1]
    wheel.packagetype, wheel.size = "bdist_wheel", 2_500_000
    dbsession.flush()
    page = testapp.get("/project/tool/")
    section = page.html.select_one("section.download-files")
    assert section.select_one("h2").text == "Download files"
    assert section.select_one(".for-release a")["href"] == "/project/tool/2.0/"  # the release the page shows
    files = section.select("li.file")
    assert [f.select_one("a.filename").text for f in files] == ["tool-2.0-0.tar.gz", "tool-2.0-1.tar.gz"]
    assert [f.select_one(".type").text for f in files] == ["sdist", "wheel"]
    assert [f.select_one(".size").text for f in files] == ["1000 B", "2.4 MB"]
    assert files[0].select_one("time")["datetime"] == "2024-01-02T00:00:00+00:00"
    assert files[1].select_one("details code.hash").text == wheel.sha256
    assert files[1].select_one("button.copy")["data-copy"] == wheel.sha256


def test_copy_buttons_wait_for_javascript(testapp, dbsession):
    """Every copy button is rendered hidden (copy.js shows it), so without
    JavaScript there is no dead button; and no script is inline (the CSP)."""
    make_package(dbsession, "tool", versions=["1.0"], files_per_release=2)
    for path in ("/project/tool/", "/project/tool/1.0/"):
        page = testapp.get(path)
        buttons = page.html.select("button.copy")
        assert len(buttons) == 4, path  # the pip and uv install lines and two hashes
        assert all(b.has_attr("hidden") and b["type"] == "button" and b["data-copy"] for b in buttons)
        target = "tool" if path == "/project/tool/" else "tool==1.0"
        assert [b["data-copy"] for b in buttons[:2]] == [
            f"pip install --index-url http://localhost/simple/ {target}",
            f"uv pip install --index-url http://localhost/simple/ {target}",
        ]
        scripts = page.html.select("script")
        assert [s["src"].split("?")[0] for s in scripts] == ["/static/copy.js"]
        assert all(s.string is None for s in scripts)
        assert page.html.select("[onclick]") == []
    script = testapp.get("/static/copy.js")
    assert script.content_type in ("text/javascript", "application/javascript")
    assert "navigator.clipboard.writeText" in script.text


def test_release_history_marks_latest_pre_releases_and_yanks(testapp, dbsession):
    make_package(dbsession, "tool", versions=["0.9", "1.0rc1", "1.0", "2.0.dev1", "1.1"], yanked={"1.1"})
    rows = testapp.get("/project/tool/").html.select(".releases li")
    badges = {li.select_one("a").text: [b.text for b in li.select(".badge")] for li in rows}
    # pip would install 1.0: 1.1 is yanked and 2.0.dev1 a pre-release.
    assert badges == {
        "2.0.dev1": ["pre-release"],
        "1.1": ["yanked"],
        "1.0": ["latest"],
        "1.0rc1": ["pre-release"],
        "0.9": [],
    }
    assert testapp.get("/project/tool/1.0rc1/").html.select_one("h1 .badge.pre").text == "pre-release"


def test_project_name_is_normalized_by_redirect(testapp, dbsession):
    make_package(dbsession, "Flask_Thing")
    for alias in ("Flask_Thing", "FLASK.thing", "flask__thing"):
        res = testapp.get(f"/project/{alias}/", status=301)
        assert res.location.endswith("/project/flask-thing/")


def test_release_page_lists_files(testapp, dbsession):
    make_package(dbsession, "tool", versions=["1.0", "1.1"], files_per_release=2)
    page = testapp.get("/project/tool/1.0/")
    rows = page.html.select("ul.files li.file")
    assert len(rows) == 2
    assert rows[0].select_one("a.filename").text == "tool-1.0-0.tar.gz"
    assert rows[0].select_one(".type").text == "sdist"
    assert rows[0].select_one(".size").text == "1000 B"
    assert rows[0].select_one("time").text == "2024-01-01 00:00 UTC"
    # The hash: shortened in the summary, whole (in groups of 16 that wrap only between them) a tap away.
    digest = hashlib.sha256(b"tool-1.0-0.tar.gz").hexdigest()
    assert rows[0].select_one("summary code.short").text == digest[:12] + "…"
    full = rows[0].select_one("details code.hash")
    assert full.text == digest and len(full.select("wbr")) == 3
    assert rows[0].select_one("button.copy")["data-copy"] == digest
    assert (
        page.html.select_one(".command pre.install").text
        == "pip install --index-url http://localhost/simple/ tool==1.0"
    )
    assert testapp.get("/project/Tool/1.0/", status=301).location.endswith("/project/tool/1.0/")


def test_yanked_release_says_so(testapp, dbsession):
    make_package(dbsession, "tool", versions=["1.0"], yanked={"1.0"})
    page = testapp.get("/project/tool/1.0/")
    assert "has been yanked" in page.text


@pytest.mark.parametrize(
    ("reason", "banner"),
    [
        (None, "This release has been yanked."),
        ("", "This release has been yanked."),
        ("  ", "This release has been yanked."),
        (
            "Broken packaging; use the next release.",
            "This release has been yanked: Broken packaging; use the next release.",
        ),
        ("Built from the wrong branch", "This release has been yanked: Built from the wrong branch."),
        ("Why?", "This release has been yanked: Why?"),
    ],
)
def test_yanked_banner_ends_in_one_full_stop(testapp, dbsession, reason, banner):
    package = make_package(dbsession, "tool", versions=["1.0"], yanked={"1.0"})
    package.releases[0].yanked_reason = reason
    dbsession.flush()
    assert testapp.get("/project/tool/1.0/").html.select_one(".warning").text == banner


@pytest.mark.parametrize(
    "path",
    ["/project/nothing-here/", "/project/tool/9.9/", "/project/-bad-/", "/nowhere"],
)
def test_unknown_things_are_404_pages(testapp, dbsession, path):
    make_package(dbsession, "tool")
    page = testapp.get(path, status=404)
    assert "Not found" in page.text
    assert page.content_type == "text/html"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/nowhere", "/nowhere"),
        ("/static/nothing.css", "/static/nothing.css"),
        ("/%3Cscript%3Ealert(1)%3C/script%3E", "/<script>alert(1)</script>"),
        ("/caf%C3%A9/%22quoted%22", '/café/"quoted"'),
    ],
)
def test_unmatched_address_says_what_happened(testapp, path, shown):
    page = testapp.get(path, status=404)
    main = page.html.select_one("main")
    assert "We couldn't find that page." in main.text
    assert main.select_one("code.path").text == shown  # the address, as text
    assert main.select("script") == []
    links = {a["href"] for a in main.select("a")}
    assert {"/", "/projects/", "/search"} <= links


def test_a_views_own_404_keeps_its_reason(testapp, dbsession):
    page = testapp.get("/project/nothing-here/", status=404)
    assert "There is no project called 'nothing-here'." in page.html.select_one("main").text
    assert page.html.select("main code.path") == []
    assert "/search" in {a["href"] for a in page.html.select("main a")}


def test_search_ranks_exact_name_first(testapp, dbsession):
    make_package(dbsession, "http-tools", summary="Helpers")
    make_package(dbsession, "apihttp", summary="An API client")  # "http" inside a word is not a match
    make_package(dbsession, "http", summary="Low level")
    make_package(dbsession, "unrelated", summary="Speaks HTTP fluently")
    make_package(dbsession, "other", summary="Nothing to see")
    page = testapp.get("/search?q=HTTP")
    names = [a.text for a in page.html.select(".project-name")]
    assert names == ["http", "http-tools", "unrelated"]
    assert "3 results" in page.text


@pytest.mark.parametrize("query", ["%", "_", "\\", "' OR 1=1 --", "<script>", "\u00e9\u4e2d\U0001f600", "a" * 200])
def test_search_is_safe_for_any_input(testapp, dbsession, query):
    make_package(dbsession, "percent", summary="100% pure")
    page = testapp.get("/search", params={"q": query})
    assert page.status_int == 200
    assert "<script>" not in page.html.select_one("main").decode_contents()


def test_search_wildcards_are_literal(testapp, dbsession):
    make_package(dbsession, "percent", summary="100% pure")
    make_package(dbsession, "plain", summary="nothing special")
    assert [a.text for a in testapp.get("/search?q=100%25").html.select(".project-name")] == ["percent"]
    assert "0 results" in testapp.get("/search?q=%25").text


def test_search_paginates(testapp, dbsession):
    for i in range(23):
        make_package(dbsession, f"lib-{i:02d}")
    page = testapp.get("/search?q=lib&page=2")
    assert len(page.html.select(".project-name")) == 3
    assert testapp.get("/search?q=lib&page=3", status=404)


def test_search_too_long_is_400_with_message(testapp):
    page = testapp.get("/search", params={"q": "x" * 201}, status=400)
    assert "limited to 200 characters" in page.text


def test_empty_search_prompts(testapp):
    assert "every word must match" in testapp.get("/search?q=").text


def test_security_headers_on_every_response(testapp):
    for res in (testapp.get("/"), testapp.get("/nowhere", status=404), testapp.get("/static/site.css")):
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in res.headers["Content-Security-Policy"]
        assert res.headers["Referrer-Policy"] == "same-origin"


def test_unsafe_method_is_405(testapp):
    res = testapp.post("/", status=405)
    assert res.headers["Allow"] == "GET, HEAD"
    assert testapp.delete("/project/x/", status=405)


def test_health(testapp):
    health = testapp.get("/health").json
    assert health.pop("files_free_bytes") > 0
    assert health == {"status": "ok", "database": "ok", "schema": "ok", "files": "ok"}


def test_missing_trailing_slash_redirects(testapp, dbsession):
    make_package(dbsession, "tool")
    assert testapp.get("/project/tool", status=301).location == "http://localhost/project/tool/"
    assert testapp.get("/projects?sort=updated", status=301).location == "http://localhost/projects/?sort=updated"


def test_missing_static_file_is_the_site_404(testapp):
    page = testapp.get("/static/nothing.css", status=404)
    assert page.content_type == "text/html" and "Not found" in page.text


def test_page_cache_serves_anonymous_views_from_memory(cached_app, dbsession, count_queries):
    make_package(dbsession, "tool", versions=["1.0"])
    first = cached_app.get("/project/tool/")
    assert "X-Page-Cache" not in first.headers
    count_queries.clear()
    second = cached_app.get("/project/tool/")
    assert second.headers["X-Page-Cache"] == "hit"
    assert second.text == first.text and second.content_type == "text/html"
    assert second.headers["X-Content-Type-Options"] == "nosniff"  # headers still applied
    # No transaction, routing or template: one indexed query, that nothing changed since.
    assert count_queries.statements == ["SELECT max(last_serial) FROM packages"]


def test_page_cache_skips_errors_and_signed_in_visitors(cached_app, dbsession):
    cached_app.get("/project/nothing/", status=404)
    assert "X-Page-Cache" not in cached_app.get("/project/nothing/", status=404).headers
    make_package(dbsession, "tool")
    cached_app.get("/project/tool/")
    cached_app.set_cookie("myapp_session", "someone")
    assert "X-Page-Cache" not in cached_app.get("/project/tool/").headers


def test_download_counts_are_shown(testapp, dbsession):
    package = make_package(dbsession, "counted", versions=["1.0", "2.0"], files_per_release=2)
    for release, counts in zip(sorted(package.releases, key=lambda r: r.version), ([3, 4], [10, 0]), strict=True):
        for file, n in zip(release.files, counts, strict=True):
            file.downloads = n
    package.downloads = 17  # services.count_download keeps both
    dbsession.flush()
    page = testapp.get("/project/counted/")
    assert page.html.select_one(".total-downloads strong").text == "17"
    assert [s.text for s in page.html.select(".releases .downloads")] == ["10 downloads", "7 downloads"]
    release = testapp.get("/project/counted/1.0/")
    assert [dd.text for dd in release.html.select(".file .downloads")] == ["3", "4"]
    assert "7 downloads" in release.text


def test_page_cache_never_serves_a_page_older_than_a_change(cached_app, dbsession):
    package = make_package(dbsession, "tool", versions=["1.0"], summary="before")
    assert "before" in cached_app.get("/project/tool/").text
    assert cached_app.get("/project/tool/").headers["X-Page-Cache"] == "hit"
    from myapp.packaging.services import bump_serial

    package.summary = "after"
    bump_serial(dbsession, package)  # any process's change moves the index serial on
    dbsession.flush()
    page = cached_app.get("/project/tool/")
    assert "X-Page-Cache" not in page.headers and "after" in page.text


def test_robots_and_favicon(testapp):
    robots = testapp.get("/robots.txt")
    assert robots.content_type == "text/plain" and "Disallow: /account/" in robots.text
    icon = testapp.get("/favicon.ico")
    assert icon.content_type == "image/svg+xml" and icon.body.startswith(b"<svg")


def test_page_cache_version_reuse_and_a_writes_own_next_request(settings, dbsession):
    """With myapp.page_cache_check_seconds, a process reuses the version it
    read; a successful write request in the process makes it read again."""
    from myapp.config import configure
    from myapp.packaging.services import bump_serial

    app = configure({**settings, "myapp.page_cache_seconds": "60", "myapp.page_cache_check_seconds": "3600"})
    client = webtest.TestApp(app.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
    package = make_package(dbsession, "tool", summary="before")
    client.get("/project/tool/")
    package.summary = "after"
    bump_serial(dbsession, package)  # another process's change ...
    dbsession.flush()
    assert "before" in client.get("/project/tool/").text  # ... shows once the hour is up
    token = client.get("/account/login").html.select_one("input[name=csrf_token]")["value"]
    client.post("/account/logout", {"csrf_token": token}, status=303)  # a write in this process
    assert "after" in client.get("/project/tool/").text


def test_project_article_is_kept_until_anything_it_shows_changes(testapp, dbsession, count_queries):
    """The fragment cache: a project page's article is rendered once, then
    served after one small statement, signed in or not; a change to the
    index, or a download, shows on the very next view."""
    from myapp.packaging.services import bump_serial
    from tests.accounts import log_in, make_user

    package = make_package(dbsession, "kept", versions=["1.0"], summary="before")
    first = testapp.get("/project/kept/")
    count_queries.clear()
    again = testapp.get("/project/kept/")
    assert again.text == first.text
    assert len(count_queries.statements) == 1 and count_queries.statements[0].startswith("SELECT downloads")

    package.summary = "after"
    bump_serial(dbsession, package)  # any change, by any process, moves the index's serial on
    dbsession.flush()
    assert "after" in testapp.get("/project/kept/").text

    package.downloads = 41  # a download moves no serial
    dbsession.flush()
    assert testapp.get("/project/kept/").html.select_one(".total-downloads strong").text == "41"

    bump_serial(dbsession, make_package(dbsession, "other"))  # another project's change: rendered again (a dependency?)
    dbsession.flush()
    count_queries.clear()
    testapp.get("/project/kept/")
    assert len(count_queries.statements) > 1

    user = make_user(dbsession)
    log_in(testapp, user.username)
    count_queries.clear()
    signed_in = testapp.get("/project/kept/")
    assert user.username in signed_in.html.select_one(".account-nav").text  # the header is the visitor's own
    assert signed_in.html.select_one(".project").decode() == again.html.select_one(".project").decode().replace(
        "before", "after"
    ).replace(">0<", ">41<")
    assert [s for s in count_queries.statements if s.startswith("SELECT downloads")] and not any(
        "FROM releases" in s for s in count_queries.statements
    )


def test_project_article_cache_keeps_redirects_and_404s_out(testapp, dbsession):
    make_package(dbsession, "Kept_Name")
    testapp.get("/project/kept-name/")
    assert testapp.get("/project/Kept_Name/", status=301).location.endswith("/project/kept-name/")
    testapp.get("/project/nothing-here/", status=404)
    testapp.get("/project/nothing-here/", status=404)


@pytest.mark.parametrize(
    ("versions", "yanked"),
    [
        (["1.0", "2.0", "3.0b1"], set()),  # a final among the newest
        ([f"1.{i}rc1" for i in range(40)] + ["0.9"], set()),  # only pre-releases shown, an older final
        (["1.0", "2.0b1"], {"1.0"}),  # every final yanked: the pre-release
        (["1.0", "2.0"], {"1.0", "2.0"}),  # everything yanked: the newest final
        ([], set()),
    ],
)
def test_latest_in_history_agrees_with_latest_of(dbsession, versions, yanked):
    from myapp.packaging import services

    package = make_package(dbsession, "which", versions=versions, yanked=yanked)
    newest = services.release_history(dbsession, package, limit=services.HISTORY_SHOWN + 1)
    shown = newest[: services.HISTORY_SHOWN]
    found = services.latest_in_history(dbsession, package, shown, complete=len(newest) <= services.HISTORY_SHOWN)
    assert found is services.latest_of(dbsession, package)


def test_page_cache_hits_answered_before_the_pipeline_keep_its_answers(cached_app, dbsession):
    """A hit is answered by the execution policy, before Pyramid makes a
    request of it: with the same headers as the page it stored, and only where
    the pipeline would answer the same (the guard still refuses what it refuses)."""
    from pyramid.events import NewRequest

    make_package(dbsession, "tool", versions=["1.0"])
    first = cached_app.get("/project/tool/")
    requests: list[object] = []
    cached_app.app.registry.registerHandler(requests.append, (NewRequest,))
    hit = cached_app.get("/project/tool/")
    assert hit.headers["X-Page-Cache"] == "hit" and not requests  # no request object was made
    skipped = {"X-Page-Cache", "Content-Length", "Set-Cookie"}
    assert {k for k in hit.headers if k not in skipped} == {k for k in first.headers if k not in skipped}
    head = cached_app.head("/project/tool/")
    assert head.headers["X-Page-Cache"] == "hit" and head.body == b""
    # What the guard refuses is still refused, never a cached page.
    cached_app.get("/project/tool/", headers={"Range": "bytes=-"}, status=416)
    cached_app.get("/project/tool/", headers={"Host": "evil.example"}, status=400)
    # A query the view does not read is rendered, not answered from memory.
    assert "X-Page-Cache" not in cached_app.get("/project/tool/?x=1").headers
    assert requests  # ... and made a request, as every request but a hit does

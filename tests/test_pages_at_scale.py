"""Pages that stay cheap however big a project or the index gets."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from myapp.packaging.rendering import RENDERER, render_description
from tests.conftest import BIN, LiveServer, fresh_database
from tests.factories import make_package


def test_project_page_shows_the_newest_releases_and_links_the_rest(testapp, dbsession):
    make_package(dbsession, "long", versions=[f"1.{i}" for i in range(45)])
    page = testapp.get("/project/long/")
    shown = [a.text for a in page.html.select(".releases a")]
    assert shown == [f"1.{i}" for i in range(44, 14, -1)]  # the newest 30
    history = page.click(href="/project/long/releases/")
    assert [a.text for a in history.html.select(".releases a")] == [f"1.{i}" for i in range(44, -1, -1)]
    assert "Show all releases" not in testapp.get("/project/long/1.0/").text
    make_package(dbsession, "short", versions=["1.0"])
    assert "Show all releases" not in testapp.get("/project/short/").text


def test_latest_release_is_found_past_the_newest_thirty(testapp, dbsession):
    make_package(dbsession, "devs", versions=["1.0"] + [f"2.0.dev{i}" for i in range(40)])
    assert testapp.get("/project/devs/").html.select_one("h1 .version").text == "1.0"


def test_history_page_statements_do_not_grow_with_releases(testapp, dbsession, count_queries):
    make_package(dbsession, "small", versions=["1.0", "2.0"])
    make_package(dbsession, "large", versions=[f"{i}.0" for i in range(300)], files_per_release=2)
    counts = []
    for name in ("small", "large"):
        count_queries.clear()
        testapp.get(f"/project/{name}/releases/")
        counts.append(count_queries.count)
    assert counts[0] == counts[1] == 5, count_queries.statements  # package, classifiers, releases, latest, downloads


def test_pages_serve_the_stored_description(testapp, dbsession):
    package = make_package(dbsession, "stored", description="# Fresh")
    package.description_html, package.description_renderer = "<p>rendered earlier</p>", RENDERER
    dbsession.flush()
    page = testapp.get("/project/stored/")
    assert "rendered earlier" in page.text and "Fresh" not in page.text
    # Rows from before migration 0005, or an import with --defer-rendering.
    unrendered = make_package(dbsession, "never-rendered", description="# Made now")
    unrendered.description_html = unrendered.description_renderer = None
    dbsession.flush()
    assert "Made now" in testapp.get("/project/never-rendered/").html.select_one(".description h1").text


def test_restructuredtext_that_only_warns_is_rendered():
    # requests 2.18.4's README has warnings like this short underline; docutils renders it fine.
    html = render_description("Requests\n=====\n\nHTTP for *Humans*.\n\n.. image:: x.png\n   :scale: 50%\n")
    assert '<pre class="plain">' not in html
    assert "<em>Humans</em>" in html and "<h1>Requests" in html


def test_restructuredtext_with_real_errors_is_plain_escaped_text():
    html = render_description("Title\n=====\n\n.. no-such-directive:: <script>\n")
    assert html.startswith('<pre class="plain">') and "&lt;script&gt;" in html


def test_rerender_command_renders_what_an_older_renderer_made(backend, tmp_path):
    with fresh_database(backend, tmp_path) as url:
        server = LiveServer(url, tmp_path)
        assert server.initdb("--demo").returncode == 0  # demo descriptions are rendered as they load
        engine = create_engine(url)
        with engine.begin() as db:
            assert db.scalar(text("SELECT count(*) FROM packages WHERE description_renderer = :r"), {"r": RENDERER})
            db.execute(text("UPDATE packages SET description_renderer = 'readme_renderer 1.0', description_html = ''"))
        command = [str(BIN / "myapp-rerender"), str(server.ini), "--no-progress"]
        first = server.run_cli(*command)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("36 descriptions rendered with readme_renderer")
        with engine.begin() as db:
            assert db.scalar(text("SELECT count(*) FROM packages WHERE description_html NOT LIKE '<h1%'")) == 0
        assert server.run_cli(*command).stdout.startswith("0 descriptions rendered")
        assert server.run_cli(*command, "--all").stdout.startswith("36 descriptions rendered")
        engine.dispose()

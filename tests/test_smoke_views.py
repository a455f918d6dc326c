"""The pages, through WebTest, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.factories import make_package


def test_home_shows_counts_and_recent_projects(testapp, dbsession):
    make_package(dbsession, "alpha-one", versions=["1.0", "1.1"], files_per_release=2)
    make_package(dbsession, "beta-two", versions=["0.1"])
    page = testapp.get("/")
    assert page.status_int == 200
    assert "<strong>2</strong> projects" in page.text
    assert "<strong>3</strong> releases" in page.text
    assert "<strong>5</strong> files" in page.text
    recent = page.html.select(".project-list .project-name")
    assert [a.text for a in recent] == ["alpha-one", "beta-two"]


def test_health_reports_database_ok(testapp):
    res = testapp.get("/health")
    assert res.json == {"status": "ok", "database": "ok"}

"""What caches may keep, on SQLite and PostgreSQL: files of a private index
are ``private`` (never ``public``), pages of a private index and pages for
signed-in visitors are ``no-store`` and vary by ``Cookie`` and
``Authorization``; public files and anonymous public pages keep their
caching; the page cache keeps nothing a view marked private."""

from __future__ import annotations

import pytest
import webtest
from sqlalchemy import select

from myapp.config import configure
from myapp.packaging.demo import load_demo
from myapp.packaging.models import Package, ReleaseFile
from tests.accounts import PASSWORD, log_in, make_user
from tests.test_accounts import basic

FOREVER = "max-age=31536000"


def _app(settings, **more: str) -> webtest.TestApp:
    app = configure({**settings, "myapp.page_cache_seconds": "60", **more}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


@pytest.fixture
def public(settings, dbsession) -> webtest.TestApp:
    return _app(settings)


@pytest.fixture
def private(settings, dbsession) -> webtest.TestApp:
    return _app(settings, **{"myapp.read_access": "authenticated"})


@pytest.fixture
def stored(dbsession, files_dir) -> tuple[str, str]:
    """A project's page and one of its stored files."""
    load_demo(dbsession, files_dir, projects=1)
    package = dbsession.scalars(select(Package)).first()
    file = dbsession.scalars(select(ReleaseFile).where(ReleaseFile.storage_path.is_not(None))).first()
    return f"/project/{package.name}/", f"/files/{file.filename}"


def cache_control(res) -> set[str]:
    return {part.strip() for part in res.headers.get("Cache-Control", "").split(",") if part.strip()}


def varies_by_credentials(res) -> bool:
    vary = {part.strip().lower() for part in res.headers.get("Vary", "").split(",")}
    return {"cookie", "authorization"} <= vary


def test_public_index_anonymous_keeps_its_caching(public, stored):
    page, file = stored
    assert "no-store" not in cache_control(public.get(page))
    assert "no-store" not in cache_control(public.get("/"))
    assert cache_control(public.get(file)) == {"public", FOREVER, "immutable"}


def test_public_index_signed_in_pages_are_no_store(public, dbsession, stored):
    page, file = stored
    user = make_user(dbsession)
    log_in(public, user.username)
    for path in (page, "/", "/account", "/manage/projects"):
        res = public.get(path)
        assert cache_control(res) == {"no-store"}, path
        assert varies_by_credentials(res), path
    assert cache_control(public.get(file)) == {"public", FOREVER, "immutable"}  # the same bytes for anyone
    res = public.get("/simple/", headers=basic(user.username, PASSWORD))
    assert cache_control(res) == {"no-store"} and varies_by_credentials(res)


def test_private_index_files_are_private(private, dbsession, stored):
    _, file = stored
    user = make_user(dbsession, email_verified=True)
    res = private.get(file, headers=basic(user.username, PASSWORD))
    assert cache_control(res) == {"private", FOREVER, "immutable"}
    assert varies_by_credentials(res)
    again = private.get(file, headers=basic(user.username, PASSWORD) | {"If-None-Match": f'"{res.etag}"'}, status=304)
    assert "public" not in cache_control(again) and "private" in cache_control(again)
    log_in(private, user.username)
    assert cache_control(private.get(file)) == {"private", FOREVER, "immutable"}


def test_private_index_pages_are_no_store(private, dbsession, stored):
    page, file = stored
    for path in ("/", page, "/account/login"):  # anonymous: a redirect to sign in, or the login page
        res = private.get(path)
        assert cache_control(res) == {"no-store"}, path
        assert varies_by_credentials(res), path
    refused = private.get(file, status=401)
    assert cache_control(refused) == {"no-store"}
    user = make_user(dbsession, email_verified=True)
    log_in(private, user.username)
    for path in ("/", page, "/simple/", "/account"):
        res = private.get(path)
        assert res.status_int == 200 and cache_control(res) == {"no-store"}, path
        assert varies_by_credentials(res), path


def test_static_assets_keep_their_caching(private, public):
    for app in (private, public):
        res = app.get("/static/site.css")
        assert "no-store" not in cache_control(res) and "max-age=3600" in cache_control(res)


def test_the_page_cache_keeps_nothing_a_view_marks_private(settings, dbsession):
    config = configure({**settings, "myapp.page_cache_seconds": "60"})

    def personal(request):
        request.response.cache_control = "private"
        return request.response

    config.add_route("test.personal", "/test-personal")
    config.add_view(personal, route_name="test.personal", page_cache=True)
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
    app.get("/test-personal")
    assert "X-Page-Cache" not in app.get("/test-personal").headers
    assert len(app.app.registry["page_cache"]) == 0

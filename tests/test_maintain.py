"""Maintainers change what they published, on SQLite and PostgreSQL: yank
and un-yank (a page and a JSON API), delete files and releases (their names
are never reused), and every change is in the project's journal."""

from __future__ import annotations

import json

import pytest

from myapp.accounts import services as accounts
from myapp.packaging import services
from myapp.packaging.demo import _wheel
from tests.accounts import PASSWORD, log_in, make_user
from tests.test_accounts import basic
from tests.test_upload import upload

MANAGE = "/manage/project/tiny-thing/"


@pytest.fixture
def published(testapp, dbsession):
    """Tiny-Thing 1.0 and 1.1, uploaded by their owner."""
    make_user(dbsession, "uploader")
    for version in ("1.0", "1.1"):
        data = _wheel("Tiny-Thing", version, "x")
        res = upload(testapp, "uploader", PASSWORD, f"tiny_thing-{version}-py3-none-any.whl", data, version=version)
        assert res.status_int == 200, res.status
    testapp.reset()
    return services.find_package(dbsession, "tiny-thing")


def act(testapp, version: str, action: str, **fields: str):
    page = testapp.get(MANAGE)
    for form in page.forms.values():
        if form.action == MANAGE and form["version"].value == version and form["action"].value == action:
            for key, value in fields.items():
                form[key] = value
            return form.submit(status="*", expect_errors=True)
    raise AssertionError(f"no {action} form for {version}")


def test_only_maintainers_manage(testapp, dbsession, published):
    assert "/account/login" in testapp.get(MANAGE, status=303).location
    make_user(dbsession, "stranger")
    log_in(testapp, "stranger")
    assert testapp.get(MANAGE, status=403)


def test_yank_and_unyank_on_the_page(testapp, dbsession, published):
    log_in(testapp, "uploader")
    assert act(testapp, "1.0", "yank", reason="Broken <build>").status_int == 303
    simple = testapp.get("/simple/tiny-thing/")
    link = next(a for a in simple.html.select("a") if "1.0" in a.text)
    assert link["data-yanked"] == "Broken <build>"
    assert testapp.get("/pypi/tiny-thing/1.0/json").json["info"]["yanked_reason"] == "Broken <build>"
    assert "This release has been yanked: Broken &lt;build&gt;" in testapp.get("/project/tiny-thing/1.0/").text
    assert act(testapp, "1.0", "unyank").status_int == 303
    assert not any(a.has_attr("data-yanked") for a in testapp.get("/simple/tiny-thing/").html.select("a"))
    journal = [td.text for td in testapp.get(MANAGE).html.select("table.journal tbody tr td:nth-of-type(3)")]
    assert journal[:3] == ["unyank release", "yank release (Broken <build>)", "add file"]


def test_deleting_files_and_releases(testapp, dbsession, files_dir, published):
    log_in(testapp, "uploader")
    wheel = "tiny_thing-1.0-py3-none-any.whl"
    path = files_dir / services.find_file(dbsession, wheel).storage_path
    assert path.exists()
    page = testapp.get(MANAGE)
    delete = next(
        f
        for f in page.forms.values()
        if f.action == MANAGE and f.get("filename", default=None) and f["filename"].value == wheel
    )
    delete["confirm_name"] = "Tiny-Thing"  # the name as typed: compared normalized
    assert delete.submit(status=303)
    assert not path.exists() and not path.with_name(path.name + ".metadata").exists()
    assert testapp.get(f"/files/{wheel}", status=404)
    testapp.reset()
    again = upload(testapp, "uploader", PASSWORD, wheel, _wheel("Tiny-Thing", "1.0", "x"))
    assert again.status_int == 400 and "was deleted" in again.status  # even the same bytes
    log_in(testapp, "uploader")
    # Its own path: the folder is shared by this worker's tests, and another test's
    # rolled-back upload may have left a file of the same name (other bytes) elsewhere in it.
    newer = files_dir / services.find_file(dbsession, "tiny_thing-1.1-py3-none-any.whl").storage_path
    assert newer.exists()
    assert act(testapp, "1.1", "delete-release", confirm_name="tiny-thing").status_int == 303
    assert services.find_release(dbsession, published, "1.1") is None
    assert not newer.exists()
    actions = [td.text for td in testapp.get(MANAGE).html.select("table.journal tbody tr td:nth-of-type(3)")]
    assert actions[:3] == ["remove release", "remove file", "remove file"]


def test_yank_api(testapp, dbsession, published):
    owner = accounts.find_user(dbsession, "uploader")
    _, token = accounts.create_token(dbsession, owner, "ci")
    dbsession.flush()
    url = "/api/projects/tiny-thing/1.1/yank"
    res = testapp.post(
        url,
        json.dumps({"reason": "bad wheel"}),
        headers=basic("__token__", token) | {"Content-Type": "application/json"},
    )
    assert res.json == {"project": "tiny-thing", "version": "1.1", "yanked": True, "reason": "bad wheel"}
    assert services.find_release(dbsession, published, "1.1").yanked
    res = testapp.post("/api/projects/tiny-thing/1.1/unyank", headers=basic("__token__", token))
    assert res.json["yanked"] is False
    assert testapp.post(url, "not json", headers=basic("__token__", token), status=400).json["error"]
    assert testapp.post("/api/projects/tiny-thing/9.9/yank", headers=basic("__token__", token), status=404)
    assert testapp.post(url, status=401).headers["WWW-Authenticate"].startswith("Basic")
    log_in(testapp, "uploader")  # a browser session is not enough: no CSRF token here, so none accepted
    assert testapp.post(url, status=401)
    stranger = make_user(dbsession, "stranger")
    _, other = accounts.create_token(dbsession, stranger, "x")
    dbsession.flush()
    testapp.reset()
    assert testapp.post(url, headers=basic("__token__", other), status=403)


@pytest.mark.parametrize("typed", [None, "", "tiny-thin", "other-project", "x" * 300])
def test_deleting_asks_for_the_project_name_typed(testapp, dbsession, files_dir, published, typed):
    """As PyPI and GitHub do: without the project's name typed, a deletion is
    a 400 with the message beside the field, and nothing is deleted."""
    log_in(testapp, "uploader")
    wheel = "tiny_thing-1.0-py3-none-any.whl"
    path = files_dir / services.find_file(dbsession, wheel).storage_path
    for action, fields in (("delete-file", {"filename": wheel}), ("delete-release", {})):
        if typed is not None:
            fields = fields | {"confirm_name": typed}
        page = testapp.get(MANAGE)
        form = next(
            f
            for f in page.forms.values()
            if f.action == MANAGE
            and f["action"].value == action
            and f["version"].value == "1.0"
            and (action != "delete-file" or f["filename"].value == wheel)
        )
        if typed is None:
            del form.fields["confirm_name"]
        for key, value in fields.items():
            form[key] = value
        res = form.submit(status=400)
        beside = res.html.select_one("details.danger-zone[open] .field-errors")
        assert beside is not None and "Type the project's name, tiny-thing, to confirm" in beside.text
        assert res.html.select_one("details.danger-zone[open] input[aria-invalid=true]") is not None
    dbsession.expire_all()
    assert services.find_file(dbsession, wheel) is not None and path.exists()
    assert services.find_release(dbsession, published, "1.0") is not None


def test_deletion_forms_look_dangerous_and_say_what_is_lost(testapp, dbsession, published):
    log_in(testapp, "uploader")
    page = testapp.get(MANAGE).html
    zones = page.select("details.danger-zone")
    assert len(zones) == 2 + 2  # a release and its file, twice
    for zone in zones:
        assert "This cannot be undone." in zone.text and "can never be uploaded again" in zone.text
        assert zone.select_one("button.danger[type=submit]") is not None
        assert zone.select_one("input[name=confirm_name][required]") is not None

"""Maintainers' pages on SQLite and PostgreSQL: a user's projects, a
project's collaborators (the last owner stays), API tokens, public pages."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from myapp.accounts import services as accounts
from myapp.accounts.models import ApiToken, UserEvent
from myapp.packaging import roles as project_roles
from myapp.packaging.models import RoleName
from tests.accounts import form_for, log_in, make_user, submit
from tests.factories import make_package


@pytest.fixture
def project(dbsession):
    """A project with an owner and a maintainer."""
    package = make_package(dbsession, "Widget_Kit")
    owner, maintainer = make_user(dbsession, "olivia"), make_user(dbsession, "mark")
    project_roles.set_role(dbsession, package, owner, RoleName.OWNER)
    project_roles.set_role(dbsession, package, maintainer, RoleName.MAINTAINER)
    return package, owner, maintainer


def roles(db, package) -> dict[str, str]:
    db.expire_all()
    return {role.user.username: role.role.value for role in project_roles.maintainers(db, package)}


COLLABORATORS = "/manage/project/widget-kit/collaborators"


def add(testapp, username: str, role: str = "maintainer"):
    form = testapp.get(COLLABORATORS).forms["add-collaborator"]
    form["username"], form["role"] = username, role
    return form.submit(status="*", expect_errors=True)


def test_project_and_user_pages_show_who_maintains_what(testapp, project):
    page = testapp.get("/project/widget-kit/")
    assert [li.a.text for li in page.html.select(".maintainers li")] == ["olivia", "mark"]
    assert "(owner)" in page.html.select(".maintainers li")[0].text
    user_page = testapp.get("/user/mark/")
    assert user_page.html.select_one(".project-name").text == "Widget_Kit"
    assert testapp.get("/user/nobody-here/", status=404)


def test_my_projects(testapp, project):
    assert testapp.get("/manage/projects", status=303)
    log_in(testapp, "mark")
    page = testapp.get("/manage/projects")
    assert page.html.select_one(".project-name").text == "Widget_Kit" and "maintainer" in page.text


def test_only_owners_manage_collaborators(testapp, dbsession, project):
    assert "/account/login?came_from=" in testapp.get(COLLABORATORS, status=303).location
    log_in(testapp, "mark")
    assert testapp.get(COLLABORATORS, status=403)
    assert testapp.get("/manage/project/no-such-project/collaborators", status=403)  # says nothing of what exists


def test_owner_adds_changes_and_removes_collaborators(testapp, dbsession, project):
    package, *_ = project
    newcomer = make_user(dbsession, "nina")
    log_in(testapp, "olivia")
    assert add(testapp, "NINA").status_int == 303
    assert roles(dbsession, package) == {"olivia": "owner", "mark": "maintainer", "nina": "maintainer"}
    assert "already a collaborator" in add(testapp, "nina").text
    assert "There is no user" in add(testapp, "ghost").text

    page = testapp.get(COLLABORATORS)
    change = [f for f in page.forms.values() if f.get("action", default=None) and f["action"].value == "role"]
    nina = next(f for f in change if f["username"].value == "nina")
    nina["role"] = "owner"
    assert nina.submit(status=303)
    assert roles(dbsession, package)["nina"] == "owner"
    tags = [e.tag.value for e in dbsession.scalars(select(UserEvent).where(UserEvent.user_id == newcomer.id))]
    assert tags[-2:] == ["role added", "role changed"]

    removal = [f for f in testapp.get(COLLABORATORS).forms.values() if f.get("action", default=None)]
    mark = next(f for f in removal if f["action"].value == "remove" and f["username"].value == "mark")
    assert mark.submit(status=303)
    assert "mark" not in roles(dbsession, package)


def test_the_last_owner_cannot_be_removed_or_demoted(testapp, dbsession, project):
    package, *_ = project
    log_in(testapp, "olivia")

    def post(action: str, role: str = "maintainer"):
        page = testapp.get(COLLABORATORS)
        form = form_for(page, COLLABORATORS)  # the first form: olivia's role
        form["action"].force_value(action)
        form["username"].force_value("olivia")
        form["role"] = role
        return form.submit(status="*", expect_errors=True)

    for action in ("remove", "role"):
        res = post(action)
        assert res.status_int == 400 and "last owner" in res.html.select_one(".error").text
        assert roles(dbsession, package)["olivia"] == "owner"
    assert post("explode").status_int == 400


def test_api_tokens_are_shown_once_and_scoped_to_what_you_maintain(testapp, dbsession, project):
    package, *_ = project
    other = make_package(dbsession, "not-mine")
    log_in(testapp, "mark")
    res = submit(testapp, "/account/tokens", {"name": "ci", "project": "widget-kit", "expires_days": "30"})
    assert res.status_int == 200 and res.headers["Cache-Control"] == "no-store"
    value = res.html.select_one(".new-token").text
    assert value.startswith("myapp-")
    listing = testapp.get("/account/tokens")
    assert value not in listing.text and "ci" in listing.text and "widget-kit" in listing.text
    token = dbsession.scalar(select(ApiToken).where(ApiToken.name == "ci"))
    assert token.package_id == package.id and token.expires is not None and value not in token.digest

    for fields, message in [
        ({"name": "x", "project": other.name}, "Choose one of the projects you maintain"),
        ({"name": "x", "expires_days": "0"}, "from 1 to 3650"),
        ({"name": "x", "expires_days": "²"}, "from 1 to 3650"),
        ({"name": "x", "expires_days": "9" * 5000}, "from 1 to 3650"),
        ({"name": ""}, "This field is required"),
    ]:
        page = testapp.get("/account/tokens")
        form = form_for(page, "/account/tokens")
        for key, val in fields.items():
            form[key].force_value(val) if key == "project" else form.__setitem__(key, val)
        res = form.submit(status=400)
        assert message in res.text, fields


def test_tokens_are_revoked_only_by_their_owner(app, testapp, dbsession, project):
    _, owner, maintainer = project
    mine, _ = accounts.create_token(dbsession, maintainer, "laptop")
    theirs, _ = accounts.create_token(dbsession, owner, "server")
    log_in(testapp, "mark")
    page = testapp.get("/account/tokens")
    revoke = form_for(page, f"/account/tokens/{mine.id}/revoke")
    revoke["confirm_name"] = "laptop"
    assert revoke.submit(status=303)
    token = form_for(page, "/account/logout")["csrf_token"].value
    refused = {"csrf_token": token, "confirm_name": "server"}
    assert testapp.post(f"/account/tokens/{theirs.id}/revoke", refused, status=404)
    assert testapp.post("/account/tokens/%C2%B2/revoke", {"csrf_token": token}, status=404)
    dbsession.expire_all()
    assert dbsession.get(ApiToken, mine.id).revoked is not None
    assert dbsession.get(ApiToken, theirs.id).revoked is None


@pytest.mark.parametrize("typed", [None, "", "laptop2", "lap"])
def test_revoking_a_token_asks_for_its_name_typed(testapp, dbsession, project, typed):
    _, _, maintainer = project
    mine, _ = accounts.create_token(dbsession, maintainer, "Laptop")
    log_in(testapp, "mark")
    form = form_for(testapp.get("/account/tokens"), f"/account/tokens/{mine.id}/revoke")
    if typed is None:
        del form.fields["confirm_name"]
    else:
        form["confirm_name"] = typed
    res = form.submit(status=400)
    assert "Type the token's name, Laptop, to revoke it." in res.html.select_one(f"#revoke-{mine.id}-errors").text
    dbsession.expire_all()
    assert dbsession.get(ApiToken, mine.id).revoked is None
    form = form_for(res, f"/account/tokens/{mine.id}/revoke")
    form["confirm_name"] = " laptop "  # compared without case or surrounding spaces
    form.submit(status=303)
    dbsession.expire_all()
    assert dbsession.get(ApiToken, mine.id).revoked is not None

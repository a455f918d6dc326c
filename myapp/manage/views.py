"""The projects a user maintains, a project's collaborators, API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from myapp.accounts import services as accounts
from myapp.accounts.forms import FormData, TokenForm
from myapp.accounts.models import EventTag, User
from myapp.data.meta import utcnow
from myapp.packaging import services as packaging
from myapp.packaging.context import ProjectContext, project_or_404
from myapp.packaging.models import Package, RoleName
from myapp.security import FORM_METHODS

NO_STORE = "no-store"  # pages that show a secret once must not be kept by any cache


def _me(request: Request) -> User:
    return request.identity.user


@view_config(route_name="manage.projects", renderer="myapp:templates/manage/projects.jinja2", permission="account")
def my_projects(request: Request) -> dict[str, Any]:
    return {"roles": packaging.projects_of(request.dbsession, _me(request))}


@view_config(
    route_name="manage.collaborators",
    renderer="myapp:templates/manage/collaborators.jinja2",
    permission="manage",
    require_methods=FORM_METHODS,
)
def collaborators(context: ProjectContext, request: Request) -> Any:
    """Add a collaborator by username, change a role, remove one; a project
    keeps at least one owner."""
    package = project_or_404(request)
    values: dict[str, Any] = {"package": package, "roles": context.roles, "error": None}
    if request.method != "POST":
        return values
    db = request.dbsession
    action, username = request.POST.get("action"), request.POST.get("username", "").strip()
    role_name = request.POST.get("role", RoleName.MAINTAINER.value)
    user = accounts.find_user(db, username) if username else None
    error = None
    if action not in ("add", "role", "remove") or role_name not in RoleName._value2member_map_:
        error = "That is not something this page can do."
    elif user is None:
        error = f"There is no user called {username!r}."
    elif action == "add" and packaging.role_of(db, user, package) is not None:
        error = f"{user.username} is already a collaborator."
    if error is None:
        try:
            _change_role(request, package, user, action, RoleName(role_name))  # type: ignore[arg-type]
        except packaging.LastOwnerError as exc:
            error = f"{exc} Make someone else an owner first."
    if error is not None:
        request.response.status = 400
        return values | {"error": error}
    return HTTPSeeOther(location=request.route_path("manage.collaborators", name=package.name))


def _change_role(request: Request, package: Package, user: User, action: str, role: RoleName) -> None:
    db = request.dbsession
    detail = {"project": package.name, "by": _me(request).username}
    if action == "remove":
        packaging.remove_role(db, package, user)
        accounts.record_event(db, user, EventTag.ROLE_REMOVED, request.client_addr, **detail)
    else:
        packaging.set_role(db, package, user, role)
        tag = EventTag.ROLE_ADDED if action == "add" else EventTag.ROLE_CHANGED
        accounts.record_event(db, user, tag, request.client_addr, role=role.value, **detail)


@view_config(
    route_name="manage.tokens",
    renderer="myapp:templates/manage/tokens.jinja2",
    permission="account",
    require_methods=FORM_METHODS,
)
def tokens(request: Request) -> Any:
    """List, and create, API tokens; a new token is shown on this response only."""
    db, me = request.dbsession, _me(request)
    form = TokenForm(FormData(request.POST) if request.method == "POST" else None)
    projects = [role.package for role in packaging.projects_of(db, me)]
    values: dict[str, Any] = {"form": form, "projects": projects, "new_token": None}
    if request.method == "POST":
        chosen = next((p for p in projects if p.name == form.project.data), None)
        valid = form.validate()
        if form.project.data and chosen is None:
            form.project.errors = [*form.project.errors, "Choose one of the projects you maintain."]
            valid = False
        if not valid:
            request.response.status = 400
        else:
            expires = utcnow() + timedelta(days=int(form.expires_days.data)) if form.expires_days.data else None
            _, value = accounts.create_token(
                db,
                me,
                form.name.data,
                package_id=chosen.id if chosen else None,
                expires=expires,
                ip_address=request.client_addr,
            )
            values.update(new_token=value, form=TokenForm())
            request.response.cache_control = NO_STORE
    values["tokens"] = accounts.tokens_of(db, me)
    values["project_names"] = {p.id: p.name for p in projects}
    return values


@view_config(route_name="manage.token_revoke", permission="account", require_methods=["POST"])
def revoke_token(request: Request) -> Any:
    raw = request.matchdict["token_id"]
    token_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 12 else 0
    if accounts.revoke_token(request.dbsession, _me(request), token_id, request.client_addr) is None:
        raise HTTPNotFound("You have no such token.")
    return HTTPSeeOther(location=request.route_path("manage.tokens"))

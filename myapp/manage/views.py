"""The projects a user maintains, a project's collaborators, API tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from myapp.accounts import services as accounts
from myapp.accounts.forms import FormData, TokenForm
from myapp.accounts.models import EventTag, User
from myapp.accounts.policy import basic_credentials
from myapp.data.meta import utcnow
from myapp.packaging import journal, maintain, roles, services
from myapp.packaging.context import ProjectContext, project_or_404
from myapp.packaging.models import Package, RoleName
from myapp.packaging.names import normalize
from myapp.security import FORM_METHODS, Permission

NO_STORE = "no-store"  # pages that show a secret once must not be kept by any cache


def _me(request: Request) -> User:
    return request.identity.user


@view_config(
    route_name="manage.projects", renderer="myapp:templates/manage/projects.jinja2", permission=Permission.ACCOUNT
)
def my_projects(request: Request) -> dict[str, Any]:
    return {"roles": roles.projects_of(request.dbsession, _me(request))}


@view_config(
    route_name="manage.collaborators",
    renderer="myapp:templates/manage/collaborators.jinja2",
    permission=Permission.MANAGE,
    require_methods=FORM_METHODS,
    confirm=True,
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
    elif action == "add" and roles.role_of(db, user, package) is not None:
        error = f"{user.username} is already a collaborator."
    if error is None:
        try:
            _change_role(request, package, user, action, RoleName(role_name))  # type: ignore[arg-type]
        except roles.LastOwnerError as exc:
            error = f"{exc} Make someone else an owner first."
    if error is not None:
        request.response.status = 400
        return values | {"error": error}
    return HTTPSeeOther(location=request.route_path("manage.collaborators", name=package.name))


def _change_role(request: Request, package: Package, user: User, action: str, role: RoleName) -> None:
    db, me = request.dbsession, _me(request)
    detail = {"project": package.name, "by": me.username}
    if action == "remove":
        roles.remove_role(db, package, user)
        accounts.record_event(db, user, EventTag.ROLE_REMOVED, request.client_addr, **detail)
        journal.add_entry(db, package, f"remove {user.username}", me)
    else:
        roles.set_role(db, package, user, role)
        tag = EventTag.ROLE_ADDED if action == "add" else EventTag.ROLE_CHANGED
        accounts.record_event(db, user, tag, request.client_addr, role=role.value, **detail)
        journal.add_entry(db, package, f"{'add' if action == 'add' else 'change'} {user.username} as {role.value}", me)


@view_config(
    route_name="manage.tokens",
    renderer="myapp:templates/manage/tokens.jinja2",
    permission=Permission.ACCOUNT,
    require_methods=FORM_METHODS,
    confirm=True,
)
def tokens(request: Request) -> Any:
    """List, and create, API tokens; a new token is shown on this response only."""
    db, me = request.dbsession, _me(request)
    form = TokenForm(FormData(request.POST) if request.method == "POST" else None)
    projects = [role.package for role in roles.projects_of(db, me)]
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
    return values | _token_list(request, projects)


def _token_list(request: Request, projects: list[Package]) -> dict[str, Any]:
    return {
        "tokens": accounts.tokens_of(request.dbsession, _me(request)),
        "project_names": {p.id: p.name for p in projects},
        "revoke_error": None,
    }


@view_config(route_name="manage.token_revoke", permission=Permission.ACCOUNT, require_methods=["POST"], confirm=True)
def revoke_token(request: Request) -> Any:
    """Revoke one of my tokens, once its name is typed (as GitHub asks): a
    tool that uses it stops working at once, and it cannot be undone."""
    raw = request.matchdict["token_id"]
    token_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 12 else 0
    db, me = request.dbsession, _me(request)
    token = next((t for t in accounts.tokens_of(db, me) if t.id == token_id), None)
    if token is None:
        raise HTTPNotFound("You have no such token.")
    if not _typed(request, token.name, _casefolded):
        projects = [role.package for role in roles.projects_of(db, me)]
        values = {"form": TokenForm(), "projects": projects, "new_token": None} | _token_list(request, projects)
        values["revoke_error"] = (token.id, f"Type the token's name, {token.name}, to revoke it.")
        return render_to_response("myapp:templates/manage/tokens.jinja2", values, request=request, response=_bad())
    accounts.revoke_token(db, me, token_id, request.client_addr)
    return HTTPSeeOther(location=request.route_path("manage.tokens"))


CONFIRM_FIELD = "confirm_name"


def _casefolded(text: str) -> str:
    return " ".join(text.split()).casefold()


def _typed(request: Request, expected: str, same: Callable[[str], str]) -> bool:
    """Whether the person typed ``expected`` in the confirmation field (as ``same`` compares)."""
    typed = request.POST.get(CONFIRM_FIELD, "")
    return 0 < len(typed) <= 200 and same(typed) == same(expected)


def _bad() -> Response:
    response = Response()
    response.status = 400
    return response


MAX_REASON = 500
DELETING = ("delete-release", "delete-file")


def _deleting(request: Request) -> bool:
    """Deleting asks for the password again (sudo mode); yanking, which can be undone, does not."""
    return request.method == "POST" and request.POST.get("action") in DELETING


@view_config(
    route_name="manage.project",
    renderer="myapp:templates/manage/project.jinja2",
    permission=Permission.UPLOAD,
    require_methods=FORM_METHODS,
    confirm=_deleting,
)
def manage_project(context: ProjectContext, request: Request) -> Any:
    """A project's releases for its maintainers: yank or un-yank (with a
    reason), delete a file or a release; and the journal of every change."""
    package = project_or_404(request)
    db = request.dbsession
    if request.method == "POST":
        error = _release_action(request, package)
        if error is None:
            return HTTPSeeOther(location=request.route_path("manage.project", name=package.name))
        request.response.status = 400
    else:
        error = None
    releases = services.releases_with_files(db, package)
    values = {"package": package, "releases": releases, "journal": journal.entries(db, package), "error": error}
    # A deletion refused for want of the typed name: the message goes beside that form's field.
    form = request.POST
    refused = error is not None and _deleting(request) and not _typed(request, package.name, normalize)
    failed = (form.get("action"), form.get("version"), form.get("filename")) if refused else None
    return values | {"failed": failed, "confirm_field": CONFIRM_FIELD}


def _release_action(request: Request, package: Package) -> str | None:
    """Do what the form asks; the reason it cannot, or None."""
    db, me, form = request.dbsession, _me(request), request.POST
    action, version = form.get("action", ""), form.get("version", "")
    release = services.find_release(db, package, version) if 0 < len(version) <= 100 else None
    if release is None:
        return f"{package.display_name} has no release {version[:100]!r}."
    store = request.registry["file_store"]
    if action in ("yank", "unyank"):
        reason = form.get("reason", "").strip()[:MAX_REASON]
        maintain.set_yanked(db, package, release, action == "yank", reason, me)
    elif action in DELETING and not _typed(request, package.name, normalize):
        return f"Type the project's name, {package.name}, to confirm: this cannot be undone."
    elif action == "delete-release":
        store.remove_on_commit(request.tm, maintain.delete_release(db, package, release, me))
    elif action == "delete-file":
        file = next((f for f in release.files if f.filename == form.get("filename")), None)
        if file is None:
            return "That release has no such file."
        store.remove_on_commit(request.tm, maintain.delete_file(db, package, file, me))
    else:
        return "That is not something this page can do."
    return None


@view_config(
    route_name="api.yank", renderer="json", permission=Permission.UPLOAD, require_methods=["POST"], require_csrf=False
)
@view_config(
    route_name="api.unyank", renderer="json", permission=Permission.UPLOAD, require_methods=["POST"], require_csrf=False
)
def api_yank(context: ProjectContext, request: Request) -> Any:
    """``POST /api/projects/{name}/{version}/yank`` (or ``/unyank``), with basic
    auth (a token), an optional JSON body ``{"reason": "..."}``. No CSRF token:
    a browser's session is not accepted here, only credentials sent on purpose."""
    if basic_credentials(request) is None:
        request.response.status = 401
        request.response.headers["WWW-Authenticate"] = 'Basic realm="myapp", charset="UTF-8"'
        return {"error": "Use HTTP basic auth: __token__ and an API token."}
    package = project_or_404(request)
    version = request.matchdict["version"]
    db = request.dbsession
    release = services.find_release(db, package, version) if len(version) <= 100 else None
    if release is None:
        raise HTTPNotFound(f"{package.display_name} has no release {version[:100]!r}.")
    yank = request.matched_route.name == "api.yank"
    reason = ""
    if yank and request.body:
        try:
            body = request.json_body
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("reason", ""), str):
            request.response.status = 400
            return {"error": 'The body must be JSON like {"reason": "..."}.'}
        reason = body.get("reason", "").strip()[:MAX_REASON]
    maintain.set_yanked(db, package, release, yank, reason, _me(request))
    return {"project": package.name, "version": release.version, "yanked": yank, "reason": release.yanked_reason}

"""A project (or one of its files) as the security context of a request: its
roles become its ACL, and a token scoped to it is good here and nowhere else.

The context never answers 404 itself: the view does, after the permission
check, so a private index tells a stranger nothing about which projects exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pyramid.authorization import Allow
from pyramid.httpexceptions import HTTPMovedPermanently, HTTPNotFound
from pyramid.request import Request
from pyramid.response import Response

from myapp.accounts.policy import ADMINS, site_acl
from myapp.data.rawread import read_first
from myapp.packaging import roles, services
from myapp.packaging.models import Package, Role, RoleName
from myapp.packaging.names import is_valid_filename, is_valid_name
from myapp.security import Permission

if TYPE_CHECKING:  # the same types as cached_property, which mypy knows
    from functools import cached_property as reify
else:  # lock-free: functools.cached_property on 3.11 takes one lock per class, held over the query
    from pyramid.decorator import reify

METADATA = ".metadata"  # PEP 658: <file URL>.metadata is the wheel's core metadata
LEAN_ROUTES = frozenset({"simple.project"})
# Registry: {route name: view(request) -> Response | None}, filled by a higher
# layer (myapp.upstream, the proxy of a public index) for names not hosted here.
MISSING_PROJECT_VIEWS = "packaging.missing_project_views"
# Registry: view(request) -> Response for a ``/packages/...`` file not hosted here (the proxy's).
MISSING_FILE_VIEW = "packaging.missing_file_view"


class ProjectContext:
    """``upload`` for owners and maintainers, ``manage`` (collaborators) for
    owners; administrators may do both, to rescue an orphaned project."""

    def __init__(self, request: Request) -> None:
        self.request = request

    @reify
    def package(self) -> Package | None:
        # Found when first needed (the permission check, the view), not when the
        # route matches: credentials are checked first, and a request refused on
        # them must not have begun the request's transaction (on SQLite a POST's
        # takes the write lock).
        return self._find(self.request)

    def _find(self, request: Request) -> Package | None:
        name = request.matchdict["name"]
        if not is_valid_name(name):
            return None
        # Tool routes read neither the classifiers nor the (long) description.
        lean = request.matched_route is not None and request.matched_route.name in LEAN_ROUTES
        return services.find_package(request.dbsession, name, lean=lean)

    @reify
    def roles(self) -> list[Role]:
        return roles.maintainers(self.request.dbsession, self.package) if self.package else []

    @property
    def __acl__(self) -> Any:
        # A generator: the roles are queried only if a permission needs them ("view" does not).
        yield from site_acl(self.request)
        yield (Allow, ADMINS, (Permission.MANAGE, Permission.UPLOAD))
        for role in self.roles:
            yield from _role_aces(role.user_id, role.role)


class UploadContext:
    """A project an upload read itself (``publish.upload_target``), with the
    uploader's role on it: its ACL, as ``ProjectContext``'s, for that user
    alone (the only principal the check asks about), with no further read."""

    def __init__(self, request: Request, package: HasId, role: RoleName | None) -> None:
        self.request = request
        self.package = package  # the policy checks a token's project against its id
        self.role = role

    @property
    def __acl__(self) -> Any:
        yield from site_acl(self.request)
        yield (Allow, ADMINS, (Permission.MANAGE, Permission.UPLOAD))
        if self.role is not None:
            yield from _role_aces(self.request.identity.account.id, self.role)


class HasId(Protocol):
    @property
    def id(self) -> int: ...


def _role_aces(user_id: int, role: RoleName) -> Iterator[tuple[str, str, str]]:
    """What a role allows its user on its project: upload; owners also manage."""
    yield (Allow, f"user:{user_id}", Permission.UPLOAD)
    if role == RoleName.OWNER:
        yield (Allow, f"user:{user_id}", Permission.MANAGE)


class FileContext(ProjectContext):
    """A file (or its ``.metadata``) and the project it belongs to."""

    @reify
    def file(self) -> services.StoredFile | None:
        """The file, as plain columns: one joined statement, which the view reuses."""
        filename = self.request.matchdict["filename"].removesuffix(METADATA)
        if not is_valid_filename(filename):
            return None
        return services.find_download(partial(read_first, self.request), filename)

    def _find(self, request: Request) -> Package | None:
        # Only a permission that needs the project (a token scoped to one) loads it.
        file = self.file
        return services.package_by_id(request.dbsession, file.package_id) if file is not None else None


def project_or_404(request: Request) -> Package:
    """The context's project: 404 if there is none, and a redirect to its
    normalized name (one URL per project: /project/Flask_Login/ -> /project/flask-login/)."""
    package = getattr(request.context, "package", None)
    found_or_redirect(request, package.name if package is not None else None)
    assert package is not None
    return package


def current_project(request: Request) -> services.ProjectVersion | None:
    """The project named in the URL, as its serial read (None if not hosted
    here); a redirect to its normalized name, as ``project_or_404``."""
    name = request.matchdict["name"]
    read = partial(read_first, request)
    project = services.project_version(read, name) if is_valid_name(name) else None
    if project is not None:
        found_or_redirect(request, project.name)
    return project


def found_or_redirect(request: Request, found: str | None) -> None:
    """404 if no project was found for the URL's name, a redirect if ``found``
    (its normalized name) is not the name in the URL."""
    name = request.matchdict["name"]
    if found is None:
        raise HTTPNotFound(f"There is no project called {name!r}.")
    if name != found:
        raise HTTPMovedPermanently(location=request.current_route_path(_query=request.GET, name=found))


def missing_project_view(request: Request, *, known_missing: bool = False) -> Response | None:
    """For a name with no project here: a higher layer's answer (the proxy's
    page of the upstream project), or None (the view then answers 404). Asked
    after the permission check, so a private index guards proxied names as
    it guards its own."""
    views = request.registry.get(MISSING_PROJECT_VIEWS)
    # ``known_missing``: the caller has looked the name up already (the simple page's raw read).
    if not views or (not known_missing and getattr(request.context, "package", None) is not None):
        return None
    view = views.get(request.matched_route.name)
    return view(request) if view is not None else None


def packages_path_parts(sha256: str, filename: str) -> dict[str, str]:
    """The route ``packages.file``'s parts for a file: PyPI's layout, its sha256 in three."""
    return {"h1": sha256[:2], "h2": sha256[2:4], "rest": sha256[4:], "filename": filename}

"""A project (or one of its files) as the security context of a request: its
roles become its ACL, and a token scoped to it is good here and nowhere else.

The context never answers 404 itself: the view does, after the permission
check, so a private index tells a stranger nothing about which projects exist.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pyramid.authorization import Allow
from pyramid.httpexceptions import HTTPMovedPermanently, HTTPNotFound
from pyramid.request import Request
from pyramid.response import Response

from myapp.accounts.policy import ADMINS, site_acl
from myapp.packaging import roles, services
from myapp.packaging.models import Package, Role, RoleName
from myapp.packaging.names import is_valid_filename, is_valid_name
from myapp.security import Permission

METADATA = ".metadata"  # PEP 658: <file URL>.metadata is the wheel's core metadata
# Registry: {route name: view(request) -> Response | None}, filled by a higher
# layer (myapp.upstream, the proxy of a public index) for names not hosted here.
MISSING_PROJECT_VIEWS = "packaging.missing_project_views"
# Registry: view(request) -> Response for a ``/packages/...`` file not hosted here (the proxy's).
MISSING_FILE_VIEW = "packaging.missing_file_view"


class ProjectContext:
    """``upload`` for owners and maintainers, ``manage`` (collaborators) for
    owners; administrators may do both, to rescue an orphaned project."""

    def __init__(self, request: Request, package: Package | None = None) -> None:
        self.request = request
        if package is not None:
            self.__dict__["package"] = package

    @cached_property
    def package(self) -> Package | None:
        # Found when first needed (the permission check, the view), not when the
        # route matches: credentials are checked first, and a request refused on
        # them must not have begun the request's transaction (on SQLite a POST's
        # takes the write lock).
        return self._find(self.request)

    @classmethod
    def for_package(cls, request: Request, package: Package) -> ProjectContext:
        """The context of a project a view found itself (an upload names it in its form)."""
        return cls(request, package)

    def _find(self, request: Request) -> Package | None:
        name = request.matchdict["name"]
        return services.find_package(request.dbsession, name) if is_valid_name(name) else None

    @cached_property
    def roles(self) -> list[Role]:
        return roles.maintainers(self.request.dbsession, self.package) if self.package else []

    @property
    def __acl__(self) -> Any:
        # A generator: the roles are queried only if a permission needs them ("view" does not).
        yield from site_acl(self.request)
        yield (Allow, ADMINS, (Permission.MANAGE, Permission.UPLOAD))
        for role in self.roles:
            yield (Allow, f"user:{role.user_id}", Permission.UPLOAD)
            if role.role == RoleName.OWNER:
                yield (Allow, f"user:{role.user_id}", Permission.MANAGE)


class FileContext(ProjectContext):
    """The project a file (or its ``.metadata``) belongs to."""

    def _find(self, request: Request) -> Package | None:
        filename = request.matchdict["filename"].removesuffix(METADATA)
        file = services.find_file(request.dbsession, filename) if is_valid_filename(filename) else None
        return file.release.package if file is not None else None


def project_or_404(request: Request) -> Package:
    """The context's project: 404 if there is none, and a redirect to its
    normalized name (one URL per project: /project/Flask_Login/ -> /project/flask-login/)."""
    package = getattr(request.context, "package", None)
    name = request.matchdict["name"]
    if package is None:
        raise HTTPNotFound(f"There is no project called {name!r}.")
    if name != package.name:
        raise HTTPMovedPermanently(location=request.current_route_path(_query=request.GET, name=package.name))
    return package


def missing_project_view(request: Request) -> Response | None:
    """For a name with no project here: a higher layer's answer (the proxy's
    page of the upstream project), or None (the view then answers 404). Asked
    after the permission check, so a private index guards proxied names as
    it guards its own."""
    views = request.registry.get(MISSING_PROJECT_VIEWS)
    if not views or getattr(request.context, "package", None) is not None:
        return None
    view = views.get(request.matched_route.name)
    return view(request) if view is not None else None


def packages_path_parts(sha256: str, filename: str) -> dict[str, str]:
    """The route ``packages.file``'s parts for a file: PyPI's layout, its sha256 in three."""
    return {"h1": sha256[:2], "h2": sha256[2:4], "rest": sha256[4:], "filename": filename}

"""A project as a security context: its roles become its ACL."""

from __future__ import annotations

from typing import Any

from pyramid.authorization import Allow
from pyramid.httpexceptions import HTTPNotFound
from pyramid.request import Request

from myapp.accounts.policy import ADMINS
from myapp.packaging import services
from myapp.packaging.models import Package, Role, RoleName
from myapp.packaging.names import is_valid_name


class ProjectContext:
    """``upload`` for owners and maintainers, ``manage`` (collaborators) for
    owners; administrators may do both, to rescue an orphaned project."""

    def __init__(self, request: Request) -> None:
        name = request.matchdict["name"]
        package = services.find_package(request.dbsession, name) if is_valid_name(name) else None
        if package is None:
            raise HTTPNotFound(f"There is no project called {name!r}.")
        self.package: Package = package
        self.roles: list[Role] = services.maintainers(request.dbsession, package)

    @property
    def __acl__(self) -> list[tuple[Any, ...]]:
        acl: list[tuple[Any, ...]] = [(Allow, ADMINS, ("manage", "upload"))]
        for role in self.roles:
            acl.append((Allow, f"user:{role.user_id}", "upload"))
            if role.role == RoleName.OWNER:
                acl.append((Allow, f"user:{role.user_id}", "manage"))
        return acl

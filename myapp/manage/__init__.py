"""Maintainers' pages, where accounts meet projects: the projects a user
maintains, a project's releases (yank, delete) and journal, its
collaborators, API tokens (which may be scoped to one project), a small
JSON API to yank from scripts, and the job queue for administrators. Built on ``accounts`` and ``packaging``;
neither imports it."""

from pyramid.config import Configurator

from myapp.accounts.policy import BASIC_AUTH_ROUTES
from myapp.packaging.context import ProjectContext


def includeme(config: Configurator) -> None:
    config.add_route("manage.projects", "/manage/projects")
    config.add_route("manage.project", "/manage/project/{name}/", factory=ProjectContext)
    config.add_route("api.yank", "/api/projects/{name}/{version}/yank", factory=ProjectContext)
    config.add_route("api.unyank", "/api/projects/{name}/{version}/unyank", factory=ProjectContext)
    config.registry.setdefault(BASIC_AUTH_ROUTES, set()).update({"api.yank", "api.unyank"})
    config.add_route("manage.collaborators", "/manage/project/{name}/collaborators", factory=ProjectContext)
    config.add_route("manage.tokens", "/account/tokens")
    config.add_route("manage.token_revoke", "/account/tokens/{token_id}/revoke")
    config.add_route("admin.jobs", "/admin/jobs")
    config.add_route("admin.job_retry", "/admin/jobs/{job_id}/retry")

"""Maintainers' pages, where accounts meet projects: the projects a user
maintains, a project's collaborators, and API tokens (which may be scoped to
one project). Built on ``accounts`` and ``packaging``; neither imports it."""

from pyramid.config import Configurator

from myapp.packaging.context import ProjectContext


def includeme(config: Configurator) -> None:
    config.add_route("manage.projects", "/manage/projects")
    config.add_route("manage.collaborators", "/manage/project/{name}/collaborators", factory=ProjectContext)
    config.add_route("manage.tokens", "/account/tokens")
    config.add_route("manage.token_revoke", "/account/tokens/{token_id}/revoke")

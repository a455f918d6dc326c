"""The package index: projects, releases, files."""

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    config.add_route("home", "/")
    config.add_route("projects", "/projects/")
    config.add_route("search", "/search")
    config.add_route("project", "/project/{name}/")
    config.add_route("release", "/project/{name}/{version}/")
    config.add_route("file", "/files/{filename}")
    config.add_route("user", "/user/{username}/")
    config.add_route("simple.index", "/simple/")
    config.add_route("simple.project", "/simple/{name}/")
    config.add_route("json.project", "/pypi/{name}/json")
    config.add_route("json.release", "/pypi/{name}/{version}/json")

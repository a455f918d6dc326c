"""Browse, search and read projects. Views are thin: they check input, ask
``services`` and hand the result to a template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pyramid.httpexceptions import HTTPBadRequest, HTTPFound, HTTPMovedPermanently, HTTPNotFound
from pyramid.request import Request
from pyramid.response import FileResponse
from pyramid.view import view_config

from myapp.packaging import services
from myapp.packaging.models import Package, Release
from myapp.packaging.names import is_valid_name
from myapp.packaging.rendering import render_description
from myapp.web.pagination import page_number

MAX_QUERY = 200
# What a version or file name in a URL may contain; anything else cannot exist.
_VERSION = re.compile(r"^[A-Za-z0-9.!+_-]{1,100}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$")


def _package_or_404(request: Request) -> Package:
    name = request.matchdict["name"]
    package = services.find_package(request.dbsession, name) if is_valid_name(name) else None
    if package is None:
        raise HTTPNotFound(f"There is no project called {name!r}.")
    if name != package.name:
        # One URL per project: /project/Flask_Login/ -> /project/flask-login/
        location = request.current_route_path(_query=request.GET, name=package.name)
        raise HTTPMovedPermanently(location=location)
    return package


@view_config(route_name="projects", renderer="myapp:templates/projects.jinja2", page_cache=True)
def projects(request: Request) -> dict[str, Any]:
    sort = request.GET.get("sort", "name")
    if sort not in services.SORT_ORDERS:
        raise HTTPBadRequest(f"sort must be one of: {', '.join(services.SORT_ORDERS)}.")
    page = services.browse(request.dbsession, sort=sort, page=page_number(request.GET))  # type: ignore[arg-type]
    return {"page": page, "sort": sort}


@view_config(route_name="search", renderer="myapp:templates/search.jinja2", page_cache=True)
def search(request: Request) -> dict[str, Any]:
    query = request.GET.get("q", "").replace("\x00", "").strip()
    if len(query) > MAX_QUERY:
        request.response.status = 400
        return {
            "query": query[:MAX_QUERY],
            "page": None,
            "error": f"Search terms are limited to {MAX_QUERY} characters.",
        }
    number = page_number(request.GET)
    page = services.search(request.dbsession, query, page=number) if query else None
    return {"query": query, "page": page, "error": None}


@view_config(route_name="project", renderer="myapp:templates/project.jinja2", page_cache=True)
def project(request: Request) -> dict[str, Any]:
    package = _package_or_404(request)
    releases = services.release_history(request.dbsession, package)
    return {
        "package": package,
        "releases": releases,
        "latest": services.latest_release(releases),
        "description": render_description(package.description, package.description_content_type),
    }


@view_config(route_name="release", renderer="myapp:templates/release.jinja2", page_cache=True)
def release(request: Request) -> dict[str, Any]:
    package = _package_or_404(request)
    version = request.matchdict["version"]
    found: Release | None = None
    if _VERSION.match(version):
        found = services.find_release(request.dbsession, package, version)
    if found is None:
        raise HTTPNotFound(f"{package.display_name} has no release {version!r}.")
    return {"package": package, "release": found}


@view_config(route_name="file")
def download(request: Request) -> Any:
    """Count a download, then serve the stored bytes or send the client on."""
    filename = request.matchdict["filename"]
    file = services.count_download(request.dbsession, filename) if _FILENAME.match(filename) else None
    if file is not None and file.storage_path:
        root = Path(request.registry.settings["myapp.files_dir"]).resolve()
        path = (root / file.storage_path).resolve()
        if path.is_relative_to(root) and path.is_file():  # never serve outside the store
            return FileResponse(str(path), request=request, content_type="application/octet-stream")
    if file is not None and file.url:
        return HTTPFound(location=file.url)
    # Nothing to serve: the 404 also undoes the count (commit veto).
    raise HTTPNotFound(f"No file called {filename!r} is available.")

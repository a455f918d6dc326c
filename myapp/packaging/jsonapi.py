"""PyPI's JSON API: ``/pypi/{name}/json`` and ``/pypi/{name}/{version}/json``,
in the shape the public index answers (``info``, ``releases``, ``urls``,
``last_serial``, ``vulnerabilities``), for scripts and tools that read it.

A project's whole document (every release and file: a megabyte for django)
is kept rendered in memory with the simple pages (``simple_cache``), under
what it shows that can change: the project's serial (every write bumps it)
and its download total (a file's count moves it too), read in one indexed
statement before anything else. So the next request in any process after a
write or a counted download renders it again, and the others send bytes."""

from __future__ import annotations

from datetime import UTC
from functools import partial
from typing import Any

from pyramid.httpexceptions import HTTPNotFound
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from myapp.packaging import services
from myapp.packaging.context import current_project, missing_project_view, packages_path_parts, project_or_404
from myapp.packaging.models import Package, Release, ReleaseFile
from myapp.packaging.simple_cache import Page, cache_of, sized


def file_json(request: Request, release: Release, file: ReleaseFile) -> dict[str, Any]:
    uploaded = file.upload_time.astimezone(UTC)
    return {
        "comment_text": "",
        "digests": {"sha256": file.sha256},
        "downloads": file.downloads,
        "filename": file.filename,
        "has_sig": False,
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "requires_python": file.requires_python,
        "size": file.size,
        "upload_time": uploaded.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        # PyPI's /packages/ layout: a mirror (bandersnatch) keeps the path of this URL.
        "url": request.route_url("packages.file", **packages_path_parts(file.sha256, file.filename))
        if file.storage_path
        else file.url,
        "yanked": file.yanked,
        "yanked_reason": release.yanked_reason if file.yanked else None,
    }


# Served as PyPI serves them where we keep no figures or links of the kind.
_NOT_KEPT = {"bugtrack_url": None, "docs_url": None, "downloads": {"last_day": -1, "last_month": -1, "last_week": -1}}


def info_json(request: Request, package: Package, release: Release | None) -> dict[str, Any]:
    """PyPI's ``info``: the project's fields, and the release's own core
    metadata (its dependencies, extras, license expression...), which PyPI
    serves per release."""
    version = release.version if release else None
    platforms = release.platform if release else None
    return {
        **_NOT_KEPT,
        "author": package.author,
        "author_email": package.author_email,
        "classifiers": [c.classifier for c in package.classifiers],
        "description": package.description or "",
        "description_content_type": package.description_content_type,
        "download_url": release.download_url if release else None,
        "dynamic": release.dynamic if release else None,
        "home_page": package.home_page,
        "keywords": package.keywords,
        "license": package.license,
        "license_expression": release.license_expression if release else None,
        "license_files": release.license_files if release else None,
        "maintainer": package.maintainer,
        "maintainer_email": package.maintainer_email,
        "name": package.display_name,
        "package_url": request.route_url("project", name=package.name),
        "project_url": request.route_url("project", name=package.name),
        "platform": ", ".join(platforms) if platforms else None,
        "project_urls": package.project_urls or None,
        "provides_extra": release.provides_extra if release else None,
        "release_url": request.route_url("release", name=package.name, version=version) if version else None,
        "requires_dist": release.requires_dist if release else None,
        "requires_python": (release.requires_python if release else None) or package.requires_python,
        "summary": (release.summary if release else None) or package.summary,
        "version": version,
        "yanked": bool(release and release.yanked),
        "yanked_reason": release.yanked_reason if release else None,
    }


@view_config(route_name="json.project", renderer="json")
def project_json(request: Request) -> Any:
    """The kept document while the project's serial and download total are
    the ones it was rendered under; else rendered (and kept) again."""
    project = current_project(request)
    if project is None:
        if (proxied := missing_project_view(request, known_missing=True)) is not None:
            return proxied
        raise HTTPNotFound(f"There is no project called {request.matchdict['name']!r}.")
    # The address too: the document's links are absolute (the Host the guard accepted).
    key = ("pypi-json", project.id, project.created, project.last_serial, project.downloads, request.application_url)
    page = cache_of(request.registry).get_or_make(key, partial(_render_project_json, request))
    response = Response(body=page.body)
    response.headers["Content-Type"] = page.content_type
    response.headers["X-PyPI-Last-Serial"] = str(project.last_serial)
    return response


def _render_project_json(request: Request) -> tuple[Page, int]:
    package = project_or_404(request)
    releases = services.releases_with_files(request.dbsession, package)
    latest = services.latest_release(releases)
    body = {
        "info": info_json(request, package, latest),
        "last_serial": package.last_serial,
        "releases": {r.version: [file_json(request, r, f) for f in r.files] for r in reversed(releases)},
        "urls": [file_json(request, latest, f) for f in latest.files] if latest else [],
        "vulnerabilities": [],
    }
    rendered = render_to_response("json", body, request=request)
    return sized(Page(rendered.body, rendered.headers["Content-Type"]))


@view_config(route_name="json.release", renderer="json")
def release_json(request: Request) -> Any:
    if (proxied := missing_project_view(request)) is not None:
        return proxied
    package = project_or_404(request)
    version = request.matchdict["version"]
    release = services.find_release(request.dbsession, package, version) if len(version) <= 100 else None
    if release is None:
        raise HTTPNotFound(f"{package.display_name} has no release {version!r}.")
    request.response.headers["X-PyPI-Last-Serial"] = str(package.last_serial)
    return {
        "info": info_json(request, package, release),
        "last_serial": package.last_serial,
        "urls": [file_json(request, release, f) for f in release.files],
        "vulnerabilities": [],
    }

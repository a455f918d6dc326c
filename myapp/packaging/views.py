"""The index's front page, browsing, search, project pages and downloads.
Views are thin: they check input, ask ``services`` and hand the result to a
template."""

from __future__ import annotations

import logging
import re
from typing import Any

from markupsafe import Markup
from pyramid.httpexceptions import (
    HTTPBadRequest,
    HTTPFound,
    HTTPNotFound,
)
from pyramid.renderers import render, render_to_response
from pyramid.request import Request
from pyramid.settings import asbool
from pyramid.view import view_config

from myapp.accounts.services import find_user
from myapp.data import ReadProbe, write_after_response
from myapp.packaging import dependencies, downloads, roles, services
from myapp.packaging.context import METADATA, MISSING_FILE_VIEW, missing_project_view, project_or_404
from myapp.packaging.models import Package, Release
from myapp.packaging.names import is_valid_name, normalize
from myapp.packaging.rendering import stored_description
from myapp.packaging.search.ranking import SEARCH_ORDERS, SearchResults, classifier_groups, search_projects
from myapp.packaging.storage import FileStore, content_type_of
from myapp.web.fragments import Fragment, fragment_cache
from myapp.web.negotiation import negotiate
from myapp.web.pagination import page_number, page_or_404

log = logging.getLogger(__name__)

MAX_QUERY = 200
MAX_CLASSIFIERS = 10
# What a version or file name in a URL may contain; anything else cannot exist.
_VERSION = re.compile(r"^[A-Za-z0-9.!+_-]{1,100}$")


@view_config(route_name="home", renderer="myapp:templates/home.jinja2", page_cache=True)
def home(request: Request) -> dict[str, Any]:
    """The index's counts and its recently updated projects. Like a project's
    article, the body is the same for everyone who may see it: kept in the
    fragment cache under the index's serial (any change to any project moves
    it, and the counts change only with such a change) and the site's address."""
    key = home_key(request)
    fragment = fragment_cache(request).get(key) if key is not None else None
    if fragment is None:
        db = request.dbsession
        counts = services.counts(db)
        values = {"counts": counts, "recent": services.recently_updated(db)}
        fragment = Fragment("Home", render(HOME_BODY, values, request=request))
        if key is not None and counts.projects:  # an empty index's page differs by who asks
            fragment_cache(request).keep(key, fragment)
    return {"body": Markup(fragment.html)}  # noqa: S704  # nosec B704 - an autoescaping template's output


HOME_BODY = "myapp:templates/home_body.jinja2"
_INDEX_SERIAL = ReadProbe(services.INDEX_SERIAL_SQL)


def home_key(request: Request) -> tuple[Any, ...] | None:
    """The home page body's key: the index's serial and the site's address;
    None (render, keep nothing) as ``_key_row`` says."""
    found = _key_row(request, _INDEX_SERIAL)
    return None if found is None else ("home", found[0], request.application_url)


def _key_row(request: Request, probe: ReadProbe, **params: Any) -> tuple[Any, ...] | None:
    """A fragment key's row, read as committed now, by any process; None when
    the fragment cache is off or the database does not answer (the page is
    rendered, and fails or not, as without the cache)."""
    if not fragment_cache(request).enabled:
        return None
    try:
        return probe.row(request.registry["dbsession_factory"].kw["bind"], **params)
    except Exception:  # any failure of the probe means: render as without the cache
        return None


# A browse cursor is a project's (normalized) name.
_CURSOR = re.compile(r"^[a-z0-9-]{1,200}$")


@view_config(
    route_name="projects",
    renderer="myapp:templates/projects.jinja2",
    page_cache=("sort", "after", "before", "start"),
)
def projects(request: Request) -> dict[str, Any]:
    params = request.GET
    sort = params.get("sort", "name")
    if sort not in services.SORT_ORDERS:
        raise HTTPBadRequest(f"sort must be one of: {', '.join(services.SORT_ORDERS)}.")
    cursors = {key: params[key] for key in ("after", "before", "start") if key in params}
    if len(cursors) > 1 or not all(_CURSOR.match(value) for value in cursors.values()):
        raise HTTPBadRequest("Give one of after, before or start: a project name in lower case.")
    page = services.browse(request.dbsession, sort=sort, **cursors)
    return {"page": page, "sort": sort}


JSON = "application/json"
SEARCH_OFFERS = {"text/html": "text/html", JSON: JSON}


@view_config(route_name="search", page_cache=("q", "page", "c", "sort", "format"))
def search_page(request: Request) -> Any:
    """The search page, or the same results as JSON (``?format=json`` or ``Accept``)."""
    kind = negotiate(request, SEARCH_OFFERS, {"html": "text/html", "json": JSON}, default="text/html", strict=False)
    request.response.vary = ("Accept",)
    params = request.GET
    query = params.get("q", "").replace("\x00", "").strip()
    classifiers = [c for c in params.getall("c") if c]
    sort = params.get("sort", "relevance")
    error = None
    if len(query) > MAX_QUERY:
        error = f"Search terms are limited to {MAX_QUERY} characters."
    elif sort not in SEARCH_ORDERS:
        error = f"sort must be one of: {', '.join(SEARCH_ORDERS)}."
    elif len(classifiers) > MAX_CLASSIFIERS or any(len(c) > 255 for c in classifiers):
        error = f"Choose at most {MAX_CLASSIFIERS} classifiers."
    results = None
    number = page_number(params)
    if error:
        request.response.status = 400
    elif query or classifiers:
        db = request.dbsession
        results = page_or_404(lambda: search_projects(db, query, classifiers=classifiers, order=sort, page=number))
    if kind == JSON:
        return render_to_response(
            "json", search_json(request, query, results, error), request=request, response=request.response
        )
    values = {
        "query": query[:MAX_QUERY],
        "classifiers": classifiers,
        "sort": sort,
        "results": results,
        "error": error,
        "all_classifiers": classifier_groups(request.dbsession),
    }
    return render_to_response("myapp:templates/search.jinja2", values, request=request, response=request.response)


def search_json(request: Request, query: str, results: SearchResults | None, error: str | None) -> dict[str, Any]:
    if error or results is None:
        return {"query": query, "error": error or "Give a query (q) or a classifier (c).", "results": []}
    page = results.page
    return {
        "query": query,
        "page": page.number,
        "pages": page.pages,
        "total": page.total,
        "total_is_lower_bound": results.capped,
        "results": [
            {
                "name": row.package.display_name,
                "version": row.latest_version,
                "summary": row.package.summary,
                "updated": row.package.updated.isoformat(),
                "url": request.route_url("project", name=row.package.name),
            }
            for row in page.items
        ],
        "suggestions": results.suggestions,
    }


@view_config(route_name="project", renderer="myapp:templates/project.jinja2", page_cache=True)
def project(request: Request) -> Any:
    """The project and its newest releases; the rest are on the history page.

    The article (everything but the site's header) is the same for everyone
    who may see it: it is kept in the fragment cache under a key read on a
    raw connection before rendering (``project_key``), so the next view, by
    anyone, signed in or not, on a private index too, pays one small
    statement and the layout."""
    key = project_key(request)
    fragment = fragment_cache(request).get(key) if key is not None else None
    if fragment is None:
        if (proxied := missing_project_view(request)) is not None:
            return proxied  # a name not hosted here: the proxy's page, if there is one
        package = project_or_404(request)
        html = render(PROJECT_BODY, project_values(request, package), request=request)
        fragment = Fragment(package.display_name, html)
        if key is not None:
            fragment_cache(request).keep(key, fragment)
    # Safe to mark: the article was rendered by an autoescaping template.
    return {"title": fragment.title, "body": Markup(fragment.html)}  # noqa: S704  # nosec B704


PROJECT_BODY = "myapp:templates/project_body.jinja2"
_PROJECT_VERSION = ReadProbe(services.PROJECT_FRAGMENT_KEY_SQL)


def project_key(request: Request) -> tuple[Any, ...] | None:
    """What the project page's article depends on: the project, its download
    total, the index's serial, and the site's address (its install lines name
    it). None when the page is not one to keep: a name that is not the
    project's own URL (a redirect or a 404 answers), or as ``_key_row`` says."""
    name = request.matchdict["name"]
    if not is_valid_name(name) or normalize(name) != name:
        return None
    found = _key_row(request, _PROJECT_VERSION, name=name)
    if found is None:
        return None
    downloads, index_serial = found
    return ("project", name, index_serial, downloads, request.application_url)


def project_values(request: Request, package: Package) -> dict[str, Any]:
    """What the project page's article shows."""
    db = request.dbsession
    newest = services.release_history(db, package, limit=services.HISTORY_SHOWN + 1)
    more = len(newest) > services.HISTORY_SHOWN
    releases = newest[: services.HISTORY_SHOWN]
    latest = services.latest_in_history(db, package, releases, complete=not more)
    requirements = dependencies.grouped(latest.requires_dist if latest else None)
    return {
        "package": package,
        "install_commands": install_commands(request, package, latest),
        "dependencies": requirements,
        "hosted": dependencies.hosted(db, requirements),
        "releases": releases,
        "more_releases": more,
        "latest": latest,
        "latest_files": services.files_of(db, latest),
        "maintainers": request.context.roles,
        "downloads": services.downloads_by_release(db, releases),
        "description": _description(request, package),
    }


# Set on a site that is the index pip and uv use by default: its install lines
# need not name it. Anywhere else they do, so a private project's users never
# install a public project of the same name instead (dependency confusion).
DEFAULT_INDEX_SETTING = "myapp.default_index"


def install_commands(
    request: Request, package: Package, release: Release | None, *, pin: bool = False
) -> list[tuple[str, str]]:
    """(tool, command) to install ``release`` from this index: pinned if
    asked, or if pip would not pick it on its own (yanked, a pre-release)."""
    if release is None:
        return []
    pinned = pin or release.yanked or release.is_prerelease
    target = package.name + (f"=={release.version}" if pinned else "")
    if asbool(request.registry.settings.get(DEFAULT_INDEX_SETTING, False)):
        index = ""
    else:
        index = f"--index-url {request.route_url('simple.index')} "
    return [("pip", f"pip install {index}{target}"), ("uv", f"uv pip install {index}{target}")]


def _description(request: Request, package: Package) -> Markup:
    """The stored HTML; one never rendered (an import that deferred it) is
    rendered now and stored after the response, so only its first view pays."""
    html = stored_description(package)
    if package.description_renderer is None:
        package_id = package.id
        write_after_response(
            request,
            lambda db: services.store_description(db, package_id, str(html)),
            what=f"the rendered description of {package.name}",
        )
    return html


@view_config(route_name="project_releases", renderer="myapp:templates/releases.jinja2", page_cache=True)
def project_releases(request: Request) -> dict[str, Any]:
    """Every release of a project, newest first."""
    package = project_or_404(request)
    releases = services.release_history(request.dbsession, package)
    return {
        "package": package,
        "releases": releases,
        "latest": services.latest_of(request.dbsession, package),
        "downloads": services.downloads_by_release(request.dbsession, releases),
    }


@view_config(route_name="user", renderer="myapp:templates/user.jinja2")
def user_page(request: Request) -> dict[str, Any]:
    """A user's public page: the projects they maintain."""
    user = find_user(request.dbsession, request.matchdict["username"])
    if user is None or not user.is_active:
        raise HTTPNotFound("There is no such user.")
    return {"user": user, "roles": roles.projects_of(request.dbsession, user)}


@view_config(route_name="release", renderer="myapp:templates/release.jinja2", page_cache=True)
def release(request: Request) -> Any:
    if (proxied := missing_project_view(request)) is not None:
        return proxied  # a version of a name not hosted here: the proxy's page, if there is one
    package = project_or_404(request)
    version = request.matchdict["version"]
    found: Release | None = None
    if _VERSION.match(version):
        found = services.find_release(request.dbsession, package, version)
    if found is None:
        raise HTTPNotFound(f"{package.display_name} has no release {version!r}.")
    return {
        "package": package,
        "release": found,
        "install_commands": install_commands(request, package, found, pin=True),
    }


@view_config(route_name="file")
def download(request: Request) -> Any:
    """Serve the stored bytes (or send the client to the file's original
    address), and count a download once the response is decided. A wheel's
    core metadata is served at its name + ``.metadata``, and not counted."""
    filename = request.matchdict["filename"]
    file = request.context.file  # found (one statement) by the context
    if filename.endswith(METADATA):
        return _core_metadata(request, file, filename.removesuffix(METADATA))
    if file is None or not (file.storage_path or file.url):
        raise HTTPNotFound(f"No file called {filename!r} is available.")
    if file.storage_path:
        served = _store(request).serve(
            request, file.storage_path, etag=file.sha256, content_type=content_type_of(filename)
        )
        response, counts = served.response, served.is_download
    else:
        response, counts = HTTPFound(location=file.url), request.method == "GET"
    if counts:
        downloads.count_when_sent(request, file)
    return response


@view_config(route_name="packages.file")
def download_by_hash(request: Request) -> Any:
    """``/packages/<h1>/<h2>/<rest>/<filename>``: a file (or its ``.metadata``) in
    PyPI's path layout, the hash in the path split in three. A file hosted here
    is served as at ``/files/``, if the path names its sha256; any other name is
    a higher layer's (the proxy's files), or a 404."""
    filename = request.matchdict["filename"]
    name = filename.removesuffix(METADATA)
    file = request.context.file  # found (one statement) by the context
    if file is None:
        hook = request.registry.get(MISSING_FILE_VIEW)
        if hook is not None:
            return hook(request)
        raise HTTPNotFound(f"No file called {name!r} is available.")
    wanted = "".join(request.matchdict[part] for part in ("h1", "h2", "rest")).lower()
    if wanted != file.sha256:
        raise HTTPNotFound(f"No file called {name!r} has that hash.")
    return download(request)


def _core_metadata(request: Request, file: services.StoredFile | None, filename: str) -> Any:
    if file is None or not (file.storage_path and file.metadata_sha256):
        raise HTTPNotFound(f"There is no core metadata for {filename!r}.")
    relative = file.storage_path + METADATA
    store = _store(request)
    return store.serve(request, relative, etag=file.metadata_sha256, content_type=content_type_of(relative)).response


def _store(request: Request) -> FileStore:
    """The bytes are answered by the store: a file sent, a redirect, or a stream (``myapp.files_serve``)."""
    store: FileStore = request.registry["file_store"]
    return store

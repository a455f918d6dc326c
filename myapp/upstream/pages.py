"""The proxy's answers in the index's own formats, through packaging's hooks:

* ``/simple/<name>/`` for a name not hosted here: the upstream project's
  files that the cooldown lets through, in our HTML or JSON, with hashes,
  ``requires-python``, yanks, PEP 658 metadata hashes and PEP 700
  ``upload-time`` (the upstream's; where it gives none, when we first saw
  the file), linking the files on this index (``urls.file_path``), with PEP
  708 ``tracks`` naming the upstream project;
* ``/pypi/<name>/json`` and ``/project/<name>/`` for it, marked "from the
  upstream index";
* for a hosted name whose owner switched on "also serve upstream versions":
  the upstream files beside ours (ours win a filename clash) and PEP 708
  ``tracks`` and ``alternate-locations``. Without that switch a hosted name
  never asks the upstream at all: no dependency confusion.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from functools import partial
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pyramid.httpexceptions import HTTPBadGateway, HTTPMovedPermanently, HTTPNotFound
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response

from myapp.data.meta import utcnow
from myapp.data.rawread import read_first
from myapp.logs import CACHE_KEY
from myapp.packaging.names import is_valid_name
from myapp.packaging.services import ProjectVersion
from myapp.packaging.simple import (
    HostedExtra,
    SimpleFile,
    SimplePage,
    conditional_headers,
    kept_response,
    negotiate,
    page_headers,
    render_page,
)
from myapp.packaging.simple_cache import Page, cache_of
from myapp.upstream import services, urls
from myapp.upstream.fetch import PROXY_KEY, Proxy, Snapshot
from myapp.upstream.models import UpstreamFile
from myapp.upstream.policy import ProjectPolicy, describe_age, next_change, uploaded

MARK = "from the upstream index"


def _proxy(request: Request) -> Proxy:
    proxy: Proxy = request.registry[PROXY_KEY]
    return proxy


def _name(request: Request) -> str:
    """The route's name, normalized: 404 if it cannot be a name, a redirect if not normalized."""
    name = request.matchdict["name"]
    if not is_valid_name(name):
        raise HTTPNotFound(f"There is no project called {name!r}.")
    normalized = canonicalize_name(name)
    if name != normalized:
        raise HTTPMovedPermanently(location=request.current_route_path(_query=request.GET, name=normalized))
    return normalized


def _snapshot(request: Request) -> tuple[str, Snapshot, ProjectPolicy]:
    """The proxied project the route names, and the policy for its files."""
    normalized = _name(request)
    proxy = _proxy(request)
    try:
        snapshot = proxy.project(request.dbsession, request.registry["dbsession_factory"], normalized)
    except HTTPBadGateway:
        request.environ[CACHE_KEY] = "upstream=error"
        raise
    request.environ[CACHE_KEY] = f"upstream={snapshot.found}"
    policy = services.project_policy(
        request.dbsession, proxy.settings, normalized, services.find_policy(request.dbsession, normalized)
    )
    return normalized, snapshot, policy


def _shown(request: Request) -> tuple[str, Snapshot, list[UpstreamFile]]:
    """The proxied project the route names, and its files the policy shows."""
    name, snapshot, policy = _snapshot(request)
    return name, snapshot, services.shown(snapshot.files, policy, utcnow())


def simple_file(request: Request, file: UpstreamFile) -> SimpleFile:
    return SimpleFile(
        filename=file.filename,
        url=urls.file_path(request, file.sha256, file.filename),
        sha256=file.sha256,
        requires_python=file.requires_python,
        size=file.size if file.size is not None else (file.cached_bytes or None),
        upload_time=uploaded(file),
        yanked=(file.yanked_reason or True) if file.yanked else False,
        core_metadata=file.core_metadata_sha256,
    )


def versions_of(files: list[UpstreamFile]) -> list[str]:
    return sorted({f.version for f in files}, key=Version)


def simple_view(request: Request) -> Response:
    """``/simple/<name>/`` for a name not hosted here: kept rendered, as a
    hosted page is, under what it depends on (``services.PageState``, one
    raw read) until the cooldown lets another file out; a page past its TTL
    goes the long way, which serves it and schedules its refresh."""
    kind = negotiate(request)
    name, now = _name(request), utcnow()
    read = partial(read_first, request)
    state = services.page_state(read, name, now, _proxy(request).settings.ttl)
    key = _page_key(request, kind, state) if state is not None and state.fresh else None
    kept = cache_of(request.registry).get(key) if key is not None else None
    if state is not None and kept is not None and kept.holds(now):
        _proxy(request).stats.add("hit")
        request.environ[CACHE_KEY] = "upstream=hit"
        return kept_response(kept, conditional_headers(request, kind, state.serial, kept.etag))
    name, snapshot, policy = _snapshot(request)
    files = services.shown(snapshot.files, policy, now)
    page = SimplePage(
        name=name,
        serial=snapshot.project.serial,
        versions=versions_of(files),
        files=[simple_file(request, f) for f in files],
        etag=f"-p{services.files_etag(files)}",
        tracks=(_proxy(request).settings.project_url(name),),
    )
    response = render_page(request, kind, page, page_headers(request, kind, page))
    # Kept only if nothing it depends on moved while it was read (another process's refresh, an
    # admin): the state read before is the one read after. A first fetch is kept from its next request.
    if key is not None and services.page_state(read, name, now, _proxy(request).settings.ttl) == state:
        until = next_change(snapshot.files, policy, now)
        kept = Page(response.body, response.headers["Content-Type"], page.etag, until)
        cache_of(request.registry).put(key, kept, len(kept.body))
    return response


def _page_key(request: Request, kind: str, state: services.PageState) -> tuple[Any, ...]:
    return ("upstream", state.id, state.created, state.serial, state.exempt, state.released, kind, request.script_name)


def hosted_extra(request: Request, package: ProjectVersion) -> HostedExtra | None:
    """Upstream files beside a hosted project's own, if its owner asked for
    them (``package``: the hosted project's serial read, as the simple page has it)."""
    # Read raw, as the page's serial was: most hosted projects never opt in, and their pages then
    # need no session at all (with a session and an ORM query, a proxy set cost every hosted page 4 statements).
    opted_in = read_first(request, services.ALSO_SERVE_SQL, name=package.name)
    if opted_in is None or not opted_in[0]:
        return None
    db = request.dbsession
    policy_row = services.find_policy(db, package.name)
    proxy = _proxy(request)
    try:
        snapshot = proxy.project(db, request.registry["dbsession_factory"], package.name)
    except HTTPNotFound:  # the upstream has no such project: ours alone
        return None
    except HTTPBadGateway:  # the upstream is down and never answered: our own files still serve
        request.environ[CACHE_KEY] = "upstream=error"
        return None
    request.environ[CACHE_KEY] = f"upstream={snapshot.found}"
    policy = services.project_policy(db, proxy.settings, package.name, policy_row)
    files = services.shown(snapshot.files, policy, utcnow())
    upstream_url = proxy.settings.project_url(package.name)
    return HostedExtra(
        etag=f"-u{services.files_etag(files)}",
        versions=versions_of(files),
        files=[simple_file(request, f) for f in files],
        tracks=(upstream_url,),
        alternate_locations=(upstream_url,),
    )


# -- the JSON API and the project page ------------------------------------------------------


def _time(moment: datetime) -> tuple[str, str]:
    at = moment.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S"), at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def file_json(request: Request, file: UpstreamFile) -> dict[str, Any]:
    plain, iso = _time(uploaded(file))
    return {
        "comment_text": "",
        "digests": {"sha256": file.sha256},
        "downloads": -1,
        "filename": file.filename,
        "has_sig": False,
        "packagetype": file.packagetype,
        "python_version": "source" if file.packagetype == "sdist" else None,
        "requires_python": file.requires_python,
        "size": file.size,
        "upload_time": plain,
        "upload_time_iso_8601": iso,
        "url": request.route_url(urls.ROUTE, **urls.file_parts(file.sha256, file.filename)),
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
    }


def _releases(files: list[UpstreamFile]) -> dict[str, list[UpstreamFile]]:
    """Files by version, newest version first."""
    by_version: dict[str, list[UpstreamFile]] = defaultdict(list)
    for f in files:
        by_version[f.version].append(f)
    return dict(sorted(by_version.items(), key=lambda item: Version(item[0]), reverse=True))


def _latest(releases: dict[str, list[UpstreamFile]]) -> str | None:
    """What pip would pick: the newest final release with a file not yanked, else any."""
    usable = [v for v, fs in releases.items() if any(not f.yanked for f in fs)]
    finals = [v for v in usable if not _is_pre(v)]
    if finals:
        return finals[0]
    return usable[0] if usable else None


def _is_pre(version: str) -> bool:
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False


def json_view(request: Request) -> Response:
    """``/pypi/<name>/json`` (and ``/pypi/<name>/<version>/json``) for a
    proxied project, in PyPI's shape, marked as proxied."""
    name, snapshot, files = _shown(request)
    releases = _releases(files)
    latest = _latest(releases)
    proxy = _proxy(request)
    version = request.matchdict.get("version")
    if version is not None:
        if version not in releases:
            raise HTTPNotFound(f"{name} has no release {version[:100]!r} here.")
        latest, releases = version, {version: releases[version]}
    info = {
        "name": snapshot.project.display_name,
        "version": latest,
        "summary": None,
        "requires_python": next((f.requires_python for f in releases.get(latest or "", [])), None),
        "package_url": request.route_url("project", name=name),
        "project_url": request.route_url("project", name=name),
        "release_url": request.route_url("release", name=name, version=latest) if latest else None,
        "yanked": False,
        "yanked_reason": None,
    }
    body: dict[str, Any] = {"info": info, "last_serial": snapshot.project.serial}
    if version is None:
        body["releases"] = {v: [file_json(request, f) for f in fs] for v, fs in reversed(releases.items())}
    body |= {
        "urls": [file_json(request, f) for f in releases.get(latest or "", [])],
        "vulnerabilities": [],
        "upstream": {"note": MARK, "index": proxy.settings.url, "project": proxy.settings.project_url(name)},
    }
    response = render_to_response("json", body, request=request)
    response.headers["X-PyPI-Last-Serial"] = str(snapshot.project.serial)
    return response


def project_view(request: Request) -> Response:
    """``/project/<name>/`` for a proxied project: its versions and files, marked as proxied."""
    return _project_page(request, None)


def release_view(request: Request) -> Response:
    """``/project/<name>/<version>/`` for a proxied project: that version's files,
    as its project page shows them; 404 for a version it does not show (not
    upstream, or hidden by the cooldown)."""
    return _project_page(request, request.matchdict["version"])


def _project_page(request: Request, version: str | None) -> Response:
    name, snapshot, files = _shown(request)
    releases = _releases(files)
    latest = _latest(releases)
    if version is not None:
        if version not in releases:
            raise HTTPNotFound(f"{name} has no release {version[:100]!r} here.")
        latest, releases = version, {version: releases[version]}
    proxy = _proxy(request)
    values = {
        "name": name,
        "display_name": snapshot.project.display_name,
        "releases": releases,
        "latest": latest,
        "version": version,
        "fetched_at": snapshot.project.fetched_at,
        "upstream_url": proxy.settings.project_url(name),
        "index_url": request.route_url("simple.index"),
        "hidden": len(snapshot.files) - len(files),
        "min_age": describe_age(proxy.settings.min_age) if proxy.settings.min_age else None,
        "file_path": lambda f: urls.file_path(request, f.sha256, f.filename),
    }
    return render_to_response("myapp:templates/upstream/project.jinja2", values, request=request)

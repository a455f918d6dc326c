"""The simple repository API that pip and uv read.

* PEP 503 HTML and PEP 691 JSON, chosen by the ``Accept`` header (quality
  values honoured; HTML when there is none or for ``*/*``; 406 when nothing
  offered is acceptable), with ``Vary: Accept``. ``?format=`` picks one too.
* API version 1.1: PEP 700's ``versions``, ``size`` and ``upload-time``
  (so ``uv --exclude-newer`` works), PEP 592 yanks, and PEP 658/714 core
  metadata (``data-core-metadata``; ``core-metadata`` in JSON).
* ``X-PyPI-Last-Serial`` and an ETag on every page; ``If-None-Match`` gets 304.
* A project's page is rendered once per change of the project
  (``simple_cache``): a request reads the project's serial and is answered
  from memory.
* ``/simple/`` lists every project: it is streamed from a session of its own,
  so a million names never sit in memory at once, and a copy is kept on disk
  under its ETag (in this node's ``myapp.cache_dir``), so the next request
  (from any process on the node) is a file send.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import IO, Any

from packaging.version import InvalidVersion, Version
from pyramid.httpexceptions import HTTPNotFound, HTTPNotModified
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import FileResponse, Response
from pyramid.view import view_config

from myapp.packaging import services
from myapp.packaging.context import current_project, missing_project_view
from myapp.packaging.simple_cache import Page, cache_of, sized
from myapp.web.negotiation import negotiate as web_negotiate

log = logging.getLogger(__name__)

API_VERSION = "1.1"
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
# In order of preference when the client likes several equally: HTML first,
# so that browsers and ``*/*`` get a page and pip's header gets JSON.
OFFERS = {
    "text/html": "text/html",
    HTML: HTML,
    "application/vnd.pypi.simple.latest+html": HTML,
    JSON: JSON,
    "application/vnd.pypi.simple.latest+json": JSON,
}
FORMATS = {"text/html": "text/html", HTML: HTML, JSON: JSON}
# Registry: (request, package) -> HostedExtra | None, set by a higher layer
# (myapp.upstream) to list its files beside a hosted project's own.
HOSTED_EXTRA = "packaging.simple.hosted_extra"
# Registry: an IndexListing, set by a higher layer (myapp.upstream) whose
# projects /simple/ lists too.
INDEX_LISTING = "packaging.simple.index_listing"
PEP_708_VERSION = "1.2"  # the API version of a page that carries tracks/alternate-locations
INDEX_CACHE = ".cache"  # under myapp.cache_dir (this node's own): the last full /simple/ listing of each kind


def negotiate(request: Request) -> str:
    """The representation to send: ``text/html``, the v1 HTML type, or the v1 JSON type."""
    return web_negotiate(request, OFFERS, FORMATS, default="text/html")


def conditional_headers(request: Request, kind: str, serial: int, extra: str = "") -> dict[str, str]:
    """The headers every simple page carries; raises 304 when the client has it."""
    etag = f"{kind.rsplit('/', 1)[-1]}-{serial}{extra}"
    headers = {"ETag": f'"{etag}"', "Vary": "Accept", "X-PyPI-Last-Serial": str(serial)}
    if etag in request.if_none_match:
        raise HTTPNotModified(headers=headers)
    return headers


def _content_type(kind: str) -> str:
    return "text/html" if kind == "text/html" else kind


@dataclass(frozen=True)
class SimpleFile:
    filename: str
    url: str
    sha256: str
    requires_python: str | None
    size: int | None  # None: not known (a proxied file whose upstream gave none)
    upload_time: datetime | None  # None: not known (likewise)
    yanked: str | bool  # False, or the reason (True when none was given)
    core_metadata: str | None  # its sha256

    def as_json(self) -> dict[str, Any]:
        metadata = {"sha256": self.core_metadata} if self.core_metadata else False
        doc: dict[str, Any] = {
            "filename": self.filename,
            "url": self.url,
            "hashes": {"sha256": self.sha256},
            "requires-python": self.requires_python,
            "yanked": self.yanked,
            "core-metadata": metadata,
            "dist-info-metadata": metadata,
        }
        if self.size is not None:
            doc["size"] = self.size
        if self.upload_time is not None:
            doc["upload-time"] = self.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return doc


@dataclass(frozen=True)
class SimplePage:
    """What a project's simple page shows, whoever supplies it: the index
    for its own projects, a higher layer (the proxy) for the others."""

    name: str
    serial: int
    versions: list[str]
    files: list[SimpleFile]
    etag: str = ""  # distinguishes this page's ETag from a hosted project's of the same serial
    tracks: tuple[str, ...] = ()  # PEP 708
    alternate_locations: tuple[str, ...] = ()  # PEP 708


@dataclass(frozen=True)
class IndexListing:
    """What /simple/ lists besides the hosted projects: statements that
    replace ``services.LISTING_HTML``/``LISTING_JSON`` (same columns, same
    order), and what to add to the ETag so that it changes with their rows."""

    html_sql: str
    json_sql: str
    version: Callable[[Request], str]


@dataclass(frozen=True)
class HostedExtra:
    """Files a higher layer lists beside a hosted project's own (ours win a
    filename clash), with the PEP 708 metadata that says whose they are."""

    etag: str  # changes when these files do: added to the page's ETag
    versions: list[str]
    files: list[SimpleFile]
    tracks: tuple[str, ...] = ()
    alternate_locations: tuple[str, ...] = ()


def project_files(request: Request, package_id: int) -> tuple[list[str], list[SimpleFile]]:
    """The project's versions, oldest first, and every file, in one statement each."""
    db = request.dbsession
    versions = services.versions_of(db, package_id)
    files = [
        SimpleFile(
            filename=f.filename,
            url=request.route_path("file", filename=f.filename) if f.storage_path else (f.url or ""),
            sha256=f.sha256,
            requires_python=f.requires_python,
            size=f.size,
            upload_time=f.upload_time,
            yanked=(reason or True) if f.yanked else False,
            core_metadata=f.metadata_sha256 if f.storage_path else None,
        )
        for f, reason in services.files_with_yank_reasons(db, package_id)
    ]
    return versions, files


@view_config(route_name="simple.project", require_methods=["GET", "HEAD"])
def simple_project(request: Request) -> Response:
    """From the kept rendering when the project has not changed (one read of
    its serial); a client that has it gets 304 before anything else is read.
    A name not hosted here is a higher layer's (the proxy's page), or 404."""
    kind = negotiate(request)
    project = current_project(request)
    if project is None:
        if (proxied := missing_project_view(request, known_missing=True)) is not None:
            return proxied
        raise HTTPNotFound(f"There is no project called {request.matchdict['name']!r}.")
    hook = request.registry.get(HOSTED_EXTRA)
    extra: HostedExtra | None = hook(request, project) if hook is not None else None
    headers = conditional_headers(request, kind, project.last_serial, extra.etag if extra else "")
    key = (project.id, project.created, project.last_serial, kind, request.script_name, extra.etag if extra else "")
    page = cache_of(request.registry).get_or_make(key, lambda: sized(_render_project(request, kind, project, extra)))
    return kept_response(page, headers)


def kept_response(page: Page, headers: dict[str, str]) -> Response:
    """A kept page as the response, with the headers of this request's answer."""
    response = Response(body=page.body)
    response.headers["Content-Type"] = page.content_type
    response.headers.update(headers)
    return response


def _render_project(request: Request, kind: str, project: services.ProjectVersion, extra: HostedExtra | None) -> Page:
    versions, files = project_files(request, project.id)
    page = SimplePage(project.name, project.last_serial, versions, files)
    response = render_page(request, kind, with_extra(page, extra) if extra else page, {})
    return Page(response.body, response.headers["Content-Type"])


def with_extra(page: SimplePage, extra: HostedExtra) -> SimplePage:
    """The hosted page with a higher layer's files beside its own: ours win a clash."""
    ours = {f.filename for f in page.files}
    files = sorted([*page.files, *(f for f in extra.files if f.filename not in ours)], key=lambda f: f.filename)
    versions = sorted(set(page.versions) | set(extra.versions), key=_version_key)
    return SimplePage(page.name, page.serial, versions, files, page.etag, extra.tracks, extra.alternate_locations)


def _version_key(version: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(version))
    except InvalidVersion:  # a legacy version: first, as the index sorts them
        return (0, version)


def page_headers(request: Request, kind: str, page: SimplePage) -> dict[str, str]:
    """A page's ETag and serial headers; raises 304 when the client has it."""
    return conditional_headers(request, kind, page.serial, page.etag)


def render_page(request: Request, kind: str, page: SimplePage, headers: dict[str, str]) -> Response:
    """A project's simple page in the negotiated format (PEP 691 JSON or PEP 503 HTML)."""
    pep708 = bool(page.tracks or page.alternate_locations)
    api_version = PEP_708_VERSION if pep708 else API_VERSION
    if kind == JSON:
        meta: dict[str, Any] = {"api-version": api_version, "_last-serial": page.serial}
        if page.tracks:
            meta["tracks"] = list(page.tracks)
        body: dict[str, Any] = {"meta": meta, "name": page.name, "versions": page.versions}
        if page.alternate_locations:
            body["alternate-locations"] = list(page.alternate_locations)
        body["files"] = [f.as_json() for f in page.files]
        response = render_to_response("json", body, request=request)
    else:
        values = {"page": page, "files": page.files, "api_version": api_version}
        response = render_to_response("myapp:templates/simple/project.jinja2", values, request=request)
    response.content_type = _content_type(kind)
    response.headers.update(headers)
    return response


@view_config(route_name="simple.index", require_methods=["GET", "HEAD"])
def simple_index(request: Request) -> Response:
    kind = negotiate(request)
    # O(1) reads: the kept count (a deletion need not move the highest serial) and the serial index.
    count = services.counts(request.dbsession).projects
    serial = services.index_serial(request.dbsession)
    listing: IndexListing | None = request.registry.get(INDEX_LISTING)
    headers = conditional_headers(request, kind, serial, f"-{count}" + (listing.version(request) if listing else ""))
    saved = _saved_index(request, headers["ETag"].strip('"'))
    if saved.is_file():  # rendered before, and nothing has changed since
        response = FileResponse(str(saved), request=request, content_type=_content_type(kind))
    else:
        factory = request.registry["dbsession_factory"]
        if kind == JSON:
            sql = listing.json_sql if listing else services.LISTING_JSON
            body = _index_json(services.listing_batches(factory, sql), serial)
        else:
            sql = listing.html_sql if listing else services.LISTING_HTML
            body = _index_html(request.route_path("simple.index"), services.listing_batches(factory, sql))
        response = Response(app_iter=_saving(body, saved), content_type=_content_type(kind))
    response.headers.update(headers)
    return response


def _saved_index(request: Request, etag: str) -> Path:
    """Where the listing for this ETag is kept (the ETag changes with any project)."""
    return Path(request.registry.settings["myapp.cache_dir"]) / INDEX_CACHE / f"simple-{etag}"


def _saving(body: Iterator[str], target: Path) -> Iterator[bytes]:
    """Send the listing as it is made, and keep a copy for the next request:
    written to a temporary file, renamed into place only when complete (any
    process may then serve it), older copies of the same kind removed. The
    copy is only a cache: if it cannot be written (a full disk, a folder the
    server may not write), the listing is still sent whole, and a warning logged."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Closed by this generator when done or abandoned (it outlives any ``with`` here).
        out: IO[bytes] | None = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=target.parent, delete=False, prefix=".partial-"
        )
    except OSError as exc:
        log.warning("cannot save a copy of /simple/: %s", exc)
        out = None
    partial = Path(out.name) if out is not None else None
    try:
        for chunk in body:
            data = chunk.encode()
            if out is not None:
                try:
                    out.write(data)
                except OSError as exc:
                    log.warning("cannot save a copy of /simple/: %s", exc)
                    _discard(out, partial)
                    out = None  # the rest is only sent
            yield data
    except BaseException:  # the client went away (GeneratorExit) or the database failed
        _discard(out, partial)
        raise
    if out is None or partial is None:
        return
    try:
        out.close()  # flushes: may find the disk full too
        kind = target.name.split("-")[1]
        for old in target.parent.glob(f"simple-{kind}-*"):
            old.unlink(missing_ok=True)
        partial.replace(target)
    except OSError as exc:  # everything was sent; only the copy is lost
        log.warning("cannot save a copy of /simple/: %s", exc)
        _discard(out, partial)


def _discard(out: IO[bytes] | None, partial: Path | None) -> None:
    """Give up the copy: close (whatever the flush says) and remove it."""
    if out is not None:
        with contextlib.suppress(OSError):
            out.close()
    if partial is not None:
        partial.unlink(missing_ok=True)


# A valid name (names.is_valid_name, checked on the way in) has nothing to
# escape in HTML or JSON; a batch holding anything else (it got around that
# check) is escaped whole.
_PLAIN = re.compile(r"[A-Za-z0-9._-]*")


def _plain(texts: list[str]) -> bool:
    return _PLAIN.fullmatch("".join(texts)) is not None


def _index_html(base: str, batches: Iterator[list[tuple[str, str]]]) -> Iterator[str]:
    yield f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="{API_VERSION}">'
    yield "<title>Simple index</title></head><body>\n"
    for batch in batches:
        if not _plain([name + display for name, display in batch]):
            batch = [(escape(name), escape(display)) for name, display in batch]
        yield "".join([f'<a href="{base}{name}/">{display}</a><br>\n' for name, display in batch])
    yield "</body></html>\n"


def _index_json(batches: Iterator[list[tuple[str, int]]], serial: int) -> Iterator[str]:
    yield '{"meta": ' + json.dumps({"api-version": API_VERSION, "_last-serial": serial}) + ', "projects": [\n'
    separator = ""
    for batch in batches:
        if _plain([display for display, _ in batch]):
            yield separator + ",\n".join([f'{{"name": "{d}", "_last-serial": {s}}}' for d, s in batch])
        else:
            yield separator + json.dumps([{"name": d, "_last-serial": s} for d, s in batch])[1:-1]
        separator = ",\n"
    yield "]}\n"

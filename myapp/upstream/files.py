"""The download of a proxied file at ``/packages/<h1>/<h2>/<rest>/<filename>``:
packaging's route for that layout asks this view (``MISSING_FILE_VIEW``) for a
filename not hosted here (and this one hands ``<filename>.metadata`` to the
pages part's ``metadata.metadata_view``).

* The hash in the path must be the file's sha256 (else 404).
* Removed upstream: 404, and its cached bytes are quarantined now (deleted
  from the store, ``quarantined_at`` recorded), if the refresh that saw the
  removal had not done so already.
* A name hosted here whose owner has not switched on "also serve upstream
  versions": 404. Our names never serve the upstream's bytes (no dependency
  confusion), whatever a client asks for.
* Hidden by the cooldown or the freeze (``policy.visible``): 403 with the reason.
* Yanked upstream: served (PEP 592: a yank hides a file from resolution, not
  from a pinned install), marked with an ``X-Yanked`` header.
* Cached: served from the store like our own files (ranges, ETag, cache
  headers), the download noted in memory (a ``Batch`` of ``filecache.Downloads``).
* Not cached: fetched, streamed and verified (``filefetch``); a ``HEAD`` or a
  conditional request that names the file's sha256 answers without fetching.
  A ``Range`` on a first download gets the whole file (a 200, as RFC 9110
  allows): the bytes are hashed whole anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from packaging.utils import canonicalize_name
from pyramid.httpexceptions import HTTPNotFound, HTTPNotModified
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.orm import Session, sessionmaker

from myapp.data.batches import Batch
from myapp.data.meta import utcnow
from myapp.packaging import services as packaging_services
from myapp.packaging.names import is_valid_filename
from myapp.upstream import filecache, filestore, metadata, services, urls
from myapp.upstream.eviction import quarantine
from myapp.upstream.filefetch import FileFacts, FileFetcher
from myapp.upstream.models import UpstreamFile
from myapp.upstream.policy import refusal, visible
from myapp.web.cache import PRIVATE_INDEX
from myapp.web.files import IMMUTABLE, PRIVATE_IMMUTABLE

log = logging.getLogger(__name__)

FILES_KEY = "upstream.files"  # registry: the FileFetcher
CONTENT_TYPES = {".whl": "application/zip", ".zip": "application/zip", ".tar.gz": "application/gzip"}


def content_type_of(filename: str) -> str:
    return next((t for end, t in CONTENT_TYPES.items() if filename.endswith(end)), "application/octet-stream")


def fetcher_of(request: Request) -> FileFetcher:
    fetcher: FileFetcher = request.registry[FILES_KEY]
    return fetcher


def download(request: Request) -> Response:
    """``MISSING_FILE_VIEW``: a proxied file or its ``.metadata``."""
    filename = request.matchdict["filename"]
    if filename.endswith(urls.METADATA):
        # The pages part's metadata view (its own checks): packaging's /packages/ route,
        # registered first, answers these paths too, so they come through here.
        return metadata.metadata_view(request)
    file = filecache.find_file(request.dbsession, filename) if is_valid_filename(filename) else None
    if file is None or urls.sha256_in_path(request.matchdict) != file.sha256:
        raise HTTPNotFound(f"No file called {filename!r} is available.")
    refused = check_allowed(request, file)
    if refused is not None:
        return refused
    return serve_or_fetch(request, file)


def check_allowed(request: Request, file: UpstreamFile) -> Response | None:
    """404 (raised) for a removed file (quarantining its bytes) or a hosted name's;
    the 403 for the cooldown, returned (``policy.refusal``): raised, the forbidden
    view would ask for credentials, which would not help."""
    db = request.dbsession
    factory: sessionmaker[Session] = request.registry["dbsession_factory"]
    name = file.project.name
    if file.removed_at is not None or file.quarantined_at is not None:
        if file.storage_path is not None:
            _quarantine_after(request, factory, file.id)
        raise HTTPNotFound(f"{file.filename} was removed from the upstream index.")
    policy_row = services.find_policy(db, name)
    hosted = packaging_services.find_package(db, canonicalize_name(name)) is not None
    if hosted and not (policy_row is not None and policy_row.also_serve_upstream):
        raise HTTPNotFound(f"No file called {file.filename!r} is available: {name!r} is a project of this index.")
    settings = fetcher_of(request).settings
    allowed, reason = visible(file, services.project_policy(db, settings, name, policy_row), utcnow())
    if not allowed:
        return refusal(request, reason)
    return None


def _quarantine_after(request: Request, factory: sessionmaker[Session], file_id: int) -> None:
    """Once the request's own transaction is over (it answers 404, so it writes nothing)."""
    store = filestore.store_of(request)

    def run(request: Request, response: Response) -> None:
        try:
            quarantine(factory, store, [file_id])
        except Exception:  # the periodic job will; the 404 goes out as it is
            log.warning("could not quarantine upstream file %s now", file_id, exc_info=True)

    request.add_response_callback(run)


def serve_or_fetch(request: Request, file: UpstreamFile) -> Response:
    fetcher = fetcher_of(request)
    factory: sessionmaker[Session] = request.registry["dbsession_factory"]
    facts = FileFacts.of(file)  # plain values: the request's session may end below
    content_type = content_type_of(facts.filename)
    stored_path = facts.storage_path
    for _ in range(2):  # the cached bytes; else fetched (or stored by another process meanwhile)
        if stored_path is not None:
            served = filestore.serve(request, stored_path, etag=facts.sha256, content_type=content_type)
            if served is not None:
                if served.is_download:
                    _note_download(fetcher, facts.id)
                return _marked(served.response, facts)
            # The row says cached but the store has no such object (evicted meanwhile, or
            # lost): forget it and fetch again rather than fail the download.
            log.warning("cached upstream file %s missing from the store; fetching it again", facts.filename)
            with factory() as db:
                filecache.forget_bytes(db, facts.id, stored_path)
                db.commit()
        if request.method == "HEAD" or facts.sha256 in request.if_none_match:
            return _without_fetching(request, facts, content_type)
        _end_read_transaction(request)
        response = fetcher.first_download(request, facts, content_type)
        if response is not None:
            return _marked(response, facts)
        with factory() as db:  # another process stored it while we waited
            row = filecache.get_file(db, facts.id)
            stored_path = row.storage_path if row is not None else None
    raise HTTPNotFound(f"{facts.filename} is not available right now.")


def _end_read_transaction(request: Request) -> None:
    """Give the request's database connection back before a fetch or a wait that
    may take long: so far the request has only read (the checks above), so its
    transaction is ended (aborted: there is nothing to commit) and a fresh one
    begun for whatever runs after. Otherwise 20 clients waiting for one file
    would hold 20 connections, and the pool runs dry before the leader can
    record its verdict."""
    request.tm.abort()
    request.tm.begin()


def _without_fetching(request: Request, file: FileFacts, content_type: str) -> Response:
    """What a HEAD, or a client that has the file, needs to know: no upstream request."""
    cache_control = PRIVATE_IMMUTABLE if request.registry[PRIVATE_INDEX] else IMMUTABLE
    if file.sha256 in request.if_none_match:
        return HTTPNotModified(headers={"ETag": f'"{file.sha256}"', "Cache-Control": cache_control})
    response = Response(content_type=content_type, conditional_response=False)
    response.etag = file.sha256
    response.cache_control = cache_control
    if file.size is not None:
        response.content_length = file.size
    return _marked(response, file)


def _marked(response: Any, file: FileFacts) -> Any:
    """PEP 592: a yanked file is still served (a pinned install may want it), with the yank said."""
    if file.yanked:
        reason = (file.yanked_reason or "yanked upstream")[:200]
        response.headers["X-Yanked"] = " ".join(reason.encode("ascii", "replace").decode("ascii").split())
    return response


def _note_download(fetcher: FileFetcher, file_id: int) -> None:
    fetcher.downloads.add(file_id, filecache.Downloads(utcnow(), 1))


def add_files(config: Any, fetcher: FileFetcher) -> None:
    """The files part, registered by the package's ``includeme`` when an upstream is set:
    the download view (packaging's hook), the maintenance job and its budget trigger.

    ``myapp.upstream_evict_seconds``: how often the periodic job quarantines and
    evicts (300); ``myapp.upstream_download_flush_seconds``: how often download
    times are written (60; 0 writes each one)."""
    from myapp.packaging.context import MISSING_FILE_VIEW
    from myapp.upstream.eviction import MAINTAIN_EVERY_SECONDS, MAINTAIN_KIND, maintain_job
    from myapp.upstream.filefetch import EVICT_KIND

    settings = config.get_settings()
    config.registry[FILES_KEY] = fetcher
    config.registry[MISSING_FILE_VIEW] = download
    config.add_job_handler(EVICT_KIND, maintain_job)
    every = float(settings.get("myapp.upstream_evict_seconds", MAINTAIN_EVERY_SECONDS))
    config.add_periodic_job(MAINTAIN_KIND, maintain_job, seconds=every)


def downloads_batch(registry: Any, settings: dict[str, Any]) -> Batch[int, filecache.Downloads]:
    """Proxied files' download times, written every ``myapp.upstream_download_flush_seconds`` (60)."""
    return Batch(
        "proxied-downloads",
        float(settings.get("myapp.upstream_download_flush_seconds", 60)),
        lambda: registry["dbsession_factory"],
        filecache.write_downloads,
        filecache.Downloads.plus,
        lambda file_id, d: f"{d.count} download(s) of proxied file #{file_id}",
    )

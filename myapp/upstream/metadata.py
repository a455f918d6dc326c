"""PEP 658 core metadata of proxied wheels: ``/packages/.../<file>.whl.metadata``
(route ``upstream.metadata``, registered before ``upstream.file`` so that the
download view never sees these paths).

Served only for a file our page advertised it for: the upstream gave the
metadata's sha256. Fetched from the upstream (``<file URL>.metadata``) the
first time, refused if its bytes do not hash to that sha256 (502, logged),
then kept on this node's disk under ``myapp.cache_dir/.upstream-metadata/``, named
by that hash (content-addressed: any process may write the same bytes), so
resolvers keep working while the upstream is down. The same rules as the
file itself: the cooldown (403 with the reason), and a hosted name shows
upstream files only if its owner opted in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from pyramid.httpexceptions import HTTPBadGateway, HTTPNotFound
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy import select

from myapp.data.meta import utcnow
from myapp.packaging import services as packaging_services
from myapp.packaging.storage import cache_dir
from myapp.upstream import services, urls
from myapp.upstream.client import UpstreamError
from myapp.upstream.fetch import PROXY_KEY, Proxy
from myapp.upstream.models import UpstreamFile
from myapp.upstream.policy import refusal, visible
from myapp.web.files import serve_file

log = logging.getLogger(__name__)

ROUTE = "upstream.metadata"
PATTERN = "/packages/{h1}/{h2}/{rest}/{filename:[^/]+\\.whl\\.metadata}"
CACHE_DIR = ".upstream-metadata"
MAX_BYTES = 10_000_000  # a wheel's METADATA is kilobytes; anything near this is not one


def metadata_view(request: Request) -> Response:
    proxy: Proxy = request.registry[PROXY_KEY]
    db = request.dbsession
    filename = request.matchdict["filename"].removesuffix(urls.METADATA)
    file = db.scalar(select(UpstreamFile).where(UpstreamFile.filename == filename))
    if file is None or urls.sha256_in_path(request.matchdict) != file.sha256 or not file.core_metadata_sha256:
        raise HTTPNotFound("No such file.")
    name = file.project.name
    policy_row = services.find_policy(db, name)
    hosted = packaging_services.find_package(db, name) is not None
    if hosted and not (policy_row and policy_row.also_serve_upstream):
        raise HTTPNotFound("No such file.")  # the name is ours: its upstream files are not served
    shown, reason = visible(file, services.project_policy(db, proxy.settings, name, policy_row), utcnow())
    if not shown:
        return refusal(request, reason)
    path = _kept(request, file.core_metadata_sha256)
    if not path.is_file():
        _fetch(proxy, file, path)
    return serve_file(request, path, etag=file.core_metadata_sha256, content_type="text/plain; charset=utf-8").response


def _kept(request: Request, sha256: str) -> Path:
    return cache_dir(request.registry.settings) / CACHE_DIR / sha256[:2] / sha256


def _fetch(proxy: Proxy, file: UpstreamFile, path: Path) -> None:
    """Fetch, verify and keep the metadata (written whole, then renamed into place)."""
    retry = {"Retry-After": str(max(1, int(proxy.settings.retry_after.total_seconds())))}
    try:
        answer = proxy.client.get(file.url + urls.METADATA, purpose="file", max_bytes=MAX_BYTES)
    except UpstreamError as exc:
        raise HTTPBadGateway(
            f"The upstream index ({proxy.settings.host}) did not give the metadata: {exc}", headers=retry
        ) from None
    if answer.status != 200:
        raise HTTPBadGateway(f"The upstream index answered {answer.status} for the metadata.", headers=retry)
    if hashlib.sha256(answer.body).hexdigest() != file.core_metadata_sha256:
        log.error("metadata of %s from the upstream does not match its sha256; refused", file.filename)
        raise HTTPBadGateway("The upstream's metadata for this file does not match its hash; refused.", headers=retry)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".partial-") as out:
        out.write(answer.body)
    os.replace(out.name, path)

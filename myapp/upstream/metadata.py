"""A proxied wheel's core metadata (PEP 658/714): ``<file URL>.metadata``.

pip and uv read it before choosing a version, so it must keep being served
when the upstream is down: on first request it is fetched from the upstream
(``<upstream file URL>.metadata``), checked against the page's
``core-metadata`` sha256 when the page gave one, stored beside where the
wheel goes (``<content path>.metadata``) and served from the store after.
It is small (capped at ``MAX_BYTES``) and fetched whole, so no single flight:
two concurrent first requests write the same bytes to the same path. It goes
when its wheel is evicted or quarantined.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
from pathlib import Path

from pyramid.httpexceptions import HTTPBadGateway, HTTPNotFound
from pyramid.request import Request
from pyramid.response import Response

from myapp.upstream import filestore
from myapp.upstream.client import UpstreamError
from myapp.upstream.models import UpstreamFile

log = logging.getLogger(__name__)

METADATA = ".metadata"
MAX_BYTES = 5_000_000
CONTENT_TYPE = "text/plain; charset=utf-8"


def serve(request: Request, file: UpstreamFile) -> Response:
    if not file.core_metadata:
        raise HTTPNotFound(f"There is no core metadata for {file.filename!r}.")
    relative = filestore.relative_path(file.sha256, file.filename) + METADATA
    etag = file.core_metadata_sha256 or f"{file.sha256}-metadata"
    served = filestore.serve(request, relative, etag=etag, content_type=CONTENT_TYPE)
    if served is None:
        _fetch(request, file, relative)
        served = filestore.serve(request, relative, etag=etag, content_type=CONTENT_TYPE)
    if served is None:
        raise HTTPNotFound(f"There is no core metadata for {file.filename!r}.")
    return served.response


def _fetch(request: Request, file: UpstreamFile, relative: str) -> None:
    """The upstream's metadata into the store, verified when its hash is known; 502 if it cannot be had."""
    from myapp.upstream.files import fetcher_of  # the view module imports this one

    client = fetcher_of(request).client
    store = filestore.store_of(request)
    try:
        with client.stream(file.url + METADATA, max_bytes=MAX_BYTES) as stream:
            if stream.status != 200:
                raise _bad_gateway(file, f"HTTP {stream.status}")
            body = b"".join(stream.chunks())
    except (UpstreamError, OSError, http.client.HTTPException) as exc:
        raise _bad_gateway(file, f"{type(exc).__name__}: {exc}") from None
    digest = hashlib.sha256(body).hexdigest()
    if file.core_metadata_sha256 is not None and digest != file.core_metadata_sha256:
        log.error(
            "upstream metadata of %s refused: sha256 %s, the page said %s",
            file.filename,
            digest,
            file.core_metadata_sha256,
        )
        raise _bad_gateway(file, "its bytes are not what the upstream's page said (sha256 mismatch)")
    out = filestore.incoming(store)
    source = Path(out.name)
    try:
        with out:
            out.write(body)
        filestore.put(store, source, relative)
    finally:
        source.unlink(missing_ok=True)


def _bad_gateway(file: UpstreamFile, why: str) -> HTTPBadGateway:
    return HTTPBadGateway(
        f"The core metadata of {file.filename} could not be fetched from the upstream index: {why[:300]}",
        headers={"Retry-After": "10"},
    )

"""Serving a stored file, with the response's status decided here, up front.

WebOb can answer conditional and ranged requests itself, but only when the
response is finally sent, after the view (and anything that should depend on
the outcome, such as a download counter) has run; and its ``Range`` parser
raises on ``bytes=-``. Here the view learns what it is serving: the full
file, a part of it, or nothing new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pyramid.httpexceptions import HTTPNotModified, HTTPRequestRangeNotSatisfiable
from pyramid.request import Request
from pyramid.response import FileResponse, Response

# Stored files never change (a name is used once), so caches may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"
# One range: "bytes=first-[last]" or "bytes=-suffix" (RFC 9110, 14.1.2).
_RANGE = re.compile(r"bytes=(?:(?P<first>[0-9]{1,19})-(?P<last>[0-9]{0,19})|-(?P<suffix>[0-9]{1,19}))", re.ASCII)


@dataclass(frozen=True)
class Served:
    response: Response
    # What a download counter counts: a full GET, or the first chunk of a ranged one.
    is_download: bool


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` for a single byte range of a ``size``-byte file; None
    when the range cannot be served. Raises ``ValueError`` for a header that
    asks for no byte range at all (another unit, or several ranges), which
    the caller ignores as RFC 9110 allows."""
    header = header.strip()
    if not header.lower().startswith("bytes=") or "," in header:
        raise ValueError(header)
    match = _RANGE.fullmatch("bytes=" + header[6:].replace(" ", ""))
    if match is None:
        return None
    if match["suffix"] is not None:
        suffix = int(match["suffix"])
        return (max(0, size - suffix), size) if suffix > 0 and size > 0 else None
    first = int(match["first"])
    last = int(match["last"]) if match["last"] else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1) + 1


def serve_file(request: Request, path: Path, *, etag: str | None, content_type: str) -> Served:
    """The file at ``path`` as a 200, 206, 304 or 416 (raised), by the request's
    conditional and ``Range`` headers, with long-lived cache headers."""
    response = FileResponse(str(path), request=request, content_type=content_type)
    response.conditional_response = False  # decided below, not when sent
    response.cache_control = IMMUTABLE
    response.accept_ranges = "bytes"
    if etag:
        response.etag = etag

    # The same precedence as WebOb: If-None-Match, else If-Modified-Since.
    if request.if_none_match and etag:
        not_modified = etag in request.if_none_match
    else:
        since = request.if_modified_since
        not_modified = since is not None and response.last_modified is not None and response.last_modified <= since
    if not_modified:
        return Served(HTTPNotModified(headers=_validators(response)), is_download=False)

    is_get = request.method == "GET"
    header = request.headers.get("Range")
    if header and response in request.if_range:  # no If-Range, or it names this file
        size = response.content_length or 0
        try:
            span = byte_range(header, size)
        except ValueError:
            return Served(response, is_download=is_get)
        if span is None:
            raise HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        start, stop = span
        response.status = 206
        response.content_range = (start, stop, size)
        response.app_iter = response.app_iter_range(start, stop)
        response.content_length = stop - start
        return Served(response, is_download=is_get and start == 0)
    return Served(response, is_download=is_get)


def _validators(response: Response) -> dict[str, str]:
    names = ("ETag", "Last-Modified", "Cache-Control")
    return {name: response.headers[name] for name in names if name in response.headers}

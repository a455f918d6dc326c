"""Serving a stored file, with the response's status decided here, up front.

WebOb can answer conditional and ranged requests itself, but only when the
response is finally sent, after the view (and anything that should depend on
the outcome, such as a download counter) has run; and its ``Range`` parser
raises on ``bytes=-``. Here the view learns what it is serving: the full
file, a part of it, or nothing new. ``myapp.web.guard`` uses the same parsers
to turn away malformed headers before any view (static files included).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyramid.httpexceptions import HTTPNotModified, HTTPRequestRangeNotSatisfiable
from pyramid.request import Request
from pyramid.response import FileIter, Response
from webob.datetime_utils import parse_date

from myapp.web.cache import PRIVATE_INDEX

# Stored files never change (a name is used once), so caches may keep them for good;
# a private index's only in the browser of who fetched them, never in a shared cache.
IMMUTABLE = "public, max-age=31536000, immutable"
PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
BLOCK_SIZE = 256 * 1024  # what Pyramid's FileResponse reads at a time
# One range: "bytes=first-[last]" or "bytes=-suffix" (RFC 9110, 14.1.2).
_RANGE = re.compile(r"bytes=(?:(?P<first>[0-9]{1,19})-(?P<last>[0-9]{0,19})|-(?P<suffix>[0-9]{1,19}))", re.ASCII)


@dataclass(frozen=True)
class Served:
    response: Response
    # What a download counter counts: a full GET, or the first chunk of a ranged one.
    is_download: bool


@dataclass(frozen=True)
class ByteRange:
    """One ``Range: bytes=...`` spec: ``first``-``last`` (``last`` may be
    None), or the final ``suffix`` bytes."""

    first: int | None
    last: int | None
    suffix: int | None

    def span(self, size: int) -> tuple[int, int] | None:
        """``(start, stop)`` within a ``size``-byte file; None if unsatisfiable."""
        if self.suffix is not None:
            return (max(0, size - self.suffix), size) if self.suffix > 0 and size > 0 else None
        assert self.first is not None
        last = self.last if self.last is not None else size - 1
        if self.first >= size or last < self.first:
            return None
        return self.first, min(last, size - 1) + 1


def parse_range(header: str) -> ByteRange | None:
    """The ``Range`` header as one byte range. None for what is no byte range
    we serve (another unit, or several ranges): RFC 9110 lets a server ignore
    those. ``ValueError`` for a malformed byte range (``bytes=-``, ``bytes=--1``),
    on which WebOb's own parser raises."""
    header = header.strip()
    if not header.lower().startswith("bytes=") or "," in header:
        return None
    match = _RANGE.fullmatch("bytes=" + header[6:].replace(" ", ""))
    if match is None:
        raise ValueError("malformed byte range")
    if match["suffix"] is not None:
        return ByteRange(None, None, int(match["suffix"]))
    return ByteRange(int(match["first"]), int(match["last"]) if match["last"] else None, None)


def http_date(value: str) -> datetime | None:
    """An HTTP date, or None if it is not one (WebOb's parser raises on some, e.g. year 99999)."""
    try:
        return parse_date(value)
    except (ValueError, OverflowError):
        return None


def serve_file(request: Request, path: Path, *, etag: str | None, content_type: str) -> Served:
    """The file at ``path`` as a 200, 206, 304 or 416 (raised), by the request's
    conditional and ``Range`` headers, with long-lived cache headers."""
    response = _file_response(request, path, content_type)
    response.cache_control = PRIVATE_IMMUTABLE if request.registry[PRIVATE_INDEX] else IMMUTABLE
    response.accept_ranges = "bytes"
    if etag:
        response.etag = etag

    # The same precedence as WebOb: If-None-Match, else If-Modified-Since.
    if request.if_none_match and etag:
        not_modified = etag in request.if_none_match
    else:
        since = http_date(request.headers.get("If-Modified-Since", ""))
        not_modified = since is not None and response.last_modified is not None and response.last_modified <= since
    if not_modified:
        response.app_iter.close()  # FileResponse opened the file; this answer sends none of it
        return Served(HTTPNotModified(headers=_validators(response)), is_download=False)

    is_get = request.method == "GET"
    wanted = parse_range(request.headers.get("Range", ""))  # the guard has refused malformed ones
    if wanted is not None and _if_range_holds(request, response):
        size = response.content_length or 0
        span = wanted.span(size)
        if span is None:
            response.app_iter.close()
            raise HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        start, stop = span
        response.status = 206
        response.content_range = (start, stop, size)
        response.app_iter = response.app_iter_range(start, stop)
        response.content_length = stop - start
        return Served(response, is_download=is_get and start == 0)
    return Served(response, is_download=is_get)


def _file_response(request: Request, path: Path, content_type: str) -> Response:
    """Pyramid's ``FileResponse`` with one ``fstat`` of the open file, not two
    ``stat`` calls by name before it is opened; ``FileNotFoundError`` if it is not there."""
    file = open(path, "rb")  # noqa: SIM115 - the response's app_iter closes it
    try:
        facts = os.fstat(file.fileno())
        if stat.S_ISDIR(facts.st_mode):
            raise IsADirectoryError(path)
        response = Response(content_type=content_type, conditional_response=False)  # decided here, not when sent
        wrapper = request.environ.get("wsgi.file_wrapper")  # waitress sends it without copying through Python
        response.app_iter = wrapper(file, BLOCK_SIZE) if wrapper else FileIter(file, BLOCK_SIZE)
    except BaseException:
        file.close()
        raise
    response.content_length = facts.st_size  # after app_iter, whose setter clears it
    response.last_modified = facts.st_mtime
    return response


def _if_range_holds(request: Request, response: Response) -> bool:
    """RFC 9110, 13.1.5: serve the range only if ``If-Range`` is absent or names
    this very file (its strong ETag, or exactly its Last-Modified date); else,
    or if it is malformed, the whole file. (WebOb's own check raises on a
    malformed date.)"""
    value = request.headers.get("If-Range", "").strip()
    if not value:
        return True
    if value.startswith(('"', "W/")):
        return response.etag is not None and value == f'"{response.etag}"'
    date = http_date(value)
    return date is not None and response.last_modified == date


def _validators(response: Response) -> dict[str, str]:
    names = ("ETag", "Last-Modified", "Cache-Control")
    return {name: response.headers[name] for name in names if name in response.headers}

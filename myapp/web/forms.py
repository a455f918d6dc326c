"""Multipart forms read by ``multipart`` instead of WebOb's ``cgi.FieldStorage``.

An upload (twine, uv, hatch) is a ``multipart/form-data`` POST. WebOb first
copies the body into a seekable file, then parses it with the standard
library's ``cgi`` module (deprecated, gone in Python 3.13): 1.6 ms for
twine's form with a 20 kB wheel, a quarter of the server's time for an
upload. ``multipart`` (Marcel Hellkamp's parser, one pure-Python module with
no dependencies, strict about the format and bounded by limits) reads the
same form in 0.18 ms. ``request.POST`` is the same WebOb ``MultiDict`` as
before: text fields as ``str``; a file field as a part whose ``filename``
and ``file`` (at its start) are what ``cgi`` gave. URL-encoded forms are
still WebOb's.

A form that breaks the format, or a limit below, is a ``ValueError`` when
``request.POST`` is first read, as WebOb's was for a bad boundary: the
request guard (``web.storable``) answers it with a 400.
"""

from __future__ import annotations

import io
from typing import Any

import multipart
from pyramid.config import Configurator
from pyramid.request import Request
from webob.multidict import MultiDict

from myapp.data import will_retry
from myapp.web.cookies import remember_plain_cookies

# Where WebOb keeps a parsed form, with the body it came from: a request made
# again for the same environ (pyramid_retry) finds it, as WebOb's own would.
PARSED = "webob._parsed_post_vars"
# Bounds for a hostile form. A part up to SPOOL bytes stays in memory, and all
# such parts together stay under IN_MEMORY; larger parts go to a temporary
# file, and their total is bounded by the server's largest body (waitress's
# max_request_body_size): the upload itself refuses a file over its limit
# with a 413. A project may list hundreds of classifiers, each a part.
LIMITS = {"part_limit": 2048, "spool_limit": 1024 * 1024, "memory_limit": 16 * 1024 * 1024}
# A text field (a description) is read whole into memory: this is its bound.
TEXT_LIMIT = 8 * 1024 * 1024


class FormRequest(Request):
    """The request, with multipart forms parsed by ``multipart`` (and a plain
    Cookie header by a split, ``web.cookies``)."""

    # pyramid_retry makes every POST's body seekable (so that a retry can read it again): WebOb copies
    # it to a temporary file on disk above this size (10 KiB by default), here above 1 MiB.
    request_body_tempfile_limit = 1024 * 1024

    def _cookies(self) -> Any:
        remember_plain_cookies(self.environ)
        return Request.cookies.fget(self)

    cookies = property(_cookies, Request.cookies.fset)

    @property
    def POST(self) -> Any:
        if self.method != "POST" or self.content_type != "multipart/form-data":
            return super().POST
        parsed = self.environ.get(PARSED)
        if parsed is not None and parsed[1] is self.body_file_raw:
            return parsed[0]
        self.add_finished_callback(_close_files)  # also when the form cannot be read
        form = read_multipart(self.body_file, self.environ.get("CONTENT_TYPE", ""))
        self.environ[PARSED] = (form, self.body_file_raw)
        return form


def read_multipart(body: Any, content_type: str) -> MultiDict:
    """The form's fields in order; a ``ValueError`` for a form that breaks
    the format or a limit (``multipart.MultipartError`` is one)."""
    options = multipart.parse_options_header(content_type)[1]
    boundary = options.get("boundary", "")
    if not boundary:
        raise ValueError("multipart/form-data without a boundary")
    form = MultiDict()
    try:
        for part in multipart.MultipartParser(body, boundary, charset="utf8", strict=True, **LIMITS):
            if part.filename is not None:
                form.add(part.name, part)
                continue
            try:
                if part.size > TEXT_LIMIT:
                    raise ValueError(f"the form field {part.name[:50]!r} is larger than {TEXT_LIMIT} bytes")
                form.add(part.name, part.value)  # decoding it may raise UnicodeDecodeError, a ValueError
            finally:
                part.close()
    except BaseException:
        close_files(form)
        raise
    return form


def close_files(form: MultiDict) -> None:
    """Close the form's files (a large one is a temporary file on disk)."""
    for value in form.values():
        if isinstance(value, multipart.MultipartPart):
            value.close()


def _close_files(request: Request) -> None:
    """When the request is done, unless pyramid_retry will read the same form again."""
    exc = getattr(request, "exception", None)
    if exc is not None and will_retry(request, exc):
        return
    if PARSED in request.environ:
        close_files(request.environ[PARSED][0])
    body = request.environ.get("wsgi.input")
    if isinstance(body, io.BufferedRandom):  # WebOb's seekable copy of a large body (pyramid_retry asks for one)
        body.close()


def includeme(config: Configurator) -> None:
    # An action of the default order: web.requests bakes the request class later, on this one.
    config.set_request_factory(FormRequest)

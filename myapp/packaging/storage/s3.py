"""An S3 bucket (AWS, MinIO, Ceph, R2, ... anything that speaks S3), through
obstore (why obstore: the README, "File stores").

``myapp.files_store = s3://bucket/prefix``. The endpoint, region and
credentials come from the usual variables (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``) or, where
the environment has none, from ``myapp.s3.endpoint_url``, ``myapp.s3.region``,
``myapp.s3.access_key_id``, ``myapp.s3.secret_access_key``.

Downloads (``myapp.files_serve``):

* ``redirect`` (the default): a 302 to a URL signed for
  ``myapp.files_url_seconds`` (300), or, on a public index with
  ``myapp.files_base_url`` set (a CDN in front of a public bucket), to that
  base + the object's path. A private index only ever hands out signed,
  short-lived URLs (at most 15 minutes), and only after the view's
  permission check.
* ``proxy``: the bytes are streamed through the app (a store the clients
  cannot reach), with ``Range`` honoured.

Uploads are written while the request runs (``writes_early``): by the time
the database commits, the object is there; if the transaction aborts, it is
deleted again.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store
from pyramid.httpexceptions import HTTPFound, HTTPNotModified, HTTPRequestRangeNotSatisfiable, HTTPServiceUnavailable
from pyramid.request import Request
from pyramid.response import Response

from myapp.packaging.storage.base import (
    CHUNK,
    FileStore,
    Readable,
    StoredObject,
    StoreUnavailable,
    content_type_of,
    is_content_path,
)
from myapp.web.cache import PRIVATE_INDEX
from myapp.web.files import IMMUTABLE, PRIVATE_IMMUTABLE, Served, parse_range

if TYPE_CHECKING:
    from obstore import BytesStream, ObjectMeta

log = logging.getLogger(__name__)

DEFAULT_URL_SECONDS = 300
# A private index's signed URLs live no longer than this, whatever myapp.files_url_seconds says.
PRIVATE_MAX_URL_SECONDS = 900
CONNECT_TIMEOUT = timedelta(seconds=5)
RETRY_TIMEOUT = timedelta(seconds=15)
SERVE_MODES = ("redirect", "proxy")
# The environment wins over the ini (as DATABASE_URL does): (variable, setting, obstore's key).
CONFIG = (
    ("AWS_ENDPOINT_URL", "myapp.s3.endpoint_url", "endpoint"),
    ("AWS_REGION", "myapp.s3.region", "region"),
    ("AWS_ACCESS_KEY_ID", "myapp.s3.access_key_id", "access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "myapp.s3.secret_access_key", "secret_access_key"),
)
UNAVAILABLE = "This file is temporarily unavailable. The site's operators have been told."


@contextmanager
def _answers(relative: str = "", *, reading: bool = True) -> Iterator[None]:
    """obstore's errors as ours: a missing object (when reading one) is
    FileNotFoundError; anything else (network, credentials, no such bucket)
    StoreUnavailable."""
    try:
        yield
    except (NotFoundError, FileNotFoundError) as exc:  # obstore raises either
        if not reading:  # a write or a listing that finds nothing: the bucket is missing
            raise StoreUnavailable(f"{type(exc).__name__}: no such bucket?") from exc
        raise FileNotFoundError(relative) from exc
    except BaseError as exc:
        raise StoreUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _settings_config(settings: dict[str, Any]) -> dict[str, str]:
    config = {}
    for variable, setting, key in CONFIG:
        value = os.environ.get(variable) or str(settings.get(setting) or "").strip()
        if value:
            config[key] = value
    return config


class S3FileStore(FileStore):
    writes_early = True

    def __init__(
        self,
        url: str,
        store: S3Store,
        scratch: Path,
        *,
        serve: str = "redirect",
        url_seconds: int = DEFAULT_URL_SECONDS,
        base_url: str = "",
    ) -> None:
        if serve not in SERVE_MODES:
            raise ValueError(f"myapp.files_serve must be one of {', '.join(SERVE_MODES)}, not {serve!r}")
        self._url = url
        self.store = store
        self.scratch = scratch
        self.serve_mode = serve
        self.url_seconds = url_seconds
        self.base_url = base_url.rstrip("/")

    @classmethod
    def from_url(cls, url: str, settings: dict[str, Any], *, scratch: Path) -> S3FileStore:
        config = _settings_config(settings)
        options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
        if config.get("endpoint", "").startswith("http://"):
            options["allow_http"] = True
        # A store that does not answer is a 503 in seconds, not a request that hangs for minutes.
        retry = {"max_retries": 3, "retry_timeout": RETRY_TIMEOUT}
        store = S3Store.from_url(url, config=config, client_options=options, retry_config=retry)  # type: ignore[arg-type]
        return cls(
            url,
            store,
            scratch,
            serve=str(settings.get("myapp.files_serve") or "redirect").strip(),
            url_seconds=int(settings.get("myapp.files_url_seconds") or DEFAULT_URL_SECONDS),
            base_url=str(settings.get("myapp.files_base_url") or "").strip(),
        )

    @property
    def url(self) -> str:
        return self._url

    # -- primitive operations ------------------------------------------------------

    def stat(self, relative: str) -> StoredObject | None:
        try:
            with _answers(relative):
                meta = obstore.head(self.store, relative)
        except FileNotFoundError:
            return None
        return _stored(meta)

    def open(self, relative: str) -> IO[bytes]:
        with _answers(relative):
            result = obstore.get(self.store, relative)
        return io.BufferedReader(_StreamReader(result.stream(min_chunk_size=CHUNK), relative), CHUNK)

    def write(self, relative: str, stream: Readable) -> None:
        _check(relative)
        # obstore takes a seekable file whole (one PUT, or multipart over 5 MiB); anything else as chunks.
        seekable = isinstance(stream, io.IOBase) and stream.seekable()
        source: Any = stream if seekable else iter(lambda: stream.read(CHUNK), b"")
        with _answers(relative, reading=False):
            obstore.put(self.store, relative, source, attributes={"Content-Type": content_type_of(relative)})

    def put_file(self, source: Path, relative: str) -> None:
        _check(relative)
        try:
            with _answers(relative, reading=False):
                obstore.put(self.store, relative, source, attributes={"Content-Type": content_type_of(relative)})
        finally:
            source.unlink(missing_ok=True)

    def delete(self, relative: str) -> None:
        _check(relative)
        with _answers(relative, reading=False):  # S3 deletes what is not there without a word
            obstore.delete(self.store, relative)

    def iter_objects(self) -> Iterator[StoredObject]:
        with _answers(reading=False):
            for page in obstore.list(self.store, chunk_size=1000):
                yield from (_stored(meta) for meta in page)

    def health(self, settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The bucket answers a listing, and this node has room for temporary files."""
        try:
            with _answers(reading=False):
                next(iter(obstore.list(self.store, chunk_size=1)), None)
        except StoreUnavailable as exc:
            log.warning("the file store does not answer: %s", exc)
            return "store unavailable", {}
        self.scratch.mkdir(parents=True, exist_ok=True)  # this node's own folder: made when missing
        state, free = self.scratch_space(settings)
        return state, {"files_free_bytes": free}

    # -- downloads -----------------------------------------------------------------

    def signed_url(self, relative: str, seconds: int | None = None) -> str:
        with _answers(relative):
            return obstore.sign(self.store, "GET", relative, timedelta(seconds=seconds or self.url_seconds))

    def serve(self, request: Request, relative: str, *, etag: str | None, content_type: str) -> Served:
        if etag and request.if_none_match and etag in request.if_none_match:
            return Served(HTTPNotModified(headers={"ETag": f'"{etag}"'}), is_download=False)
        if self.serve_mode == "proxy":
            return self._proxy(request, relative, etag=etag, content_type=content_type)
        wanted = parse_range(request.headers.get("Range", ""))  # the guard has refused malformed ones
        counts = request.method == "GET" and (wanted is None or wanted.first == 0)
        private = bool(request.registry.get(PRIVATE_INDEX))
        if self.base_url and not private:
            response = HTTPFound(location=f"{self.base_url}/{quote(relative)}")
            response.cache_control = "public, max-age=86400"
        else:
            seconds = min(self.url_seconds, PRIVATE_MAX_URL_SECONDS) if private else self.url_seconds
            try:
                response = HTTPFound(location=self.signed_url(relative, seconds))
            except StoreUnavailable as exc:
                log.error("cannot sign a URL for %s: %s", relative, exc)
                raise _unavailable() from exc
            response.cache_control = "private, no-store"  # the signature expires: no cache keeps it
        return Served(response, is_download=counts)

    def _proxy(self, request: Request, relative: str, *, etag: str | None, content_type: str) -> Served:
        """The bytes through the app, streamed (a whole file never sits in memory)."""
        try:
            found = self.stat(relative)
        except StoreUnavailable as exc:
            log.error("the file store does not answer for %s: %s", relative, exc)
            raise _unavailable() from exc
        if found is None:
            log.error("stored file missing: %s (expected at %s/%s)", relative.rsplit("/", 1)[-1], self.url, relative)
            raise _unavailable()
        size, is_get = found.size, request.method == "GET"
        response = Response(content_type=content_type)
        response.cache_control = PRIVATE_IMMUTABLE if request.registry.get(PRIVATE_INDEX) else IMMUTABLE
        response.accept_ranges = "bytes"
        if etag:
            response.etag = etag
        wanted = parse_range(request.headers.get("Range", ""))
        if_range = request.headers.get("If-Range", "").strip()
        span = (0, size)
        if wanted is not None and (not if_range or (etag is not None and if_range == f'"{etag}"')):
            ranged = wanted.span(size)
            if ranged is None:
                raise HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
            span = ranged
            response.status = 206
            response.content_range = (span[0], span[1], size)
        if request.method == "HEAD" or span[1] == span[0]:
            response.app_iter = []
        else:
            response.app_iter = self._stream(relative, span)
        response.content_length = span[1] - span[0]  # after app_iter, whose setter clears it
        return Served(response, is_download=is_get and span[0] == 0)

    def _stream(self, relative: str, span: tuple[int, int]) -> Iterator[bytes]:
        with _answers(relative):
            result = obstore.get(self.store, relative, options={"range": span})
        for chunk in result.stream(min_chunk_size=CHUNK):
            yield bytes(chunk)


def _check(relative: str) -> None:
    """The same paths as a local store takes (a key is written, deleted, signed only for these)."""
    if not is_content_path(relative):
        raise ValueError(f"not a stored file's path: {relative!r}")


def _unavailable() -> HTTPServiceUnavailable:
    return HTTPServiceUnavailable(UNAVAILABLE, headers={"Retry-After": "30"})


def _stored(meta: ObjectMeta) -> StoredObject:
    return StoredObject(meta["path"], meta["size"], meta["last_modified"].timestamp())


class _StreamReader(io.RawIOBase):
    """A file-like reader over a stream of chunks (one GET, read as it comes)."""

    def __init__(self, chunks: Iterator[bytes] | BytesStream, relative: str) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")
        self._relative = relative

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not len(self._left):
            try:
                with _answers(self._relative):
                    self._left = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

"""A proxied file's first download: fetched from the upstream once, streamed
to the client while it is written to a temporary file and hashed, verified
against the sha256 the upstream's page gave, and only then stored.

Single flight, across threads and processes (``filecache.claim_fetch``, a
conditional UPDATE): of concurrent first downloads of one file, one request
(the *leader*) fetches it. The others in the leader's process *follow* its
temporary file as it grows (``growing``), each chunk sent on as it is
written and the last held back until the leader's verdict; those in other
processes *wait* for the verdict, polling the row (no memory held, a few
small reads), then serve the stored file like any cached one, their first
byte coming when the leader's last does. Either way there is one upstream
fetch per file, and a hash mismatch reaches no client as a good file. A
follower is cut short with its leader, also when the leader's client leaves
mid-file (the next request fetches again). A leader keeps its claim alive while
it streams (a long file); a leader that dies leaves a claim that expires
(``LEASE``), and a waiter takes over. A waiter gives up after ``MAX_WAIT``
with a 503 and ``Retry-After``.

The client must never receive a bad file as a good one: the leader holds
back the last chunk until the whole file is hashed. On a mismatch (or a size
other than promised, or an upstream that stops early) the response is
aborted short of its ``Content-Length`` (or without the closing chunk), which
every client treats as a failed download; nothing is kept, the failure is
logged and written on the row (waiters answer 502 with it), and the claim is
freed, so the next request fetches again.

Memory: one chunk in flight and one held back (``client.CHUNK``, 64 KiB), per
leader; the bytes go to a temporary file in the store's scratch folder.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyramid.httpexceptions import HTTPBadGateway, HTTPServiceUnavailable
from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from myapp.data.batches import Batch
from myapp.data.jobs import enqueue
from myapp.data.meta import utcnow
from myapp.upstream import filecache, filestore
from myapp.upstream.client import CHUNK, Stream, UpstreamClient, UpstreamError
from myapp.upstream.growing import Fetches, Growing
from myapp.upstream.models import UpstreamFile
from myapp.upstream.settings import UpstreamSettings
from myapp.web.cache import PRIVATE_INDEX
from myapp.web.files import IMMUTABLE, PRIVATE_IMMUTABLE

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # a claim lives this long unless its leader renews it...
RENEW_EVERY = 20.0  # ...which a streaming leader does this often (seconds)
MAX_WAIT = 600.0  # a waiter's patience (seconds), then 503
POLL_FIRST = 0.02  # seconds between a waiter's looks at the row, doubling...
POLL_MAX = 0.25  # ...up to this
EVICT_KIND = "upstream.files.evict"  # queued after a fetch that takes the cache past its budget


class FetchRefused(Exception):
    """The upstream's bytes are not the file its page promised: the response is
    aborted (raised from the body's iterator, so the server cuts the connection)."""


@dataclass(frozen=True)
class FileFacts:
    """What a fetch needs of the row (a plain copy: no session holds it while streaming)."""

    id: int
    filename: str
    url: str
    sha256: str
    size: int | None
    storage_path: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None

    @classmethod
    def of(cls, row: UpstreamFile) -> FileFacts:
        return cls(row.id, row.filename, row.url, row.sha256, row.size, row.storage_path, row.yanked, row.yanked_reason)

    @property
    def relative(self) -> str:
        return filestore.relative_path(self.sha256, self.filename)


class FileFetcher:
    """The files part's state in a process (registry ``FILES_KEY``)."""

    def __init__(
        self, settings: UpstreamSettings, client: UpstreamClient, downloads: Batch[int, filecache.Downloads]
    ) -> None:
        self.settings = settings
        self.client = client
        self.downloads = downloads
        self.growing = Fetches()

    # -- what the download view calls -------------------------------------------------------

    def first_download(self, request: Request, file: FileFacts, content_type: str) -> Response | None:
        """The leader's streaming response, or None once another process has stored
        the file (the caller serves it from the store); 502/503 raised."""
        factory: sessionmaker[Session] = request.registry["dbsession_factory"]
        started = utcnow()
        deadline = time.monotonic() + MAX_WAIT
        pause = POLL_FIRST
        while time.monotonic() < deadline:
            if (followed := self._follow(request, file, content_type)) is not None:
                return followed
            with factory() as db:
                claimed = filecache.claim_fetch(db, file.id, utcnow(), LEASE)
                db.commit()
            if claimed:
                return self._lead(request, factory, file, content_type)
            with factory() as db:
                row = filecache.get_file(db, file.id)
                if row is None or row.storage_path is not None:
                    return None
                if row.fetch_failed_at is not None and row.fetch_failed_at >= started:
                    raise self._bad_gateway(file, row.fetch_error or "the fetch failed")
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX)
        raise HTTPServiceUnavailable(
            f"{file.filename} is still being fetched from the upstream index; try again shortly.",
            headers={"Retry-After": "30"},
        )

    def _bad_gateway(self, file: FileFacts, why: str) -> HTTPBadGateway:
        return HTTPBadGateway(
            f"{file.filename} could not be fetched from the upstream index ({self.settings.host}): {why[:300]}",
            headers={"Retry-After": "10"},
        )

    def _lead(self, request: Request, factory: sessionmaker[Session], file: FileFacts, content_type: str) -> Response:
        """We hold the claim: open the upstream's answer now (so that a refusal is
        a clean 502), and stream it through verification as the response body."""
        limit = file.size if file.size is not None else None
        stack = ExitStack()
        try:
            stream = stack.enter_context(self.client.stream(file.url, max_bytes=limit))
            if stream.status != 200:
                raise UpstreamError(f"{stream.url}: HTTP {stream.status}")
            declared = stream.headers.get("content-length")
            length = int(declared) if declared is not None and declared.isdigit() else None
            if length is not None and file.size is not None and length != file.size:
                raise UpstreamError(f"{stream.url}: {length} bytes, but the page said {file.size}")
        except UpstreamError as exc:
            stack.close()
            self._fail(factory, file, str(exc))
            raise self._bad_gateway(file, str(exc)) from None
        except BaseException:
            stack.close()
            _release(factory, file)
            raise
        body = Pull(self, factory, request.registry, file, stream, stack)
        return _streamed(request, body, file, content_type, length if length is not None else file.size)

    def _follow(self, request: Request, file: FileFacts, content_type: str) -> Response | None:
        """A response that follows this process's fetch of ``file`` as it grows; None if there is none."""
        growing = self.growing.get(file.id)
        if growing is None or (source := growing.open()) is None:
            return None
        return _streamed(request, growing.follow(source, CHUNK, MAX_WAIT), file, content_type, file.size)

    def _fail(self, factory: sessionmaker[Session], file: FileFacts, why: str) -> None:
        log.error("upstream file %s refused: %s", file.filename, why)
        try:
            with factory() as db:
                filecache.record_failure(db, file.id, why, utcnow())
                db.commit()
        except SQLAlchemyError:
            log.exception("could not record the failed fetch of %s", file.filename)

    def renew(self, factory: sessionmaker[Session], file: FileFacts) -> None:
        try:
            with factory() as db:
                filecache.renew_claim(db, file.id, utcnow() + LEASE)
                db.commit()
        except SQLAlchemyError:  # a busy database: the lease is long enough for the next try
            log.warning("could not renew the claim on %s", file.filename, exc_info=True)

    def stored(self, factory: sessionmaker[Session], registry: Any, file: FileFacts, source: Path, size: int) -> None:
        """Place the verified bytes and say so on the row; queue an eviction if over budget."""
        filestore.put(filestore.store_of(registry), source, file.relative)
        with factory() as db:
            filecache.record_cached(db, file.id, file.relative, size, utcnow())
            if self.settings.cache_bytes and filecache.cached_total(db) > self.settings.cache_bytes:
                enqueue(db, EVICT_KIND, {}, max_attempts=1)
            db.commit()
        log.info("cached upstream file %s (%d bytes)", file.filename, size)


def _streamed(
    request: Request, body: Iterable[bytes], file: FileFacts, content_type: str, length: int | None
) -> Response:
    """A first download's response, the leader's or a follower's: the length when known, the file's hash as ETag."""
    response = Response(app_iter=body, content_type=content_type, conditional_response=False)
    if length is not None:
        response.content_length = length
    response.etag = file.sha256
    response.cache_control = PRIVATE_IMMUTABLE if request.registry[PRIVATE_INDEX] else IMMUTABLE
    return response


def _release(factory: sessionmaker[Session], file: FileFacts) -> None:
    try:
        with factory() as db:
            filecache.release_claim(db, file.id)
            db.commit()
    except SQLAlchemyError:  # it expires by itself
        log.warning("could not release the claim on %s", file.filename, exc_info=True)


class Pull:
    """The leader's response body: upstream chunks, written and hashed as they
    pass, the last one held back until the whole file is verified and stored."""

    def __init__(
        self,
        fetcher: FileFetcher,
        factory: sessionmaker[Session],
        registry: Any,
        file: FileFacts,
        stream: Stream,
        stack: ExitStack,
    ) -> None:
        self.fetcher = fetcher
        self.factory = factory
        self.registry = registry
        self.file = file
        self.stream = stream
        self.stack = stack
        self.settled = False  # stored, or refused and recorded: the claim is no longer ours
        self.growing: Growing | None = None  # the file as it grows, for this process's followers

    def __iter__(self) -> Iterator[bytes]:
        store = filestore.store_of(self.registry)
        out = filestore.incoming(store)
        temp = Path(out.name)
        self.stack.callback(temp.unlink, missing_ok=True)  # a no-op once placed
        self.stack.callback(out.close)
        self.growing = self.fetcher.growing.start(self.file.id, temp)
        self.stack.callback(self.fetcher.growing.end, self.file.id, self.growing)
        self.stack.callback(self.growing.settle, False)  # a no-op once settled: else the followers stop
        digest = hashlib.sha256()
        size = 0
        held: bytes | None = None
        renewed = time.monotonic()
        try:
            for chunk in self.stream.chunks():
                digest.update(chunk)
                out.write(chunk)
                out.flush()  # for the followers
                size += len(chunk)
                self.growing.advance(size)
                if held is not None:
                    yield held
                held = chunk
                if time.monotonic() - renewed > RENEW_EVERY:
                    self.fetcher.renew(self.factory, self.file)
                    renewed = time.monotonic()
            out.close()
        except UpstreamError as exc:
            self._refuse(f"{exc}")
        except (OSError, http.client.HTTPException) as exc:  # the scratch disk, or the upstream's socket
            self._refuse(f"{type(exc).__name__}: {exc}")
        got = digest.hexdigest()
        if got != self.file.sha256:
            self._refuse(f"sha256 mismatch: the page said {self.file.sha256}, the bytes are {got} ({size} bytes)")
        if self.file.size is not None and size != self.file.size:
            self._refuse(f"{size} bytes, but the page said {self.file.size}")
        self.fetcher.stored(self.factory, self.registry, self.file, temp, size)
        self.settled = True
        self.growing.settle(True)
        if held is not None:
            yield held

    def _refuse(self, why: str) -> None:
        if self.growing is not None:  # the followers are cut short first
            self.growing.settle(False)
        self.fetcher._fail(self.factory, self.file, why)
        self.settled = True
        raise FetchRefused(f"{self.file.filename}: {why}")

    def close(self) -> None:
        """The server is done with the body: finished, refused, or the client left."""
        try:
            self.stack.close()
        finally:
            if not self.settled:  # the client went away mid-file: a waiter may fetch it instead
                _release(self.factory, self.file)
                self.settled = True

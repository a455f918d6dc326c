"""A careful HTTP client for the upstream index: everything it answers is hostile.

* http(s) only; at most ``MAX_REDIRECTS`` redirects, followed here (never by
  the library), each hop checked again.
* Every host name is resolved here and the connection made to the address
  that was checked (no second lookup an attacker's DNS could answer
  differently). Loopback, private, link-local, reserved, multicast and
  unspecified addresses are refused, except for the configured upstream's
  own host, which the operator chose (a proxy of an index on the same
  network, and the tests' server on 127.0.0.1).
* Files only from the upstream's host or ``myapp.upstream_file_hosts``.
* Credentials (``MYAPP_UPSTREAM_USERNAME``/``_PASSWORD``) are sent to the
  upstream's own host only, and never over a redirect to another.
* A timeout on connecting and on each read, a deadline for a whole page, a
  cap on a page's bytes (after gzip is undone, which is capped as it goes).
* Connections are kept alive (a few per host) once an answer was read to its
  end, so a cold page costs the upstream's latency, not a new TLS handshake.

Why the standard library's ``http.client`` rather than urllib3 or httpx
(README, "Proxy the public index"): the proxy needs to connect to the very
address it checked, to refuse redirects before following them, and to cap
bytes as they arrive; ``http.client`` gives exactly those hooks with no new
run-time dependency (urllib3 is only in the testing extra, through twine).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

from myapp.upstream.settings import UpstreamSettings

MAX_REDIRECTS = 5
MAX_IDLE = 4  # kept-alive connections per host (a new TLS handshake costs more than the page)
CHUNK = 64 * 1024
USER_AGENT = "myapp-proxy/1"
Purpose = Literal["page", "file"]
PoolKey = tuple[str, str, int]  # scheme, host, port


class UpstreamError(Exception):
    """The upstream could not be asked, or answered something we refuse.
    ``str()`` is safe to show an operator (no credentials)."""


class Refused(UpstreamError):
    """A URL or redirect the rules above do not allow."""


class TooLarge(UpstreamError):
    """An answer larger than its cap."""


@dataclass
class Answer:
    """A complete, capped answer (a simple page)."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    url: str  # after redirects
    elapsed: float = 0.0


@dataclass
class Stream:
    """An answer whose body is read in chunks (a file): ``chunks()`` stops
    with ``TooLarge`` past ``max_bytes``."""

    status: int
    headers: dict[str, str]
    url: str
    _response: http.client.HTTPResponse = field(repr=False)
    max_bytes: int | None = None

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        seen = 0
        while True:
            chunk = self._response.read(size)
            if not chunk:
                return
            seen += len(chunk)
            if self.max_bytes is not None and seen > self.max_bytes:
                raise TooLarge(f"{self.url}: more than {self.max_bytes} bytes")
            yield chunk


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified
    )


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to ``address`` (checked) while naming ``host`` in the request."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _close_all(idle: dict[PoolKey, list[http.client.HTTPConnection]]) -> None:
    for connections in idle.values():
        for connection in connections:
            connection.close()
    idle.clear()


class UpstreamClient:
    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._tls = ssl.create_default_context()
        self._idle: dict[PoolKey, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        # Idle connections are closed when the client goes (an app made and dropped, as in tests).
        weakref.finalize(self, _close_all, self._idle)

    # -- checks -------------------------------------------------------------------------

    def check_url(self, url: str, purpose: Purpose) -> tuple[str, str, int]:
        """(scheme, host, port) of a URL we may fetch for ``purpose``; Refused otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise Refused(f"not a valid URL: {url[:200]!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused(f"only http(s) URLs are fetched, not {url[:200]!r}")
        host = parts.hostname.lower()
        if purpose == "file" and host not in self.settings.allowed_file_hosts:
            allowed = ", ".join(sorted(self.settings.allowed_file_hosts))
            raise Refused(f"files are fetched only from {allowed}, not {host}")
        return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)

    def resolve(self, host: str, port: int) -> str:
        """One address of ``host`` that we may connect to (every address must be allowed)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UpstreamError(f"cannot resolve {host}: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise UpstreamError(f"cannot resolve {host}")
        if host != self.settings.host:
            for address in addresses:
                if not is_public(address):
                    raise Refused(f"{host} is at a private or local address ({address}); refused")
        return addresses[0]

    # -- requests -----------------------------------------------------------------------

    def _headers(self, host: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **(extra or {})}
        if host == self.settings.host and self.settings.username is not None:
            token = f"{self.settings.username}:{self.settings.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        return headers

    # -- kept-alive connections ------------------------------------------------------------

    def _new_connection(self, key: PoolKey) -> http.client.HTTPConnection:
        scheme, host, port = key
        address = self.resolve(host, port)  # checked here, once: the connection stays pinned to it
        timeout = self.settings.timeout
        if scheme == "https":
            return _PinnedHTTPS(host, port, address, timeout, self._tls)
        return _PinnedHTTP(host, port, address, timeout)

    def _idle_connection(self, key: PoolKey) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _release(
        self, key: PoolKey, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        """Keep a connection whose answer was read to the end, for the next request to that host."""
        if response.will_close or not response.isclosed():
            connection.close()
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE:
                idle.append(connection)
                return
        connection.close()

    def _send(
        self, key: PoolKey, target: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """GET on a kept-alive connection if there is one (once more on a new
        one if the server had closed it meanwhile), else on a new one."""
        connection = self._idle_connection(key)
        if connection is not None:
            try:
                connection.request("GET", target, headers=headers)
                return connection, connection.getresponse()
            except (OSError, http.client.HTTPException):
                connection.close()  # closed by the server while idle: not the upstream's fault
        connection = self._new_connection(key)
        try:
            connection.request("GET", target, headers=headers)
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise UpstreamError(f"{key[1]}: {type(exc).__name__}: {exc}") from None

    def _open(
        self, url: str, purpose: Purpose, headers: dict[str, str] | None
    ) -> tuple[PoolKey, http.client.HTTPConnection, http.client.HTTPResponse, str]:
        """Send a GET, following redirects by the rules; the caller releases or closes the connection."""
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port = self.check_url(url, purpose)
            key = (scheme, host, port)
            parts = urlsplit(url)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection, response = self._send(key, target, self._headers(host, headers))
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location") or ""
                connection.close()
                if not location:
                    raise UpstreamError(f"{url}: a redirect without a Location")
                following = urljoin(url, location)
                if scheme == "https" and following.lower().startswith("http:"):
                    raise Refused(f"{url}: a redirect from https to http is refused")
                url = following
                continue
            return key, connection, response, url
        raise Refused(f"more than {MAX_REDIRECTS} redirects")

    def get(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        max_bytes: int | None = None,
        purpose: Purpose = "page",
    ) -> Answer:
        """A whole answer (gzip allowed), at most ``max_bytes`` (default: the page
        cap) once decoded; ``purpose="file"`` for what lives on the file hosts
        (a wheel's metadata)."""
        cap = max_bytes if max_bytes is not None else self.settings.max_page_bytes
        started = time.monotonic()
        deadline = started + self.settings.timeout * 3
        key, connection, response, final = self._open(url, purpose, {"Accept-Encoding": "gzip", **(headers or {})})
        done = False
        try:
            declared = response.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > cap:
                raise TooLarge(f"{final}: {declared} bytes, more than {cap}")
            gzipped = (response.getheader("Content-Encoding") or "").strip().lower() == "gzip"
            inflate = zlib.decompressobj(wbits=31) if gzipped else None
            parts: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise UpstreamError(f"{final}: too slow (more than {self.settings.timeout * 3:.0f} s)")
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise UpstreamError(f"{final}: {type(exc).__name__}: {exc}") from None
                if not chunk:
                    break
                if inflate is not None:
                    try:
                        chunk = inflate.decompress(chunk, cap + 1 - size)
                    except zlib.error as exc:
                        raise UpstreamError(f"{final}: bad gzip: {exc}") from None
                size += len(chunk)
                if size > cap:
                    raise TooLarge(f"{final}: more than {cap} bytes")
                parts.append(chunk)
            headers_out = {name.lower(): value for name, value in response.getheaders()}
            done = True
            return Answer(response.status, headers_out, b"".join(parts), final, time.monotonic() - started)
        finally:
            if done:
                self._release(key, connection, response)
            else:
                connection.close()

    @contextmanager
    def stream(
        self, url: str, headers: dict[str, str] | None = None, *, max_bytes: int | None = None
    ) -> Iterator[Stream]:
        """A file's answer, read in chunks (``Stream.chunks``); closed on leaving the block.
        Only from allowed file hosts; identity encoding (the bytes are hashed as sent)."""
        key, connection, response, final = self._open(url, "file", {"Accept-Encoding": "identity", **(headers or {})})
        try:
            declared = response.getheader("Content-Length")
            if max_bytes is not None and declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(f"{final}: {declared} bytes, more than {max_bytes}")
            yield Stream(response.status, {n.lower(): v for n, v in response.getheaders()}, final, response, max_bytes)
        finally:
            self._release(key, connection, response)  # kept only if the body was read to its end

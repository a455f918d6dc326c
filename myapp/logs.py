"""Log records that a client cannot forge.

Request paths, headers and query strings reach log messages (and exception
messages, inside tracebacks). ``SafeFormatter`` makes every record one line
whose text has no control characters (they are written as ``\\xNN`` escapes),
and indents every continuation line of a traceback, so nothing a client sends
can start a line that looks like a record of its own. The ini files use it
for every handler: ``class = myapp.logs.SafeFormatter``.

``AccessLog`` is the access log (``myapp.access_log = true``);
production.ini writes it through ``BufferedStreamHandler``, in batches.
``QueueDepthWarnings`` keeps waitress's warning of a backed-up queue to a
line every few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from paste.translogger import TransLogger

from myapp.data.shutdown import exit_cleanly_on_sigterm

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
CONTINUATION = "    "


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape."""
    return text.translate(_ESCAPES)


def _indented(text: str) -> str:
    return "\n".join(CONTINUATION + escape_controls(line) for line in text.split("\n"))


class SafeFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


# -- waitress's queue ---------------------------------------------------------------------

QUEUE_LOGGER = "waitress.queue"


class QueueDepthWarnings(logging.Filter):
    """waitress warns "Task queue depth is N" for every request that waits for
    a free thread: under load a line per request (about a thousand a second
    at 16 connections on 8 threads), formatted and written by the thread that
    accepts connections while it holds the GIL: a tenth of the server's
    samples in a profile, though requests/s did not move beyond this
    machine's noise without them. Mostly it floods the log. This lets one
    through every ``seconds``, saying how deep the queue got and how many
    warnings it held back."""

    def __init__(self, seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._next_at = float("-inf")
        self._held = 0
        self._deepest = 0

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        depth = args[0] if len(args) == 1 and isinstance(args[0], int) else None
        if depth is None:  # not the queue's depth: whatever it is, it is shown
            return True
        with self._lock:
            now = self._clock()
            self._deepest = max(self._deepest, depth)
            if now < self._next_at:
                self._held += 1
                return False
            held, deepest = self._held, self._deepest
            self._next_at, self._held, self._deepest = now + self.seconds, 0, 0
        if held:
            record.msg = "Task queue depth is %d (up to %d since the last warning shown, %d warnings held back)"
            record.args = (depth, deepest, held)
        return True


def summarize_queue_warnings() -> None:
    """Put a ``QueueDepthWarnings`` on waitress's queue logger (once per process)."""
    queue = logging.getLogger(QUEUE_LOGGER)
    if not any(isinstance(f, QueueDepthWarnings) for f in queue.filters):
        queue.addFilter(QueueDepthWarnings())


# -- the access log ---------------------------------------------------------------------


class BufferedStreamHandler(logging.StreamHandler):
    """A ``StreamHandler`` that writes its lines in batches: when ``max_bytes``
    are waiting, else within ``seconds`` (a thread of its own), and at exit,
    as nginx's ``access_log ... buffer= flush=`` does. For the access log:
    written line by line, each write a system call that hands the GIL to the
    other threads and back, it cost a page served from the page cache about
    a quarter of its time under load. A process killed outright (``kill -9``)
    loses up to ``seconds`` of lines; a clean exit or SIGTERM loses none
    (``logging.shutdown`` flushes every handler)."""

    def __init__(self, stream: Any = None, seconds: float = 1.0, max_bytes: int = 64 * 1024) -> None:
        super().__init__(stream)
        self.seconds = seconds
        self.max_bytes = max_bytes
        exit_cleanly_on_sigterm()  # a stopped server writes what it holds (logging.shutdown, at exit)
        self._lines: list[str] = []
        self._size = 0
        self._stopped = threading.Event()
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called with the handler's lock held (Handler.handle).
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.max_bytes:
            self._write()
        elif self._writer is None:
            self._writer = threading.Thread(target=self._write_every, name="log-writer", daemon=True)
            self._writer.start()

    def _write(self) -> None:
        lines, self._lines, self._size = self._lines, [], 0
        if lines:
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except Exception:  # as logging does: report, never raise into the request
                self.handleError(logging.makeLogRecord({"msg": f"{len(lines)} log lines were not written"}))

    def _write_every(self) -> None:
        while not self._stopped.wait(self.seconds):
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()


# Query parameters whose values are secrets (password-reset and verification links).
SECRET_PARAMETERS = frozenset({"token"})
CACHE_KEY = "myapp.cache"  # environ: what a cache layer says about this request (e.g. "upstream=hit")


def redact(uri: str) -> str:
    """``uri`` with the values of secret query parameters replaced by ``***``."""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        parts.append(f"{name}=***" if eq and name.lower() in SECRET_PARAMETERS else part)
    return f"{path}?{'&'.join(parts)}"


class AccessLog(TransLogger):
    """Paste's TransLogger (it sees every response's status and size), writing
    one line per request on the ``wsgi`` logger, made safe to keep: reset and
    verification tokens are redacted from the request line and the referrer,
    the client is the connection's address (never a forgeable
    X-Forwarded-For: waitress's ``trusted_proxy`` sets REMOTE_ADDR behind a
    proxy), and the line ends with the milliseconds the app took to answer.
    The record's own timestamp dates it; cookies and Authorization never appear.
    A request a cache answered for (``myapp.cache`` in the environ: the proxy
    writes ``upstream=hit``, ``stale``, ``miss`` or ``error``) adds it at the end.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, setup_console_handler=False, set_logger_level=None)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["myapp.started"] = time.perf_counter()
        return super().__call__(environ, start_response)

    def write_log(self, environ, method, req_uri, start, status, bytes):
        elapsed = (time.perf_counter() - environ.get("myapp.started", time.perf_counter())) * 1000
        cache = environ.get(CACHE_KEY)
        self.logger.log(
            self.logging_level,
            '%s "%s %s %s" %s %s %.1fms "%s" "%s"' + (" %s" if cache else ""),
            environ.get("REMOTE_ADDR", "-"),
            method,
            redact(req_uri),
            environ.get("SERVER_PROTOCOL", "-"),
            status.split(None, 1)[0],
            "-" if bytes is None else bytes,
            elapsed,
            redact(environ.get("HTTP_REFERER", "-")),
            environ.get("HTTP_USER_AGENT", "-"),
            *((cache,) if cache else ()),
        )

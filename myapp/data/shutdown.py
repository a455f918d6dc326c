"""Work done when the process exits cleanly: on a normal exit, Ctrl-C, and
``SIGTERM`` (what systemd, Docker and ``kill`` send).

Python runs ``atexit`` functions on a normal exit but not when ``SIGTERM``
kills it, and neither waitress nor ``pserve`` handles that signal. So, when
nothing else in the process has claimed it, ``SIGTERM`` raises ``SystemExit``
in the main thread: waitress then stops accepting, lets the requests in
progress finish (up to its 5 s), and the process exits through ``atexit``.
A server that installs its own handler (gunicorn) keeps it.
"""

from __future__ import annotations

import atexit
import signal
import threading
from collections.abc import Callable
from types import FrameType


def on_shutdown(work: Callable[[], object]) -> None:
    """Run ``work`` when the process exits cleanly (after waitress has stopped its threads)."""
    atexit.register(work)


def exit_cleanly_on_sigterm() -> bool:
    """Turn ``SIGTERM`` into ``SystemExit`` if nobody handles it yet; only the
    main thread may set a handler. Says whether the handler is ours."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _exit:
        return True
    if current is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _exit)
    return True


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)

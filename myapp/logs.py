"""Log records that a client cannot forge.

Request paths, headers and query strings reach log messages (and exception
messages, inside tracebacks). ``SafeFormatter`` makes every record one line
whose text has no control characters (they are written as ``\\xNN`` escapes),
and indents every continuation line of a traceback, so nothing a client sends
can start a line that looks like a record of its own. The ini files use it
for every handler: ``class = myapp.logs.SafeFormatter``.
"""

from __future__ import annotations

import logging

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

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))

"""The Cookie header, read without WebOb's regular expression when it is plain.

WebOb parses the header with one regular expression that allows quoted
values, escapes and dates; on a signed-in browser's header (a session cookie
of about 450 bytes) that took 16 µs of every request, a quarter of what
signing in adds to a page. Browsers send ``name=value; name=value`` with
plain characters, and for such a header a split gives the same mapping.
``remember_plain_cookies`` puts it where WebOb keeps its parsed cookies
(``webob._parsed_cookies``, keyed by the header it came from), so
``request.cookies`` finds it; any other header is left to WebOb.
"""

from __future__ import annotations

import re
from typing import Any

from webob.cookies import RequestCookies

# Names of RFC 6265 token characters and values without quotes, escapes, spaces or separators:
# what WebOb reads back unchanged. A "; " between pairs, as browsers write it.
_PAIR = r"[A-Za-z0-9_.-]+=[A-Za-z0-9_.=/+-]*"
PLAIN = re.compile(rf"{_PAIR}(?:; {_PAIR})*")
# Cookie attributes, which WebOb never takes for a cookie's name.
_ATTRIBUTES = frozenset({"path", "comment", "domain", "max-age", "expires", "secure", "httponly", "samesite"})
_CACHE_KEY = RequestCookies._cache_key  # where WebOb keeps (cookies, the header they came from)


def plain_cookies(header: str) -> dict[str, str] | None:
    """The cookies of a plain header, as WebOb would read them (the last of
    a name wins); None if the header is not plain."""
    if not PLAIN.fullmatch(header):
        return None
    cookies = {}
    for pair in header.split("; "):
        name, _, value = pair.partition("=")
        if name.lower() not in _ATTRIBUTES:
            cookies[name] = value
    return cookies


def remember_plain_cookies(environ: dict[str, Any]) -> None:
    """Parse a plain Cookie header into WebOb's cache, unless it is there already."""
    header = environ.get("HTTP_COOKIE", "")
    cached = environ.get(_CACHE_KEY)
    if not header or (cached is not None and cached[1] == header):
        return
    cookies = plain_cookies(header)
    if cookies is not None:
        environ[_CACHE_KEY] = (cookies, header)

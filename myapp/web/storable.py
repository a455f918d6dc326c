"""Text a database cannot store: refused where it enters, not where it fails.

PostgreSQL's text types cannot hold NUL, and no UTF-8 database can hold a lone
surrogate (which Python makes of undecodable bytes). SQLite takes both, so the
same request that is a 4xx there would be a 500 on PostgreSQL when the value
reaches a query. The request guard (``guard.py``) asks ``unstorable_input``
of every request: its path, query string, form fields and basic-auth
credentials; metadata read from uploaded files is checked with ``is_storable``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from pyramid.request import Request

from myapp.security import basic_auth_text

# NUL, and the surrogate range that no UTF-8 text may contain.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Form bodies a browser, twine or uv sends; webob parses both (and caches the result).
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_storable(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def _all_storable(values: Iterable[Any]) -> bool:
    return all(is_storable(v) for v in values if isinstance(v, str))


# Bytes that are not UTF-8 at all are left to the app, which answers 400 "not valid UTF-8"
# (paths, query strings) or 401 (credentials); webob replaces them in form fields.


def _path(environ: dict[str, Any]) -> str:
    # WSGI hands the path over as latin-1 text of the raw bytes: decode them as the app will.
    try:
        return environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except UnicodeError:
        return ""


def _query(environ: dict[str, Any]) -> list[str]:
    try:
        pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="strict")
    except UnicodeError:
        return []
    return [text for pair in pairs for text in pair]


def _credentials(environ: dict[str, Any]) -> str:
    return basic_auth_text(environ.get("HTTP_AUTHORIZATION", "")) or ""


def _form(request: Request) -> list[str] | None:
    """The form's names, values and file names; None if it cannot be parsed."""
    if request.method != "POST" or request.content_type not in _FORMS:
        return []
    try:
        fields = request.POST
    except ValueError:  # a multipart body without a usable boundary
        return None
    names_and_values = [text for key, value in fields.items() for text in (key, value)]
    # An uploaded file's name is text the app may store; its content is not checked here.
    return names_and_values + [getattr(v, "filename", None) or "" for v in fields.values()]


def unstorable_input(request: Request) -> str | None:
    """Why the request holds text no database may store, if it does."""
    environ = request.environ
    where = None
    if not is_storable(_path(environ)):
        where = "address"
    elif not _all_storable(_query(environ)):
        where = "query string"
    elif not is_storable(_credentials(environ)):
        where = "credentials"
    elif (form := _form(request)) is None:
        return "The form cannot be read."
    elif not _all_storable(form):
        where = "form"
    return None if where is None else f"The {where} holds a character that cannot be stored (NUL or an invalid one)."

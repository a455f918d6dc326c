"""Where our pages send clients for a proxied file: PyPI's path layout, so
that bandersnatch (``api-method = simple``) keeps the same paths.

``/packages/{h1}/{h2}/{rest}/{filename}`` (route ``upstream.file``), with
``h1 = sha256[:2]``, ``h2 = sha256[2:4]``, ``rest = sha256[4:]``; the PEP 658
metadata at the same path plus ``.metadata``. The download view (the files
part) finds the file by ``filename`` and answers 404 unless the hash in the
path is the file's ``sha256``.
"""

from __future__ import annotations

from pyramid.request import Request

ROUTE = "upstream.file"
PATTERN = "/packages/{h1}/{h2}/{rest}/{filename}"
METADATA = ".metadata"


def file_parts(sha256: str, filename: str) -> dict[str, str]:
    return {"h1": sha256[:2], "h2": sha256[2:4], "rest": sha256[4:], "filename": filename}


def file_path(request: Request, sha256: str, filename: str) -> str:
    """The path of a proxied file on this index."""
    return request.route_path(ROUTE, **file_parts(sha256, filename))


def sha256_in_path(matchdict: dict[str, str]) -> str:
    """The hash a ``/packages/...`` path names (compare with the file's own)."""
    return (matchdict.get("h1", "") + matchdict.get("h2", "") + matchdict.get("rest", "")).lower()

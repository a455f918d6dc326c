"""Letting a proxy in front send a local store's bytes (``myapp.files_accel``).

nginx serves them from an ``internal`` location that maps
``myapp.files_accel_prefix`` to the files folder (``X-Accel-Redirect``);
Apache with mod_xsendfile from the absolute path (``X-Sendfile``). The app
still decides 304s and ranges, sets the headers (type, ETag, caching) and
counts the download; only a whole file (200) is handed over, since a range
(rare: a resumed download) is cheaper to send from here than to describe.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from pyramid.request import Request
from pyramid.response import Response

ACCEL_SETTING = "myapp.files_accel"
ACCEL_PREFIX_SETTING = "myapp.files_accel_prefix"
DEFAULT_ACCEL_PREFIX = "/_files/"


def hand_to_proxy(request: Request, response: Response, relative: str, path: Path) -> None:
    """Empty ``response``'s body and name the file for the proxy, when one is configured."""
    settings = request.registry.settings
    accel = settings.get(ACCEL_SETTING, "")
    if accel not in ("nginx", "apache") or response.status_code != 200:
        return
    response.app_iter.close()  # the proxy reads the file
    response.app_iter = [b""]
    response.content_length = 0
    if accel == "nginx":
        prefix = settings.get(ACCEL_PREFIX_SETTING, DEFAULT_ACCEL_PREFIX).rstrip("/")
        response.headers["X-Accel-Redirect"] = quote(f"{prefix}/{relative}")
    else:
        response.headers["X-Sendfile"] = str(path)

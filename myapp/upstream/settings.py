"""The proxy's settings, read once at start-up into an ``UpstreamSettings``.

==============================  ==========================================================
``myapp.upstream``              the upstream's simple index URL (env ``MYAPP_UPSTREAM``);
                                unset or empty: no proxy
``MYAPP_UPSTREAM_USERNAME``,    credentials for the upstream, from the environment only
``MYAPP_UPSTREAM_PASSWORD``     (never the ini file, never the URL: both end up in logs)
``myapp.upstream_ttl``          how long a stored page is served without asking (``10m``)
``myapp.upstream_min_age``      release-age cooldown (``7d``, ``12h``, ``0`` = off; ``0``)
``myapp.upstream_freeze``       ISO 8601 time: nothing uploaded after it is served
``myapp.upstream_file_hosts``   hosts the upstream's files may come from besides its own
``myapp.upstream_cache_bytes``  byte budget of cached upstream files (0 = unbounded)
``myapp.upstream_timeout``      seconds to connect and between reads (``10``)
``myapp.upstream_max_page_bytes``  the largest simple page read (``20000000``)
``myapp.upstream_retry_after``  after a failed fetch, how long before asking again (``30s``)
==============================  ==========================================================

Durations are a number with an optional unit: ``s``, ``m``, ``h``, ``d``, ``w``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from myapp.security import SettingsError

URL_SETTING = "myapp.upstream"
URL_ENV = "MYAPP_UPSTREAM"
USERNAME_ENV = "MYAPP_UPSTREAM_USERNAME"
PASSWORD_ENV = "MYAPP_UPSTREAM_PASSWORD"  # noqa: S105 (the name of a variable, not a password)
REGISTRY_KEY = "upstream.settings"

DEFAULT_TTL = timedelta(minutes=10)
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_PAGE_BYTES = 20_000_000

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"(\d+)\s*([kmgt]?i?b?)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE_UNITS.update({"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40})


@dataclass(frozen=True)
class UpstreamSettings:
    url: str  # the simple index URL, ending in "/"
    host: str  # its host name (lower case): the one private address allowed
    username: str | None = None
    password: str | None = None
    ttl: timedelta = DEFAULT_TTL
    min_age: timedelta = timedelta(0)
    freeze: datetime | None = None
    file_hosts: tuple[str, ...] = ()
    cache_bytes: int = 0
    timeout: float = DEFAULT_TIMEOUT
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    retry_after: timedelta = timedelta(seconds=30)

    @property
    def lease(self) -> timedelta:
        """How long a claim to fetch a page holds: longer than any fetch may take."""
        return timedelta(seconds=self.timeout * 3 + 5)

    def project_url(self, name: str) -> str:
        """The upstream's page for a normalized name."""
        return f"{self.url}{name}/"

    @property
    def allowed_file_hosts(self) -> frozenset[str]:
        return frozenset({self.host, *self.file_hosts})


def parse_duration(value: Any, setting: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``90`` (seconds), ``0``."""
    text = str(value).strip().lower()
    match = _DURATION.fullmatch(text)
    if match is None:
        raise SettingsError(f"{setting} must be a duration such as 7d, 12h, 30m or 0, not {value!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_size(value: Any, setting: str) -> int:
    """``0``, ``500000000``, ``20GB``, ``5GiB``."""
    text = str(value).strip()
    match = _SIZE.fullmatch(text)
    if match is None:
        raise SettingsError(f"{setting} must be a number of bytes such as 20GB or 5GiB, not {value!r}")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_time(value: Any, setting: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise SettingsError(f"{setting} must be an ISO 8601 time such as 2026-11-01T00:00:00Z, not {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_url(value: str) -> tuple[str, str]:
    """The index URL (with a trailing slash) and its host; http(s), no credentials."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{URL_SETTING} must be an http(s) URL of a simple index, not {value!r}")
    if parts.username or parts.password:
        raise SettingsError(f"Put the upstream's credentials in {USERNAME_ENV} and {PASSWORD_ENV}, not in its URL.")
    if parts.query or parts.fragment:
        raise SettingsError(f"{URL_SETTING} must be a plain URL (no query or fragment): {value!r}")
    return (url if url.endswith("/") else url + "/"), parts.hostname.lower()


def _hosts(value: Any) -> tuple[str, ...]:
    return tuple(host.strip().lower() for host in str(value or "").replace(",", " ").split() if host.strip())


def read_settings(settings: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> UpstreamSettings | None:
    """The proxy's settings, or None when no upstream is set."""
    raw = environ.get(URL_ENV) or settings.get(URL_SETTING) or ""
    if not str(raw).strip():
        return None
    url, host = parse_url(str(raw))
    username = environ.get(USERNAME_ENV) or None
    password = environ.get(PASSWORD_ENV) or None
    if (username is None) != (password is None):
        raise SettingsError(f"Set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither.")
    freeze = settings.get("myapp.upstream_freeze")
    try:
        timeout = float(settings.get("myapp.upstream_timeout", DEFAULT_TIMEOUT))
    except ValueError:
        raise SettingsError("myapp.upstream_timeout must be a number of seconds") from None
    if timeout <= 0:
        raise SettingsError("myapp.upstream_timeout must be more than 0 seconds")
    return UpstreamSettings(
        url=url,
        host=host,
        username=username,
        password=password,
        ttl=parse_duration(settings.get("myapp.upstream_ttl", "10m"), "myapp.upstream_ttl"),
        min_age=parse_duration(settings.get("myapp.upstream_min_age", "0"), "myapp.upstream_min_age"),
        freeze=parse_time(freeze, "myapp.upstream_freeze") if freeze and str(freeze).strip() else None,
        file_hosts=_hosts(settings.get("myapp.upstream_file_hosts")),
        cache_bytes=parse_size(settings.get("myapp.upstream_cache_bytes", "0"), "myapp.upstream_cache_bytes"),
        timeout=timeout,
        max_page_bytes=parse_size(
            settings.get("myapp.upstream_max_page_bytes", DEFAULT_MAX_PAGE_BYTES), "myapp.upstream_max_page_bytes"
        ),
        retry_after=parse_duration(settings.get("myapp.upstream_retry_after", "30s"), "myapp.upstream_retry_after"),
    )

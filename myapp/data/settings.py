"""Reading the database options from ini settings (all strings) into typed values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pyramid.settings import asbool

from myapp.data.db_session import SETTING, DbConfigError

PREFIX = "sqlalchemy."
_INT_OPTIONS = ("pool_size", "max_overflow", "pool_recycle", "pool_timeout", "busy_timeout_ms")
_BOOL_OPTIONS = ("pool_pre_ping", "echo_pool")
_STR_OPTIONS = ("isolation_level",)


def database_url(settings: Mapping[str, Any]) -> str:
    """``DATABASE_URL`` from the environment wins over ``sqlalchemy.url`` in the ini."""
    url = os.environ.get("DATABASE_URL") or settings.get(SETTING) or ""
    if not str(url).strip():
        raise DbConfigError(f"Set {SETTING!r} in the ini file (or DATABASE_URL in the environment).")
    return str(url)


def engine_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sqlalchemy.*`` options other than the URL, with their proper types."""
    options: dict[str, Any] = {}
    echo = settings.get(PREFIX + "echo")
    if echo is not None:
        options["echo"] = "debug" if str(echo).strip().lower() == "debug" else asbool(echo)
    for name in _INT_OPTIONS:
        value = settings.get(PREFIX + name)
        if value is not None and str(value).strip():
            try:
                options[name] = int(value)
            except ValueError:
                raise DbConfigError(f"{PREFIX}{name} must be a whole number, not {value!r}") from None
    for name in _BOOL_OPTIONS:
        if settings.get(PREFIX + name) is not None:
            options[name] = asbool(settings[PREFIX + name])
    for name in _STR_OPTIONS:
        if settings.get(PREFIX + name):
            options[name] = str(settings[PREFIX + name]).strip()
    return options

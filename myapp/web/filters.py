"""Small Jinja2 filters for numbers, sizes and dates."""

from __future__ import annotations

from datetime import datetime


def filesize(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def datetime_(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def thousands(n: int) -> str:
    return f"{n:,}"


FILTERS = {"filesize": filesize, "date": date, "datetime": datetime_, "thousands": thousands}

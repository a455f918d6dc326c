"""Whether an upstream file may be seen here: one function that the pages
(listing) and the files part (download: 403 with the reason) both ask.

A file is visible unless:

* it is removed upstream (``removed_at``), or quarantined;
* ``myapp.upstream_freeze`` is set and the file was uploaded after it;
* it is younger than ``myapp.upstream_min_age`` (the cooldown), and neither
  its project is exempt nor its version released early by an admin.

Its age is the upstream's ``upload-time`` (PEP 700); where the upstream gives
none (a PEP 503 HTML page), the time this index first saw the file. The
freeze uses the same time: a file first seen after the freeze, with no
upload time of its own, is not served either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pyramid.request import Request
from pyramid.response import Response

from myapp.web.views import error_page


class FileFacts(Protocol):
    """What the decision reads of a file (an ``UpstreamFile`` row has it all)."""

    @property
    def version(self) -> str: ...
    @property
    def upload_time(self) -> datetime | None: ...
    @property
    def first_seen_at(self) -> datetime: ...
    @property
    def removed_at(self) -> datetime | None: ...
    @property
    def quarantined_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class ProjectPolicy:
    """The rules for one project's upstream files, read once per request."""

    min_age: timedelta = timedelta(0)
    freeze: datetime | None = None
    exempt: bool = False  # an admin exempted the project from the cooldown
    released: frozenset[str] = field(default_factory=frozenset)  # versions released early


def uploaded(file: FileFacts) -> datetime:
    """The file's age is counted from this: the upstream's upload time, else when we first saw it."""
    return file.upload_time if file.upload_time is not None else file.first_seen_at


def visible(file: FileFacts, policy: ProjectPolicy, now: datetime) -> tuple[bool, str]:
    """(True, "") if the file may be listed and downloaded; else (False, the reason, for a 403)."""
    if file.removed_at is not None or file.quarantined_at is not None:
        return False, "This file was removed from the upstream index."
    when = uploaded(file)
    if policy.freeze is not None and when > policy.freeze:
        return False, f"Files uploaded after {policy.freeze:%Y-%m-%d %H:%M} UTC are not served (the index is frozen)."
    if policy.min_age and not policy.exempt and file.version not in policy.released and now - when < policy.min_age:
        ready = when + policy.min_age
        return False, (
            f"This file is younger than the index's minimum release age ({describe_age(policy.min_age)}); "
            f"it will be served from {ready:%Y-%m-%d %H:%M} UTC."
        )
    return True, ""


def next_change(files: Iterable[FileFacts], policy: ProjectPolicy, now: datetime) -> datetime | None:
    """When the cooldown next lets one of these files out (None: it never will
    by itself; only a change upstream or to the policy would show more): asked
    of ``visible`` itself, for each file hidden now, at the moment its age is reached."""
    if not policy.min_age:
        return None
    due = ((f, uploaded(f) + policy.min_age) for f in files)
    return min(
        (at for f, at in due if at > now and not visible(f, policy, now)[0] and visible(f, policy, at)[0]),
        default=None,
    )


def describe_age(age: timedelta) -> str:
    """``7 days``, ``12 hours``, ``90 seconds``."""
    seconds = int(age.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hours"
    return f"{seconds} seconds"


def refusal(request: Request, reason: str) -> Response:
    """The 403 for a file ``visible`` refuses, with its reason. Returned, not
    raised as ``HTTPForbidden``: that one means "sign in", and on a tool
    route becomes a 401 asking pip for credentials that would not help."""
    return error_page(request, 403, "Forbidden", reason)

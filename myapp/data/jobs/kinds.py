"""What each kind of job does: handlers registered by kind, and periodic jobs.

Domain packages register theirs in ``includeme``::

    config.add_job_handler("mail", deliver)
    config.add_periodic_job("uploads.sweep", sweep, seconds=3600)

A handler is ``handler(ctx, payload)``: ``ctx.dbsession`` is in the job's own
transaction (what the handler writes commits together with the job's "done",
or not at all), ``ctx.registry`` is the application's registry (settings,
mailer, templates). Raising means "try again later"; a handler that must give
up for good raises ``PermanentJobError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from pyramid.config import Configurator

REGISTRY_KEY = "job_kinds"
DEFAULT_MAX_ATTEMPTS = 10


class PermanentJobError(Exception):
    """Raised by a handler when trying again cannot help (bad payload)."""


@dataclass(frozen=True)
class ClaimedJob:
    """A job as its worker claimed it (a plain copy: no session holds it while it runs)."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    locked_by: str
    locked_at: datetime
    unique_key: str | None


@dataclass(frozen=True)
class JobContext:
    dbsession: Session
    registry: Any
    job: ClaimedJob


Handler = Callable[[JobContext, dict[str, Any]], object]


@dataclass(frozen=True)
class Period:
    seconds: float
    max_attempts: int


@dataclass
class JobKinds:
    """The handlers by kind, and the periodic ones' periods. (How many attempts
    a job gets is written in its row when it is queued.)"""

    handlers: dict[str, Handler] = field(default_factory=dict)
    periodic: dict[str, Period] = field(default_factory=dict)

    def add(self, kind: str, handler: Handler) -> None:
        if self.handlers.get(kind, handler) is not handler:
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        self.handlers[kind] = handler

    def every(self, kind: str, handler: Handler, *, seconds: float, max_attempts: int = 3) -> None:
        if seconds <= 0:
            raise ValueError(f"periodic job {kind!r}: seconds must be positive")
        self.add(kind, handler)
        self.periodic[kind] = Period(seconds, max_attempts)


def job_kinds(registry: Any) -> JobKinds:
    """The registry's job kinds (made on first use)."""
    kinds = registry.get(REGISTRY_KEY)
    if kinds is None:
        kinds = registry[REGISTRY_KEY] = JobKinds()
    return kinds


def add_job_handler(config: Configurator, kind: str, handler: Handler) -> None:
    job_kinds(config.registry).add(kind, handler)


def add_periodic_job(
    config: Configurator, kind: str, handler: Handler, *, seconds: float, max_attempts: int = 3
) -> None:
    job_kinds(config.registry).every(kind, handler, seconds=seconds, max_attempts=max_attempts)

"""The ``jobs`` table: one row per piece of work to do after a commit."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from myapp.data.meta import Base, UTCDateTime, str_enum, utcnow

JobPayload = JSON().with_variant(JSONB(), "postgresql")


class JobState(enum.StrEnum):
    QUEUED = "queued"  # waiting for run_at (a first run, or a retry)
    RUNNING = "running"  # claimed by locked_by at locked_at
    DONE = "done"
    FAILED = "failed"  # out of attempts; last_error says why


class Job(Base):
    """A job of ``kind`` with a JSON ``payload``, due at ``run_at``.

    ``unique_key`` (unique when set) keeps one row per periodic job: the row is
    scheduled again when it finishes, so it runs at most once per period
    however many workers there are."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JobPayload, default=dict)
    state: Mapped[JobState] = mapped_column(str_enum(JobState, 10), default=JobState.QUEUED)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    locked_by: Mapped[str | None] = mapped_column(String(200))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unique_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.kind} {self.state}>"


# What a worker asks for: due rows by state and time (and the admin page's list).
Index("ix_jobs_state_run_at", Job.state, Job.run_at)

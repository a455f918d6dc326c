"""Every model, imported in one place so that ``Base.metadata`` is complete
(Alembic's autogenerate and pshell read it from here)."""

from myapp.accounts.models import ApiToken, EventTag, RecoveryCode, ThrottleEvent, User, UserEvent
from myapp.data.jobs.models import Job, JobState
from myapp.data.meta import Base
from myapp.packaging.models import (
    Classifier,
    DeletedFilename,
    JournalEntry,
    Package,
    Release,
    ReleaseFile,
    Role,
    RoleName,
    package_classifiers,
)
from myapp.upstream.models import UpstreamFile, UpstreamPolicy, UpstreamProject, UpstreamRelease

__all__ = [
    "ApiToken",
    "Base",
    "Classifier",
    "DeletedFilename",
    "EventTag",
    "Job",
    "JobState",
    "JournalEntry",
    "Package",
    "RecoveryCode",
    "Release",
    "ReleaseFile",
    "Role",
    "RoleName",
    "ThrottleEvent",
    "UpstreamFile",
    "UpstreamPolicy",
    "UpstreamProject",
    "UpstreamRelease",
    "User",
    "UserEvent",
    "package_classifiers",
]

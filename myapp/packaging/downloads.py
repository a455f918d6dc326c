"""Download counts, added up in memory and written in batches
(``myapp.data.batches``): every ``myapp.download_flush_seconds`` (default 1)
and at a clean exit; a crash loses at most the last interval's counts, and
``0`` writes each download's count once its response is decided (tests).

What counts is decided by the view (a full GET, or the first chunk of a
ranged one: ``myapp.web.files``), and nothing is counted for a request that
failed. A tally that cannot be written (a read-only database) is logged and
dropped, as a single count was.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.request import Request
from pyramid.response import Response
from sqlalchemy.orm import Session

from myapp.data import request_failed
from myapp.data.batches import Batch
from myapp.packaging import services

if TYPE_CHECKING:
    from pyramid.registry import Registry

SETTING = "myapp.download_flush_seconds"
DEFAULT_SECONDS = 1.0
REGISTRY_KEY = "download_counter"


@dataclass(frozen=True)
class Tally:
    """A file's downloads not yet written, with what its project's total and the log need."""

    package_id: int
    filename: str
    count: int

    def plus(self, other: Tally) -> Tally:
        return Tally(self.package_id, self.filename, self.count + other.count)


def _write(db: Session, tallies: dict[int, Tally]) -> None:
    packages: Counter[int] = Counter()
    for tally in tallies.values():
        packages[tally.package_id] += tally.count
    services.count_downloads(db, {file_id: tally.count for file_id, tally in tallies.items()}, dict(packages))


def _describe(file_id: int, tally: Tally) -> str:
    return f"{'a download' if tally.count == 1 else f'{tally.count} downloads'} of {tally.filename}"


class DownloadCounter:
    """This process's downloads not yet written: file id -> tally."""

    def __init__(self, registry: Registry, seconds: float) -> None:
        self.batch: Batch[int, Tally] = Batch(
            "download-counts", seconds, lambda: registry["dbsession_factory"], _write, Tally.plus, _describe
        )

    def add(self, file: services.StoredFile) -> None:
        self.batch.add(file.id, Tally(file.package_id, file.filename, 1))

    def pending(self) -> int:
        """Downloads counted and not written yet."""
        return sum(tally.count for tally in self.batch.pending().values())

    def flush(self) -> None:
        self.batch.flush()

    def close(self) -> None:
        self.batch.close()


def install(registry: Registry, settings: dict[str, str]) -> None:
    registry[REGISTRY_KEY] = DownloadCounter(registry, float(settings.get(SETTING, DEFAULT_SECONDS)))


def counter_of(registry: Registry) -> DownloadCounter:
    counter: DownloadCounter = registry[REGISTRY_KEY]
    return counter


def count_when_sent(request: Request, file: services.StoredFile) -> None:
    """Count a download of ``file`` once the response is decided, unless the request failed."""
    counter = counter_of(request.registry)

    def count(request: Request, response: Response) -> None:
        if request_failed(request, response):
            return
        counter.add(file)  # written at once when the interval is 0

    request.add_response_callback(count)

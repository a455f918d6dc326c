"""waitress's queue warnings (myapp.logs.QueueDepthWarnings): a line every
few seconds under load, not one per queued request."""

from __future__ import annotations

import logging

import pytest
from waitress.task import ThreadedTaskDispatcher

from myapp.logs import QUEUE_LOGGER, QueueDepthWarnings, summarize_queue_warnings


@pytest.fixture
def clock():
    return [100.0]  # seconds, moved by hand


@pytest.fixture
def queue_filter(clock):
    """The logger's only filter: the app's own (an app made earlier in this process put it there) steps aside."""
    logger = logging.getLogger(QUEUE_LOGGER)
    before = list(logger.filters)
    logger.filters[:] = [QueueDepthWarnings(10.0, clock=lambda: clock[0])]
    yield logger.filters[0]
    logger.filters[:] = before


def test_waitress_backing_up_warns_every_few_seconds_with_what_it_held_back(queue_filter, clock, caplog):
    dispatcher = ThreadedTaskDispatcher()  # no threads: every task waits, and waitress warns of each
    caplog.set_level(logging.WARNING, logger=QUEUE_LOGGER)
    for _ in range(50):
        dispatcher.add_task(object())
    assert [r.getMessage() for r in caplog.records] == ["Task queue depth is 1"]
    clock[0] += 10.0
    dispatcher.add_task(object())
    shown = [r.getMessage() for r in caplog.records]
    assert shown[1:] == ["Task queue depth is 51 (up to 51 since the last warning shown, 49 warnings held back)"]


def test_other_records_of_the_logger_pass(queue_filter, caplog):
    caplog.set_level(logging.WARNING, logger=QUEUE_LOGGER)
    for _ in range(3):
        logging.getLogger(QUEUE_LOGGER).warning("something else: %s", "x")
    assert len(caplog.records) == 3


def test_the_app_installs_one_filter_however_often_it_starts():
    summarize_queue_warnings()
    summarize_queue_warnings()
    filters = logging.getLogger(QUEUE_LOGGER).filters
    assert sum(isinstance(f, QueueDepthWarnings) for f in filters) == 1

"""waitress's queue warnings (myapp.logs.QueueDepthWarnings): a line every
few seconds under load, not one per queued request; and the access log's
handler (BufferedStreamHandler): lines in batches, none lost at a clean stop."""

from __future__ import annotations

import configparser
import io
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waitress.task import ThreadedTaskDispatcher

from myapp.logs import QUEUE_LOGGER, BufferedStreamHandler, QueueDepthWarnings, summarize_queue_warnings

ROOT = Path(__file__).resolve().parent.parent


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


# -- the access log's buffered handler ---------------------------------------------------------


def _handler(stream: io.StringIO, seconds: float = 3600.0, max_bytes: int = 1000) -> BufferedStreamHandler:
    handler = BufferedStreamHandler(stream, seconds, max_bytes)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def _record(text: str) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": text, "levelno": logging.INFO, "levelname": "INFO"})


def test_lines_wait_until_enough_bytes_then_go_in_one_write():
    stream = io.StringIO()
    handler = _handler(stream, max_bytes=100)
    for n in range(9):
        handler.handle(_record(f"line {n}"))  # 7 bytes each
    assert stream.getvalue() == ""
    for n in range(9, 20):
        handler.handle(_record(f"line {n}"))
    written = stream.getvalue().splitlines()
    assert written == [f"line {n}" for n in range(len(written))] and 12 <= len(written) < 20
    handler.close()
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(20)]  # the rest, in order


def test_lines_are_written_within_the_interval_by_the_handlers_thread():
    stream = io.StringIO()
    handler = _handler(stream, seconds=0.05)
    handler.handle(_record("GET / 200"))
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == "GET / 200\n"
    handler.close()


def test_a_stream_that_fails_is_reported_never_raised(capsys):
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = _handler(Broken(), max_bytes=1)
    handler.handle(_record("GET / 200"))  # written at once (max_bytes), and the write fails
    handler.close()
    assert "log lines were not written" in capsys.readouterr().err


def test_a_server_stopped_by_sigterm_writes_every_line_it_held(tmp_path):
    """In a process of its own: lines held for an hour are written when SIGTERM stops it."""
    script = tmp_path / "serve.py"
    script.write_text(
        "import logging, sys, time\n"
        "from myapp.logs import BufferedStreamHandler\n"
        "handler = BufferedStreamHandler(sys.stderr, 3600, 1 << 20)\n"
        "log = logging.getLogger('wsgi'); log.addHandler(handler); log.setLevel(logging.INFO)\n"
        "for n in range(3): log.info('GET /%d 200', n)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert err.splitlines() == ["GET /0 200", "GET /1 200", "GET /2 200"]


def test_production_ini_writes_the_access_log_through_it():
    ini = configparser.RawConfigParser()
    ini.read(ROOT / "production.ini")
    assert ini["logger_wsgi"]["handlers"].strip() == "access" and ini["logger_wsgi"]["propagate"].strip() == "0"
    assert ini["handler_access"]["class"].strip() == "myapp.logs.BufferedStreamHandler"

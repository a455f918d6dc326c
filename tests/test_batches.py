"""``myapp.data.batches.Batch``, on SQLite and PostgreSQL: entries merged by
key in memory, written together in one transaction, at once when the interval
is 0, and once more when closed; a write the database refuses is logged per
entry and dropped. Download counts (test_downloads.py) and proxied files'
download times (test_upstream_files.py) are batches; the writer thread and the
write at shutdown run in a real server in test_live.py."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select, text
from sqlalchemy.orm import Session

from myapp.data.batches import Batch
from tests.factories import refuse

TALLY = Table("batch_tally", MetaData(), Column("key", Integer, primary_key=True), Column("n", Integer))


@pytest.fixture
def tally(dbsession) -> Table:
    """A table of the test's own (rolled back with the test's transaction)."""
    TALLY.create(dbsession.connection())
    return TALLY


def add_up(db: Session, entries: dict[int, int]) -> None:
    db.execute(TALLY.insert(), [{"key": key, "n": n} for key, n in sorted(entries.items())])


def written(dbsession) -> dict[int, int]:
    return dict(dbsession.execute(select(TALLY.c.key, TALLY.c.n)).all())


def batch(app, seconds: float, statements: list[str] | None = None) -> Batch[int, int]:
    def write(db: Session, entries: dict[int, int]) -> None:
        if statements is not None:
            statements.append(f"{len(entries)} entries")
        add_up(db, entries)

    factory = lambda: app.registry["dbsession_factory"]  # noqa: E731 - as the app's batches read it
    return Batch("test-tally", seconds, factory, write, lambda a, b: a + b, lambda k, n: f"{n} of #{k}")


def test_entries_are_merged_by_key_and_written_together(app, dbsession, tally, sigterm_kept):
    writes: list[str] = []
    kept = batch(app, 3600, writes)  # only the test writes
    for key in (1, 2, 1, 1, 3):
        kept.add(key, 1)
    assert kept.pending() == {1: 3, 2: 1, 3: 1} and written(dbsession) == {}
    kept.flush()
    assert written(dbsession) == {1: 3, 2: 1, 3: 1} and writes == ["3 entries"]
    kept.flush()  # nothing left: nothing written
    assert writes == ["3 entries"] and kept.pending() == {}
    kept.add(4, 2)
    kept.close()  # stops the writer and writes what is left
    assert written(dbsession)[4] == 2


def test_no_interval_writes_each_entry_at_once(app, dbsession, tally):
    kept = batch(app, 0)
    kept.add(7, 1)
    assert written(dbsession) == {7: 1} and kept.pending() == {}


def test_a_refused_write_is_logged_per_entry_and_dropped(app, dbsession, tally, caplog, sigterm_kept):
    refuse(dbsession, "batch_tally", "INSERT")
    kept = batch(app, 3600)
    kept.add(1, 2)
    kept.add(2, 1)
    with caplog.at_level(logging.ERROR, logger="myapp.data.batches"):
        kept.flush()
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not record 2 of #1" in m for m in messages) and any("1 of #2" in m for m in messages)
    assert kept.pending() == {}  # dropped: a database that refuses does not fill memory
    assert dbsession.execute(text("SELECT count(*) FROM batch_tally")).scalar() == 0

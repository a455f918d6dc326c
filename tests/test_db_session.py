"""DbSession.global_init: once per process, clear errors, safe logs, SQLite set-up."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from myapp.data import DbConfigError, DbSession, safe_url, to_url
from myapp.data.settings import database_url, engine_options


@pytest.fixture
def clean_dbsession() -> Iterator[None]:
    """Run with no engine at all; leave none behind (shared fixtures re-create theirs)."""
    DbSession.dispose()
    yield
    DbSession.dispose()


def test_bare_path_means_a_sqlite_file(tmp_path: Path) -> None:
    url = to_url(str(tmp_path / "site.sqlite"))
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "site.sqlite")


@pytest.mark.parametrize("value", ["", "   ", None])
def test_empty_setting_is_a_clear_error_naming_the_setting(value: str | None) -> None:
    with pytest.raises(DbConfigError, match=r"sqlalchemy\.url"):
        to_url(value)  # type: ignore[arg-type]


def test_malformed_url_is_a_clear_error() -> None:
    with pytest.raises(DbConfigError, match="not a valid URL"):
        to_url("postgresql+psycopg://user@host:notaport/db")


@pytest.mark.usefixtures("clean_dbsession")
def test_unknown_dialect_is_a_clear_error() -> None:
    with pytest.raises(DbConfigError, match=r"sqlalchemy\.url"):
        DbSession.global_init("nosuchdb://user:pw@host/db")
    assert DbSession.engine is None


@pytest.mark.usefixtures("clean_dbsession")
def test_missing_sqlite_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DbConfigError, match="does not exist"):
        DbSession.global_init(str(tmp_path / "no" / "such" / "dir" / "db.sqlite"))


@pytest.mark.usefixtures("clean_dbsession")
def test_global_init_runs_once(tmp_path: Path) -> None:
    factory = DbSession.global_init(str(tmp_path / "a.sqlite"))
    engine = DbSession.engine
    assert DbSession.global_init(f"sqlite:///{tmp_path / 'a.sqlite'}") is factory
    assert DbSession.engine is engine
    with pytest.raises(DbConfigError, match="already connected"):
        DbSession.global_init(str(tmp_path / "b.sqlite"))
    assert DbSession.engine is engine


@pytest.mark.usefixtures("clean_dbsession")
def test_global_init_is_thread_safe(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    factories = []

    def init() -> None:
        barrier.wait()
        factories.append(DbSession.global_init(str(tmp_path / "t.sqlite")))

    threads = [threading.Thread(target=init) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(factories) == 8
    assert len({id(f) for f in factories}) == 1


@pytest.mark.usefixtures("clean_dbsession")
def test_connection_string_is_logged_without_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="myapp.data.db_session")
    DbSession.global_init("postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:1/nothing")
    assert "Connecting to DB at postgresql+psycopg://app:***@127.0.0.1:1/nothing" in caplog.text
    assert "s3cr3t-pw" not in caplog.text
    assert safe_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


@pytest.mark.usefixtures("clean_dbsession")
def test_sqlite_pragmas(tmp_path: Path) -> None:
    DbSession.global_init(str(tmp_path / "p.sqlite"), busy_timeout_ms=1234)
    with DbSession.engine.connect() as conn:  # type: ignore[union-attr]
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234


def test_only_a_server_connection_is_pinged_before_use(tmp_path: Path) -> None:
    """A pooled PostgreSQL connection may have been dropped; a SQLite file
    cannot be (its ping was a statement on every request)."""
    sqlite = DbSession._create_engine(to_url(str(tmp_path / "q.sqlite")), echo=False, busy_timeout_ms=10)
    server = DbSession._create_engine(to_url("postgresql+psycopg://u@127.0.0.1:1/x"), echo=False, busy_timeout_ms=10)
    assert (sqlite.pool._pre_ping, server.pool._pre_ping) == (False, True)  # type: ignore[attr-defined]
    sqlite.dispose()
    server.dispose()


@pytest.mark.usefixtures("clean_dbsession")
def test_sqlite_savepoints_work(tmp_path: Path) -> None:
    """pysqlite's own transaction handling breaks SAVEPOINT; ours must not."""
    DbSession.global_init(str(tmp_path / "s.sqlite"))
    with DbSession.engine.connect() as conn:  # type: ignore[union-attr]
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.commit()
        with conn.begin():
            conn.execute(text("INSERT INTO t VALUES (1)"))
            nested = conn.begin_nested()
            conn.execute(text("INSERT INTO t VALUES (2)"))
            nested.rollback()
        assert conn.execute(text("SELECT x FROM t")).scalars().all() == [1]


@pytest.mark.usefixtures("clean_dbsession")
def test_echo_and_pool_options_come_from_settings(tmp_path: Path) -> None:
    options = engine_options(
        {"sqlalchemy.echo": "true", "sqlalchemy.pool_size": "7", "sqlalchemy.pool_pre_ping": "false"}
    )
    assert options == {"echo": True, "pool_size": 7, "pool_pre_ping": False}
    DbSession.global_init("postgresql+psycopg://u@127.0.0.1:1/x", **options)
    assert DbSession.engine.echo is True  # type: ignore[union-attr]
    assert DbSession.engine.pool.size() == 7  # type: ignore[union-attr]


def test_bad_pool_option_is_a_clear_error() -> None:
    with pytest.raises(DbConfigError, match="pool_size"):
        engine_options({"sqlalchemy.pool_size": "lots"})


def test_database_url_env_overrides_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://x@h/env")
    assert database_url({"sqlalchemy.url": "sqlite:///ini.sqlite"}) == "postgresql+psycopg://x@h/env"
    monkeypatch.delenv("DATABASE_URL")
    assert database_url({"sqlalchemy.url": "sqlite:///ini.sqlite"}) == "sqlite:///ini.sqlite"
    with pytest.raises(DbConfigError, match=r"sqlalchemy\.url"):
        database_url({})


def _child_query(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with DbSession.engine.connect() as conn:  # type: ignore[union-attr]
        queue.put(conn.execute(text("SELECT count(*) FROM t")).scalar())


@pytest.mark.usefixtures("clean_dbsession")
def test_forked_worker_gets_its_own_connections(tmp_path: Path) -> None:
    """After fork the child drops the inherited pool instead of sharing sockets."""
    DbSession.global_init(str(tmp_path / "f.sqlite"))
    with DbSession.engine.begin() as conn:  # type: ignore[union-attr]
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1), (2)"))
    parent_conn = DbSession.engine.connect()  # type: ignore[union-attr]  # checked out across the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_query, args=(queue,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 2
    assert parent_conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    parent_conn.close()


@pytest.mark.usefixtures("clean_dbsession")
def test_sqlite_lock_timeout_is_marked_retryable(tmp_path: Path) -> None:
    """Past the busy timeout SQLite says "database is locked": the request
    may run again, so pyramid_retry must see the error as retryable."""
    from pyramid_retry import IRetryableError
    from sqlalchemy.exc import OperationalError

    DbSession.global_init(str(tmp_path / "l.sqlite"), busy_timeout_ms=50)
    engine = DbSession.engine
    assert engine is not None
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
    holder.begin()  # holds the write lock
    try:
        with engine.connect() as other, pytest.raises(OperationalError) as info:
            other.execute(text("INSERT INTO t VALUES (1)"))
        assert "database is locked" in str(info.value)
        assert IRetryableError.providedBy(info.value)
    finally:
        holder.rollback()
        holder.close()


@pytest.mark.usefixtures("clean_dbsession")
def test_errors_do_not_show_bound_parameters(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    DbSession.global_init(str(tmp_path / "h.sqlite"))
    with DbSession.engine.begin() as conn:  # type: ignore[union-attr]
        conn.execute(text("CREATE TABLE t (x TEXT UNIQUE)"))
        conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "hunter2-secret"})
        with pytest.raises(IntegrityError) as info:
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "hunter2-secret"})
    assert "hunter2-secret" not in str(info.value)


def test_read_probe_sees_the_latest_commit_and_reconnects(db_url) -> None:
    from myapp.data import ReadProbe

    engine = create_engine(db_url)
    probe = ReadProbe("SELECT count(*) FROM classifiers")
    try:
        before = probe(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO classifiers (classifier) VALUES ('Probe :: Test')"))
        assert probe(engine) == before + 1  # no transaction held open: the commit shows at once
        probe._local.held[1].close()  # the database dropped us
        with pytest.raises(Exception):  # whatever the driver raises for a closed connection
            probe(engine)
        assert probe(engine) == before + 1  # ... and the next call connects again
    finally:
        if held := getattr(probe._local, "held", None):
            held[1].close()  # a probe's connection lives as long as its thread; this one ends here
            probe._local.held = None  # (shared by every probe of the thread)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM classifiers WHERE classifier = 'Probe :: Test'"))
        engine.dispose()

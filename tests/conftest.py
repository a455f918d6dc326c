"""Test harness.

* ``db_url`` (session scope) is parametrized: every database test runs on a
  real SQLite file and again on a real PostgreSQL database, each created
  fresh and migrated with the real Alembic migrations.
* ``dbsession`` wraps each test in an outer transaction that is rolled back at
  the end; the app's sessions join it through SAVEPOINTs, so pyramid_tm's
  commits and aborts behave as in production but nothing outlives the test.
* ``LiveServer`` runs the app for real (``myapp-initdb`` + ``pserve`` on
  waitress) in a subprocess, against its own fresh database, for tests that
  need real HTTP clients, threads or a browser.

PostgreSQL comes from ``MYAPP_TEST_PG_URL`` (a server URL; a database is
created on it per run) or the local server on 127.0.0.1:5432. Without one the
PostgreSQL tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import webtest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from myapp import main
from myapp.accounts import passwords
from myapp.data import DbSession, to_url
from myapp.data.migrations import upgrade_to_head
from myapp.packaging.simple import INDEX_CACHE
from myapp.packaging.simple_cache import cache_of
from myapp.upstream.metadata import CACHE_DIR as UPSTREAM_METADATA_CACHE

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data" / "pypi-top-100"
BIN = Path(sys.executable).parent
TEST_SECRET = "test-secret-not-for-production-0123456789"


def missing(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where everything must run."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


# -- PostgreSQL databases -------------------------------------------------------


def _pg_server_url() -> URL:
    return make_url(os.environ.get("MYAPP_TEST_PG_URL") or DEFAULT_PG).set(drivername="postgresql+psycopg")


def pg_available() -> str | None:
    """None if the server answers, else why not."""
    try:
        engine = create_engine(_pg_server_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {_pg_server_url().render_as_string()} is not available ({type(exc).__name__})"
    return None


@contextmanager
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for the duration of the block."""
    reason = pg_available()
    if reason:
        missing(reason)
    server = _pg_server_url()
    name = f"myapp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """A new, empty database of the given backend: its URL."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'db-{uuid.uuid4().hex[:8]}.sqlite'}"
    else:
        with pg_database() as url:
            yield url


BACKENDS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.postgresql_only`` tests are not collected for SQLite at all."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        (drop if backend == "sqlite" and item.get_closest_marker("postgresql_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by the tests of one backend."""
    with fresh_database(backend, tmp_path_factory.mktemp(backend)) as url:
        use_database(url)
        upgrade_to_head(DbSession.engine)  # type: ignore[arg-type]
        yield url
        DbSession.dispose()


def use_database(url: str) -> None:
    """Point the process-wide DbSession at ``url`` (tests switch backends)."""
    if DbSession.url != to_url(url):
        DbSession.dispose()
        DbSession.global_init(url)


# -- password hashing -------------------------------------------------------------

# argon2id at production cost takes about 0.3 s a hash here; the tests that are
# about hashing ask for it with @pytest.mark.real_hashing, the rest hash cheaply.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_hashing") is None:
        monkeypatch.setattr(passwords, "hasher", CHEAP_HASHER)


# -- the app, per-test transactions ---------------------------------------------


def app_settings(url: str, files_dir: Path) -> dict[str, Any]:
    return {
        "sqlalchemy.url": url,
        "myapp.secret": TEST_SECRET,
        "myapp.secure_cookies": "false",
        "myapp.files_dir": str(files_dir),
        "myapp.mail_folder": str(files_dir.parent / "mail"),
        "pyramid.reload_templates": "false",
        "myapp.gc_freeze": "false",  # many apps in one process: let the collector have the old ones
        # Each download's count written as its response is decided, so a test reads it at once;
        # tests/test_downloads.py covers the batched writer a server runs.
        "myapp.download_flush_seconds": "0",
        # Likewise a proxied file's last download (for eviction): none is left in memory at exit,
        # when the test database is gone.
        "myapp.upstream_download_flush_seconds": "0",
    }


@pytest.fixture(scope="session")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="session")
def settings(db_url: str, files_dir: Path) -> dict[str, Any]:
    return app_settings(db_url, files_dir)


@pytest.fixture(scope="session")
def app(settings: dict[str, Any]) -> Any:
    use_database(settings["sqlalchemy.url"])
    return main({}, **settings)


@pytest.fixture
def dbsession(db_url: str, app: Any, files_dir: Path) -> Iterator[Session]:
    """A session in a transaction that is rolled back after the test; the
    app's request sessions share its connection through SAVEPOINTs. What the
    app derived from the rolled-back data (the saved /simple/ listing, the
    kept simple pages) goes too."""
    shutil.rmtree(files_dir / INDEX_CACHE, ignore_errors=True)
    # The proxy's metadata kept by hash: the same wheel's, kept by another test
    # (the other database's run on this worker), would spare the upstream a request.
    shutil.rmtree(files_dir / UPSTREAM_METADATA_CACHE, ignore_errors=True)
    app.registry["fragment_cache"].clear()  # rendered from data another test rolled back
    cache_of(app.registry).clear()
    use_database(db_url)
    engine, factory = DbSession.engine, DbSession.factory
    assert engine is not None and factory is not None
    app.registry["dbsession_factory"] = factory
    connection = engine.connect()
    outer = connection.begin()
    factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    session = factory()
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
        factory.configure(bind=engine, join_transaction_mode="conditional_savepoint")


@pytest.fixture
def sigterm_kept() -> Iterator[None]:
    """An app with a writer installs a SIGTERM handler when none is set: not in the test process after the test."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.fixture
def testapp(app: Any, dbsession: Session) -> webtest.TestApp:
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


class QueryCounter:
    """Counts the SQL statements an engine runs (transaction control excluded)."""

    IGNORED = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT", "ROLLBACK")

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.parameters: list[Any] = []  # beside each statement, for EXPLAIN

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(self.IGNORED):
            self.statements.append(statement)
            self.parameters.append(parameters)

    @property
    def count(self) -> int:
        return len(self.statements)

    def clear(self) -> None:
        self.statements.clear()
        self.parameters.clear()


@pytest.fixture
def count_queries(dbsession: Session) -> Iterator[QueryCounter]:
    counter = QueryCounter()
    event.listen(DbSession.engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(DbSession.engine, "before_cursor_execute", counter)


@pytest.fixture
def cached_app(settings: dict[str, Any], dbsession: Session) -> webtest.TestApp:
    """The app with its page cache on (60 s)."""
    from myapp.config import configure

    app = configure({**settings, "myapp.page_cache_seconds": "60"}).make_wsgi_app()
    return webtest.TestApp(app, extra_environ={"HTTP_HOST": "localhost"})


# -- a real server in a subprocess -----------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_ini(
    path: Path, url: str, files_dir: Path, port: int, threads: int = 8, extra: dict[str, str] | None = None
) -> Path:
    """A test ini; ``extra`` adds app settings (or replaces the defaults: mail
    written to a folder, delivered by a worker thread, as in development; an
    empty ``myapp.mail_folder`` sends mail by SMTP, ``mail.*``)."""
    extra = {"myapp.mail_folder": str(files_dir.parent / "mail"), "myapp.worker_thread": "true", **(extra or {})}
    more = "".join(f"{key} = {value}\n" for key, value in extra.items() if value != "")
    path.write_text(
        f"""[app:main]
use = egg:myapp
sqlalchemy.url = {url.replace("%", "%%")}
myapp.secret = {TEST_SECRET}
myapp.secure_cookies = false
myapp.files_dir = {files_dir}
myapp.access_log = true
{more}
[pshell]
setup = myapp.pshell.setup
default_shell = myapp

[alembic]
script_location = myapp:alembic

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
threads = {threads}

[loggers]
keys = root, myapp, wsgi

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[logger_myapp]
level = INFO
handlers =
qualname = myapp

[logger_wsgi]
level = INFO
handlers =
qualname = wsgi

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
class = myapp.logs.SafeFormatter
format = %(levelname)s [%(name)s] %(message)s
"""
    )
    return path


class LiveServer:
    """``myapp-initdb`` then ``pserve`` on a free port, as a user would run them."""

    def __init__(
        self,
        url: str,
        folder: Path,
        *,
        demo: bool = True,
        migrate: bool = True,
        ini: Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """``ini`` (with the ``port`` it listens on) replaces the generated test ini,
        ``settings`` add to it; ``env`` adds to the environment of every command."""
        self.url = url
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.ini = ini or write_ini(folder / "live.ini", url, folder / "files", self.port, extra=settings)
        self.demo = demo
        self.migrate = migrate
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"PYTHONUNBUFFERED": "1"}
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "server.log"

    def run_cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, input=input, capture_output=True, text=True, env=self.env, timeout=300, check=False)

    def initdb(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run_cli(str(BIN / "myapp-initdb"), str(self.ini), *extra)

    def start(self) -> LiveServer:
        if self.migrate:
            done = self.initdb(*(["--demo"] if self.demo else []))
            assert done.returncode == 0, done.stderr
        with self.log.open("wb") as log:  # the child has its own copy of the file
            self.process = subprocess.Popen(
                [str(BIN / "pserve"), str(self.ini)], stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        self.wait_until_listening()
        return self

    def wait_until_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pserve exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pserve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def live_server(backend: str, folder: Path, **kwargs: Any) -> Iterator[LiveServer]:
    with fresh_database(backend, folder) as url, LiveServer(url, folder, **kwargs) as server:
        yield server


# -- an S3 server (moto) for the object-store tests ---------------------------------


@pytest.fixture(scope="session")
def s3() -> Iterator[Any]:
    """moto's S3 server on 127.0.0.1, one per session (tests/s3server.py)."""
    from tests.s3server import S3Server

    server = S3Server()
    yield server
    server.server.stop()


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new bucket of the session's S3 server, for one test."""
    return s3.bucket()

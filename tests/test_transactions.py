"""The request transaction: commit on success, nothing written on failure,
transient database errors retried. Runs on SQLite and PostgreSQL.

The views here are test-only, added to the real configuration, because the
site's own views are read-only apart from the download counter.
"""

from __future__ import annotations

from typing import Any

import pytest
import webtest
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.response import Response
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from myapp.config import configure
from myapp.data import DbSession
from myapp.packaging.models import Package
from tests.factories import make_package


class Boom(Exception):
    pass


def _rename(request: Any, name: str) -> Package:
    package = request.dbsession.scalar(select(Package).where(Package.name == "victim"))
    package.summary = name
    request.dbsession.flush()  # the UPDATE really reaches the database
    return package


def ok_view(request: Any) -> Response:
    _rename(request, "committed")
    return Response("ok")


def raising_view(request: Any) -> Response:
    _rename(request, "from a view that raised")
    raise Boom("failed after writing")


def client_error_view(request: Any) -> Response:
    _rename(request, "from a 400")
    raise HTTPBadRequest("bad input after writing")


def error_response_view(request: Any) -> Response:
    _rename(request, "from a returned 409")
    return Response("conflict", status=409)


ATTEMPTS: list[int] = []


def flaky_view(request: Any) -> Response:
    """Fails with a retryable error on the first attempt only."""
    ATTEMPTS.append(request.environ["retry.attempt"])
    _rename(request, f"attempt {len(ATTEMPTS)}")
    if len(ATTEMPTS) == 1:
        from pyramid_retry import mark_error_retryable

        exc = Boom("transient")
        mark_error_retryable(exc)
        raise exc
    return Response("ok")


@pytest.fixture(scope="module")
def tx_app(settings: dict[str, Any]) -> Any:
    config = configure(settings)
    for name, view, methods in (
        ("ok", ok_view, ["POST"]),
        ("raising", raising_view, ["POST"]),
        ("client_error", client_error_view, ["POST"]),
        ("error_response", error_response_view, ["POST"]),
        ("flaky", flaky_view, ["POST"]),
        ("serial", serialization_view, ["POST"]),
        ("session", session_view, ["GET"]),
    ):
        config.add_route(name, f"/test/{name}")
        config.add_view(view, route_name=name, require_methods=methods, require_csrf=False)
    return config.make_wsgi_app()


@pytest.fixture
def client(tx_app: Any, dbsession: Session) -> webtest.TestApp:
    tx_app.registry["dbsession_factory"] = DbSession.factory
    make_package(dbsession, "victim", summary="original")
    return webtest.TestApp(tx_app)


def summary(dbsession: Session) -> str | None:
    dbsession.expire_all()
    return dbsession.scalar(select(Package.summary).where(Package.name == "victim"))


def test_success_commits(client, dbsession):
    client.post("/test/ok")
    assert summary(dbsession) == "committed"


def test_exception_writes_nothing(client, dbsession):
    res = client.post("/test/raising", status=500)
    assert "Server error" in res.text
    assert summary(dbsession) == "original"


def test_http_error_writes_nothing(client, dbsession):
    client.post("/test/client_error", status=400)
    assert summary(dbsession) == "original"


def test_returned_error_status_writes_nothing(client, dbsession):
    """The commit veto: a 4xx/5xx response aborts even without an exception."""
    client.post("/test/error_response", status=409)
    assert summary(dbsession) == "original"


def test_retryable_error_reruns_the_whole_request(client, dbsession):
    ATTEMPTS.clear()
    client.post("/test/flaky")
    assert ATTEMPTS == [0, 1]
    # the first attempt's write was rolled back, the second committed
    assert summary(dbsession) == "attempt 2"


def test_csrf_is_required_by_default(app, dbsession):
    """Any view that accepts POST needs a CSRF token unless it opts out."""
    from pyramid.csrf import get_csrf_token

    config = configure(dict(app.registry.settings))
    config.add_route("form", "/test/form")
    config.add_view(lambda request: Response(get_csrf_token(request)), route_name="form", request_method="GET")
    config.add_view(
        lambda request: Response("done"), route_name="form", request_method="POST", require_methods=["POST"]
    )
    client = webtest.TestApp(config.make_wsgi_app())
    res = client.post("/test/form", status=400)
    assert "This form has expired or did not come from this site" in res.text
    token = client.get("/test/form").text  # also sets the signed session cookie
    cookie = client.cookiejar._cookies["localhost.local"]["/"]["myapp_session"]
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "Lax"
    assert client.post("/test/form", headers={"X-CSRF-Token": token}).text == "done"


# -- PostgreSQL serialization failures are really retried ----------------------

SERIAL_CALLS: list[int] = []


def serialization_view(request: Any) -> Response:
    """Read, let another transaction change the row, then write it: under
    REPEATABLE READ the first attempt fails with SQLSTATE 40001."""
    db = request.dbsession
    db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    SERIAL_CALLS.append(request.environ["retry.attempt"])
    count = db.execute(text("SELECT n FROM serial_counter WHERE id = 1")).scalar_one()
    if len(SERIAL_CALLS) == 1:
        # A concurrent writer, on its own connection, commits in between.
        with DbSession.engine.begin() as other:  # type: ignore[union-attr]
            other.execute(text("UPDATE serial_counter SET n = n + 100 WHERE id = 1"))
    db.execute(text("UPDATE serial_counter SET n = :n WHERE id = 1"), {"n": count + 1})
    return Response(str(count + 1))


@pytest.fixture
def pg_counter(backend, tx_app, db_url):
    assert backend == "postgresql"
    # This test needs real commits from two connections, so it works outside
    # the rolled-back test transaction and cleans up after itself.
    tx_app.registry["dbsession_factory"] = DbSession.factory
    with DbSession.engine.begin() as conn:  # type: ignore[union-attr]
        conn.execute(text("CREATE TABLE serial_counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO serial_counter VALUES (1, 0)"))
    yield
    with DbSession.engine.begin() as conn:  # type: ignore[union-attr]
        conn.execute(text("DROP TABLE serial_counter"))


@pytest.mark.postgresql_only  # serialization failures are a PostgreSQL behaviour
@pytest.mark.usefixtures("pg_counter")
def test_postgresql_serialization_failure_is_retried(tx_app):
    SERIAL_CALLS.clear()
    res = webtest.TestApp(tx_app).post("/test/serial")
    assert SERIAL_CALLS == [0, 1]  # the first attempt hit 40001 and ran again
    assert res.text == "101"  # the retry saw the concurrent +100 and added 1
    with DbSession.engine.connect() as conn:  # type: ignore[union-attr]
        assert conn.execute(text("SELECT n FROM serial_counter")).scalar() == 101


SEEN: list[Session] = []


def session_view(request: Any) -> Response:
    SEEN.extend([request.dbsession, request.dbsession])
    request.dbsession.execute(text("SELECT 1"))
    return Response("ok")


def test_each_request_gets_its_own_session_closed_after(tx_app, dbsession):
    tx_app.registry["dbsession_factory"] = DbSession.factory
    client = webtest.TestApp(tx_app)
    SEEN.clear()
    client.get("/test/session")
    client.get("/test/session")
    assert SEEN[0] is SEEN[1]  # reified: one session per request
    assert SEEN[2] is not SEEN[0]  # a new one for the next request
    assert not any(s.in_transaction() for s in SEEN)  # ended with the request

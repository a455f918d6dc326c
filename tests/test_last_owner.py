"""A project keeps an owner even when its owners remove (or demote) each
other at the same moment, in two real PostgreSQL transactions on two
connections. (On SQLite the write lock already makes them take turns.)

To make the dangerous interleaving happen every time rather than now and
then, each transaction pauses right after counting the owners: without a
lock both count two, and both go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from myapp.accounts import services as accounts
from myapp.data.migrations import upgrade_to_head
from myapp.packaging import roles
from myapp.packaging.models import Package, Role, RoleName
from tests.conftest import pg_database
from tests.factories import make_package

TRIALS = 6
PAUSE = 0.3  # seconds each transaction waits after counting the owners


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with pg_database() as url:
        engine = create_engine(url)
        upgrade_to_head(engine)
        yield engine
        engine.dispose()


def _pause_after_counting_owners(conn, cursor, statement: str, *args) -> None:
    if statement.lstrip().upper().startswith("SELECT COUNT(*)") and "roles" in statement:
        time.sleep(PAUSE)


def _project_with_two_owners(factory: sessionmaker, trial: int) -> tuple[int, int, int]:
    with factory() as db, db.begin():
        package = make_package(db, f"Contested-{trial}-{time.monotonic_ns()}")
        a, b = (
            accounts.create_user(
                db, username=f"{who}-{package.id}", email=f"{who}-{package.id}@example.org", password="x"
            )
            for who in ("ann", "bob")
        )
        for user in (a, b):
            roles.set_role(db, package, user, RoleName.OWNER)
        return package.id, a.id, b.id


def _change(factory: sessionmaker, start: threading.Barrier, package_id: int, other_id: int, how: str) -> str:
    """One owner's request: remove (or demote) the other owner, and commit."""
    try:
        with factory() as db, db.begin():
            package = db.get_one(Package, package_id)
            other = accounts.get_user(db, other_id)
            start.wait()
            if how == "remove":
                roles.remove_role(db, package, other)
            else:
                roles.set_role(db, package, other, RoleName.MAINTAINER)
        return "done"
    except roles.LastOwnerError:
        return "refused"


def owners(db: Session, package_id: int) -> int:
    stmt = select(Role).where(Role.package_id == package_id, Role.role == RoleName.OWNER)
    return len(list(db.scalars(stmt)))


def _race(factory: sessionmaker, package_id: int, a: int, b: int, how: str) -> list[str]:
    """a and b change each other's role at once; what each got."""
    start = threading.Barrier(2)
    results: list[str] = []

    def run(other: int) -> None:
        results.append(_change(factory, start, package_id, other, how))

    threads = [threading.Thread(target=run, args=(other,)) for other in (b, a)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.parametrize("how", ["remove", "demote"])
def test_two_owners_removing_each_other_leave_one(engine, how):
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(engine, "after_cursor_execute", _pause_after_counting_owners)
    try:
        for trial in range(TRIALS):
            package_id, a, b = _project_with_two_owners(factory, trial)
            results = _race(factory, package_id, a, b, how)
            with factory() as db:
                left = owners(db, package_id)
            assert left == 1, f"trial {trial}: {left} owners left ({results})"
            assert sorted(results) == ["done", "refused"], results
    finally:
        event.remove(engine, "after_cursor_execute", _pause_after_counting_owners)

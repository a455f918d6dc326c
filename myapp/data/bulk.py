"""Writing many rows at once, at the driver's speed.

An ORM or Core ``executemany`` processes every parameter of every row in
Python, which costs more than the database's own work for a bulk import.
``insert_rows`` converts values with the columns' own bind processors (so a
row reads back exactly as one the ORM wrote: UTC datetimes, JSON) and hands
them to the driver in one call: ``executemany`` on SQLite, ``COPY`` on
PostgreSQL. It runs in the session's transaction, so a SAVEPOINT around it
still undoes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import DateTime, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


class RowConverter:
    """Turns a tuple of Python values for ``columns`` of ``table`` into what
    the driver takes, as the ORM would (UTC datetimes, JSON), for one
    dialect. Plain data: a bulk writer's worker processes can convert their
    rows before handing them over."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Any) -> None:
        self.columns = tuple(columns)
        processors = ((table.c[name].type, table.c[name].type._cached_bind_processor(dialect)) for name in columns)
        self._processors = [(i, _memoized(t, p)) for i, (t, p) in enumerate(processors) if p is not None]

    def __call__(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self._processors:
            return tuple(row)
        values = list(row)
        for i, process in self._processors:
            if values[i] is not None:
                values[i] = process(values[i])
        return tuple(values)


def _memoized(type_: Any, process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A datetime goes through two layers of Python (to naive UTC, then the
    dialect's form), and a project's rows repeat the same one: a document
    with one file has it four times. Equal instants convert alike."""
    is_datetime = isinstance(getattr(type_, "impl_instance", type_), DateTime)  # a TypeDecorator's own type
    return functools.lru_cache(maxsize=64)(process) if is_datetime else process


def insert_rows(
    db: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, converted: bool = False
) -> None:
    """INSERT ``rows`` (tuples in the order of ``columns``) into ``table``;
    ``converted`` rows went through a ``RowConverter`` already."""
    if not rows:
        return
    connection = db.connection()
    dialect = connection.dialect
    if not converted:
        convert = RowConverter(table, columns, dialect)
        rows = [convert(row) for row in rows]
    names = ", ".join(dialect.identifier_preparer.quote(name) for name in columns)
    target = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql":
        statement = f"COPY {target} ({names}) FROM STDIN"
    else:
        statement = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608  # nosec B608 (quoted names, bound values)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if dialect.name == "postgresql":
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(statement, rows)
    except dialect.loaded_dbapi.Error as exc:
        # As SQLAlchemy's own (IntegrityError for a duplicate...), so callers catch one kind.
        raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


@contextmanager
def row_triggers_suspended(db: Session, *tables: str) -> Iterator[bool]:
    """SQLite: drop the tables' triggers for the block, and create them again
    as they were, all inside the session's transaction (no other connection
    ever sees them missing). For bulk writes that do the triggers' work once
    per batch: SQLite has only row triggers, and a trigger that writes to an
    FTS5 table makes it flush its index for every row. Yields whether it did;
    elsewhere (PostgreSQL's statement triggers are cheap) it does nothing.

    On an error the caller's rollback restores them: SQLite's DDL is transactional."""
    connection = db.connection()
    if connection.dialect.name != "sqlite":
        yield False
        return
    names = ", ".join("?" for _ in tables)
    triggers = connection.exec_driver_sql(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({names})",  # noqa: S608  # nosec B608 (placeholders only)
        tuple(tables),
    ).all()
    for name, _ in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    yield True
    for _, sql in triggers:
        connection.exec_driver_sql(sql)

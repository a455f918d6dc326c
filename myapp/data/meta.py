"""The declarative base every model inherits, and shared column types."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, Enum, MetaData, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so Alembic can later drop or alter them by
# name on every backend (SQLite and PostgreSQL name them differently otherwise).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def stored_time(moment: datetime) -> str:
    """A time as ``UTCDateTime`` keeps it (naive UTC; SQLAlchemy's text on SQLite,
    which compares in order; PostgreSQL casts it): for comparisons in raw SQL."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")  # a third faster than strftime


def str_enum(cls: type[enum.StrEnum], length: int) -> Enum:
    """A Python ``StrEnum`` stored as its values in a plain string column (no
    database enum type to migrate), checked on the way in."""
    return Enum(
        cls, native_enum=False, length=length, validate_strings=True, values_callable=lambda e: [m.value for m in e]
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A model's table, for Core statements (SQLAlchemy types ``__table__`` as any FROM clause)."""
    return cast(Table, model.__table__)

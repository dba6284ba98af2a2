"""Small SQL helpers shared by the stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

V = TypeVar("V")


def insert_for(session: AsyncSession, model: type[DeclarativeBase]) -> Any:
    """A dialect-specific INSERT that supports ON CONFLICT (SQLite and PostgreSQL)."""
    table = model.__table__
    assert isinstance(table, Table)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def insert_ignore(
    session: AsyncSession,
    model: type[DeclarativeBase],
    values: dict[str, Any],
    conflict: Sequence[str],
) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING; the new row's id, or None when it already existed."""
    table = model.__table__
    assert isinstance(table, Table)
    stmt = (
        insert_for(session, model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(table.c.id)
    )
    result = await session.execute(stmt)
    row = result.first()
    return None if row is None else int(row[0])


def chunks(values: Sequence[V], size: int = 500) -> Iterator[Sequence[V]]:
    """`values` in slices of at most `size` (to stay under bound-parameter limits)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]

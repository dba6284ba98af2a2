"""What the benchmarks share: PostgreSQL connections and throwaway databases, and values
written to SQLite the way Subdesk's own tables store them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import make_url


async def pg_connect(url: str) -> Any:
    """An asyncpg connection to the database `url` names (`postgres` when it names none)."""
    import asyncpg  # type: ignore[import-untyped]

    u = make_url(url)
    return await asyncpg.connect(host=u.host, port=u.port or 5432,
                                 user=u.username or "postgres", password=u.password,
                                 database=u.database or "postgres")


async def pg_recreate(url: str, *, drop_only: bool = False) -> None:
    """Drop the database `url` names (closing its sessions) and create it empty again."""
    admin = await pg_connect(make_url(url).set(database="postgres").render_as_string(False))
    name = make_url(url).database
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def sqlite_value(value: Any) -> Any:
    """A date or time as Subdesk's SQLite tables hold it (UTC text), anything else as is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value

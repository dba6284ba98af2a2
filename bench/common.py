"""What the benchmarks share: PostgreSQL connections and throwaway databases, values
written to SQLite the way Subdesk's own tables store them, the CPU time processes spent
(from /proc), and the checks of their numeric arguments."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Callable, Iterable
from pathlib import Path
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


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int] | None = None, *, named: str | None = None
                ) -> dict[int, float]:
    """User + system CPU seconds of each process so far (its own, not its children's):
    of `pids`, or of every process whose name is `named`."""
    if pids is None:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    used: dict[int, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # it has ended
            continue
        name, _, rest = stat.partition(" (")[2].rpartition(") ")
        if named is not None and name != named:
            continue
        fields = rest.split()
        used[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return used


def cpu_since(before: dict[int, float], after: dict[int, float],
              pids: set[int] | None = None) -> float:
    """CPU seconds spent between two `cpu_seconds` readings (by `pids` only, when given)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items()
               if pids is None or pid in pids)


def number(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number (`10_000` allowed) of at least `least`, or one
    clear line saying what is wrong."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}")
        return value
    return parse


def numbers(least: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated whole numbers, each of at least `least`."""
    one = number(least)

    def parse(text: str) -> list[int]:
        values = [one(part) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError("no number given")
        return values
    return parse

"""Benchmark: the SLA sweep stays a query over open tickets only.

    .venv/bin/python bench/sla.py --engine sqlite --total 1000000 --open 10000,100000
    .venv/bin/python bench/sla.py --engine postgresql --total 1000000 --open 10000,100000

Loads organizations and `--total` tickets, of which each `--open` size are open with a
running response clock (one in ten past its "at risk" instant, the rest later); the others
are closed. For each size it times the first `SlaService.sweep` (claims and queues every due
alert), a repeat sweep (nothing left to claim), and beside them a raw SQL select of the same
due rows through the same partial index.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import text
from sqlalchemy.engine import make_url
from tickets import (  # the loaders and the organizations of the tickets benchmark
    CHUNK,
    ORG_COLUMNS,
    PG_DEFAULT,
    TICKET_COLUMNS,
    PostgresLoader,
    SqliteLoader,
    World,
    calendar,
)

from bench.common import numbers, pg_connect, pg_recreate
from bot.clock import FixedClock
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.db import Database
from storage.models import TICKETS_AWAITING

RAW = f"SELECT id FROM tickets WHERE {TICKETS_AWAITING} AND sla_warn_at <= :now"


def ticket_rows(start: int, stop: int, open_ids: set[int], orgs: int, now: dt.datetime,
                rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(start, stop):
        org = rng.randint(1, orgs)
        created = now - dt.timedelta(hours=rng.randint(1, 24 * 300))
        if i in open_ids:
            warn = now - dt.timedelta(minutes=rng.randint(1, 600)) if rng.random() < 0.1 else (
                now + dt.timedelta(minutes=rng.randint(1, 6000)))
            rows.append((i, org, None, f"Ticket {i}", "", "sev3", "open", None, "console",
                         created, created, warn + dt.timedelta(hours=2), None, None, None,
                         None, warn, calendar(org)))
        else:
            rows.append((i, org, None, f"Ticket {i}", "", "sev3", "closed", None, "console",
                         created, created, created + dt.timedelta(hours=8),
                         created + dt.timedelta(hours=1), None, None,
                         created + dt.timedelta(days=2), None, calendar(org)))
    return rows


async def run(engine: str, total: int, sizes: list[int], orgs: int, url: str | None) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if engine == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="subdesk-bench-")
    else:
        url = url or PG_DEFAULT
        name = make_url(url).database or ""
        if name in ("", "postgres", "template0", "template1") or name.startswith("subdesk_test"):
            raise SystemExit(f"refusing to drop database {name!r}; use a dedicated one")
    print(f"{'engine':<10} {'tickets':>9} {'open':>8} {'due':>6}  {'first sweep':>12} "
          f"{'repeat sweep':>13} {'raw select':>11}")
    for size in sorted(sizes):
        if tmp is not None:
            url = f"sqlite:///{tmp.name}/bench-{size}.db"  # a fresh database per size
        else:
            assert url is not None
            await pg_recreate(url)
        db = Database(url)
        await db.upgrade()
        loader: SqliteLoader | PostgresLoader = (
            SqliteLoader(make_url(url).database or "") if engine == "sqlite"
            else PostgresLoader(await pg_connect(url)))

        async def insert(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]],
                         loader: SqliteLoader | PostgresLoader = loader) -> None:
            if isinstance(loader, SqliteLoader):
                loader.insert(table, columns, rows)
            else:
                await loader.insert(table, columns, rows)

        rng = random.Random(size)
        await insert("organizations", ORG_COLUMNS, World(orgs, now).org_rows())
        open_ids = set(rng.sample(range(1, total + 1), size))
        for start in range(1, total + 1, CHUNK):
            await insert("tickets", TICKET_COLUMNS,
                         ticket_rows(start, min(start + CHUNK, total + 1), open_ids, orgs, now,
                                     rng))
        if isinstance(loader, SqliteLoader):
            loader.analyze()
            loader.close()
        else:
            await loader.analyze()
            await loader.conn.close()

        services = Services.build(db, Settings(_env_file=None, database_url=url),
                                  FixedClock(now))
        started = time.perf_counter()
        first = await services.sla.sweep()
        first_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        again = await services.sla.sweep()
        again_ms = (time.perf_counter() - started) * 1000
        async with db.read() as session:
            started = time.perf_counter()
            due = len((await session.execute(text(RAW), {"now": now})).all())
            raw_ms = (time.perf_counter() - started) * 1000
        assert first.at_risk + first.breached == due and again == type(again)()
        print(f"{engine:<10} {total:>9,} {size:>8,} {due:>6,}  {first_ms:>9.1f} ms "
              f"{again_ms:>10.1f} ms {raw_ms:>8.1f} ms", flush=True)
        await db.dispose()
    if tmp is not None:
        tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--open", type=numbers(1), default="10000,100000",
                        help="comma-separated counts of open tickets, one run each")
    parser.add_argument("--orgs", type=int, default=1_000)
    parser.add_argument("--url", help="database URL (PostgreSQL: a dedicated database; it is "
                                      f"dropped and recreated). Default {PG_DEFAULT}")
    args = parser.parse_args()
    asyncio.run(run(args.engine, args.total, args.open, args.orgs, args.url))


if __name__ == "__main__":
    main()

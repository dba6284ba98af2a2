"""Benchmark: `/ticket list` and `/triage queue` through `Core.handle` as tickets grow.

    .venv/bin/python bench/tickets.py --engine sqlite --tickets 10000,1000000
    .venv/bin/python bench/tickets.py --engine postgresql --tickets 10000,1000000

Loads 10,000 organizations (a Main Contact and two Technical Contacts each, one in ten
sharing tickets) and then tickets in bulk up to each size (most closed, a few percent
active), and times the core entry point for a random Technical Contact's `/ticket list`
(alternating `open` and `all`) and a support engineer's `/triage queue`. The same
contact's `/subdesk whoami`, interleaved call by call, is the baseline: it costs what every
command costs (parsing, resolving the person) without touching tickets, so the ratios to it
hold on a noisy machine. The floor, interleaved too, is one raw driver transaction (aiosqlite
or asyncpg, no ORM) reading the same contact by email: what no command can beat.
PostgreSQL runs in its own database (`subdesk_bench` by default), dropped and recreated on
every run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import make_url

from bench.common import numbers, pg_connect, pg_recreate, sqlite_value
from bot.commands.invocation import Invocation, Sender
from bot.domain import Platform
from bot.wiring.config import DEFAULT_SLA_MINUTES, Settings
from bot.wiring.runtime import build_app
from storage.db import Database

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/subdesk_bench"
ENGINEER = "eng@vendor.bench"
LEVELS = ("basic", "standard", "premium")
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
CHUNK = 50_000
WARMUP = 50
LABELS = ("/ticket list", "/triage queue", "/subdesk whoami", "raw floor")
FLOOR_SQL = (
    "SELECT c.id, c.org_id, c.name, c.email, c.is_main, c.is_administrative, c.is_technical, "
    "o.id, o.name, o.level FROM contacts c JOIN organizations o ON o.id = c.org_id "
    "WHERE c.email = {} ORDER BY c.id LIMIT 1"
)

ORG_COLUMNS = ("id", "key", "name", "program", "level", "region", "timezone", "starts_on",
               "ends_on", "sharing", "alert_channels", "created_at", "updated_at")
CONTACT_COLUMNS = ("id", "org_id", "name", "email", "is_main", "is_administrative",
                   "is_technical", "created_at", "updated_at")
STAFF_COLUMNS = ("id", "email", "name", "is_engineer", "is_billing", "is_admin", "created_at")
TICKET_COLUMNS = ("id", "org_id", "opener_id", "subject", "description", "severity", "status",
                  "assignee_id", "source_platform", "created_at", "updated_at",
                  "first_response_due_at", "first_responded_at", "sla_paused_at", "solved_at",
                  "closed_at", "sla_warn_at", "sla_calendar")


def tech_email(org: int, n: int) -> str:
    return f"tech{n}@org{org}.bench"


def calendar(org: int) -> str:
    """The calendar of an organization's tickets (`Organization.calendar`): all in Madrid,
    no country, the level by id."""
    return f"Europe/Madrid||{LEVELS[org % 3]}"


def tech_id(org: int, n: int) -> int:
    """Contact ids: org k has main 3k-2 and Technical Contacts 3k-1, 3k."""
    return 3 * org - 2 + n


class World:
    """Deterministic rows for organizations, contacts, staff and tickets."""

    def __init__(self, orgs: int, now: dt.datetime, seed: int = 42) -> None:
        self.orgs = orgs
        self.now = now
        self.rng = random.Random(seed)

    def org_rows(self) -> list[tuple[Any, ...]]:
        today = self.now.date()
        return [
            (k, f"org{k}", f"Org {k}", "customer", LEVELS[k % 3], "europe", "Europe/Madrid",
             today - dt.timedelta(days=200), today + dt.timedelta(days=165), k % 10 == 0, "[]",
             self.now, self.now)
            for k in range(1, self.orgs + 1)
        ]

    def contact_rows(self) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for k in range(1, self.orgs + 1):
            rows.append((tech_id(k, 0), k, f"Main {k}", f"main@org{k}.bench", True, False, False,
                         self.now, self.now))
            for n in (1, 2):
                rows.append((tech_id(k, n), k, f"Tech {k}.{n}", tech_email(k, n), False, False,
                             True, self.now, self.now))
        return rows

    def staff_rows(self) -> list[tuple[Any, ...]]:
        return [(1, ENGINEER, "Eng One", True, False, False, self.now)]

    def ticket_rows(self, start: int, stop: int) -> Iterator[list[tuple[Any, ...]]]:
        """Tickets `start`..`stop-1` in chunks: 97 % solved or closed, the rest active."""
        rng = self.rng
        chunk: list[tuple[Any, ...]] = []
        for i in range(start, stop):
            org = rng.randint(1, self.orgs)
            opener = tech_id(org, rng.choice((1, 2)))
            sev = rng.choice(SEVERITIES)
            roll = rng.random()
            row: tuple[Any, ...]
            if roll < 0.97:
                created = self.now - dt.timedelta(minutes=rng.randint(60 * 24 * 3, 60 * 24 * 365))
                target = dt.timedelta(minutes=DEFAULT_SLA_MINUTES[LEVELS[org % 3]][sev])
                status = "closed" if roll < 0.8 else "solved"
                done = created + dt.timedelta(hours=rng.randint(1, 48))
                row = (i, org, opener, f"Ticket {i}", "", sev, status, 1, "console", created,
                       done, created + target, created + dt.timedelta(minutes=20), None,
                       done if status == "solved" else None,
                       done if status == "closed" else None, None, calendar(org))
            else:
                created = self.now - dt.timedelta(minutes=rng.randint(1, 60 * 48))
                target = dt.timedelta(minutes=DEFAULT_SLA_MINUTES[LEVELS[org % 3]][sev])
                status = rng.choice(("new", "new", "open", "open", "pending", "on_hold"))
                responded = None if status == "new" or rng.random() < 0.5 else created
                paused = created if status == "pending" else None
                warn = None if responded else created + target * 0.8
                row = (i, org, opener, f"Ticket {i}", "", sev, status, None, "console", created,
                       created, created + target, responded, paused, None, None, warn,
                       calendar(org))
            chunk.append(row)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


# Loading -------------------------------------------------------------------------------

class SqliteLoader:
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous=OFF")

    def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' for _ in columns)})")
        self.conn.execute("BEGIN")
        self.conn.executemany(sql, ([sqlite_value(v) for v in row] for row in rows))
        self.conn.execute("COMMIT")

    def analyze(self) -> None:
        self.conn.execute("ANALYZE")

    def close(self) -> None:
        self.conn.close()


class PostgresLoader:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def insert(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
                     ) -> None:
        await self.conn.copy_records_to_table(table, records=rows, columns=list(columns))

    async def analyze(self) -> None:
        await self.conn.execute("ANALYZE")
        await self.conn.execute(
            "SELECT setval(pg_get_serial_sequence('tickets', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM tickets))"
        )


# Timing --------------------------------------------------------------------------------

def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


class Floor:
    """The least a command can cost: one transaction reading the person by email, sent by
    the raw driver (aiosqlite or asyncpg) on its own connection, with no ORM or core."""

    def __init__(self, engine: str, url: str) -> None:
        self.engine = engine
        self.url = url
        self.conn: Any = None

    async def open(self) -> None:
        if self.engine == "sqlite":
            import aiosqlite

            self.conn = await aiosqlite.connect(make_url(self.url).database or "",
                                                isolation_level=None)
        else:
            self.conn = await pg_connect(self.url)

    async def __call__(self, email: str) -> None:
        if self.engine == "sqlite":
            await self.conn.execute("BEGIN")
            rows = await self.conn.execute_fetchall(FLOOR_SQL.format("?"), (email,))
            await self.conn.execute("COMMIT")
        else:
            async with self.conn.transaction():
                rows = await self.conn.fetch(FLOOR_SQL.format("$1"), email)
        if not rows:
            raise SystemExit(f"the floor query found no contact {email}")

    async def close(self) -> None:
        await self.conn.close()


async def measure(core: Any, floor: Floor, rounds: list[list[tuple[str, str | None]]]
                  ) -> list[list[float]]:
    """Milliseconds per `Core.handle` call (and per floor transaction, text None); each
    round runs one call of every command in turn, so machine noise falls on all alike."""
    samples: list[list[float]] = [[] for _ in rounds[0]] if rounds else []
    for commands in rounds:
        for slot, (email, text) in enumerate(commands):
            if text is None:
                start = time.perf_counter()
                await floor(email)
                samples[slot].append((time.perf_counter() - start) * 1000)
                continue
            sender = Sender(Platform.CONSOLE, "local", email, asserted_email=email)
            start = time.perf_counter()
            reply = await core.handle(Invocation(sender, text))
            samples[slot].append((time.perf_counter() - start) * 1000)
            if not reply.ok:
                raise SystemExit(f"{text!r} as {email} failed: {reply.message.text}")
    return samples


async def run(engine: str, sizes: list[int], orgs: int, iterations: int, url: str | None
              ) -> None:
    now = dt.datetime.now(dt.UTC)
    world = World(orgs, now)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if engine == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="subdesk-bench-")
        url = url or f"sqlite:///{tmp.name}/bench.db"
    else:
        url = url or PG_DEFAULT
        name = make_url(url).database or ""
        if name in ("", "postgres", "template0", "template1") or name.startswith("subdesk_test"):
            raise SystemExit(f"refusing to drop database {name!r}; use a dedicated one")
        await pg_recreate(url)
    db = Database(url)
    await db.upgrade()
    settings = Settings(_env_file=None, database_url=url)

    loader: SqliteLoader | PostgresLoader
    if engine == "sqlite":
        loader = SqliteLoader(make_url(url).database or "")
    else:
        loader = PostgresLoader(await pg_connect(url))

    async def insert(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        if isinstance(loader, SqliteLoader):
            loader.insert(table, columns, rows)
        else:
            await loader.insert(table, columns, rows)

    started = time.perf_counter()
    await insert("organizations", ORG_COLUMNS, world.org_rows())
    await insert("contacts", CONTACT_COLUMNS, world.contact_rows())
    await insert("staff", STAFF_COLUMNS, world.staff_rows())
    print(f"{engine}: {orgs} organizations, {3 * orgs} contacts loaded in "
          f"{time.perf_counter() - started:.1f}s", flush=True)

    app = await build_app(settings, db=db, factories={})
    floor = Floor(engine, url)
    await floor.open()
    rng = random.Random(7)
    loaded = 0
    results = []
    for size in sorted(sizes):
        started = time.perf_counter()
        for chunk in world.ticket_rows(loaded + 1, size + 1):
            await insert("tickets", TICKET_COLUMNS, chunk)
        loaded = size
        if isinstance(loader, SqliteLoader):
            loader.analyze()
        else:
            await loader.analyze()
        print(f"{engine}: {size:,} tickets loaded (+ANALYZE) in "
              f"{time.perf_counter() - started:.1f}s", flush=True)
        scopes = ("/ticket list", "/ticket list all")
        rounds = []
        for i in range(iterations + WARMUP):
            contact = tech_email(rng.randint(1, orgs), rng.choice((1, 2)))
            rounds.append([(contact, scopes[i % 2]), (ENGINEER, "/triage queue"),
                           (contact, "/subdesk whoami"), (contact, None)])
        measured = await measure(app.core, floor, rounds)
        for label, samples in zip(LABELS, measured, strict=True):
            samples = samples[WARMUP:]
            results.append((size, label, samples))
            print(f"{engine:<10} {size:>9,} tickets  {label:<15} n={len(samples):<5} "
                  f"p50={statistics.median(samples):6.2f} ms  "
                  f"p99={percentile(samples, 99):6.2f} ms  "
                  f"max={max(samples):6.2f} ms", flush=True)
    await app.close()
    await floor.close()
    if isinstance(loader, SqliteLoader):
        loader.close()
    else:
        await loader.conn.close()
    if tmp is not None:
        tmp.cleanup()
    print()
    print("baseline: /subdesk whoami resolves the same contact through the same entry point "
          "without touching tickets")
    print(f"floor: one raw {'aiosqlite' if engine == 'sqlite' else 'asyncpg'} transaction "
          "reading the same contact by email (BEGIN, SELECT, COMMIT)")
    print(f"{'engine':<10} {'tickets':>9}  {'command':<15} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p50/base':>8} {'p99/base':>8} {'p50/floor':>9}")
    for size, label, samples in results:
        base = next(s for n, c, s in results if n == size and c == LABELS[2])
        lowest = next(s for n, c, s in results if n == size and c == LABELS[3])
        print(f"{engine:<10} {size:>9,}  {label:<15} {statistics.median(samples):7.2f} "
              f"{percentile(samples, 99):7.2f} "
              f"{statistics.median(samples) / statistics.median(base):8.2f} "
              f"{percentile(samples, 99) / percentile(base, 99):8.2f} "
              f"{statistics.median(samples) / statistics.median(lowest):9.2f}")
    small, large = min(sizes), max(sizes)
    if small != large:
        for label in LABELS[:2]:
            a = next(s for n, c, s in results if n == small and c == label)
            b = next(s for n, c, s in results if n == large and c == label)
            print(f"{label}: {large:,} vs {small:,} tickets — p50 ×"
                  f"{statistics.median(b) / statistics.median(a):.2f}, p99 ×"
                  f"{percentile(b, 99) / percentile(a, 99):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--tickets", type=numbers(1), default="10000,1000000",
                        help="comma-separated sizes, measured in increasing order")
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=1000,
                        help="timed calls per command and size")
    parser.add_argument("--url", help="database URL (PostgreSQL: a dedicated database; it is "
                                      f"dropped and recreated). Default {PG_DEFAULT}")
    args = parser.parse_args()
    asyncio.run(run(args.engine, args.tickets, args.orgs, args.iterations, args.url))


if __name__ == "__main__":
    main()

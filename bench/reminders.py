"""Reminder sweep benchmark on PostgreSQL or SQLite (billing and exactly-once reminders).

200,000 invoices across 50,000 organizations, 20,000 of them due a reminder (then 2,000):
times one `ReminderService.sweep` (it claims every due (invoice, stage); each claim is the
queue entry the dispatcher turns into messages) and its peak memory growth, and beside it
the same claims written by one raw INSERT … SELECT … ON CONFLICT DO NOTHING (best of three
of each, interleaved). It also times, apart, the dispatcher's share: turning those claims
into one outbox row per recipient (`ReminderService.queue_claimed`, batch after batch).

    .venv/bin/python bench/reminders.py [--engine postgresql|sqlite]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

On PostgreSQL it creates (and drops afterwards) its own database, `subdesk_bench_reminders`;
on SQLite it uses a temporary file. The raw statement runs on the engine's own driver
(asyncpg; the standard library's sqlite3 with the same WAL settings as Subdesk).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import make_url

from bench.common import pg_connect, pg_recreate, sqlite_value
from bot.clock import FixedClock
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.db import Database

DB_NAME = "subdesk_bench_reminders"
ORGS = 50_000
INVOICES = 200_000
NOW = dt.datetime(2027, 1, 13, 18, 0, tzinfo=dt.UTC)  # a Wednesday
ZONES = ("Europe/Madrid", "Europe/London", "America/New_York", "America/Los_Angeles", "UTC")
# Due dates whose stage is reached today (Wed 13 Jan 2027), and the stage each gives.
DUE_STAGES = {
    dt.date(2027, 1, 20): "due-7",
    dt.date(2027, 1, 13): "due+0",
    dt.date(2027, 1, 6): "due+7",
    dt.date(2026, 12, 30): "due+14",
}
FINAL_CLAIMED = 10_000  # open, long overdue, final stage already sent
PAID = 30_000
AMOUNTS = (99, 250, 1200, 1234.5, 4800, 12000)
REPEAT = 3


def rows(due: int) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Organizations, contacts, some chat identities and invoices, by table."""
    rng = random.Random(7)
    created = NOW - dt.timedelta(days=400)
    orgs = [(i, f"org{i}", f"Organization {i}", "customer", "standard",
             ("us", "europe", "worldwide")[i % 3], ZONES[i % len(ZONES)],
             dt.date(2026, 1, 1), dt.date(2028, 6, 30), False, "[]", created, created)
            for i in range(1, ORGS + 1)]
    contacts = []
    for i in range(1, ORGS + 1):
        contacts.append((len(contacts) + 1, i, f"Main {i}", f"main@org{i}.test", True, False,
                         i % 5 == 0, created, created))
        if i % 4 == 0:
            contacts.append((len(contacts) + 1, i, f"Admin {i}", f"admin@org{i}.test", False,
                             True, False, created, created))
    identities = [(n, "slack", "T0BENCH", f"U{c[0]:08d}", c[0], None, created)
                  for n, c in enumerate(contacts[::3], start=1)]
    invoices = []
    due_dates = list(DUE_STAGES)
    for n in range(1, INVOICES + 1):
        org = rng.randint(1, ORGS)
        amount = AMOUNTS[n % len(AMOUNTS)]
        if n <= due:
            due_on, status, paid = due_dates[n % len(due_dates)], "open", 0.0
        elif n <= due + FINAL_CLAIMED:
            due_on, status, paid = dt.date(2026, 10, 1) + dt.timedelta(days=n % 30), "open", 0.0
        elif n <= due + FINAL_CLAIMED + PAID:
            due_on, status, paid = dt.date(2026, 12, 1) + dt.timedelta(days=n % 40), "paid", amount
        else:
            due_on, status, paid = dt.date(2027, 2, 1) + dt.timedelta(days=n % 150), "open", 0.0
        invoices.append((n, f"INV-{n:07d}", org, due_on - dt.timedelta(days=30), due_on,
                         amount, "EUR" if org % 3 else "USD", status, paid, created, created))
    return {
        "organizations": (["id", "key", "name", "program", "level", "region", "timezone",
                           "starts_on", "ends_on", "sharing", "alert_channels", "created_at",
                           "updated_at"], orgs),
        "contacts": (["id", "org_id", "name", "email", "is_main", "is_administrative",
                      "is_technical", "created_at", "updated_at"], contacts),
        "chat_identities": (["id", "platform", "workspace", "user_id", "contact_id",
                             "staff_id", "linked_at"], identities),
        "invoices": (["id", "number", "org_id", "issued_on", "due_on", "amount", "currency",
                      "status", "paid_amount", "created_at", "updated_at"], invoices),
    }


def _stage_case(quote: str) -> tuple[str, str]:
    cases = " ".join(f"WHEN {quote}'{d}' THEN '{s}'" for d, s in DUE_STAGES.items())
    dates = ", ".join(f"{quote}'{d}'" for d in DUE_STAGES)
    return cases, dates


class Postgres:
    """The raw side on asyncpg."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str) -> Postgres:
        return cls(await pg_connect(url))

    async def load(self, due: int) -> None:
        for table, (columns, records) in rows(due).items():
            await self.conn.copy_records_to_table(table, columns=columns, records=records)
        await self.conn.execute(
            "INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at) "
            "SELECT 'invoice', id, due_on::text || ':due+30', $1 FROM invoices "
            "WHERE id > $2 AND id <= $3",
            NOW - dt.timedelta(days=1), due, due + FINAL_CLAIMED,
        )
        await self.conn.execute("ANALYZE")

    async def reset(self) -> None:
        """Back to the loaded state: only the pre-existing final-stage claims, no outbox rows."""
        await self.conn.execute("DELETE FROM reminder_claims WHERE stage NOT LIKE '%due+30'")
        await self.conn.execute("DELETE FROM outbox")
        await self.conn.execute("VACUUM ANALYZE reminder_claims")
        await self.conn.execute("VACUUM ANALYZE outbox")

    async def raw(self) -> int:
        cases, dates = _stage_case("DATE ")
        status = await self.conn.execute(
            "INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at) "
            f"SELECT 'invoice', i.id, i.due_on::text || ':' || CASE i.due_on {cases} END, now() "
            "FROM invoices i "
            f"WHERE i.status = 'open' AND i.due_on IN ({dates}) "
            "ON CONFLICT (kind, subject_id, stage) DO NOTHING"
        )
        return int(status.rsplit(" ", 1)[-1])

    async def count(self, sql: str) -> int:
        return int(await self.conn.fetchval(sql))

    async def move_due_dates(self) -> None:
        await self.conn.execute("UPDATE invoices SET due_on = DATE '2027-05-01' "
                                "WHERE id > 2000 AND id <= 20000")
        await self.conn.execute("VACUUM ANALYZE invoices")

    async def close(self) -> None:
        await self.conn.close()


class Sqlite:
    """The raw side on the standard library's sqlite3, with Subdesk's WAL settings."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")

    async def load(self, due: int) -> None:
        self.conn.execute("BEGIN")
        for table, (columns, records) in rows(due).items():
            self.conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                ([sqlite_value(v) for v in r] for r in records))
        self.conn.execute(
            "INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at) "
            "SELECT 'invoice', id, due_on || ':due+30', ? FROM invoices "
            "WHERE id > ? AND id <= ?",
            (sqlite_value(NOW - dt.timedelta(days=1)), due, due + FINAL_CLAIMED))
        self.conn.execute("COMMIT")
        self.conn.execute("ANALYZE")

    async def reset(self) -> None:
        self.conn.execute("DELETE FROM reminder_claims WHERE stage NOT LIKE '%due+30'")
        self.conn.execute("DELETE FROM outbox")

    async def raw(self) -> int:
        cases, dates = _stage_case("")
        cursor = self.conn.execute(
            "INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at) "
            f"SELECT 'invoice', i.id, i.due_on || ':' || CASE i.due_on {cases} END, ? "
            "FROM invoices i "
            f"WHERE i.status = 'open' AND i.due_on IN ({dates}) "
            "ON CONFLICT (kind, subject_id, stage) DO NOTHING",
            (sqlite_value(NOW),))
        return cursor.rowcount

    async def count(self, sql: str) -> int:
        return int(self.conn.execute(sql).fetchone()[0])

    async def move_due_dates(self) -> None:
        self.conn.execute("UPDATE invoices SET due_on = '2027-05-01' "
                          "WHERE id > 2000 AND id <= 20000")
        self.conn.execute("ANALYZE")

    async def close(self) -> None:
        self.conn.close()


async def sweep(services: Services, *, trace: bool) -> tuple[float, float, Any]:
    gc.collect()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    report = await services.reminders.sweep(NOW)
    elapsed = time.perf_counter() - start
    peak = 0.0
    if trace:
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak = peak_bytes / 2**20
    return elapsed, peak, report


async def queue(services: Services) -> tuple[float, int]:
    """The dispatcher's share: every claimed reminder turned into outbox rows."""
    start = time.perf_counter()
    rows = 0
    while (step := await services.reminders.queue_claimed()).claims:
        rows += step.messages
    return time.perf_counter() - start, rows


async def scenario(url: str, raw: Postgres | Sqlite, due: int) -> None:
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    db = Database(url)
    services = Services.build(db, settings, FixedClock(NOW))
    try:
        await db.ping()
        elapsed = floor = float("inf")
        for _ in range(REPEAT):  # best of REPEAT, sweep and raw statement interleaved
            await raw.reset()
            took, _, report = await sweep(services, trace=False)
            elapsed = min(elapsed, took)
            claims = await raw.count(
                "SELECT count(*) FROM reminder_claims WHERE stage NOT LIKE '%due+30'")
            swept_rows = await raw.count("SELECT count(*) FROM outbox")
            assert claims == due, (claims, due)
            queued_in, queued = await queue(services)
            await raw.reset()
            start = time.perf_counter()
            inserted = await raw.raw()
            floor = min(floor, time.perf_counter() - start)
            assert inserted == due, inserted
        await raw.reset()
        _, peak, _ = await sweep(services, trace=True)
        await raw.reset()
    finally:
        await db.dispose()
    print(f"{due:>6} due of {INVOICES} invoices ({ORGS} organizations): sweep {elapsed:.3f} s "
          f"({claims} claims, {swept_rows} outbox rows; {report.candidates} invoices looked "
          f"at), peak memory growth {peak:.1f} MB; raw INSERT … SELECT … ON CONFLICT "
          f"{floor:.3f} s; ratio {elapsed / floor:.1f}x")
    if queued:
        print(f"{'':>6} then the dispatcher's share: {queued} outbox rows queued from the "
              f"claims in {queued_in:.3f} s (last run)")


async def main(engine: str, pg: str) -> None:
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if engine == "postgresql":
        url = make_url(pg).set(database=DB_NAME).render_as_string(hide_password=False)
        await pg_recreate(url)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="subdesk-bench-")
        url = f"sqlite:///{tmp.name}/reminders.db"
    db = Database(url)
    await db.upgrade()
    await db.dispose()
    raw: Postgres | Sqlite = (await Postgres.connect(url) if engine == "postgresql"
                              else Sqlite(make_url(url).database or ""))
    try:
        start = time.perf_counter()
        await raw.load(due=20_000)
        print(f"{engine}: loaded {ORGS} organizations and {INVOICES} invoices in "
              f"{time.perf_counter() - start:.1f} s")
        await scenario(url, raw, 20_000)
        # Move 18,000 of the due invoices well into the future: 2,000 stay due.
        await raw.move_due_dates()
        await scenario(url, raw, 2_000)
    finally:
        await raw.close()
        if engine == "postgresql":
            await pg_recreate(url, drop_only=True)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server URL (the benchmark creates its own database)")
    args = parser.parse_args()
    asyncio.run(main(args.engine, args.pg))

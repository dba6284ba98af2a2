"""Reminder sweep benchmark on PostgreSQL (issue: billing and exactly-once reminders).

200,000 invoices across 50,000 organizations, 20,000 of them due a reminder (then 2,000):
times one `ReminderService.sweep` (claims and outbox rows) and its peak memory growth, and
beside it the same claims written by one raw INSERT … SELECT … ON CONFLICT DO NOTHING
(best of three of each, interleaved).

    .venv/bin/python bench/reminders.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]

It creates (and drops afterwards) its own database, `subdesk_bench_reminders`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import time
import tracemalloc
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

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


async def _admin(url: str, *sql: str) -> None:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username or "postgres",
                                 password=u.password, database=u.database or "postgres")
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _connect(url: str) -> Any:
    u = make_url(url)
    return await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username or "postgres",
                                 password=u.password, database=u.database)


async def load(conn: Any, due: int) -> None:
    """Bulk-load organizations, contacts, some chat identities and invoices with COPY."""
    rng = random.Random(7)
    created = NOW - dt.timedelta(days=400)
    await conn.copy_records_to_table(
        "organizations",
        columns=["id", "key", "name", "program", "level", "region", "timezone", "starts_on",
                 "ends_on", "sharing", "alert_channels", "created_at", "updated_at"],
        records=[(i, f"org{i}", f"Organization {i}", "customer", "standard",
                  ("us", "europe", "worldwide")[i % 3], ZONES[i % len(ZONES)],
                  dt.date(2026, 1, 1), dt.date(2028, 6, 30), False, "[]", created, created)
                 for i in range(1, ORGS + 1)],
    )
    contacts = []
    for i in range(1, ORGS + 1):
        contacts.append((len(contacts) + 1, i, f"Main {i}", f"main@org{i}.test", True, False,
                         i % 5 == 0, created, created))
        if i % 4 == 0:
            contacts.append((len(contacts) + 1, i, f"Admin {i}", f"admin@org{i}.test", False,
                             True, False, created, created))
    await conn.copy_records_to_table(
        "contacts",
        columns=["id", "org_id", "name", "email", "is_main", "is_administrative",
                 "is_technical", "created_at", "updated_at"],
        records=contacts,
    )
    await conn.copy_records_to_table(
        "chat_identities",
        columns=["id", "platform", "workspace", "user_id", "contact_id", "staff_id",
                 "linked_at"],
        records=[(n, "slack", "T0BENCH", f"U{c[0]:08d}", c[0], None, created)
                 for n, c in enumerate(contacts[::3], start=1)],
    )
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
    await conn.copy_records_to_table(
        "invoices",
        columns=["id", "number", "org_id", "issued_on", "due_on", "amount", "currency",
                 "status", "paid_amount", "created_at", "updated_at"],
        records=invoices,
    )
    await conn.execute(
        "INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at) "
        "SELECT 'invoice', id, due_on::text || ':due+30', $1 FROM invoices "
        "WHERE id > $2 AND id <= $3",
        NOW - dt.timedelta(days=1), due, due + FINAL_CLAIMED,
    )
    await conn.execute("ANALYZE")


async def reset(conn: Any) -> None:
    """Back to the loaded state: only the pre-existing final-stage claims, no outbox rows."""
    await conn.execute("DELETE FROM reminder_claims WHERE stage NOT LIKE '%due+30'")
    await conn.execute("DELETE FROM outbox")
    await conn.execute("VACUUM ANALYZE reminder_claims")
    await conn.execute("VACUUM ANALYZE outbox")


def baseline_sql() -> str:
    cases = " ".join(f"WHEN DATE '{d}' THEN '{s}'" for d, s in DUE_STAGES.items())
    dates = ", ".join(f"DATE '{d}'" for d in DUE_STAGES)
    return (
        "INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at) "
        f"SELECT 'invoice', i.id, i.due_on::text || ':' || CASE i.due_on {cases} END, now() "
        "FROM invoices i "
        f"WHERE i.status = 'open' AND i.due_on IN ({dates}) "
        "ON CONFLICT (kind, subject_id, stage) DO NOTHING"
    )


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


async def scenario(url: str, conn: Any, due: int) -> None:
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    db = Database(url)
    services = Services.build(db, settings, FixedClock(NOW))
    try:
        await db.ping()
        elapsed = raw = float("inf")
        for _ in range(REPEAT):  # best of REPEAT, sweep and raw statement interleaved
            await reset(conn)
            took, _, report = await sweep(services, trace=False)
            elapsed = min(elapsed, took)
            claims = await conn.fetchval(
                "SELECT count(*) FROM reminder_claims WHERE stage NOT LIKE '%due+30'")
            rows = await conn.fetchval("SELECT count(*) FROM outbox")
            assert claims == due, (claims, due)
            await reset(conn)
            start = time.perf_counter()
            status = await conn.execute(baseline_sql())
            raw = min(raw, time.perf_counter() - start)
            assert status.endswith(f" {due}"), status
        await reset(conn)
        _, peak, _ = await sweep(services, trace=True)
        await reset(conn)
    finally:
        await db.dispose()
    print(f"{due:>6} due of {INVOICES} invoices ({ORGS} organizations): sweep {elapsed:.3f} s "
          f"({claims} claims, {rows} outbox rows; {report.candidates} invoices looked at), "
          f"peak memory growth {peak:.1f} MB; raw INSERT … SELECT … ON CONFLICT {raw:.3f} s; "
          f"ratio {elapsed / raw:.1f}x")


async def main(pg: str) -> None:
    await _admin(pg, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)',
                 f'CREATE DATABASE "{DB_NAME}"')
    url = make_url(pg).set(database=DB_NAME).render_as_string(hide_password=False)
    db = Database(url)
    await db.upgrade()
    await db.dispose()
    conn = await _connect(url)
    try:
        start = time.perf_counter()
        await load(conn, due=20_000)
        print(f"loaded {ORGS} organizations and {INVOICES} invoices in "
              f"{time.perf_counter() - start:.1f} s")
        await scenario(url, conn, 20_000)
        # Move 18,000 of the due invoices well into the future: 2,000 stay due.
        await conn.execute("UPDATE invoices SET due_on = DATE '2027-05-01' "
                           "WHERE id > 2000 AND id <= 20000")
        await conn.execute("VACUUM ANALYZE invoices")
        await scenario(url, conn, 2_000)
    finally:
        await conn.close()
        await _admin(pg, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server URL (the benchmark creates its own database)")
    asyncio.run(main(parser.parse_args().pg))

"""Real processes on real PostgreSQL: concurrent sweeps, a sweep killed with SIGKILL, and
queueing killed with SIGKILL still give exactly one reminder per (invoice, stage) and one
message per recipient."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

pytestmark = [
    pytest.mark.peers,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("SUBDESK_TEST_DATABASE_URL"),
                       reason="needs SUBDESK_TEST_DATABASE_URL (PostgreSQL)"),
]

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
DUE = dt.date(2027, 1, 15)  # a Friday: stage -7 on Fri 8 Jan, 0 on Fri 15 Jan
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


async def _connect(url: str) -> Any:
    import asyncpg

    u = make_url(url)
    return await asyncpg.connect(host=u.host, port=u.port or 5432,
                                 user=u.username or "postgres", password=u.password,
                                 database=u.database)


@pytest.fixture
async def pg(db_url: str) -> AsyncIterator[Any]:
    conn = await _connect(db_url)
    yield conn
    await conn.close()


async def _seed(conn: Any, orgs: int, invoices_per_org: int, spread: int = 1) -> int:
    """Organizations in two zones, each with a Main and an Administrative contact; invoices
    due on `DUE`, or with `spread` > 1 on as many days up to it (each reaching its latest
    stage by 8 Jan)."""
    zones = ("Europe/Madrid", "America/New_York")
    await conn.copy_records_to_table(
        "organizations",
        columns=["id", "key", "name", "program", "level", "region", "timezone", "starts_on",
                 "ends_on", "sharing", "alert_channels", "created_at", "updated_at"],
        records=[(i, f"org{i}", f"Org {i}", "customer", "standard", "europe", zones[i % 2],
                  dt.date(2026, 1, 1), dt.date(2028, 12, 31), False, "[]", NOW, NOW)
                 for i in range(1, orgs + 1)],
    )
    await conn.copy_records_to_table(
        "contacts",
        columns=["id", "org_id", "name", "email", "is_main", "is_administrative",
                 "is_technical", "created_at", "updated_at"],
        records=[(2 * i - 1 + k, i, f"C{k} {i}", f"c{k}@org{i}.test", k == 0, k == 1, False,
                  NOW, NOW) for i in range(1, orgs + 1) for k in (0, 1)],
    )
    rows = [(n, f"INV-{n}", (n - 1) % orgs + 1, dt.date(2026, 8, 1),
             DUE - dt.timedelta(days=n % spread), 100, "EUR", "open", 0, NOW, NOW)
            for n in range(1, orgs * invoices_per_org + 1)]
    await conn.copy_records_to_table(
        "invoices",
        columns=["id", "number", "org_id", "issued_on", "due_on", "amount", "currency",
                 "status", "paid_amount", "created_at", "updated_at"],
        records=rows,
    )
    return len(rows)


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBDESK_", "SLACK_",
                                                                     "MATRIX_"))}
    env.update(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING", **extra)
    return env


async def _run_once(db_url: str, now: str, **extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        SUBDESK, "reminders", "run-once", "--now", now, env=_env(db_url, **extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _counts(conn: Any) -> tuple[int, int, int, int, int]:
    """(claims, reminder outbox rows, duplicated messages, claims not as they should be,
    claims still waiting to be queued). A claim waiting to be queued has no message yet; a
    queued one has its two (Main and Administrative contact)."""
    claims = await conn.fetchval("SELECT count(*) FROM reminder_claims WHERE kind = 'invoice'")
    rows = await conn.fetchval("SELECT count(*) FROM outbox WHERE idempotency_key LIKE "
                               "'reminder:invoice:%'")
    dupes = await conn.fetchval(
        "SELECT count(*) FROM (SELECT target, payload::text FROM outbox "
        "WHERE idempotency_key LIKE 'reminder:invoice:%' GROUP BY 1, 2 HAVING count(*) > 1) d")
    broken = await conn.fetchval(
        "SELECT count(*) FROM reminder_claims c WHERE c.kind = 'invoice' AND ("
        "SELECT count(*) FROM outbox o WHERE o.idempotency_key LIKE "
        "'reminder:invoice:' || c.subject_id || ':' || c.stage || ':%') <> "
        "CASE WHEN c.queue = 'pending' THEN 0 ELSE 2 END")
    pending = await conn.fetchval(
        "SELECT count(*) FROM reminder_claims WHERE kind = 'invoice' AND queue = 'pending'")
    return int(claims), int(rows), int(dupes), int(broken), int(pending)


async def _kill_when(conn: Any, proc: asyncio.subprocess.Process, sql: str) -> int:
    """SIGKILL `proc` as soon as `sql` counts something; that count."""
    for _ in range(4000):
        seen = int(await conn.fetchval(sql))
        if seen > 0:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert proc.returncode == -signal.SIGKILL, "still running when killed"
            return seen
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.005)
    await proc.wait()
    raise AssertionError(f"finished (exit {proc.returncode}) before it could be killed")


async def test_three_processes_sweeping_at_once_send_each_stage_once(
    pg: Any, db_url: str
) -> None:
    """Three `subdesk reminders run-once` at the same moment: one claim and one message per
    recipient for each (invoice, stage); a second stage later, the same again."""
    total = await _seed(pg, orgs=200, invoices_per_org=5)
    for now, stages in (("2027-01-08T15:00:00Z", 1), ("2027-01-15T15:00:00Z", 2)):
        procs = [await _run_once(db_url, now, SUBDESK_REMINDER_BATCH="150") for _ in range(3)]
        results = await asyncio.gather(*(p.communicate() for p in procs))
        assert [p.returncode for p in procs] == [0, 0, 0], [r[1].decode() for r in results]
        claims, rows, dupes, broken, pending = await _counts(pg)
        assert claims == total * stages
        assert rows == total * stages * 2
        assert (dupes, broken, pending) == (0, 0, 0)
        won = [int(r[0].decode().split(" invoice reminder")[0].rsplit(" ", 1)[-1])
               for r in results]
        assert sum(won) == total, f"the three sweeps split the work: {won}"
        queued = [int(r[0].decode().split(" message(s) queued")[0].rsplit(" ", 1)[-1])
                  for r in results]
        assert sum(queued) == total * 2, f"and the queueing: {queued}"
    stages = await pg.fetch("SELECT stage, count(*) AS n FROM reminder_claims GROUP BY stage")
    assert {r["stage"]: r["n"] for r in stages} == {f"{DUE}:due-7": total, f"{DUE}:due+0": total}


async def test_sweep_killed_mid_way_then_rerun_sends_everything_once(
    pg: Any, db_url: str
) -> None:
    """SIGKILL after the first windows of due dates committed their claims: those claims
    wait in the queue (no message yet, none lost), and a rerun claims the rest and queues
    everything, with no duplicate and nothing missing."""
    total = await _seed(pg, orgs=500, invoices_per_org=8, spread=120)
    proc = await _run_once(db_url, "2027-01-08T15:00:00Z", SUBDESK_REMINDER_BATCH="40")
    await _kill_when(pg, proc, "SELECT count(*) FROM reminder_claims")
    claims, rows, dupes, broken, pending = await _counts(pg)
    assert 0 < claims < total, "killed part-way through the sweep"
    assert (rows, dupes, broken, pending) == (0, 0, 0, claims), (
        "each window committed whole or not; its claims wait to be queued")
    rerun = await _run_once(db_url, "2027-01-08T15:00:00Z")
    _, err = await rerun.communicate()
    assert rerun.returncode == 0, err.decode()
    assert await _counts(pg) == (total, total * 2, 0, 0, 0), (
        "one claim (the latest stage reached) and two messages per invoice")


async def test_queueing_killed_mid_way_then_rerun_sends_everything_once(
    pg: Any, db_url: str
) -> None:
    """SIGKILL while claims are being turned into messages: every claim either has both its
    messages or none (a batch commits with its claims' mark, or not at all), and a rerun
    queues the rest once."""
    total = await _seed(pg, orgs=500, invoices_per_org=8)
    proc = await _run_once(db_url, "2027-01-08T15:00:00Z", SUBDESK_REMINDER_BATCH="40")
    await _kill_when(pg, proc, "SELECT count(*) FROM outbox")
    claims, rows, dupes, broken, pending = await _counts(pg)
    assert claims == total, "the sweep had claimed everything"
    assert 0 < pending < total, "killed part-way through the queueing"
    assert (rows, dupes, broken) == ((total - pending) * 2, 0, 0)
    rerun = await _run_once(db_url, "2027-01-08T15:00:00Z")
    out, err = await rerun.communicate()
    assert rerun.returncode == 0, err.decode()
    assert "0 invoice reminder(s)" in out.decode()
    assert f"{pending * 2} message(s) queued" in out.decode()
    assert await _counts(pg) == (total, total * 2, 0, 0, 0)

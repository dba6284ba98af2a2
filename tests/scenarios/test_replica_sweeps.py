"""Scheduler sweeps run by two replicas at the same moment (each its own engine and
connection pool on the same database): every reminder, auto-close step and monthly report
happens once. The SLA and invoice reminder sweeps have their own (test_sla.py,
tests/peers/test_reminders_processes.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FixedClock
from bot.wiring.config import Settings
from storage.db import Database
from tests.harness import Harness
from tests.scenarios.test_sla_report import november
from tests.scenarios.tickets_world import ANA, SAM, TOM, build

MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
async def replica(settings: Settings, clock: FixedClock, db_url: str
                  ) -> AsyncIterator[Harness]:
    """A second app on the same database, through its own engine."""
    other_db = Database(db_url)
    try:
        yield await Harness.create(settings, clock, other_db)
    finally:
        await other_db.dispose()


async def test_two_replicas_auto_closing_at_once_step_each_ticket_once(
    harness: Harness, replica: Harness
) -> None:
    """Pending tickets reach their reminder, then their solve, while both replicas sweep:
    one reminder and one solve per ticket."""
    await build(harness)
    for n in range(4):
        await harness.as_(TOM).send(f"/ticket new sev3 Need logs {n}")
        await harness.as_(SAM).send(f"/triage reply {n + 1} Please send the logs")
        await harness.as_(SAM).send(f"/triage status {n + 1} pending")
    harness.clock.set(dt.datetime(2026, 11, 30, 11, 0, tzinfo=MADRID))
    sweeps = (harness.app.services.autoclose.sweep, replica.app.services.autoclose.sweep)
    results = await asyncio.gather(*(s() for s in sweeps * 2))
    assert sum(r.reminded for r in results) == 4
    harness.clock.set(dt.datetime(2026, 12, 4, 11, 0, tzinfo=MADRID))
    results = await asyncio.gather(*(s() for s in sweeps * 2))
    assert sum(r.solved for r in results) == 4
    await harness.drain()
    shown = [m.plain() for m in harness.delivered_to(TOM)]
    assert sum("is waiting for your answer" in t for t in shown) == 4
    assert sum("no answer for 7 business days" in t for t in shown) == 4


async def test_two_replicas_sending_the_monthly_report_at_once_send_it_once(
    harness: Harness, replica: Harness
) -> None:
    """On the first business day both replicas send the reports at the same moment: each
    Main Contact gets November's once."""
    await november(harness)
    harness.clock.set(dt.datetime(2026, 11, 30, 23, 0, tzinfo=MADRID))
    await harness.app.services.sla_report.send_monthly()
    harness.clock.set(dt.datetime(2026, 12, 1, 9, 0, tzinfo=MADRID))
    sent = await asyncio.gather(harness.app.services.sla_report.send_monthly(),
                                replica.app.services.sla_report.send_monthly(),
                                harness.app.services.sla_report.send_monthly())
    assert sum(sent) == 3
    await harness.drain()
    assert len([m for m in harness.delivered_to(ANA) if "2026-11" in m.text]) == 1

"""The set-based reminder sweep claims exactly what the row-by-row rule would.

`ReminderService.sweep` claims invoice stages in SQL, comparing due dates with one cut-off
day per organization timezone. Here invoices in awkward zones (DST both ways, half-hour DST,
a skipped day, extreme offsets, an unknown zone name), with claims already taken (earlier
and later stages, claims of another due date, undated claims from before claims carried
the due date), paid and void ones, are swept at instants around DST changes and weekends,
forwards and then backwards; each sweep's new claims must be exactly those that
`bot.reminder_stages.invoice_stage_due` gives for each invoice, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.reminder_stages import invoice_claim, invoice_stage, invoice_stage_due
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.db import Database
from storage.models import InvoiceRow, OrganizationRow, ReminderClaimRow

ZONES = ("Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Europe/Dublin", "Pacific/Apia", "Asia/Kathmandu", "Pacific/Kiritimati",
         "Pacific/Pago_Pago", "America/St_Johns", "Africa/Casablanca", "UTC", "Not/A_Zone")
# 10 Mar – 6 Apr 2027: New York springs forward on 14 Mar, Madrid and Dublin on 28 Mar,
# Lord Howe falls back half an hour on 4 Apr.
START = dt.datetime(2027, 3, 10, tzinfo=dt.UTC)
DAYS = 28


def _nows(rng: random.Random) -> list[dt.datetime]:
    """Random instants across the span, each Monday around 08:00 UTC, then a jump back."""
    nows = {START + dt.timedelta(minutes=rng.randrange(DAYS * 24 * 60)) for _ in range(14)}
    for monday in (dt.date(2027, 3, 15), dt.date(2027, 3, 29), dt.date(2027, 4, 5)):
        for hm in ((7, 59), (8, 0), (13, 0)):
            nows.add(dt.datetime.combine(monday, dt.time(*hm), tzinfo=dt.UTC))
    ordered = sorted(nows)
    return [*ordered, ordered[3], ordered[-1] + dt.timedelta(days=40)]


async def _seed(db: Database, rng: random.Random, offsets: tuple[int, ...]) -> None:
    now = START - dt.timedelta(days=400)
    async with db.transaction() as session:
        for n, zone in enumerate(ZONES, start=1):
            session.add(OrganizationRow(
                id=n, key=f"org{n}", name=f"Org {n}", program="customer", level="standard",
                region="europe", timezone=zone, starts_on=dt.date(2026, 1, 1),
                ends_on=dt.date(2029, 1, 1), sharing=False, alert_channels=[],
                created_at=now, updated_at=now))
        await session.flush()
        number = 0
        for org in range(1, len(ZONES) + 1):
            for _ in range(30):
                number += 1
                due = START.date() + dt.timedelta(days=rng.randrange(-50, DAYS + 12))
                status = rng.choices(("open", "paid", "void"), (8, 1, 1))[0]
                session.add(InvoiceRow(
                    id=number, number=f"INV-{number}", org_id=org,
                    issued_on=due - dt.timedelta(days=30), due_on=due,
                    amount=Decimal("100"), currency="EUR", status=status,
                    paid_amount=Decimal("100") if status == "paid" else Decimal("0"),
                    created_at=now, updated_at=now))
                # Claims taken before: a stage of this due date, an undated one, one of
                # another due date.
                claims = []
                if rng.random() < 0.3:
                    claims.append(invoice_claim(due, rng.choice(offsets)))
                if rng.random() < 0.1:
                    claims.append(invoice_stage(rng.choice(offsets)))
                if rng.random() < 0.1:
                    claims.append(invoice_claim(due - dt.timedelta(days=14), offsets[-1]))
                for stage in claims:
                    session.add(ReminderClaimRow(kind="invoice", subject_id=number,
                                                 stage=stage, claimed_at=now))


async def _state(db: Database) -> tuple[list[tuple[int, dt.date, str]], set[tuple[int, str]]]:
    """Open invoices with their organization's timezone, and every invoice claim."""
    async with db.read() as session:
        invoices = [(int(i), d, str(tz)) for i, d, tz in await session.execute(
            select(InvoiceRow.id, InvoiceRow.due_on, OrganizationRow.timezone)
            .join(OrganizationRow, OrganizationRow.id == InvoiceRow.org_id)
            .where(InvoiceRow.status == "open"))]
        claims = {(int(s), str(st)) for s, st in await session.execute(
            select(ReminderClaimRow.subject_id, ReminderClaimRow.stage)
            .where(ReminderClaimRow.kind == "invoice"))}
    return invoices, claims


@pytest.mark.parametrize(
    ("at", "offsets", "batch"),
    [
        (dt.time(9, 0), (-7, 0, 7, 14, 30), 50_000),
        # 02:30 does not exist on spring-forward days; small windows of due dates.
        (dt.time(2, 30), (-3, 0, 1, 10), 7),
        (dt.time(23, 59), (5,), 40),
    ],
)
async def test_set_based_sweep_claims_what_the_row_rule_gives(
    settings: Settings, db: Database, at: dt.time, offsets: tuple[int, ...], batch: int
) -> None:
    rng = random.Random(f"{at}{offsets}")
    await _seed(db, rng, offsets)
    tuned = settings.model_copy(update={"reminder_time": at, "reminder_offsets": offsets,
                                        "reminder_batch": batch, "renewal_offsets": ()})
    reminders = Services.build(db, tuned, FixedClock(START)).reminders
    claimed_total = 0
    for now in _nows(rng):
        invoices, before = await _state(db)
        done: dict[int, set[str]] = {}
        for subject, stage in before:
            done.setdefault(subject, set()).add(stage)
        expected = set()
        for invoice_id, due_on, zone in invoices:
            stage = invoice_stage_due(due_on, offsets, zone, at, now, done.get(invoice_id, ()))
            if stage is not None:
                expected.add((invoice_id, stage))
        report = await reminders.sweep(now)
        _, after = await _state(db)
        assert after - before == expected, now
        assert report.invoice_reminders == len(expected)
        claimed_total += len(expected)
    assert claimed_total > 50, "the span reaches many stages"

"""Claimed reminders are the queue: the dispatcher turns each claim into one outbox row per
recipient before it delivers, once, also when two do it at the same time, and a failure
there holds up no other delivery."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest
from sqlalchemy import func, select

from adapters.console.transport import ConsoleTransport
from bot.clock import FixedClock
from bot.delivery.dispatcher import Dispatcher
from bot.presentation.messages import Message
from bot.services.billing import parse_invoices
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_ADMIN, DEMO_MAIN
from storage.db import Database
from storage.models import OutboxRow
from storage.outbox import OutboxStore
from tests.harness import Harness

SWEPT = dt.datetime(2027, 1, 8, 12, tzinfo=dt.UTC)  # stage -7 of invoices due on 15 Jan


async def _invoices(h: Harness, count: int) -> None:
    doc = {"invoices": [{"number": f"INV-Q{n}", "organization": "demo",
                         "issued_on": "2026-12-01", "due_on": "2027-01-15",
                         "amount": "100.00", "currency": "EUR"} for n in range(count)]}
    await h.app.services.billing.import_invoices(
        parse_invoices("i.json", json.dumps(doc).encode()))


async def _reminder_rows(db: Database) -> list[str]:
    async with db.read() as session:
        return sorted(await session.scalars(
            select(OutboxRow.idempotency_key)
            .where(OutboxRow.idempotency_key.startswith("reminder:"))))


async def test_the_dispatcher_queues_claimed_reminders_before_delivering(
    harness: Harness,
) -> None:
    """A sweep writes the claim only; the dispatcher's next batch queues one message per
    recipient from it and delivers them; nothing is left waiting."""
    await harness.seed_demo()
    await _invoices(harness, 1)
    report = await harness.app.services.reminders.sweep(SWEPT)
    assert (report.invoice_reminders, report.messages) == (1, 0)
    assert await _reminder_rows(harness.app.db) == []
    assert await harness.app.services.reminders.queue_counts() == {"pending": 1, "unsent": 0}
    stats = await harness.app.dispatcher.run_once()
    assert (stats.fed, stats.sent) == (1, 2)
    assert await harness.app.services.reminders.queue_counts() == {"pending": 0, "unsent": 0}
    assert await _reminder_rows(harness.app.db) == [
        f"reminder:invoice:1:2027-01-15:due-7:email:{DEMO_ADMIN}",
        f"reminder:invoice:1:2027-01-15:due-7:email:{DEMO_MAIN}",
    ]
    assert [m.email_subject for m in harness.emails_to(DEMO_MAIN)][-1] == (
        "Invoice INV-Q0: €100.00 is due in 7 days, on 15 Jan 2027")
    assert (await harness.app.dispatcher.run_once()).fed == 0


async def test_two_dispatchers_queueing_at_once_queue_each_message_once(
    harness: Harness,
) -> None:
    """Two queue steps at the same moment, batch after batch: every claim is queued once,
    with exactly one message per recipient (PostgreSQL: they skip each other's claims;
    SQLite: their transactions take turns)."""
    await harness.seed_demo()
    await _invoices(harness, 120)
    reminders = harness.app.services.reminders
    assert (await reminders.sweep(SWEPT)).invoice_reminders == 120
    reminders.settings = reminders.settings.model_copy(update={"reminder_batch": 25})

    async def worker() -> int:
        taken = 0
        while (step := await reminders.queue_claimed()).claims:
            taken += step.claims
        return taken

    taken = await asyncio.gather(worker(), worker())
    assert sum(taken) == 120
    keys = await _reminder_rows(harness.app.db)
    assert len(keys) == len(set(keys)) == 240
    assert await reminders.queue_counts() == {"pending": 0, "unsent": 0}


async def test_a_failing_feed_holds_up_no_delivery(
    db: Database, settings: Settings, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """When turning queue entries into messages fails, messages already queued are still
    delivered, the failure is logged (once while it lasts), and the next batches try the
    feed again."""
    caplog.set_level(logging.WARNING)
    async with db.transaction() as session:
        queued = await OutboxStore(session, clock.now()).enqueue(
            "k-feed", platform="console", target="alice", kind="dm",
            payload=Message("hello").to_json())
    calls = 0

    async def feed() -> int:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("the feed broke")
        return 0

    transport = ConsoleTransport(out=lambda _line: None)
    dispatcher = Dispatcher(db, settings, clock, {"console": transport}, feed=feed)
    stats = await dispatcher.run_once()
    assert (stats.sent, stats.fed) == (1, 0)
    assert [item.id for item, _ in transport.delivered] == [queued]
    assert "outbox feed: RuntimeError" in caplog.text
    await dispatcher.run_once()
    await dispatcher.run_once()
    assert calls == 3, "the next batches try the feed again"
    assert caplog.text.count("outbox feed") == 1, "logged once while it keeps failing"
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 1

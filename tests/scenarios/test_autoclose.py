"""Auto-close: pending tickets are reminded after 3 business days and solved after 7;
solved tickets close after 4 days unless the customer comments. Each step once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from bot.services.autoclose import AutoCloseResult
from storage.models import TicketRow
from tests.harness import Harness
from tests.scenarios.tickets_world import ANA, SAM, TOM, build

MADRID = ZoneInfo("Europe/Madrid")


def madrid(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=MADRID)


async def status(h: Harness, ticket_id: int) -> str:
    async with h.app.db.read() as session:
        row = await session.get(TicketRow, ticket_id)
    assert row is not None
    return row.status


def told(h: Harness, needle: str) -> list[str]:
    shown = [m.resolved("/").plain() for m in h.delivered_to(TOM)]
    return [text for text in shown if needle in text]


async def test_pending_is_reminded_then_solved_then_closed(harness: Harness) -> None:
    """Pending from Wednesday 11:00: reminded Monday 11:00 (3 business days), solved Friday
    4 December 11:00 (7), closed 4 days later; each sweep repeats nothing."""
    await build(harness)
    sweep = harness.app.services.autoclose.sweep
    await harness.as_(TOM).send("/ticket new sev3 Need your logs")
    await harness.as_(SAM).send("/triage reply 1 Please send the logs")
    await harness.as_(SAM).send("/triage status 1 pending")
    harness.clock.set(madrid(2026, 11, 30, 10, 59))
    assert await sweep() == AutoCloseResult()
    harness.clock.set(madrid(2026, 11, 30, 11, 0))
    assert await sweep() == AutoCloseResult(reminded=1)
    assert await sweep() == AutoCloseResult()
    await harness.drain()
    (reminder,) = told(harness, "is waiting for your answer")
    assert "will be solved on Fri 4 Dec" in reminder and "/ticket comment 1 TEXT" in reminder

    harness.clock.set(madrid(2026, 12, 4, 11, 0))
    assert await sweep() == AutoCloseResult(solved=1)
    assert await sweep() == AutoCloseResult()
    assert await status(harness, 1) == "solved"
    await harness.drain()
    assert told(harness, "was solved: no answer for 7 business days")
    assert told(harness, "How did we do?")

    harness.clock.set(madrid(2026, 12, 8, 10, 59))
    assert await sweep() == AutoCloseResult()
    harness.clock.set(madrid(2026, 12, 8, 11, 0))
    assert await sweep() == AutoCloseResult(closed=1)
    assert await sweep() == AutoCloseResult()
    assert await status(harness, 1) == "closed"
    await harness.drain()
    assert told(harness, "Ticket #1 is closed")


async def test_a_reminder_nobody_can_get_is_told_to_the_support_engineers(
    harness: Harness
) -> None:
    """The opener stopped being a contact while the ticket waited for them: the reminder
    reaches no customer, so the triage channel is told instead, and it is not counted as
    a reminder."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev3 Need your logs")
    await harness.as_(SAM).send("/triage reply 1 Please send the logs")
    await harness.as_(SAM).send("/triage status 1 pending")
    removed = await harness.as_(ANA).send(f"/contacts remove-technical {TOM}")
    assert removed.ok, removed.message.text
    await harness.drain()
    harness.clock.set(madrid(2026, 11, 30, 11, 0))
    assert await harness.app.services.autoclose.sweep() == AutoCloseResult(unreachable=1)
    await harness.drain()
    assert not told(harness, "is waiting for your answer")
    triage = [m.resolved("/").plain() for item, m in harness.delivered
              if item.target == "triage"]
    assert [t for t in triage if "Nobody can be reminded that #1 waits" in t
            and "solved on Fri 4 Dec" in t]


async def test_a_customer_comment_keeps_the_ticket_open(harness: Harness) -> None:
    """An answer while pending ends the spell; a comment on a solved ticket reopens it, so
    it is never closed."""
    await build(harness)
    sweep = harness.app.services.autoclose.sweep
    tom, sam = harness.as_(TOM), harness.as_(SAM)
    await tom.send("/ticket new sev3 Flaky sync")
    await sam.send("/triage status 1 pending")
    harness.clock.set(madrid(2026, 11, 30, 10, 0))
    await tom.send("/ticket comment 1 Here it is")
    harness.clock.set(madrid(2026, 12, 10, 12, 0))
    assert await sweep() == AutoCloseResult()
    await sam.send("/triage status 1 solved")
    harness.clock.set(madrid(2026, 12, 13, 12, 0))
    await tom.send("/ticket comment 1 Still flaky")
    harness.clock.set(madrid(2026, 12, 20, 12, 0))
    assert await sweep() == AutoCloseResult()
    assert await status(harness, 1) == "open"


async def test_after_downtime_a_spell_past_its_end_is_solved_without_a_late_reminder(
    harness: Harness,
) -> None:
    """The first sweep after a long stop solves the ticket and sends no reminder."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev3 Forgotten")
    await harness.as_(SAM).send("/triage status 1 pending")
    harness.clock.set(madrid(2026, 12, 7, 12, 0))
    assert await harness.app.services.autoclose.sweep() == AutoCloseResult(solved=1)
    await harness.drain()
    assert not told(harness, "is waiting for your answer")

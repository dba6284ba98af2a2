"""Platform retries of the same event never run a command twice."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.commands.invocation import Invocation, Sender
from bot.domain import Platform
from bot.wiring.demo import DEMO_MAIN
from storage.models import TechnicalRequestRow
from tests.harness import Harness


async def test_same_event_id_runs_once(harness: Harness) -> None:
    """A retried delivery (same event id) is acknowledged but has no second effect."""
    await harness.seed_demo()
    sender = Sender(Platform.CONSOLE, "local", DEMO_MAIN, asserted_email=DEMO_MAIN)
    invocation = Invocation(
        sender, "/contacts request-technical nia@demo.test Nia", event_id="Ev0001"
    )
    first = await harness.app.core.handle(invocation)
    second = await harness.app.core.handle(invocation)
    assert first.ok and not first.duplicate
    assert second.duplicate
    async with harness.app.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(TechnicalRequestRow))
    assert count == 1


async def test_distinct_event_ids_both_run(harness: Harness) -> None:
    """Two different events with the same text are two commands."""
    await harness.seed_demo()
    sender = Sender(Platform.CONSOLE, "local", DEMO_MAIN, asserted_email=DEMO_MAIN)
    a = await harness.app.core.handle(Invocation(sender, "/contacts", event_id="Ev1"))
    b = await harness.app.core.handle(Invocation(sender, "/contacts", event_id="Ev2"))
    assert not a.duplicate and not b.duplicate

"""Ticket numbers stay unique when many people open tickets at the same moment."""

from __future__ import annotations

import asyncio

import pytest

from bot.commands.invocation import Sender
from bot.domain import Platform, Severity
from tests.harness import Harness
from tests.scenarios.tickets_world import BOB, SAM, TIA, TOM, build


async def test_concurrent_creation_gives_unique_numbers(harness: Harness) -> None:
    """60 tickets opened at once from three contacts on PostgreSQL get 60 distinct ids."""
    if not harness.app.db.is_postgres:
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises writes)")
    await build(harness)
    services = harness.app.services
    actors = [
        await services.identity.actor(Sender(Platform.CONSOLE, "local", e, asserted_email=e))
        for e in (TOM, TIA, BOB)
    ]
    tickets = await asyncio.gather(*(
        services.tickets.open(actors[i % 3], f"Concurrent {i}", Severity.SEV2)
        for i in range(60)
    ))
    ids = [t.id for t in tickets]
    assert len(set(ids)) == 60
    assert sorted(ids) == list(range(1, 61))
    engineer = await services.identity.actor(
        Sender(Platform.CONSOLE, "local", SAM, asserted_email=SAM)
    )
    queue = await services.triage.queue(engineer, limit=100)
    assert {q.entry.ticket.id for q in queue} == set(ids)

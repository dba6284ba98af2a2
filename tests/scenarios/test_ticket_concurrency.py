"""Ticket numbers stay unique when many people open tickets at the same moment, and an
organization imported by several requests at once is one."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.commands.invocation import Sender
from bot.domain import Platform, Severity
from bot.services.onboarding import OrderForm
from storage.models import ContactRow, OrganizationRow
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization
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


async def test_the_same_new_organization_imported_at_once_is_one(harness: Harness) -> None:
    """Eight imports of the same order form for a new organization at the same moment on
    PostgreSQL: all succeed (they used to fail on the unique key and answer "unavailable"),
    one creates it, and it exists once with its contacts once."""
    if not harness.app.db.is_postgres:
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises writes)")

    order = OrderForm.model_validate(form(organization(
        "racer", [contact("main", "rita@racer.test", "Rita Main"),
                  contact("technical", "tim@racer.test", "Tim Tech")])))
    reports = await asyncio.gather(*(
        harness.app.services.onboarding.import_orders(order) for _ in range(8)))
    assert sum(r.created for r in reports) == 1
    async with harness.app.db.read() as session:
        orgs = await session.scalar(select(func.count()).where(OrganizationRow.key == "racer"))
        contacts = await session.scalar(
            select(func.count()).select_from(ContactRow).join(
                OrganizationRow, OrganizationRow.id == ContactRow.org_id)
            .where(OrganizationRow.key == "racer"))
    assert (orgs, contacts) == (1, 2)

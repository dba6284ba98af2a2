"""Roles decide who opens tickets; authorship decides who follows them (SPEC §1); and a
notification that reaches no one is said so to whoever caused it."""

from __future__ import annotations

from bot.clock import FixedClock
from bot.domain import StaffRole
from bot.wiring.config import Settings
from storage.db import Database
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization
from tests.scenarios.tickets_world import SAM, SOL, build

SOL_ADMIN = "sia@solo.test"


async def test_sole_main_contact_keeps_their_ticket_after_adding_a_contact(
    harness: Harness,
) -> None:
    """A sole Main Contact who adds an Administrative Contact still lists, reads, comments on,
    closes and reopens the ticket they opened, and engineers' changes still reach them."""
    await build(harness)
    sol, sam = harness.as_(SOL), harness.as_(SAM)
    assert (await sol.send("/ticket new sev2 Backups fail")).ok

    reply = await sol.send(f"/contacts set administrative {SOL_ADMIN} Sia Admin")
    assert reply.ok, reply.message.text
    told = reply.message.text
    assert "no longer the sole contact" in told and "Technical Contact" in told
    assert "stay" in told, told

    listing = await sol.send("/ticket list")
    assert listing.ok and "Backups fail" in listing.message.text, listing.message.text
    shown = await sol.send("/ticket show 1")
    assert shown.ok and "Backups fail" in shown.message.text, shown.message.text

    harness.email.delivered.clear()
    assert (await sam.send("/triage reply 1 Please send the log")).ok
    assert (await sam.send("/triage status 1 pending")).ok
    await harness.drain()
    texts = [m.plain() for m in harness.emails_to(SOL)]
    assert any("Please send the log" in t for t in texts), texts
    assert any("pending" in t for t in texts), texts

    assert (await sol.send("/ticket comment 1 Log attached")).ok
    assert (await sol.send("/ticket close 1 Fixed")).ok
    assert (await sol.send("/ticket reopen 1 Back again")).ok

    refused = await sol.send("/ticket new sev3 Another one")
    assert not refused.ok and "not available" in refused.message.text, (
        "opening follows the role: the Main Contact is no longer the sole contact"
    )


async def test_a_change_that_reaches_no_customer_is_told_to_the_engineer(
    harness: Harness,
) -> None:
    """When the opener is no longer a contact, the engineer's reply says no one was reached
    instead of reporting a plain success."""
    await build(harness)
    sol, sam = harness.as_(SOL), harness.as_(SAM)
    assert (await sol.send("/ticket new sev2 Disk full")).ok
    replaced = await sol.send("/contacts set main max@solo.test Max Main")
    assert replaced.ok and "reach no one" in replaced.message.text, replaced.message.text

    reply = await sam.send("/triage reply 1 Cleaned up")
    assert reply.ok and "no customer contact" in reply.message.text.lower(), reply.message.text
    reply = await sam.send("/triage status 1 solved")
    assert reply.ok and "no customer contact" in reply.message.text.lower(), reply.message.text


async def test_requests_that_reach_no_staff_say_so(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """With no vendor admin, a Technical Contact request says no one can approve it yet;
    with no billing channel and no billing agent, a billing question says no one can
    answer it, instead of claiming it is with the billing team."""
    h = await Harness.create(settings.model_copy(update={"billing_channels": ()}), clock, db)
    await h.import_orders(form(organization("acme", [contact("main", "ana@acme.test")])))
    ana = h.as_("ana@acme.test")

    reply = await ana.send("/contacts request-technical tia@acme.test Tia")
    assert reply.ok and "no vendor admin can be reached" in reply.message.text
    reply = await ana.send("/billing question Why two invoices?")
    assert reply.ok and "no one on the billing team can be reached" in reply.message.text

    await h.add_staff("root@vendor.test", StaffRole.ADMIN)
    await h.add_staff("bea@vendor.test", StaffRole.BILLING)
    reply = await ana.send("/contacts request-technical tom@acme.test Tom")
    assert "waiting for a vendor admin" in reply.message.text
    reply = await ana.send("/billing question And a third?")
    assert "is with the billing team" in reply.message.text
    await h.drain()
    assert h.emails_to("root@vendor.test") and h.emails_to("bea@vendor.test")

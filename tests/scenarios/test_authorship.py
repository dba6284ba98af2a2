"""Roles decide who opens tickets; authorship decides who follows them (SPEC §1)."""

from __future__ import annotations

from tests.harness import Harness
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

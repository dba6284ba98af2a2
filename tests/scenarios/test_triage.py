"""Triage for support engineers: queue, claim, status, severity, notes, replies (SPEC §4)."""

from __future__ import annotations

import datetime as dt

from adapters.console.render import render
from bot.presentation.messages import Tone
from storage.models import TicketRow
from storage.tickets import TicketStore
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization
from tests.scenarios.tickets_world import ANA, BEA, BOB, SAM, SOL, TIA, TOM, build, count


async def _ticket(h: Harness, ticket_id: int) -> TicketRow:
    async with h.app.db.read() as session:
        row = await session.get(TicketRow, ticket_id)
    assert row is not None
    return row


async def test_queue_is_ordered_by_sla_urgency(harness: Harness) -> None:
    """The ticket whose first response is due soonest comes first; answered ones last."""
    await build(harness)
    tom, bob = harness.as_(TOM), harness.as_(BOB)
    await tom.send("/ticket new sev4 Cosmetic glitch")  # standard sev4: 2 business days
    await tom.send("/ticket new sev2 Reports slow")  # standard sev2: 4 business hours
    await bob.send("/ticket new sev1 Cluster down")  # premium sev1: 2 hours, 24×7
    await tom.send("/ticket new sev3 Question about limits")  # standard sev3: 1 business day
    sam = harness.as_(SAM)
    await sam.send("/triage reply 2 Looking at it")  # answered: leaves the SLA order
    queue = (await sam.send("/triage")).message.text.splitlines()[1:]
    assert [line.split(" · ")[0] for line in queue] == ["#3", "#4", "#1", "#2"]
    assert "2h 0m left" in queue[0] and "beta" in queue[0]
    assert "responded" in queue[3]
    await tom.send("/ticket close 1")
    after_close = (await sam.send("/triage queue")).message.text
    assert "#1 " not in after_close


async def test_queue_sorts_by_business_time_left_not_by_the_calendar(harness: Harness) -> None:
    """Wednesday 16:00 in Madrid: a standard sev1 (2 business hours: one today, one on
    Thursday) is due later on the calendar than a premium sev2 (4 hours, 24×7) but has
    less business time left, so it comes first; the queue shows the time left."""
    await build(harness)
    harness.clock.set(dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC))  # 16:00 CET
    await harness.as_(BOB).send("/ticket new sev2 Replica lagging")
    await harness.as_(TOM).send("/ticket new sev1 Login broken")
    harness.clock.advance(dt.timedelta(minutes=30))
    queue = (await harness.as_(SAM).send("/triage")).message.text.splitlines()[1:]
    assert [line.split(" · ")[0] for line in queue] == ["#2", "#1"]
    assert "1h 30m left" in queue[0] and "3h 30m left" in queue[1]
    harness.clock.set(dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC))  # Thu 10:30 CET
    queue = (await harness.as_(SAM).send("/triage")).message.text.splitlines()[1:]
    assert [line.split(" · ")[0] for line in queue] == ["#1", "#2"]
    assert "overdue 14h 30m" in queue[0] and "overdue 0h 30m" in queue[1]


async def test_queue_ranks_by_business_time_left_whatever_its_size(harness: Harness) -> None:
    """Friday 16:10 in Madrid: a standard sev2 opened at 14:00 (4 business hours: due Monday
    10:00) has 1h 50m of business time left; 201 premium sev1 tickets opened at 16:10 (2
    hours, 24×7) have two, though every one of them turns "at risk" (17:46) long before it
    does (Monday 09:12). The standard ticket still heads the queue: the ranking reads the
    soonest due of each calendar, not the first 200 clocks by their "at risk" instant."""
    await build(harness)
    harness.clock.set(dt.datetime(2026, 11, 27, 13, 0, tzinfo=dt.UTC))  # Fri 14:00 CET
    assert (await harness.as_(TOM).send("/ticket new sev2 Export fails")).ok
    harness.clock.set(dt.datetime(2026, 11, 27, 15, 10, tzinfo=dt.UTC))
    bob = harness.as_(BOB)
    for i in range(201):
        assert (await bob.send(f"/ticket new sev1 Node {i} down")).ok
    queue = (await harness.as_(SAM).send("/triage")).message.text.splitlines()[1:]
    assert len(queue) == 25
    assert queue[0].startswith("#1 ") and "1h 50m left" in queue[0]
    assert [line.split(" · ")[0] for line in queue[1:]] == [f"#{n}" for n in range(2, 26)]
    assert all("2h 0m left" in line for line in queue[1:])
    async with harness.app.db.read() as session:
        read = await TicketStore(session, harness.clock.now()).running_soonest(25)
    assert len(read) == 26, "at most 25 per calendar and severity are read, not all clocks"


async def test_a_new_level_or_timezone_moves_the_tickets_to_its_calendar(
    harness: Harness,
) -> None:
    """The queue reads each calendar's soonest clocks by the calendar kept on the ticket:
    an order form that changes the organization's level or timezone moves its tickets."""
    await build(harness)
    await harness.as_(SOL).send("/ticket new sev2 Slow")
    assert (await _ticket(harness, 1)).sla_calendar == "Europe/Madrid||basic"
    moved = organization("solo", [contact("main", SOL, "Sol Solo")], level="premium")
    moved["timezone"] = "America/New_York"
    await harness.import_orders(form(moved))
    assert (await _ticket(harness, 1)).sla_calendar == "America/New_York||premium"
    queue = (await harness.as_(SAM).send("/triage")).message.text.splitlines()[1:]
    assert [line.split(" · ")[0] for line in queue] == ["#1"]


async def test_triage_card_is_loud_for_sev1_and_reaches_every_channel(
    harness: Harness,
) -> None:
    """New tickets post a triage card to each configured channel; sev1 is flagged."""
    harness.app.settings.triage_channels = ("console:triage", "console:triage-eu")
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev1 Production outage")
    await harness.as_(TOM).send("/ticket new sev3 Small thing")
    for channel in ("triage", "triage-eu"):
        cards = harness.delivered_to(channel)
        assert len(cards) == 2
        loud, calm = cards
        assert loud.tone is Tone.DANGER and loud.plain().startswith("SEV1 — #1")
        assert calm.tone is Tone.NORMAL and "SEV1" not in calm.plain()
        assert "[Claim]" in loud.plain()
        shown = render(calm)  # the console and email: each action once, with its command
        assert shown.count("/triage claim 2") == 1 and shown.count("/triage reply 2") == 1


async def test_claim_status_severity_reply_notify_the_opener(harness: Harness) -> None:
    """Every public change reaches the opener; the first reply stops the SLA clock."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev3 Backups fail")
    sam = harness.as_(SAM)
    before = len(harness.emails_to(TOM))

    assert "#1 is yours (open)" in (await sam.send("/triage claim 1")).message.text
    assert not (await sam.send("/triage claim 1")).ok
    harness.clock.advance(dt.timedelta(minutes=10))
    assert (await sam.send("/triage severity 1 sev2")).ok
    assert (await sam.send("/triage reply 1 Please send the job log")).ok
    assert (await sam.send("/triage status 1 pending")).ok
    assert not (await sam.send("/triage status 1 pending")).ok

    updates = [m.plain() for m in harness.emails_to(TOM)[before:]]
    assert len(updates) == 4, updates
    assert "Sam Support is handling your ticket #1" in updates[0]
    assert "Ticket #1 is now sev2" in updates[1]
    assert "Please send the job log" in updates[2]
    assert "pending" in updates[3]
    row = await _ticket(harness, 1)
    assert row.first_responded_at == harness.clock.now()
    assert row.status == "pending" and row.severity == "sev2"
    shown = (await harness.as_(TOM).send("/ticket show 1")).message.text
    assert "Assignee: Sam Support" in shown


async def test_severity_change_moves_the_running_clock(harness: Harness) -> None:
    """A new severity gives an unanswered ticket the new target from its opening time."""
    await build(harness)
    opened = harness.clock.now()
    await harness.as_(TOM).send("/ticket new sev3 Something odd")
    # Standard sev3: one business day, Wednesday 11:00 to Thursday 11:00 in Madrid.
    assert (await _ticket(harness, 1)).first_response_due_at == opened + dt.timedelta(hours=24)
    await harness.as_(SAM).send("/triage severity 1 sev1")
    assert (await _ticket(harness, 1)).first_response_due_at == opened + dt.timedelta(hours=2)


async def test_followers_hear_public_changes_only_with_sharing(harness: Harness) -> None:
    """Colleagues who commented follow the ticket and hear replies while sharing is on."""
    await build(harness)
    await harness.as_(ANA).send("/contacts sharing on")
    await harness.as_(TOM).send("/ticket new Shared outage")
    await harness.as_(TIA).send("/ticket comment 1 Seeing it too")
    sam = harness.as_(SAM)
    await sam.send("/triage reply 1 First reply")
    assert any("First reply" in m.plain() for m in harness.emails_to(TIA))
    assert any("First reply" in m.plain() for m in harness.emails_to(TOM))
    assert not any("Seeing it too" in m.plain() for m in harness.emails_to(TIA)), (
        "authors are not told about their own comment"
    )
    await sam.send("/triage note 1 internal only")
    await harness.as_(ANA).send("/contacts sharing off")
    await sam.send("/triage reply 1 Second reply")
    assert not any("Second reply" in m.plain() for m in harness.emails_to(TIA))
    assert any("Second reply" in m.plain() for m in harness.emails_to(TOM))
    assert not any("internal only" in m.plain() for m in harness.emails_to(TIA)
                   + harness.emails_to(TOM))


async def test_triage_is_for_engineers(harness: Harness) -> None:
    """Contacts and billing agents cannot triage; an unknown ticket is simply not there."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new Mine")
    for who in (TOM, ANA, BEA):
        for line in ("/triage", "/triage claim 1", "/triage note 1 x", "/triage reply 1 x",
                     "/triage status 1 solved", "/triage severity 1 sev1"):
            reply = await harness.as_(who).send(line)
            assert not reply.ok and "not available to you" in reply.message.text, (who, line)
    reply = await harness.as_(SAM).send("/triage claim 42")
    assert reply.message.text == "There is no ticket #42 you can see."
    assert (await _ticket(harness, 1)).assignee_id is None
    assert await count(harness, TicketRow) == 1


async def test_solved_then_customer_comment_reopens(harness: Harness) -> None:
    """A solved ticket comes back to open when the customer writes again."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new Flaky test")
    await harness.as_(SAM).send("/triage status 1 solved")
    row = await _ticket(harness, 1)
    assert row.status == "solved" and row.solved_at is not None
    await harness.as_(TOM).send("/ticket comment 1 Still flaky")
    row = await _ticket(harness, 1)
    assert row.status == "open" and row.solved_at is None

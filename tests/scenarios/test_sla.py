"""First-response SLA alerts: "at risk" at 80 % and "breached", once each, across restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.services import sla as sla_module
from bot.services.sla import SweepResult, sla_job
from bot.wiring.config import Settings
from storage.db import Database
from storage.models import AlertRow, OutboxRow, ReminderClaimRow, TicketRow
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization
from tests.scenarios.tickets_world import BOB, SAM, SOL, TOM, build

HOUR = dt.timedelta(hours=1)
MADRID = ZoneInfo("Europe/Madrid")


def madrid(*parts: int) -> dt.datetime:
    """A wall-clock time in Madrid (the ticket world's organizations' timezone)."""
    return dt.datetime(*parts, tzinfo=MADRID)


async def alerts(h: Harness) -> list[str]:
    """Every SLA alert post ever queued, whoever queued it: its fingerprint and target."""
    async with h.app.db.read() as session:
        fingerprints = {int(i): str(f) for i, f in (await session.execute(
            select(AlertRow.id, AlertRow.fingerprint))).all()}
        keys = await session.scalars(
            select(OutboxRow.idempotency_key)
            .where(OutboxRow.idempotency_key.like("alert:%"), OutboxRow.edit.is_(False))
            .order_by(OutboxRow.id)
        )
        posts = []
        for key in keys:
            _, alert_id, _, target = key.split(":", 3)
            if fingerprints[int(alert_id)].startswith("sla-"):
                posts.append(f"{fingerprints[int(alert_id)]} {target}")
    return posts


async def claims(h: Harness) -> set[tuple[int, str]]:
    async with h.app.db.read() as session:
        rows = await session.execute(
            select(ReminderClaimRow.subject_id, ReminderClaimRow.stage).where(
                ReminderClaimRow.kind == "sla"
            )
        )
    return {(int(a), str(b)) for a, b in rows}


def posted(h: Harness) -> list[str]:
    """The SLA alerts posted in the triage channel (their first line)."""
    return [m.plain().splitlines()[0] for m in h.delivered_to("triage") if "SLA" in m.text]


async def test_at_risk_then_breached_once_each_across_a_restart(
    harness: Harness, settings: Settings, clock: FixedClock, db_url: str
) -> None:
    """Standard sev3 is one business day (8 h, Madrid 09:00-17:00): opened Wednesday 11:00,
    at risk after 6.4 business hours (Thursday 09:24), breached Thursday 11:00; the night
    does not count, sweeps repeat freely, and a restarted process posts nothing twice."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev3 Slow dashboard")
    sweep = harness.app.services.sla.sweep

    clock.set(madrid(2026, 11, 25, 16, 59))
    assert (await sweep()).at_risk == 0
    clock.set(madrid(2026, 11, 26, 9, 20))  # the night did not count
    assert (await sweep()).at_risk == 0
    clock.set(madrid(2026, 11, 26, 9, 24))
    assert (await sweep()).at_risk == 1
    assert (await sweep()).at_risk == 0
    await harness.drain()
    assert posted(harness) == ["[FIRING] WARNING · SLA at risk: #1 Slow dashboard"]

    restarted_db = Database(db_url)
    try:
        again = await Harness.create(settings, clock, restarted_db)
        assert (await again.app.services.sla.sweep()).at_risk == 0
        clock.set(madrid(2026, 11, 26, 11, 0))
        result = await again.app.services.sla.sweep()
        assert (result.at_risk, result.breached) == (0, 1)
        await again.drain()
        assert posted(again) == ["[FIRING] CRITICAL · SLA breached: #1 Slow dashboard"]
        for _ in range(3):
            assert (await again.app.services.sla.sweep()).breached == 0
            assert (await harness.app.services.sla.sweep()).breached == 0
    finally:
        await restarted_db.dispose()
    assert await alerts(harness) == ["sla-risk:ticket:1:first-response console:triage",
                                     "sla-breach:ticket:1:first-response console:triage"]


async def test_after_downtime_only_the_breach_is_posted(harness: Harness) -> None:
    """A sweep that first runs after the due time posts the breach, not a late warning."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev1 Everything is down")
    harness.clock.advance(5 * HOUR)
    result = await harness.app.services.sla.sweep()
    assert (result.at_risk, result.breached) == (0, 1)
    assert await claims(harness) == {(1, "at_risk"), (1, "breached")}
    assert await alerts(harness) == ["sla-breach:ticket:1:first-response console:triage"]


async def test_pending_pauses_the_clock(harness: Harness) -> None:
    """Time spent pending on the customer does not count against the first response: the
    clock resumes with the business time it had left (8 h target, 1 h used)."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev3 Need logs")  # Wed 11:00, due Thu 11:00
    sla = harness.app.services.sla
    harness.clock.advance(HOUR)
    await harness.as_(SAM).send("/triage status 1 pending")
    harness.clock.set(madrid(2026, 11, 26, 13, 0))  # past the original due time
    assert await sla.sweep() == SweepResult(0, 0)
    await harness.as_(TOM).send("/ticket comment 1 Here they are")  # 7 h left: Fri 12:00
    assert (await sla.sweep()).at_risk == 0
    harness.clock.set(madrid(2026, 11, 27, 10, 20))  # 6.33 h used
    assert (await sla.sweep()).at_risk == 0
    harness.clock.set(madrid(2026, 11, 27, 10, 24))  # 6.4 h used: 80 %
    assert (await sla.sweep()).at_risk == 1
    harness.clock.set(madrid(2026, 11, 27, 12, 0))
    assert (await sla.sweep()).breached == 1


async def test_pending_across_a_weekend(harness: Harness) -> None:
    """Pending from Friday to Monday: the weekend and the pending spell both leave the
    remaining business time untouched."""
    await build(harness)
    harness.clock.set(madrid(2026, 11, 27, 14, 0))  # Friday
    await harness.as_(TOM).send("/ticket new sev2 Export fails")  # 4 h: due Mon 10:00
    harness.clock.set(madrid(2026, 11, 27, 15, 0))
    await harness.as_(SAM).send("/triage status 1 pending")  # 3 h left
    harness.clock.set(madrid(2026, 11, 30, 10, 0))
    await harness.as_(TOM).send("/ticket comment 1 Logs attached")
    async with harness.app.db.read() as session:
        row = await session.get(TicketRow, 1)
    assert row is not None and row.first_response_due_at == madrid(2026, 11, 30, 13, 0)
    harness.clock.set(madrid(2026, 11, 30, 12, 59))
    assert (await harness.app.services.sla.sweep()).breached == 0
    harness.clock.set(madrid(2026, 11, 30, 13, 0))
    assert (await harness.app.services.sla.sweep()).breached == 1


async def test_first_public_reply_stops_the_clock(harness: Harness) -> None:
    """An engineer's public reply ends the first-response clock; an internal note does not."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev2 Answered quickly")
    await harness.as_(TOM).send("/ticket new sev2 Only noted")
    sam = harness.as_(SAM)
    await sam.send("/triage reply 1 On it")
    await sam.send("/triage note 2 looking")
    harness.clock.advance(10 * HOUR)
    result = await harness.app.services.sla.sweep()
    assert (result.at_risk, result.breached) == (0, 1)
    assert await claims(harness) == {(2, "at_risk"), (2, "breached")}


async def test_concurrent_sweeps_post_once(
    harness: Harness, settings: Settings, clock: FixedClock, db_url: str
) -> None:
    """Two replicas sweeping at the same moment share the claims: one alert per stage."""
    await build(harness)
    for i in range(5):
        await harness.as_(TOM).send(f"/ticket new sev1 Outage {i}")
    clock.advance(dt.timedelta(minutes=100))
    other_db = Database(db_url)
    try:
        other = await Harness.create(settings, clock, other_db)
        results = await asyncio.gather(
            harness.app.services.sla.sweep(), other.app.services.sla.sweep(),
            harness.app.services.sla.sweep(),
        )
    finally:
        await other_db.dispose()
    assert sum(r.at_risk for r in results) == 5
    assert len(await alerts(harness)) == 5


async def test_sla_job_runs_the_sweep(harness: Harness) -> None:
    """The scheduler job wraps the same idempotent sweep."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev1 Job check")
    job = sla_job(harness.app.services.sla)
    assert job.name == "sla" and job.every_seconds > 0
    harness.clock.advance(3 * HOUR)
    await job.sweep()
    await job.sweep()
    assert await alerts(harness) == ["sla-breach:ticket:1:first-response console:triage"]


async def test_sweep_pages_past_tickets_not_yet_at_risk(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tickets due sooner but not yet at risk never hide a later-due one that is."""
    monkeypatch.setattr(sla_module, "SWEEP_BATCH", 2)
    await build(harness)
    # Basic sev4: 3 business days, at risk after 19.2 business hours (Friday 14:12).
    await harness.as_(SOL).send("/ticket new sev4 Slow burner")
    harness.clock.set(madrid(2026, 11, 27, 14, 30))
    for i in range(3):
        await harness.as_(BOB).send(f"/ticket new sev1 Fresh {i}")  # premium sev1: 2 h 24×7
    result = await harness.app.services.sla.sweep()
    assert (result.at_risk, result.breached) == (1, 0)
    assert await claims(harness) == {(1, "at_risk")}


async def test_sla_alerts_reach_engineers_without_triage_channels(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """With no SUBDESK_TRIAGE_CHANNELS, "at risk" and "breached" go to each engineer
    directly (as new tickets do) instead of being claimed and queued for nobody."""
    harness = await Harness.create(settings.model_copy(update={"triage_channels": ()}), clock, db)
    await build(harness)
    await harness.as_(TOM).send("/ticket new sev3 Slow dashboard")
    clock.advance(25 * HOUR)
    assert (await harness.app.services.sla.sweep()).breached == 1
    await harness.drain()
    assert any("SLA breached: #1 Slow dashboard" in m.plain() for m in harness.emails_to(SAM))


async def test_start_up_log_names_a_missing_triage_channel(
    settings: Settings, clock: FixedClock, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """`subdesk run` logs the missing triage channel when it starts the background work."""
    from bot.wiring.background import start_background

    bare = settings.model_copy(update={"triage_channels": (), "http_port": 0})
    harness = await Harness.create(bare, clock, db)
    background = await start_background(harness.app, dispatcher=False)
    await background.close()
    assert "no triage channel configured (SUBDESK_TRIAGE_CHANNELS)" in caplog.text


async def test_customer_comment_after_the_first_response_starts_a_next_response(
    harness: Harness, settings: Settings, clock: FixedClock, db_url: str
) -> None:
    """After the first public reply, a customer comment opens a next-response target (by
    default the first-response one: standard sev2, 4 business hours) that the engineer's
    next public reply meets; further comments do not restart it; each cycle's "at risk"
    and "breached" fire once, also from a restarted process."""
    await build(harness)
    tom, sam, sweep = harness.as_(TOM), harness.as_(SAM), harness.app.services.sla.sweep
    await tom.send("/ticket new sev2 Reports slow")  # Wed 11:00
    clock.set(madrid(2026, 11, 25, 12, 0))
    await sam.send("/triage reply 1 Which report?")  # first response met
    clock.set(madrid(2026, 11, 25, 14, 0))
    await tom.send("/ticket comment 1 The monthly one")  # next response due Thu 10:00
    clock.set(madrid(2026, 11, 26, 9, 11))
    assert await sweep() == SweepResult(0, 0)
    await tom.send("/ticket comment 1 Any news?")  # the open target keeps its due time
    clock.set(madrid(2026, 11, 26, 9, 12))  # 3.2 of 4 business hours used
    assert await sweep() == SweepResult(1, 0)
    restarted_db = Database(db_url)
    try:
        again = await Harness.create(settings, clock, restarted_db)
        clock.set(madrid(2026, 11, 26, 10, 0))
        assert await again.app.services.sla.sweep() == SweepResult(0, 1)
        assert await sweep() == SweepResult(0, 0)
    finally:
        await restarted_db.dispose()
    clock.set(madrid(2026, 11, 26, 10, 30))
    await sam.send("/triage reply 1 Fixed in 4.2")  # meets the next response
    assert "responded" in (await sam.send("/triage")).message.text
    clock.set(madrid(2026, 11, 26, 11, 0))
    await tom.send("/ticket comment 1 Still slow")  # second next response: due 15:00
    clock.set(madrid(2026, 11, 26, 15, 0))
    assert await sweep() == SweepResult(0, 1)
    await harness.drain()
    assert posted(harness) == [
        "[FIRING] WARNING · SLA at risk (next response): #1 Reports slow",
        "[FIRING] CRITICAL · SLA breached (next response): #1 Reports slow",
        # Sam's reply met the first next response: both its alerts are resolved in place.
        "[RESOLVED] WARNING · SLA at risk (next response): #1 Reports slow",
        "[RESOLVED] CRITICAL · SLA breached (next response): #1 Reports slow",
        "[FIRING] CRITICAL · SLA breached (next response): #1 Reports slow",
    ]
    assert await claims(harness) == {(1, "next1:at_risk"), (1, "next1:breached"),
                                     (1, "next2:at_risk"), (1, "next2:breached")}


async def test_pending_does_not_count_against_a_next_response(harness: Harness) -> None:
    """A next-response target paused while pending resumes with the business time left."""
    await build(harness)
    tom, sam = harness.as_(TOM), harness.as_(SAM)
    await tom.send("/ticket new sev2 Reports slow")
    await sam.send("/triage reply 1 Which report?")
    harness.clock.set(madrid(2026, 11, 25, 14, 0))
    await tom.send("/ticket comment 1 The monthly one")  # 4 h: due Thu 10:00
    harness.clock.set(madrid(2026, 11, 25, 15, 0))
    await sam.send("/triage status 1 pending")  # 3 business hours left
    harness.clock.set(madrid(2026, 11, 30, 10, 0))
    await tom.send("/ticket comment 1 Here is the export")
    async with harness.app.db.read() as session:
        row = await session.get(TicketRow, 1)
    assert row is not None and row.next_response_due_at == madrid(2026, 11, 30, 13, 0)
    assert row.response_cycle == 1
    harness.clock.set(madrid(2026, 11, 30, 13, 0))
    assert (await harness.app.services.sla.sweep()).breached == 1


async def test_the_opener_is_told_the_contractual_deadline(harness: Harness) -> None:
    """Opening a ticket answers with the due time in the organization's timezone and the
    target as the contract words it; `/ticket show` tells customer and engineer alike what
    is due next and how much business time is left."""
    await build(harness)
    harness.clock.set(madrid(2026, 11, 27, 16, 0))  # Friday afternoon
    opened = (await harness.as_(TOM).send("/ticket new sev2 Export fails")).message.text
    assert ("First response by Mon 30 Nov 12:00 CET — 4 business hours, Standard 9×5."
            in opened)
    sunday = (await harness.as_(BOB).send("/ticket new sev1 Cluster down")).message.text
    assert "First response by Fri 27 Nov 18:00 CET — 2 hours, Premium 24×7." in sunday
    harness.clock.set(madrid(2026, 11, 30, 9, 30))
    for who in (TOM, SAM):
        shown = (await harness.as_(who).send("/ticket show 1")).message.text
        assert ("Due next: first response by Mon 30 Nov 12:00 CET, 2h 30m of business time "
                "left") in shown
    await harness.as_(SAM).send("/triage status 1 pending")
    harness.clock.set(madrid(2026, 11, 30, 15, 0))
    shown = (await harness.as_(TOM).send("/ticket show 1")).message.text
    assert "paused while pending (2h 30m left)" in shown
    await harness.as_(SAM).send("/triage reply 1 Fixed")
    shown = (await harness.as_(TOM).send("/ticket show 1")).message.text
    assert "Due next: responded, nothing due" in shown


async def test_a_public_holiday_of_the_organizations_country_is_not_a_business_day(
    harness: Harness,
) -> None:
    """An organization in Spain opening a ticket the day before the 8 December holiday
    is due on the 9th; the same organization without a country is due on the 8th."""
    spain = organization("iberia", [contact("main", "ines@iberia.test", "Ines")])
    spain["country"] = "ES"
    await harness.import_orders(form(spain))
    harness.clock.set(madrid(2026, 12, 7, 16, 0))
    opened = (await harness.as_("ines@iberia.test").send("/ticket new sev2 Holiday")).message
    assert "First response by Wed 9 Dec 12:00 CET" in opened.text
    del spain["country"]
    await harness.import_orders(form(spain))
    opened = (await harness.as_("ines@iberia.test").send("/ticket new sev2 Again")).message
    assert "First response by Tue 8 Dec 12:00 CET" in opened.text

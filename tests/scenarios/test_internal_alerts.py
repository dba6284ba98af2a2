"""Internal events on the alert path (SPEC §4 Alerts): a sev1 ticket, SLA at risk and
breached, dead letters and a subscription nearing its end each raise one alert in the
triage channel, with Acknowledge and Resolve, resolved in place by the change that ends it,
and counted with the alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.clock import FixedClock
from bot.commands.invocation import Sender
from bot.domain import Platform, StaffRole
from bot.presentation.messages import Actions
from bot.services.sla import SweepResult
from bot.wiring.config import Settings
from storage.db import Database
from storage.models import AlertRow
from tests.fakechat import ChatUser, FakeChat, Post
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization

TRIAGE = "C0TRIAGE"
ACME_ALERTS = "C0ACME"
ANA, TOM, SAM = "ana@acme.test", "tom@acme.test", "sam@vendor.test"
MADRID = ZoneInfo("Europe/Madrid")


def madrid(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=MADRID)


@dataclass
class World:
    h: Harness
    chat: FakeChat
    sam: ChatUser

    @property
    def clock(self) -> FixedClock:
        return self.h.clock

    def roots(self) -> list[Post]:
        """The messages posted in the triage channel (not thread replies)."""
        return self.chat.roots(TRIAGE)

    def thread(self, root: Post) -> list[str]:
        return [p.message.plain().splitlines()[0] for p in self.chat.replies(root)]

    async def alerts(self) -> list[tuple[str, str, str | None]]:
        """(fingerprint, status, resolution) of every internal alert."""
        async with self.h.app.db.read() as session:
            rows = await session.execute(
                select(AlertRow.fingerprint, AlertRow.status, AlertRow.resolution)
                .where(AlertRow.source == "internal").order_by(AlertRow.id))
            return [(f, s, r) for f, s, r in rows.all()]

    async def alert_gauge(self) -> dict[str, float]:
        """`subdesk_alerts{source="internal"}` by state, as `GET /metrics` shows it."""
        text = await self.h.app.services.metrics.scrape(self.h.app.db, self.clock.now())
        return {s.labels["state"]: s.value
                for family in text_string_to_metric_families(text.decode())
                for s in family.samples
                if s.name == "subdesk_alerts" and s.labels["source"] == "internal"}


@pytest.fixture
async def world(settings: Settings, clock: FixedClock, db: Database) -> AsyncIterator[World]:
    """Acme (standard, Madrid) with an alert channel of its own; Sam, a support engineer on
    a Slack-shaped platform whose triage channel is C0TRIAGE."""
    chat = FakeChat()
    tuned = settings.model_copy(update={"triage_channels": (f"slack:{TRIAGE}",)})
    h = await Harness.create(tuned, clock, db, extra={"slack": chat})
    await h.import_orders(form(organization(
        "acme", [contact("main", ANA, "Ana Main"), contact("technical", TOM, "Tom Tech")],
        ends_on="2027-01-24", alert_channels=[f"slack:{ACME_ALERTS}"])))
    await h.add_staff(SAM, StaffRole.ENGINEER, name="Sam Support")
    sam = ChatUser(h.app.core, Sender(Platform.SLACK, "T0VENDOR", "U0SAM", verified_email=SAM))
    assert (await sam.say("/subdesk link")).ok
    await h.drain()
    chat.posts.clear()
    h.console.delivered.clear()
    h.email.delivered.clear()
    yield World(h, chat, sam)


def labels(post: Post) -> list[str]:
    return [b.label for block in post.current.blocks if isinstance(block, Actions)
            for b in block.buttons]


async def test_a_sev1_ticket_pages_once_on_its_triage_card(world: World) -> None:
    """Opening a sev1 ticket posts one message to the triage channel, its triage card, which
    is the page: the sev1 alert firing, with Acknowledge and Resolve. Acknowledging edits
    it; a customer comment does not; the engineer's public answer resolves the alert on the
    same card. Nothing else is posted about it."""
    h, chat = world.h, world.chat
    assert (await h.as_(TOM).send("/ticket new sev1 Checkout is down")).ok
    await h.drain()
    [card] = world.roots()
    assert chat.posts == [card]
    assert card.message.plain().startswith("SEV1 — #1 Checkout is down")
    assert "Alert: firing (alert 1)" in card.message.plain()
    assert labels(card) == ["Claim", "Status", "Severity", "Reply", "Acknowledge", "Resolve"]
    assert await world.alerts() == [("sev1:ticket:1", "firing", None)]
    assert await world.alert_gauge() == {"firing": 1}

    assert (await world.sam.press(card.button("Acknowledge"))).ok
    await h.drain()
    assert len(card.edits) == 1
    assert "Alert: firing · acknowledged by Sam Support" in card.current.plain()
    assert labels(card)[-1:] == ["Resolve"] and "Acknowledge" not in labels(card)

    assert (await h.as_(TOM).send("/ticket comment 1 Still down for everyone")).ok
    await h.drain()
    assert len(card.edits) == 1, "a comment changes nothing the card shows"

    assert (await h.as_(SAM).send("/triage reply 1 Rolling back the release")).ok
    await h.drain()
    assert len(card.edits) == 2
    assert "Alert: resolved: answered by Sam Support (alert 1)" in card.current.plain()
    assert "Acknowledge" not in labels(card) and "Resolve" not in labels(card)
    assert world.roots() == [card]
    assert world.thread(card) == ["Tom Tech commented on #1", "Sam Support replied on #1"]
    assert await world.alerts() == [("sev1:ticket:1", "resolved", "answered by Sam Support")]
    assert await world.alert_gauge() == {"resolved": 1}


async def test_raising_a_ticket_to_sev1_pages_and_lowering_it_resolves(world: World) -> None:
    """A ticket raised to sev1 raises the sev1 alert on its triage card (the change itself
    is told in the card's thread); lowered again, the alert is resolved on the card."""
    h = world.h
    await h.as_(TOM).send("/ticket new sev3 Reports are slow")
    await h.drain()
    [card] = world.roots()
    assert "Alert" not in card.message.plain()
    await h.as_(SAM).send("/triage severity 1 sev1")
    await h.drain()
    assert card.current.plain().startswith("SEV1 — #1 Reports are slow")
    assert "Alert: firing (alert 1)" in card.current.plain()
    await h.as_(SAM).send("/triage severity 1 sev2")
    await h.drain()
    assert "SEV1" not in card.current.plain()
    assert await world.alerts() == [("sev1:ticket:1", "resolved", "severity lowered to sev2")]
    assert world.roots() == [card]
    assert world.thread(card) == ["Sam Support set #1 to sev1", "Sam Support set #1 to sev2"]


async def test_sla_alerts_post_once_and_resolve_in_place(world: World) -> None:
    """Standard sev3 (one business day): "at risk" at Thursday 09:24 and "breached" at 11:00
    post one alert each however often the sweep runs; the engineer's public answer resolves
    both on their own messages, and later sweeps post nothing."""
    h, sweep = world.h, world.h.app.services.sla.sweep
    await h.as_(TOM).send("/ticket new sev3 Slow dashboard")  # Wed 11:00 Madrid
    world.clock.set(madrid(2026, 11, 26, 9, 24))
    assert await sweep() == SweepResult(1, 0)
    assert await sweep() == SweepResult(0, 0)
    await h.drain()
    [card, risk] = world.roots()
    assert risk.message.text.startswith("[FIRING] WARNING · SLA at risk: #1 Slow dashboard")
    assert "Acme Corp (acme) · sev3 · new · First response due" in risk.message.text
    assert labels(risk) == ["Acknowledge", "Resolve", "Claim", "Reply"]

    world.clock.set(madrid(2026, 11, 26, 11, 0))
    assert await sweep() == SweepResult(0, 1)
    assert await sweep() == SweepResult(0, 0)
    await h.drain()
    [_, _, breach] = world.roots()
    assert breach.message.text.startswith("[FIRING] CRITICAL · SLA breached: #1 Slow dashboard")
    assert await world.alert_gauge() == {"firing": 2}

    assert (await world.sam.press(breach.button("Acknowledge"))).ok
    await h.drain()
    assert "Acknowledged by: Sam Support" in breach.current.text
    await h.as_(SAM).send("/triage reply 1 Found it: a missing index")
    await h.drain()
    assert world.roots() == [card, risk, breach]
    for post, level in ((risk, "WARNING"), (breach, "CRITICAL")):
        assert post.current.text.startswith(f"[RESOLVED] {level} · SLA ")
        assert "Resolution: answered by Sam Support" in post.current.text
        assert labels(post) == []
    assert (len(risk.edits), len(breach.edits)) == (1, 2)  # the breach was acknowledged first

    world.clock.set(madrid(2026, 11, 27, 12, 0))
    assert await sweep() == SweepResult(0, 0)
    await h.drain()
    assert world.roots() == [card, risk, breach]
    assert await world.alerts() == [
        ("sla-risk:ticket:1:first-response", "resolved", "answered by Sam Support"),
        ("sla-breach:ticket:1:first-response", "resolved", "answered by Sam Support"),
    ]


async def test_closing_a_ticket_resolves_its_alerts(world: World) -> None:
    """A sev1 ticket at risk that its opener closes: the sev1 page and the "at risk" alert
    are both resolved in place, saying the ticket was closed."""
    h = world.h
    await h.as_(TOM).send("/ticket new sev1 Payments fail")  # 2 business hours
    world.clock.advance(dt.timedelta(minutes=100))
    assert await h.app.services.sla.sweep() == SweepResult(1, 0)
    await h.drain()
    [card, risk] = world.roots()
    await h.as_(TOM).send("/ticket close 1 Fixed on our side")
    await h.drain()
    assert "Alert: resolved: ticket closed" in card.current.plain()
    assert risk.current.text.startswith("[RESOLVED] WARNING · SLA at risk: #1 Payments fail")
    assert "Resolution: ticket closed" in risk.current.text
    assert [s for _, s, _ in await world.alerts()] == ["resolved", "resolved"]
    assert world.roots() == [card, risk]


async def test_subscription_expiring_alerts_staff_once_until_renewed(world: World) -> None:
    """The first renewal notice (60 days before the end) raises one "subscription expiring"
    alert in the triage channel; the 30-day notice adds none; renewing resolves it in place.
    The Main Contact gets the renewal notices, the organization's alert channel nothing."""
    h = world.h
    sweep = h.app.services.reminders.sweep
    report = await sweep()  # Wed 25 Nov 11:00 Madrid: 60 days before 24 Jan
    assert report.renewal_notices == 1
    await h.drain()
    [alert] = world.roots()
    assert alert.message.text.startswith(
        "[FIRING] WARNING · Acme Corp's subscription ends on 2027-01-24")
    assert "in 60 day(s)" in alert.message.text
    assert labels(alert) == ["Acknowledge", "Resolve"]
    assert [m.subject for m in h.emails_to(ANA)] == [
        "Your standard subscription ends on 24 Jan 2027"]

    world.clock.set(madrid(2026, 12, 25, 9, 0))  # 30 days before
    assert (await sweep()).renewal_notices == 1
    assert (await sweep()).renewal_notices == 0
    await h.drain()
    assert len(h.emails_to(ANA)) == 2
    assert world.roots() == [alert] and alert.edits == []

    renewed = organization(
        "acme", [contact("main", ANA, "Ana Main"), contact("technical", TOM, "Tom Tech")],
        ends_on="2027-12-31", alert_channels=[f"slack:{ACME_ALERTS}"])
    await h.import_orders(form(renewed))
    await h.drain()
    assert alert.current.text.startswith("[RESOLVED] WARNING · Acme Corp's subscription ends")
    assert "Resolution: renewed until 2027-12-31" in alert.current.text
    assert world.roots() == [alert] and world.chat.to(ACME_ALERTS) == []
    assert await world.alerts() == [("subscription-expiring:acme:2027-01-24", "resolved",
                                     "renewed until 2027-12-31")]

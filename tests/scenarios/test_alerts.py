"""`/alert` for support engineers: organizations' alert channels and Technical Contacts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.delivery.ports import DeliveryError
from bot.domain import MessageRef, Platform, StaffRole
from bot.presentation.messages import Message
from bot.wiring.config import Settings
from storage.db import Database
from storage.models import AlertRow
from storage.outbox import OutboxItem
from tests.fakechat import FakeChat
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization

SAM = "sam@vendor.test"
CHANNEL = "C0ALERTS"


@pytest.fixture
async def chat() -> FakeChat:
    return FakeChat()


@pytest.fixture
async def harness(
    settings: Settings, clock: FixedClock, db: Database, chat: FakeChat
) -> AsyncIterator[Harness]:
    """The console harness with a Slack-shaped platform for the organizations' channels."""
    yield await Harness.create(settings, clock, db, extra={"slack": chat})


async def world(h: Harness) -> None:
    await h.import_orders(form(
        organization("acme", [contact("main", "ana@acme.test", "Ana Main"),
                              contact("technical", "tom@acme.test", "Tom Tech"),
                              contact("technical", "tia@acme.test", "Tia Tech")],
                     alert_channels=[f"slack:{CHANNEL}"]),
        organization("solo", [contact("main", "sol@solo.test", "Sol Solo")]),
    ))
    await h.add_staff(SAM, StaffRole.ENGINEER, name="Sam Support")
    await h.drain()
    h.console.delivered.clear()
    h.email.delivered.clear()


async def test_alert_reaches_channels_and_technical_contacts(
    harness: Harness, chat: FakeChat
) -> None:
    """An alert to one organization is posted to its alert channel and sent to its Technical
    Contacts only (not the Main Contact), and recorded."""
    await world(harness)
    reply = await harness.as_(SAM).send("/alert warning acme Maintenance tonight at 22:00")
    assert reply.ok, reply.message.text
    assert "1 organization (acme)" in reply.message.text
    await harness.drain()
    targets = sorted(item.target for item, _ in harness.delivered)
    assert targets == ["tia@acme.test", "tom@acme.test"]
    [post] = [p.message for p in chat.to(CHANNEL)]
    assert "WARNING alert for Acme Corp" in post.text and "Maintenance tonight" in post.text
    async with harness.app.db.read() as session:
        rows = list(await session.scalars(select(AlertRow)))
    assert [(r.source, r.level, r.status) for r in rows] == [("staff", "warning", "firing")]


async def test_without_technical_contacts_or_channels_the_main_contact_is_told(
    harness: Harness, chat: FakeChat
) -> None:
    """An organization with a Main and an Administrative Contact only, and no alert
    channel: the alert goes to the Main Contact rather than to nobody."""
    await world(harness)
    await harness.import_orders(form(organization(
        "nobiz", [contact("main", "max@nobiz.test", "Max Main"),
                  contact("administrative", "ada@nobiz.test", "Ada Admin")])))
    await harness.drain()
    harness.console.delivered.clear()
    harness.email.delivered.clear()
    reply = await harness.as_(SAM).send("/alert warning nobiz Datacenter fire")
    assert reply.ok and "1 message(s) queued" in reply.message.text, reply.message.text
    await harness.drain()
    assert [item.target for item, _ in harness.delivered] == ["max@nobiz.test"]


async def test_critical_alert_to_all_also_emails_linked_contacts(
    harness: Harness, chat: FakeChat
) -> None:
    """`all` reaches every organization (a sole Main Contact stands in for the Technical
    Contact); critical goes by email even to a contact with a linked chat account."""
    await world(harness)
    await harness.app.services.identity.admin_link("tom@acme.test", Platform.CONSOLE, "local",
                                                   "tom-chat")
    reply = await harness.as_(SAM).send("/alert critical all Data centre fire drill")
    assert reply.ok, reply.message.text
    assert "2 organizations (acme, solo)" in reply.message.text
    await harness.drain()
    targets = sorted(item.target for item, _ in harness.delivered)
    assert targets == ["sol@solo.test", "tia@acme.test", "tom-chat", "tom@acme.test"]
    assert len(chat.to(CHANNEL)) == 1
    [mail] = harness.emails_to("tom@acme.test")
    assert mail.email_subject == "[CRITICAL] Alert for Acme Corp"


async def test_unknown_org_and_empty_directory_are_refused(
    harness: Harness, chat: FakeChat
) -> None:
    """An unknown key is a clear refusal; `all` with no organizations says so; customers
    may not alert; nothing is sent."""
    await harness.add_staff(SAM, StaffRole.ENGINEER, name="Sam Support")
    reply = await harness.as_(SAM).send("/alert info all Hello")
    assert not reply.ok and "no organizations" in reply.message.text
    await world(harness)
    reply = await harness.as_(SAM).send("/alert info nope Hello")
    assert not reply.ok and "no organization with key 'nope'" in reply.message.text
    reply = await harness.as_("tom@acme.test").send("/alert info acme Hello")
    assert not reply.ok and "not available to you" in reply.message.text
    reply = await harness.as_(SAM).send("/alert loud acme Hello")
    assert not reply.ok and "info|warning|critical" in reply.message.text
    await harness.drain()
    assert harness.delivered == [] and chat.posts == []


async def test_dead_letters_raise_one_internal_alert_until_requeued(
    harness: Harness, chat: FakeChat
) -> None:
    """Messages that cannot be delivered raise the internal dead-letter alert of their
    platform in the triage channel, once while it fires however many follow; requeueing
    them (`subdesk outbox retry`) resolves it in place, and the next dead letter raises it
    anew."""
    await world(harness)

    async def refuse(item: OutboxItem, message: Message) -> MessageRef | None:
        raise DeliveryError("channel_not_found", permanent=True)

    chat.deliver = refuse  # type: ignore[method-assign]
    sam = harness.as_(SAM)
    assert (await sam.send("/alert info acme First")).ok
    await harness.drain()
    [alarm] = harness.delivered_to("triage")
    assert alarm.text.startswith("[FIRING] WARNING · Slack messages could not be delivered\n"
                                 "Outbox message ")
    assert (await sam.send("/alert info acme Second")).ok
    await harness.drain()
    assert len(harness.delivered_to("triage")) == 1

    dead = (await harness.app.services.outbox.report()).items
    assert len(dead) == 2
    await harness.app.services.outbox.retry(dead[0].id)  # another stays dead: still firing
    await harness.drain()
    assert len(harness.delivered_to("triage")) == 1

    assert await harness.app.services.outbox.retry_dead() == 2
    await harness.drain()  # the two die again: the alert fires anew once
    posts = [m.text.splitlines()[0] for m in harness.delivered_to("triage")]
    assert posts == [
        "[FIRING] WARNING · Slack messages could not be delivered",
        "[RESOLVED] WARNING · Slack messages could not be delivered",
        "[FIRING] WARNING · Slack messages could not be delivered",
    ]
    assert "Resolution: dead letters requeued" in harness.delivered_to("triage")[1].text
    async with harness.app.db.read() as session:
        [internal] = list(await session.scalars(
            select(AlertRow).where(AlertRow.source == "internal")))
    assert (internal.fingerprint, internal.episode, internal.status) == (
        "outbox-dead:slack", 2, "firing")
    assert (await sam.send(f"/alert resolve {internal.id}")).ok
    await harness.drain()
    assert "Resolved by: Sam Support" in harness.delivered_to("triage")[-1].text

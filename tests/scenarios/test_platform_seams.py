"""The core's seams for chat platforms, end to end through a chat platform in memory:
references, threads both ways, cards edited in place, typed actions and forms, workspace
addresses and neutral command references."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.commands.invocation import Sender
from bot.domain import MessageRef, OutboxStatus, Platform
from bot.presentation.messages import Outcome
from bot.wiring.config import Settings
from storage.db import Database
from storage.models import OutboxRow, TicketCommentRow
from tests.fakechat import ChatUser, FakeChat, Post
from tests.harness import Harness
from tests.scenarios.tickets_world import SAM, TOM, build

TRIAGE = "T0VENDOR:C0TRIAGE"
TOM_DM = "T0ACME:U0TOM"  # a Slack user is only unique within its team


@pytest.fixture
async def world(
    settings: Settings, clock: FixedClock, db: Database
) -> AsyncIterator[tuple[Harness, FakeChat, ChatUser, ChatUser]]:
    """Acme's Tom and the vendor's Sam on one Slack-shaped platform, in two workspaces."""
    chat = FakeChat()
    tuned = settings.model_copy(update={"triage_channels": (f"slack:{TRIAGE}",)})
    h = await Harness.create(tuned, clock, db, extra={"slack": chat})
    await build(h)
    tom = ChatUser(h.app.core, Sender(Platform.SLACK, "T0ACME", "U0TOM", verified_email=TOM))
    sam = ChatUser(h.app.core, Sender(Platform.SLACK, "T0VENDOR", "U0SAM", verified_email=SAM))
    assert (await tom.say("/subdesk link")).ok
    assert (await sam.say("/subdesk link")).ok
    await h.drain()
    chat.posts.clear()
    yield h, chat, tom, sam


async def opened(h: Harness, chat: FakeChat, tom: ChatUser) -> tuple[Post, Post]:
    reply = await tom.say("/ticket new sev2 VPN drops every hour")
    assert reply.ok, reply.message.text
    await h.drain()
    [card] = chat.roots(TOM_DM)
    [triage] = chat.roots(TRIAGE)
    return card, triage


async def test_messages_land_with_references_and_threads_follow_their_root(
    world: tuple[Harness, FakeChat, ChatUser, ChatUser],
) -> None:
    """The opener's card goes to their account in their own workspace and the triage card
    to the vendor's channel; each send leaves a reference, and later messages of the ticket
    go under those roots, on both sides."""
    h, chat, tom, sam = world
    card, triage = await opened(h, chat, tom)
    assert card.ref.channel == f"D-{TOM_DM}"
    async with h.app.db.read() as session:
        refs = dict((await session.execute(
            select(OutboxRow.target, OutboxRow.platform_ref)
            .where(OutboxRow.platform == "slack"))).all())
    assert refs == {TOM_DM: card.ref.id, TRIAGE: triage.ref.id}

    assert (await sam.say("/triage reply 1 Restart the tunnel, please")).ok
    await h.drain()
    [answer] = chat.replies(card)
    assert "Restart the tunnel" in answer.message.text
    assert [p.thread for p in chat.replies(triage)] == [triage.ref]
    assert len(chat.roots(TOM_DM)) == 1 and len(chat.roots(TRIAGE)) == 1


async def test_replies_under_roots_become_comments_and_notes(
    world: tuple[Harness, FakeChat, ChatUser, ChatUser],
) -> None:
    """A reply in the opener's thread is a public comment (told to triage in its thread);
    a reply in the triage thread is an internal note that never reaches the customer; a
    command typed in a thread is still a command; a reply under a message that is not one
    of Subdesk's threads is refused."""
    h, chat, tom, sam = world
    card, triage = await opened(h, chat, tom)

    assert (await tom.say("It dropped again at 10:05", under=card)).ok
    assert (await sam.say("Customer's firewall, I think", under=triage)).ok
    await h.drain()
    async with h.app.db.read() as session:
        comments = (await session.execute(
            select(TicketCommentRow.body, TicketCommentRow.internal)
            .order_by(TicketCommentRow.id))).all()
    assert [tuple(c) for c in comments] == [("It dropped again at 10:05", False),
                                            ("Customer's firewall, I think", True)]
    assert any("It dropped again" in p.message.text for p in chat.replies(triage))
    assert not any("firewall" in p.current.text for p in chat.to(TOM_DM))

    shown = await tom.say("/ticket show 1", under=card)
    assert shown.ok and "VPN drops every hour" in shown.message.text
    elsewhere = Post(MessageRef("D-x", "9.000100"), "x", None, card.message)
    stray = await tom.say("hello?", under=elsewhere)
    assert stray.outcome is Outcome.REFUSED and "not one of mine" in stray.message.text


async def test_buttons_are_typed_actions_through_the_permission_check(
    world: tuple[Harness, FakeChat, ChatUser, ChatUser],
) -> None:
    """Claim on the triage card runs for the engineer and is refused to the customer; the
    Status button names a form whose submission is validated like typed text."""
    h, chat, tom, sam = world
    _, triage = await opened(h, chat, tom)
    claim = triage.button("Claim")
    refused = await tom.press(claim)
    assert refused.outcome is Outcome.REFUSED and "not available to you" in refused.message.text

    assert (await sam.press(claim)).ok
    status = triage.button("Status")
    assert status.form
    bad = await sam.press(status, STATUS="melted")
    assert bad.outcome is Outcome.REFUSED and "STATUS must be one of" in bad.message.text
    missing = await sam.press(status)
    assert missing.outcome is Outcome.NEEDS_INPUT and missing.form is not None
    assert [f.name for f in missing.form.to_ask] == ["STATUS"]
    assert (await sam.press(status, STATUS="pending")).ok
    forged = await sam.press(status, STATUS="open", SEV="sev1")
    assert forged.outcome is Outcome.REFUSED


async def test_cards_are_edited_in_place_and_only_the_latest_edit_goes_out(
    world: tuple[Harness, FakeChat, ChatUser, ChatUser],
) -> None:
    """Claim and status changes edit the opener's and the triage card where they were
    posted; edits queued before delivery collapse to the latest."""
    h, chat, tom, sam = world
    card, triage = await opened(h, chat, tom)
    assert (await sam.say("/triage claim 1")).ok
    await h.drain()
    assert "Sam Support" in triage.current.plain() and "open" in card.current.text

    for status in ("pending", "on_hold", "open"):
        assert (await sam.say(f"/triage status 1 {status}")).ok
    await h.drain()
    assert len(triage.edits) == 2 and len(card.edits) == 2  # claim, then only the last
    assert "Status: open" in triage.current.plain()
    async with h.app.db.read() as session:
        superseded = await session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status == OutboxStatus.SUPERSEDED.value))
    assert superseded == 4  # two stale edits of each card
    assert len(chat.roots(TOM_DM)) == 1 and len(chat.roots(TRIAGE)) == 1


async def test_command_references_are_neutral_until_rendered(
    world: tuple[Harness, FakeChat, ChatUser, ChatUser],
) -> None:
    """Cards and replies carry command references, not a prefix: Slack shows `/ticket`,
    a Matrix user is told `!subdesk`, never `/`."""
    h, chat, tom, _ = world
    card, _ = await opened(h, chat, tom)
    assert "/ticket comment 1 TEXT" in card.message.plain()
    stranger = ChatUser(h.app.core, Sender(Platform.MATRIX, "acme.test", "@eve:acme.test"))
    reply = await stranger.say("!ticket list")
    text = reply.message.resolved("!").text
    assert "!subdesk link EMAIL" in text and "/" not in text


async def test_console_shows_threads_and_card_updates(harness: Harness) -> None:
    """On the console, a message of a thread says which ticket it answers, and a card edit
    is shown again, marked as updated."""
    await build(harness)
    tom, sam = harness.as_(TOM), harness.as_(SAM)
    await harness.app.services.identity.admin_link(TOM, Platform.CONSOLE, "local", TOM)
    await tom.send("/ticket new sev3 Printer jams")
    await sam.send("/triage claim 1")
    text = "\n".join(harness.lines)
    assert "in reply to #1" in text
    assert "card updated" in text

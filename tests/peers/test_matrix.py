"""The Matrix plug-in against a real Synapse: people on matrix-nio clients (end-to-end
encryption on) talk to the bot in encrypted DMs and rooms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.domain import Platform
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from storage.db import Database
from storage.models import AttachmentRow
from tests.peers.matrix_people import Person, relation, text_of
from tests.peers.matrix_world import Bot, Records, matrix_settings, people, start_bot, until
from tests.peers.synapse import SERVER_NAME, Account, Synapse

pytestmark = pytest.mark.peers


@dataclass
class World:
    bot: Bot
    bot_id: str
    tom: Person
    sam: Person
    triage: str  # the triage room
    records: Records

    async def tom_dm(self) -> str:
        return await self.tom.dm(self.bot_id)


@pytest.fixture
async def world(synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
                ) -> AsyncIterator[World]:
    """The bot with the demo organization; Tom (technical contact) and Sam (support
    engineer) linked to their Matrix accounts; an unencrypted triage room made by Sam."""
    bot_account, tom_account, sam_account = await synapse.register("bot", "tom", "sam")
    async with people(synapse, tmp_path, tom_account, sam_account) as (tom, sam):
        triage = await sam.room(name="triage")
        tuned = matrix_settings(settings, synapse, bot_account, tmp_path / "data",
                                triage_channels=(f"matrix:{triage}",))
        bot = await start_bot(tuned, db)
        try:
            await seed_demo(bot.app.services)
            await link(bot, DEMO_TECH, tom_account)
            await link(bot, DEMO_STAFF, sam_account)
            await sam.invite(triage, bot_account.user_id)
            yield World(bot, bot_account.user_id, tom, sam, triage, Records(db))
        finally:
            await bot.close()


async def link(bot: Bot, email: str, account: Account) -> None:
    await bot.app.services.identity.admin_link(email, Platform.MATRIX, SERVER_NAME,
                                               account.user_id)


def is_root(event: dict[str, object]) -> bool:
    return not relation(event)  # type: ignore[arg-type]


async def test_a_linked_contact_gets_answers_in_an_encrypted_dm(world: World) -> None:
    """Tom opens an encrypted DM with the bot (as Element does) and types `!subdesk whoami`:
    the bot joins, reads the encrypted command and answers, encrypted, as a reply naming
    commands with `!`, in HTML and plain text."""
    room = await world.tom_dm()
    asked = await world.tom.say(room, "!subdesk help")
    answer = await world.tom.wait_text(room, world.bot_id, "!ticket new")
    assert relation(answer)["m.in_reply_to"]["event_id"] == asked
    assert answer["content"]["format"] == "org.matrix.custom.html"
    assert "!ticket new" in answer["content"]["formatted_body"]
    assert "/ticket" not in text_of(answer) and "/ticket" not in answer["content"][
        "formatted_body"]


async def test_a_ticket_from_an_encrypted_dm_with_comments_files_and_triage(
    world: World,
) -> None:
    """Tom opens a ticket in his encrypted DM: the card lands there and the triage card in
    the triage room. His reply in the card's thread is a public comment, an encrypted file
    he shares there an attachment; Sam claims it with `!triage claim` and Tom's card is
    edited in place (its status now open), not posted again. User text is escaped in the
    HTML."""
    room = await world.tom_dm()
    await world.tom.say(room, "!ticket new sev2 VPN <b>drops</b> every hour")
    card = await world.tom.wait_for(room, world.bot_id,
                                    lambda e: is_root(e) and "VPN" in text_of(e))
    assert "&lt;b&gt;drops&lt;/b&gt;" in card["content"]["formatted_body"]
    assert "<b>drops</b>" not in card["content"]["formatted_body"]
    await world.sam.wait_for(world.triage, world.bot_id,
                             lambda e: is_root(e) and "VPN" in text_of(e))
    assert [t[1] for t in await world.records.tickets()] == ["VPN <b>drops</b> every hour"]

    await world.tom.say(room, "It happens on Wi-Fi only", thread=card["event_id"])
    await until(lambda: _has_comment(world, "It happens on Wi-Fi only"), what="the comment")

    log = b"12:00 tunnel down\n" * 50
    await world.tom.share(room, "vpn.log", log, "text/plain", thread=card["event_id"])
    await until(lambda: _attachments(world), what="the attachment")
    assert await _attachments(world) == [("vpn.log", "text/plain", len(log), False, log)]

    ticket = (await world.records.tickets())[0][0]
    await world.sam.say(world.triage, f"!triage claim {ticket}")
    await until(lambda: "Status: open" in world.tom.current(room, card),
                what="the card's edit")
    assert len(world.tom.posts(room, world.bot_id)) == len(
        [e for e in world.tom.posts(room, world.bot_id) if e["event_id"] != card["event_id"]]
    ) + 1  # edited, not posted again


async def _has_comment(world: World, text: str) -> bool:
    return (text, False) in await world.records.comments()


async def _attachments(world: World) -> list[tuple[str, str, int, bool, bytes | None]]:
    async with world.records.db.read() as session:
        rows = await session.execute(select(
            AttachmentRow.name, AttachmentRow.content_type, AttachmentRow.size,
            AttachmentRow.internal, AttachmentRow.content).order_by(AttachmentRow.id))
        return [(str(a), str(b), int(c), bool(d), e) for a, b, c, d, e in rows.all()]

"""The Matrix plug-in against a real Synapse: people on matrix-nio clients (end-to-end
encryption on) talk to the bot in encrypted DMs and rooms."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain import Platform
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_TECH, seed_demo
from storage.db import Database
from tests.peers.matrix_people import text_of
from tests.peers.matrix_world import matrix_settings, people, start_bot
from tests.peers.synapse import Synapse

pytestmark = pytest.mark.peers


async def test_a_linked_contact_gets_answers_in_an_encrypted_dm(
    synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Tom opens an encrypted DM with the bot (as Element does) and types `!subdesk whoami`:
    the bot joins, reads the encrypted command and answers, encrypted, as a reply."""
    bot_account, tom_account = await synapse.register("bot", "tom")
    tuned = matrix_settings(settings, synapse, bot_account, tmp_path / "data")
    bot = await start_bot(tuned, db)
    try:
        services = bot.app.services
        await seed_demo(services)
        await services.identity.admin_link(DEMO_TECH, Platform.MATRIX, "synapse.test",
                                           tom_account.user_id)
        async with people(synapse, tmp_path, tom_account) as (tom,):
            room = await tom.dm(bot_account.user_id)
            asked = await tom.say(room, "!subdesk whoami")
            answer = await tom.wait_text(room, bot_account.user_id, "Tom Tech")
            assert answer["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked
            assert answer["content"]["format"] == "org.matrix.custom.html"
            assert "/subdesk" not in text_of(answer)
    finally:
        await bot.close()

"""Link-code limits per chat account and per contact: cool-down, hourly cap, lockout after
wrong guesses, held in the database; `link verify` tells nothing about who is a contact."""

from __future__ import annotations

import datetime as dt

from bot.clock import FixedClock
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_MAIN, DEMO_TECH
from storage.db import Database
from tests.harness import Harness
from tests.scenarios.test_linking import code_in, link_mails, wrong


async def test_cycling_link_after_five_wrong_guesses_gives_no_fresh_code(
    harness: Harness, clock: FixedClock
) -> None:
    """After five wrong guesses a new `/subdesk link` sends nothing until the lockout ends,
    and a restarted process keeps the lockout."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-cycle")
    await me.send(f"/subdesk link {DEMO_TECH}")
    code = code_in(harness, DEMO_TECH)
    for _ in range(5):
        assert not (await me.send(f"/subdesk link verify {wrong(code)}")).ok
    clock.advance(dt.timedelta(minutes=2))
    again = await me.send(f"/subdesk link {DEMO_TECH}")
    await harness.drain()
    assert "try again in 13 minutes" in again.message.text, again.message.text
    assert len(link_mails(harness, DEMO_TECH)) == 1, "no fresh code at once"

    restarted = await Harness.create(harness.app.settings, clock, harness.app.db)
    still = await restarted.as_(user_id="U-cycle").send(f"/subdesk link {DEMO_TECH}")
    assert "try again" in still.message.text, "the lockout lives in the database"

    clock.advance(dt.timedelta(minutes=13))
    await me.send(f"/subdesk link {DEMO_TECH}")
    await harness.drain()
    assert len(link_mails(harness, DEMO_TECH)) == 2
    assert (await me.send(f"/subdesk link verify {code_in(harness, DEMO_TECH)}")).ok


async def test_codes_per_hour_are_capped_per_account_and_per_contact(
    harness: Harness, clock: FixedClock
) -> None:
    """Three codes an hour at most: one account cannot flood an inbox, nor can many
    accounts together; the contact's limit answers like an unknown email."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-flood")
    for _ in range(3):
        await me.send(f"/subdesk link {DEMO_MAIN}")
        clock.advance(dt.timedelta(seconds=61))
    capped = await me.send(f"/subdesk link {DEMO_MAIN}")
    await harness.drain()
    assert "3 codes were asked for in the last hour" in capped.message.text
    assert len(link_mails(harness, DEMO_MAIN)) == 3

    others = [harness.as_(user_id=f"U-bot{i}") for i in range(3)]
    neutral = [await o.send(f"/subdesk link {DEMO_MAIN}") for o in others]
    ghost = await harness.as_(user_id="U-ghost").send("/subdesk link ghost@demo.test")
    await harness.drain()
    assert len(link_mails(harness, DEMO_MAIN)) == 3, "the contact's cap holds across accounts"
    assert {r.message.text.replace(DEMO_MAIN, "EMAIL") for r in neutral} == {
        ghost.message.text.replace("ghost@demo.test", "EMAIL")}

    clock.advance(dt.timedelta(minutes=58))
    await harness.as_(user_id="U-later").send(f"/subdesk link {DEMO_MAIN}")
    await harness.drain()
    assert len(link_mails(harness, DEMO_MAIN)) == 4, "an hour after the first, a code again"


async def test_cool_down_per_contact_across_accounts(harness: Harness) -> None:
    """Two accounts asking for the same contact within the cool-down send one email."""
    await harness.seed_demo()
    await harness.as_(user_id="U-one").send(f"/subdesk link {DEMO_TECH}")
    await harness.as_(user_id="U-two").send(f"/subdesk link {DEMO_TECH}")
    await harness.drain()
    assert len(link_mails(harness, DEMO_TECH)) == 1


async def test_verify_answers_alike_for_contacts_and_strangers(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """Wrong guesses after asking for a contact's code and for an unknown email get the
    same answers, down to the lockout."""
    harness = await Harness.create(settings, clock, db)
    await harness.seed_demo()
    contact, stranger = harness.as_(user_id="U-real"), harness.as_(user_id="U-fake")
    await contact.send(f"/subdesk link {DEMO_TECH}")
    await stranger.send("/subdesk link nobody@demo.test")
    code = code_in(harness, DEMO_TECH)
    for _ in range(6):
        guess = wrong(code)
        real = await contact.send(f"/subdesk link verify {guess}")
        fake = await stranger.send(f"/subdesk link verify {guess}")
        assert real.message.text == fake.message.text and real.ok is fake.ok is False
    assert "Too many wrong codes" in real.message.text

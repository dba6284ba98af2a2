"""The Matrix plug-in against a real Synapse: people on matrix-nio clients (end-to-end
encryption on) talk to the bot in encrypted DMs and rooms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from adapters.matrix import inbound
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


async def test_an_event_that_breaks_the_handling_does_not_hold_up_the_sync(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message whose handling raises (a bug) is logged and skipped; the commands after
    it are answered."""
    said = world.bot.adapter._said

    async def fragile(message: inbound.Said) -> None:
        if message.text == "!boom":
            raise ValueError("a bug")
        await said(message)

    monkeypatch.setattr(world.bot.adapter, "_said", fragile)
    room = await world.tom_dm()
    await world.tom.say(room, "!boom")
    asked = await world.tom.say(room, "!subdesk whoami")
    assert "Tom Tech" in await world.tom.answer(room, world.bot_id, asked)


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


async def test_a_long_answer_in_another_script_is_shortened_to_fit_not_lost(
    world: World,
) -> None:
    """A ticket with two comments of 3,900 Cyrillic letters each: `!ticket show` would be
    over twice the 64 KiB an event holds once encrypted (every such letter is six bytes in
    the encrypted payload). The answer comes, shortened to fit, plain text only."""
    room = await world.tom_dm()
    await world.tom.say(room, "!ticket new sev3 Printer")
    card = await world.tom.wait_for(room, world.bot_id,
                                    lambda e: is_root(e) and "Printer" in text_of(e))
    for letter in "жщ":
        await world.tom.say(room, letter * 3900, thread=card["event_id"])
        await until(lambda letter=letter: _has_comment(world, letter * 3900),  # type: ignore[misc]
                    what="the comment")
    ticket = (await world.records.tickets())[0][0]
    asked = await world.tom.say(room, f"!ticket show {ticket}")
    shown = await world.tom.answer(room, world.bot_id, asked)
    assert "Printer" in shown and "жжжж" in shown and shown.endswith("…")


async def test_without_the_database_people_replying_to_each_other_get_no_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database down (the threads cannot be looked up), in a room Tom and Sam share
    with the bot: Sam's reply to Tom is their conversation, and gets nothing; a reply under
    the bot's own message may be meant for it, and is told "temporarily unavailable"."""
    room = await world.sam.room(world.tom.user_id, world.bot_id)
    asked = await world.tom.say(room, "!subdesk whoami")
    await world.tom.answer(room, world.bot_id, asked)
    [ours] = world.tom.posts(room, world.bot_id)

    async def down(*_: object) -> None:
        raise OperationalError("SELECT", {}, ConnectionError("database down"))

    monkeypatch.setattr(world.bot.app.services.threads, "meaning_of", down)
    hello = await world.tom.say(room, "hello team")
    chatter = await world.sam.say(room, "hi Tom, how are you?", reply_to=hello)
    thanks = await world.sam.say(room, "thanks", reply_to=str(ours["event_id"]))
    assert "temporarily unavailable" in await world.sam.answer(room, world.bot_id, thanks)
    assert world.sam.answers_to(room, world.bot_id, chatter) == []
    assert len(world.sam.posts(room, world.bot_id)) == 2


async def _has_comment(world: World, text: str) -> bool:
    return (text, False) in await world.records.comments()


async def _attachments(world: World) -> list[tuple[str, str, int, bool, bytes | None]]:
    async with world.records.db.read() as session:
        rows = await session.execute(select(
            AttachmentRow.name, AttachmentRow.content_type, AttachmentRow.size,
            AttachmentRow.internal, AttachmentRow.content).order_by(AttachmentRow.id))
        return [(str(a), str(b), int(c), bool(d), e) for a, b, c, d, e in rows.all()]


async def test_a_ticket_is_triaged_across_slack_and_matrix(
    synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """One deployment on Slack and Matrix, triage channels on both. Tom opens a ticket on
    Slack: his Matrix card needs a DM he never opened, so the bot makes one (encrypted, in
    its `m.direct`) and Tom reads the card there; Sam claims it with `!triage claim` in the
    Matrix triage room and Tom's Slack card is updated. Tom then opens one in that Matrix
    DM and Sam claims it with the Slack triage card's button: the Matrix card is edited."""
    from aiohttp import ClientSession
    from pydantic import SecretStr

    from adapters.http.app import HttpAdapter
    from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, SlackClient, buttons

    bot_account, tom_account, sam_account = await synapse.register("bot", "tom", "sam")
    fake = FakeSlack()
    await fake.start()
    async with people(synapse, tmp_path, tom_account, sam_account) as (tom, sam):
        triage = await sam.room(name="triage")
        tuned = matrix_settings(
            settings, synapse, bot_account, tmp_path / "data",
            slack_bot_token=SecretStr("xoxb-test-token"), slack_signing_secret=SecretStr(SECRET),
            slack_api_url=fake.url, triage_channels=("slack:C0TRIAGE", f"matrix:{triage}"))
        bot = await start_bot(tuned, db)
        try:
            identity = bot.app.services.identity
            await seed_demo(bot.app.services)
            await link(bot, DEMO_TECH, tom_account)
            await link(bot, DEMO_STAFF, sam_account)
            await identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, "U0TOM")
            await identity.admin_link(DEMO_STAFF, Platform.SLACK, TEAM, "U0SAM")
            await sam.invite(triage, bot_account.user_id)
            http = bot.app.adapters["http"]
            assert isinstance(http, HttpAdapter)
            async with ClientSession() as session:
                slack = SlackClient(f"http://127.0.0.1:{http.port}/slack/events", fake, session)

                # Slack → Matrix
                assert tom.dm_rooms_with(bot_account.user_id) == []
                status, _, _ = await slack.command("U0TOM", "/ticket", "new sev3 From Slack")
                assert status == 200
                await until(lambda: tom.dm_rooms_with(bot_account.user_id), what="a DM")
                (made,) = tom.dm_rooms_with(bot_account.user_id)
                card = await tom.wait_for(made, bot_account.user_id,
                                          lambda e: is_root(e) and "From Slack" in text_of(e))
                assert bot.adapter.link.direct[tom_account.user_id] == [made]
                await sam.wait_text(triage, bot_account.user_id, "From Slack")
                await sam.say(triage, "!triage claim 1")
                await until(lambda: any(u["channel"] == "DU0TOM" and "open" in str(u["blocks"])
                                        for u in fake.of("chat.update")),
                            what="Tom's Slack card updated")
                await until(lambda: "Status: open" in tom.current(made, card),
                            what="Tom's Matrix card edited")

                # Matrix → Slack
                await tom.say(made, "!ticket new sev2 From Matrix")
                await until(lambda: [p for p in fake.posted("C0TRIAGE")
                                     if "From Matrix" in str(p[0])], what="the Slack card")
                ((triage_card, ts),) = [p for p in fake.posted("C0TRIAGE")
                                        if "From Matrix" in str(p[0])]
                second = await tom.wait_for(made, bot_account.user_id,
                                            lambda e: is_root(e) and "From Matrix" in text_of(e))
                claim = buttons(triage_card["blocks"])["Claim"]
                status, _, _ = await slack.press("U0SAM", claim, channel="C0TRIAGE",
                                                 message_ts=ts)
                assert status == 200
                await until(lambda: "Status: open" in tom.current(made, second),
                            what="Tom's Matrix card edited from Slack")
        finally:
            await bot.close()
            await fake.stop()


async def test_linking_on_matrix_by_emailed_code_and_from_the_command_line(
    synapse: Synapse, settings: Settings, db: Database, db_url: str, tmp_path: Path
) -> None:
    """Matrix vouches for no email: Ana links her account with the code emailed to her
    (a real SMTP server receives it, naming the `!` command to type), and the operator
    links Ada's with `subdesk link EMAIL --matrix MXID`; each is then known to the bot."""
    import asyncio
    import os
    import re
    import sys
    from email.message import EmailMessage

    from pydantic import SecretStr

    from tests.peers.test_smtp import Mailbox, SmtpServer, free_port

    bot_account, ana_account, ada_account = await synapse.register("bot", "ana", "ada")
    smtp = SmtpServer(free_port(), Mailbox())
    smtp.start()

    def codes() -> list[EmailMessage]:
        return [m for m in smtp.mailbox.received if m["Subject"] == "Your Subdesk link code"]

    tuned = matrix_settings(settings, synapse, bot_account, tmp_path / "data",
                            smtp_url=SecretStr(smtp.url))
    bot = await start_bot(tuned, db)
    try:
        await seed_demo(bot.app.services)
        async with people(synapse, tmp_path, ana_account, ada_account) as (ana, ada):
            room = await ana.dm(bot_account.user_id)
            await ana.say(room, "!subdesk whoami")
            await ana.wait_text(room, bot_account.user_id, "!subdesk link EMAIL")
            await ana.say(room, "!subdesk link ana@demo.test")
            await ana.wait_text(room, bot_account.user_id, "6-digit code")
            await until(lambda: codes(), what="the code's email")
            (code_mail,) = codes()
            mail = code_mail.get_body(("plain",))
            assert mail is not None
            body = mail.get_content()
            assert "!subdesk link verify" in body and "/subdesk" not in body
            code = re.search(r"\b(\d{6})\b", body)
            assert code is not None
            await ana.say(room, f"!subdesk link verify {code.group(1)}")
            await ana.wait_text(room, bot_account.user_id, "Ana Main")
            asked = await ana.say(room, "!subdesk whoami")
            assert "Ana Main" in await ana.answer(room, bot_account.user_id, asked)

            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
            env.update(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING")
            cli = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("subdesk")), "link", "ada@demo.test",
                "--matrix", ada_account.user_id, env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, err.decode()
            assert f"Linked matrix {ada_account.user_id} to Ada Admin" in out.decode()
            dm = await ada.dm(bot_account.user_id)
            asked = await ada.say(dm, "!subdesk whoami")
            assert "Ada Admin" in await ada.answer(dm, bot_account.user_id, asked)
    finally:
        await bot.close()
        smtp.stop()


@asynccontextmanager
async def keys_withheld(world: World, room: str) -> AsyncIterator[None]:
    """Tom's client shares no room keys with the bot's device in `room` meanwhile."""
    client = world.tom.client
    assert client is not None
    (device,) = client.device_store.active_user_devices(world.bot_id)
    client.blacklist_device(device)
    client.invalidate_outbound_session(room)
    try:
        yield
    finally:
        client.unblacklist_device(device)
        client.invalidate_outbound_session(room)


async def test_a_message_the_bot_cannot_decrypt_is_asked_for_again(world: World) -> None:
    """Tom's client stops sharing room keys with the bot's device: the bot cannot read his
    next message, waits a while for its key, then asks him to send it again. Once his
    client shares keys again, the bot reads and answers."""
    room = await world.tom_dm()
    warm = await world.tom.say(room, "!subdesk whoami")
    await world.tom.answer(room, world.bot_id, warm)
    async with keys_withheld(world, room):
        unreadable = await world.tom.say(room, "!subdesk whoami")
        said = await world.tom.answer(room, world.bot_id, unreadable, within=40)
    assert "could not read your last message" in said
    again = await world.tom.say(room, "!subdesk whoami")
    assert "Tom Tech" in await world.tom.answer(room, world.bot_id, again)


async def test_in_a_shared_room_unreadable_messages_are_asked_for_once(world: World) -> None:
    """In an encrypted room Tom shares with Sam and the bot, Tom's client stops sharing
    keys with the bot: of his two unreadable messages (chatter, perhaps, not meant for the
    bot) he is asked to send again once, not once per message."""
    room = await world.tom.room(world.sam.user_id, world.bot_id, encrypted=True)
    warm = await world.tom.say(room, "!subdesk whoami")
    await world.tom.answer(room, world.bot_id, warm)
    async with keys_withheld(world, room):
        first = await world.tom.say(room, "lunch at noon, Sam?")
        second = await world.tom.say(room, "or one?")
        said = await world.tom.answer(room, world.bot_id, first, within=40)
    assert "could not read your last message" in said
    again = await world.tom.say(room, "!subdesk whoami")
    assert "Tom Tech" in await world.tom.answer(room, world.bot_id, again)
    assert world.tom.answers_to(room, world.bot_id, second) == []


async def test_a_command_missing_its_input_asks_for_it_field_by_field(world: World) -> None:
    """`!ticket new` alone opens the ticket form in Tom's encrypted DM: each question is
    a reply to his last message, a refused answer is asked again, `skip` leaves out an
    optional field, and the last answer opens the ticket (its card follows). A command
    typed meanwhile closes the form and runs; `cancel` closes it; nothing else is opened."""
    room = await world.tom_dm()

    async def ask(text: str) -> str:
        return await world.tom.answer(room, world.bot_id, await world.tom.say(room, text))

    first = await ask("!ticket new")
    assert first.startswith("Open a support ticket: a few questions")
    assert first.endswith("Severity (sev1|sev2|sev3|sev4, optional)?")
    assert await ask("sev9") == ("⚠️ SEVERITY must be one of sev1, sev2, sev3, sev4.\n"
                                 "Severity (sev1|sev2|sev3|sev4, optional)?")
    assert await ask("sev2") == "Subject?"
    assert await ask("skip") == "⚠️ Subject is needed.\nSubject?"
    assert await ask("Printer <i>jams</i>") == "Description (optional)?"
    assert await world.records.tickets() == []
    opened = await ask("skip")
    assert "Printer <i>jams</i>" in opened, opened
    assert [t[1] for t in await world.records.tickets()] == ["Printer <i>jams</i>"]
    await world.tom.wait_for(room, world.bot_id,
                             lambda e: is_root(e) and "Printer" in text_of(e))

    assert (await ask("!ticket new sev3")).endswith("Subject?")
    assert "Tom Tech" in await ask("!subdesk whoami")  # a command closes the form and runs
    assert (await ask("hello")).startswith("Commands start with !")
    assert (await ask("!ticket new sev3")).endswith("Subject?")
    assert await ask("cancel") == "Cancelled."
    assert (await ask("hello")).startswith("Commands start with !")
    assert len(await world.records.tickets()) == 1


async def test_only_a_direct_room_is_a_dm_not_a_room_of_two(world: World) -> None:
    """Chatter in Tom's DM (opened as direct) is pointed at the help; chatter in a room of
    just Tom and the bot that is no DM is left alone, as in any shared room."""
    dm = await world.tom_dm()
    hello = await world.tom.say(dm, "hello")
    assert (await world.tom.answer(dm, world.bot_id, hello)).startswith("Commands start with !")

    room = await world.tom.room(world.bot_id, name="alerts")
    hello = await world.tom.say(room, "hello")
    asked = await world.tom.say(room, "!subdesk whoami")
    assert "Tom Tech" in await world.tom.answer(room, world.bot_id, asked)
    assert world.tom.answers_to(room, world.bot_id, hello) == []  # handled before the command

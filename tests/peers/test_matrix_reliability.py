"""The Matrix plug-in when things go wrong, against a real Synapse: the bot killed in the
middle of a batch and restarted, the homeserver away, rate limits (a strict Synapse),
several replicas sharing one account."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.matrix import inbound
from bot.commands.invocation import Invocation
from bot.domain import OutboxStatus, Platform
from bot.presentation.messages import Message
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_TECH, seed_demo
from storage.db import Database
from storage.models import OutboxRow
from storage.outbox import OutboxItem
from tests.peers.matrix_people import Person, relation, text_of
from tests.peers.matrix_world import TUNING, Bot, Records, matrix_settings, people, start_bot, until
from tests.peers.synapse import SERVER_NAME, STRICT_MESSAGES, Synapse, launch, require_synapse

pytestmark = [pytest.mark.peers, pytest.mark.slow]


def answers_to(person: Person, room: str, bot: str, asked: str) -> list[str]:
    """The bot's answers to the command `asked`."""
    return person.answers_to(room, bot, asked)


async def settle(bot: Bot) -> None:
    """Until nothing is waiting in the outbox, and a moment more for stray sends."""
    await until(lambda: _idle(bot), 60, "the outbox to empty")
    await asyncio.sleep(1.0)


async def _idle(bot: Bot) -> bool:
    """No Matrix message waits (emails do: there is no mail relay here)."""
    async with bot.app.db.read() as session:
        waiting = await session.scalar(select(func.count()).where(
            OutboxRow.platform == "matrix", OutboxRow.status.in_(("pending", "sending"))))
    return not waiting


async def test_killed_before_saving_its_sync_token_and_restarted(
    synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """The bot dies after handling a command but before saving the sync token; more
    commands arrive while it is down. Restarted (same database, same data directory, so
    the same device), it sees the handled command again without running or answering it
    twice, and answers each command sent while it was down exactly once, also when they
    are more than one sync brings (a timeline of two events: the gap is read back)."""
    bot_account, tom_account = await synapse.register("bot", "tom")
    tuned = matrix_settings(settings, synapse, bot_account, tmp_path / "data")
    records = Records(db)
    bot = await start_bot(tuned, db)
    async with people(synapse, tmp_path, tom_account) as (tom,):
        try:
            await seed_demo(bot.app.services)
            await bot.app.services.identity.admin_link(DEMO_TECH, Platform.MATRIX,
                                                       SERVER_NAME, tom_account.user_id)
            room = await tom.dm(bot_account.user_id)
            before = await tom.say(room, "!ticket new sev3 Before the crash")
            await until(lambda: answers_to(tom, room, bot_account.user_id, before))

            killed = asyncio.Event()
            save = bot.adapter._save_position

            async def die(token: str) -> None:
                """Once the second command was handled, the process dies before the token
                of that batch is saved."""
                if not await _subjects(records, 2):
                    await save(token)
                    return
                killed.set()
                await asyncio.Event().wait()

            bot.adapter._save_position = die  # type: ignore[method-assign]
            during = await tom.say(room, "!ticket new sev3 During the crash")
            await asyncio.wait_for(killed.wait(), 30)
        finally:
            await bot.close()
        down = [await tom.say(room, "!ticket new sev4 While it was down"),
                await tom.say(room, "!subdesk whoami"),
                await tom.say(room, "!ticket list"),
                await tom.say(room, "!subdesk help")]
        bot = await start_bot(tuned, db, tuning=replace(TUNING, timeline_limit=2))
        try:
            for asked in (during, *down):
                await until(lambda a=asked: answers_to(tom, room, bot_account.user_id, a),  # type: ignore[misc]
                            what="an answer to each command")
            await settle(bot)
            subjects = sorted(t[1] for t in await records.tickets())
            assert subjects == ["Before the crash", "During the crash", "While it was down"]
            for asked in (before, during, *down):
                assert len(answers_to(tom, room, bot_account.user_id, asked)) == 1
        finally:
            await bot.close()


async def _subjects(records: Records, count: int) -> bool:
    return len(await records.tickets()) >= count


@pytest.fixture(scope="module")
def strict_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A Synapse whose overlay makes `rc_message` strict: three messages, then one every
    two seconds per user."""
    require_synapse()
    server = launch(tmp_path_factory.mktemp("strict-synapse"), STRICT_MESSAGES)
    yield server
    server.stop()


async def test_rate_limits_delay_answers_and_lose_none(
    strict_synapse: Synapse, settings: Settings, db: Database, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a homeserver that answers M_LIMIT_EXCEEDED after three messages, a burst of
    commands is answered in full: each refused send waits `retry_after_ms` and goes again,
    without using up the message's attempts (they would dead-letter otherwise)."""
    caplog.set_level("INFO", logger="bot.delivery.dispatcher")
    bot_account, tom_account = await strict_synapse.register("bot", "tom")
    await strict_synapse.unthrottle(tom_account.user_id)  # Tom types as fast as he likes
    tuned = matrix_settings(settings, strict_synapse, bot_account, tmp_path / "data",
                            outbox_max_attempts=2)
    bot = await start_bot(tuned, db)
    try:
        await seed_demo(bot.app.services)
        await bot.app.services.identity.admin_link(DEMO_TECH, Platform.MATRIX, SERVER_NAME,
                                                   tom_account.user_id)
        async with people(strict_synapse, tmp_path, tom_account) as (tom,):
            room = await tom.dm(bot_account.user_id)
            asked = [await tom.say(room, "!subdesk whoami") for _ in range(6)]
            for event in asked:
                await until(lambda e=event: answers_to(tom, room, bot_account.user_id, e),  # type: ignore[misc]
                            60, "every answer")
            await settle(bot)
            assert all(len(answers_to(tom, room, bot_account.user_id, e)) == 1 for e in asked)
    finally:
        await bot.close()
    limited = [r for r in caplog.records if "M_LIMIT_EXCEEDED" in r.getMessage()]
    assert limited, "the homeserver never refused a send: the test proves nothing"
    counts = (await bot.app.services.outbox.report()).counts
    assert counts["dead"] == 0


async def test_the_homeserver_goes_away_and_the_bot_recovers_by_itself(
    synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Synapse stops: the bot says it is not ready (homeserver unreachable) and leaves its
    Matrix messages queued instead of spending their attempts; Synapse comes back: the
    bot syncs again by itself, says it is ready, delivers what waited and answers again."""
    bot_account, tom_account = await synapse.register("bot", "tom")
    tuned = matrix_settings(settings, synapse, bot_account, tmp_path / "data")
    bot = await start_bot(tuned, db, ready=False)
    try:
        assert await bot.adapter.readiness() is not None  # not synced yet
        await until(lambda: _ready(bot), 60, "the first sync")
        await seed_demo(bot.app.services)
        await bot.app.services.identity.admin_link(DEMO_TECH, Platform.MATRIX, SERVER_NAME,
                                                   tom_account.user_id)
        async with people(synapse, tmp_path, tom_account) as (tom,):
            room = await tom.dm(bot_account.user_id)
            synapse.stop()
            try:
                await until(lambda: _unreachable(bot), 30, "the bot to notice")
                reply = await bot.app.core.handle(Invocation(
                    inbound.sender(tom_account.user_id), "!ticket new sev3 During the outage"))
                assert reply.ok
                await asyncio.sleep(1.0)
                assert await _attempts(bot) == [0]  # the card waits, unclaimed
            finally:
                synapse.start()
            await until(lambda: _ready(bot), 60, "the bot to sync again")
            await tom.wait_for(room, bot_account.user_id,
                               lambda e: not relation(e) and "During the outage" in text_of(e),
                               60)
            asked = await tom.say(room, "!subdesk whoami")
            await until(lambda: answers_to(tom, room, bot_account.user_id, asked), 30)
    finally:
        await bot.close()


async def _unreachable(bot: Bot) -> bool:
    status = await bot.adapter.readiness()
    return status is not None and "unreachable" in status


async def _ready(bot: Bot) -> bool:
    return await bot.adapter.readiness() is None


async def _attempts(bot: Bot) -> list[int]:
    async with bot.app.db.read() as session:
        rows = await session.scalars(select(OutboxRow.attempts).where(
            OutboxRow.platform == "matrix", OutboxRow.status == "pending"))
        return list(rows)


async def test_one_replica_syncs_and_another_takes_over_when_it_dies(
    synapse: Synapse, settings: Settings, db_url: str, tmp_path: Path
) -> None:
    """Two replicas share the database and the data directory: exactly one holds the sync
    (and sends Matrix messages); when it dies the other takes over from the saved token,
    with the same device, and every command is answered exactly once."""
    bot_account, tom_account = await synapse.register("bot", "tom")
    tuned = matrix_settings(settings, synapse, bot_account, tmp_path / "data")
    first_db, second_db = Database(db_url), Database(db_url)
    first = await start_bot(tuned, first_db)
    second = await start_bot(tuned, second_db, ready=False)
    try:
        await asyncio.sleep(1.0)  # several lease polls of the second replica
        assert first.adapter.leading and not second.adapter.leading
        assert not second.adapter.delivering
        assert await second.adapter.readiness() is None  # standing by is fine
        await seed_demo(first.app.services)
        await first.app.services.identity.admin_link(DEMO_TECH, Platform.MATRIX, SERVER_NAME,
                                                     tom_account.user_id)
        async with people(synapse, tmp_path, tom_account) as (tom,):
            room = await tom.dm(bot_account.user_id)
            before = await tom.say(room, "!ticket new sev3 Before the takeover")
            await until(lambda: answers_to(tom, room, bot_account.user_id, before))
            await first.close()  # the replica that syncs dies; its lease goes with it
            during = await tom.say(room, "!ticket new sev3 During the takeover")
            await until(lambda: second.adapter.delivering, 30, "the takeover")
            after = await tom.say(room, "!subdesk whoami")
            for asked in (during, after):
                await until(lambda a=asked: answers_to(tom, room, bot_account.user_id, a),  # type: ignore[misc]
                            what="answers from the replica that took over")
            await settle(second)
            for asked in (before, during, after):
                assert len(answers_to(tom, room, bot_account.user_id, asked)) == 1
            subjects = sorted(t[1] for t in await Records(second_db).tickets())
            assert subjects == ["Before the takeover", "During the takeover"]
            assert first.adapter.link.device_id == ""  # closed
            assert second.adapter.link.device_id == _device(tmp_path)
    finally:
        await first.close()
        await second.close()
        await first_db.dispose()
        await second_db.dispose()


def _device(tmp_path: Path) -> str:
    import json

    (found,) = (tmp_path / "data" / "matrix").glob("*/credentials.json")
    return str(json.loads(found.read_text())["device_id"])


async def test_a_resend_of_one_outbox_message_is_the_same_event(
    synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
) -> None:
    """A dispatcher that dies after sending but before recording it sends the message again
    on restart: with the outbox id as transaction id, the homeserver answers with the first
    event and the room holds one message, encrypted or not."""
    bot_account, tom_account = await synapse.register("bot", "tom")
    bot = await start_bot(matrix_settings(settings, synapse, bot_account, tmp_path / "data"),
                          db)
    try:
        async with people(synapse, tmp_path, tom_account) as (tom,):
            room = await tom.dm(bot_account.user_id)
            await until(lambda: room in (bot.adapter.link.client.rooms if
                                         bot.adapter.link.client else {}), what="the room")
            item = OutboxItem(
                id=987654, key="resend-test", platform="matrix", target=room, kind="channel",
                recipient="", payload={}, status=OutboxStatus.SENDING, attempts=1,
                next_attempt_at=bot.app.clock.now(), last_error=None, platform_ref=None,
                created_at=bot.app.clock.now(), sent_at=None)
            message = Message("Sent once, whatever happens")
            first = await bot.adapter.transport.deliver(item, message)
            again = await bot.adapter.transport.deliver(item, message)
            assert first is not None and first == again
            await tom.wait_text(room, bot_account.user_id, "Sent once")
            later = await tom.say(room, "!subdesk help")  # anything after it, to be sure
            await tom.answer(room, bot_account.user_id, later)
            assert [text_of(e) for e in tom.posts(room, bot_account.user_id)].count(
                "Sent once, whatever happens") == 1
    finally:
        await bot.close()

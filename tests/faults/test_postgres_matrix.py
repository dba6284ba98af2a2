"""PostgreSQL stopped and started again under a `subdesk run` that serves Matrix (a private
cluster and a private Synapse): a command typed during the outage is answered "temporarily
unavailable" straight in the room, once, and is not run later, even when the process
restarts and reads the command again; the alerts queued for the room are delivered once
each, and a command after the outage gets its real answer."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bot.wiring.config import Settings
from storage.db import Database
from tests.faults.world import (
    Cluster,
    RoomReader,
    Subdesk,
    alerts,
    matrix_env,
    orders,
    outbox_statuses,
    room_with_bot,
    unavailable,
    until,
)
from tests.peers.matrix_world import TUNING, matrix_settings, people, start_bot
from tests.peers.synapse import Synapse

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

ALERTS = 5
TERM = 4.0  # seconds of the lease term in the one-process test


async def test_postgresql_restarted_under_the_matrix_sync(
    cluster: Cluster, synapse: Synapse, tmp_path: Path
) -> None:
    """Alerts for a Matrix room go out one a second when PostgreSQL stops. Tom types a
    command: the bot, still holding its sync lease for the lease's term, answers
    "temporarily unavailable" in the room. The process is stopped and started again
    once PostgreSQL is back (its sync token was not saved: it reads the command again):
    the command is not run and gets no second answer. Every alert is in the room once and
    recorded as sent, and a new command gets its real answer."""
    bot, tom = await synapse.register("bot", "tom")
    # A process stopped while the database is down cannot hand back an alert it had claimed
    # (or sent without recording it): that one waits for its lease to run out, kept short.
    env = matrix_env(synapse, bot, SUBDESK_DATABASE_URL=cluster.url,
                     SUBDESK_OUTBOX_BASE_DELAY="0.5", SUBDESK_OUTBOX_MAX_DELAY="2",
                     SUBDESK_OUTBOX_PER_TARGET_INTERVAL="1", SUBDESK_OUTBOX_LEASE="5")
    subdesk = Subdesk(env, tmp_path)
    await subdesk.cli("db", "upgrade")
    await subdesk.start()
    http = ClientSession()
    try:
        await until(lambda: _ready(subdesk), 60, "the bot's first sync")
        room, token = await room_with_bot(synapse, tom, bot, tmp_path)
        reader = RoomReader(synapse, token, room)
        status, report = await subdesk.post(
            "/api/v1/orders", orders(1, prefix="matrix", channels=(f"matrix:{room}",)))
        assert status == 200, report
        status, received = await subdesk.post("/hooks/alertmanager",
                                              alerts("matrix1", ALERTS, tag="matrix"))
        assert (status, received["posted"]) == (200, ALERTS), received
        await until(lambda: _alerts_in(reader, http, bot.user_id, 1), 30, "the first alert")

        await asyncio.to_thread(cluster.stop)
        asked = await reader.say(http, "!subdesk whoami")
        await until(lambda: reader.answers_to(http, bot.user_id, asked), 30,
                    "an answer during the outage")
        during = await reader.answers_to(http, bot.user_id, asked)
        assert len(during) == 1 and unavailable(during[0]), during
        await subdesk.stop()  # its sync token and the alerts' records wait for the database

        await asyncio.to_thread(cluster.start)
        await subdesk.start()
        await until(lambda: _ready(subdesk), 60, "/readyz to say ready again")
        await until(lambda: _alerts_in(reader, http, bot.user_id, ALERTS), 60,
                    "every alert in the room")
        after = await reader.say(http, "!subdesk whoami")
        await until(lambda: reader.answers_to(http, bot.user_id, after), 60,
                    "an answer after the outage")
        await asyncio.sleep(2.0)  # time for a late answer or a stray resend to show
        assert await reader.answers_to(http, bot.user_id, asked) == during, (
            "the command asked during the outage was answered again")
        real = await reader.answers_to(http, bot.user_id, after)
        assert len(real) == 1 and not unavailable(real[0]), real
        bodies = [str(e["content"].get("body", "")) for e in await reader.messages(http)
                  if e["sender"] == bot.user_id]
    finally:
        await http.close()
        await subdesk.stop()
    for n in range(1, ALERTS + 1):
        name = f"matrix alert {n:03d}"
        assert sum(name in body for body in bodies) == 1, (name, bodies)
    assert await outbox_statuses(cluster.url, "matrix") == {"sent": ALERTS + 1}, (
        "the alerts and one answer")
    log = subdesk.log_text()
    assert "Traceback" not in log, log[-4000:]
    assert "answered without the database: 1 event(s) recorded as handled" in log


async def _ready(subdesk: Subdesk) -> bool:
    return (await subdesk.ready())[0] == 200


async def _alerts_in(reader: RoomReader, http: ClientSession, bot: str, count: int) -> bool:
    bodies = [str(e["content"].get("body", "")) for e in await reader.messages(http)
              if e["sender"] == bot]
    return sum("matrix alert" in body for body in bodies) >= count


async def test_a_holder_cut_off_past_its_lease_term_stops_answering(
    cluster: Cluster, synapse: Synapse, tmp_path: Path
) -> None:
    """In one process with a short lease term: during an outage a command is answered
    "temporarily unavailable" while the term lasts; once it ran out the bot stands by, and
    a command typed then waits, unanswered, until the database is back (after the bot waited
    one term to take the lease again) and then gets its real answer. Neither command is
    answered twice."""
    bot_account, tom_account = await synapse.register("bot", "tom")
    db = Database(cluster.url)
    await db.upgrade()
    settings = matrix_settings(
        Settings(_env_file=None, database_url=cluster.url,  # type: ignore[call-arg]
                 outbox_base_delay=0.05, outbox_max_delay=0.5),
        synapse, bot_account, tmp_path / "data")
    tuning = replace(TUNING, sync_timeout_ms=1_000, lease_term=TERM)
    async with people(synapse, tmp_path, tom_account) as (tom,):
        bot = await start_bot(settings, db, tuning=tuning)
        try:
            room = await tom.room(bot_account.user_id, name="alerts")
            first = await tom.say(room, "!subdesk whoami")
            assert not unavailable(await tom.answer(room, bot.adapter.link.user_id, first))

            await asyncio.to_thread(cluster.stop)
            during = await tom.say(room, "!subdesk whoami")
            assert unavailable(await tom.answer(room, bot_account.user_id, during))
            await until(lambda: not bot.adapter.leading, TERM + 10, "the term to run out")
            late = await tom.say(room, "!subdesk whoami")
            await asyncio.sleep(2.0)
            assert tom.answers_to(room, bot_account.user_id, late) == [], "answered unleased"

            await asyncio.to_thread(cluster.start)
            answer = await tom.answer(room, bot_account.user_id, late, within=TERM + 30)
            assert not unavailable(answer), answer
            await asyncio.sleep(2.0)  # time for a second answer to show
            assert len(tom.answers_to(room, bot_account.user_id, during)) == 1
            assert len(tom.answers_to(room, bot_account.user_id, late)) == 1
        finally:
            await bot.close()
            await db.dispose()

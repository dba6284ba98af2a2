"""PostgreSQL stopped and started again under a `subdesk run` that serves Matrix (a private
cluster and a private Synapse): a command typed during the outage is answered "temporarily
unavailable" straight in the room, once, and is not run later, even when the process
restarts and reads the command again; the alerts queued for the room are delivered once
each, and a command after the outage gets its real answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import ClientSession

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
from tests.peers.synapse import Synapse

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

ALERTS = 5


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
    env = matrix_env(synapse, bot, SUBDESK_DATABASE_URL=cluster.url,
                     SUBDESK_OUTBOX_BASE_DELAY="0.5", SUBDESK_OUTBOX_MAX_DELAY="2",
                     SUBDESK_OUTBOX_PER_TARGET_INTERVAL="1")
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

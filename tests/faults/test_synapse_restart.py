"""The homeserver stopped and started again under a running `subdesk run` with Matrix
configured (a private Synapse, so no other test loses its homeserver): alerts queued for a
Matrix room while it is away are delivered once it is back, each exactly once, and
/readyz says Matrix is unreachable meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from aiohttp import ClientSession

from tests.faults.world import RoomReader, Subdesk, alerts, orders, room_with_bot, until
from tests.peers.synapse import Account, Synapse

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

ALERTS = 6


async def test_synapse_stopped_and_started_while_alerts_wait(
    synapse: Synapse, tmp_path: Path
) -> None:
    """The bot syncs and is ready; Synapse stops: /readyz answers 503 naming Matrix, and
    the alerts queued for the room wait without using up their attempts; Synapse starts
    again: the bot reconnects by itself, /readyz is 200, every alert is in the room
    exactly once, and a command typed in the room is answered."""
    bot, tom = await synapse.register("bot", "tom")
    database = tmp_path / "subdesk.db"
    env = {"SUBDESK_DATABASE_URL": f"sqlite:///{database}",
           "MATRIX_HOMESERVER": synapse.url, "MATRIX_USER_ID": bot.user_id,
           "MATRIX_PASSWORD": bot.password, "SUBDESK_OUTBOX_BASE_DELAY": "0.5",
           "SUBDESK_OUTBOX_MAX_DELAY": "2", "SUBDESK_OUTBOX_PER_TARGET_INTERVAL": "0"}
    subdesk = Subdesk(env, tmp_path)
    await subdesk.start()
    try:
        await until(lambda: _ready(subdesk), 60, "the bot's first sync")
        room, token = await room_with_bot(synapse, tom, bot, tmp_path)
        status, report = await subdesk.post(
            "/api/v1/orders", orders(1, prefix="matrix", channels=(f"matrix:{room}",)))
        assert status == 200, report

        await asyncio.to_thread(synapse.stop)
        await until(lambda: _not_ready(subdesk, "Matrix"), 60, "/readyz to name Matrix")
        status, received = await subdesk.post("/hooks/alertmanager",
                                              alerts("matrix1", ALERTS, tag="matrix"))
        assert (status, received["posted"]) == (200, ALERTS), received
        await asyncio.sleep(3.0)  # several dispatcher polls while the homeserver is away
        assert (await subdesk.ready())[0] == 503

        await asyncio.to_thread(synapse.start)
        await until(lambda: _ready(subdesk), 90, "/readyz to say ready again")
        reader = RoomReader(synapse, token, room)
        async with ClientSession() as http:
            await until(lambda: _alerts_in(reader, http, bot, ALERTS), 60,
                        "every alert in the room")
            asked = await reader.say(http, "!subdesk whoami")
            await until(lambda: _answered(reader, http, bot, asked), 60,
                        "an answer to a command after the restart")
            await asyncio.sleep(2.0)  # time for any stray resend to show
            messages = await reader.messages(http)
    finally:
        await subdesk.stop()
    from_bot = [str(e["content"].get("body", "")) for e in messages if e["sender"] == bot.user_id]
    for n in range(1, ALERTS + 1):
        name = f"matrix alert {n:03d}"
        assert sum(name in body for body in from_bot) == 1, (name, from_bot)
    with sqlite3.connect(database) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM outbox "
                                     "WHERE platform = 'matrix' GROUP BY 1").fetchall())
    assert statuses == {"sent": ALERTS + 1}, "the alerts and the answer, none dead"
    assert "Traceback" not in subdesk.log_text()


async def _ready(subdesk: Subdesk) -> bool:
    return (await subdesk.ready())[0] == 200


async def _not_ready(subdesk: Subdesk, word: str) -> bool:
    status, body = await subdesk.ready()
    return status == 503 and word in str(body.get("status"))


async def _alerts_in(reader: RoomReader, http: ClientSession, bot: Account, count: int) -> bool:
    bodies = [str(e["content"].get("body", "")) for e in await reader.messages(http)
              if e["sender"] == bot.user_id]
    return sum("matrix alert" in body for body in bodies) >= count


async def _answered(reader: RoomReader, http: ClientSession, bot: Account, asked: str) -> bool:
    messages = await reader.messages(http)
    ids = [e["event_id"] for e in messages]
    if asked not in ids:
        return False
    return any(e["sender"] == bot.user_id for e in messages[ids.index(asked) + 1:])

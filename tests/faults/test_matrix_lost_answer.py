"""A Matrix send whose answer is lost: a reverse proxy between `subdesk run` and a private
Synapse forwards the bot's first message to the room, lets Synapse store it, and closes
the connection instead of answering. The bot cannot know the message landed; it sends
again with the same transaction id (its outbox id), and Synapse answers with the event it
already has: one message in the room, one outbox row recorded as sent."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from multidict import CIMultiDict

from tests.faults.world import Subdesk, alerts, matrix_env, orders, until
from tests.peers.matrix_people import Person, text_of
from tests.peers.synapse import Synapse, free_port

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

SEND = re.compile(r"^/_matrix/client/[^/]+/rooms/[^/]+/send/m\.room\.message/(?P<txn>[^/]+)$")
RESEND_WINDOW = 0.5  # seconds: a resend this soon is the HTTP library's, not the outbox's
HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-encoding",
                 "content-length", "host"})


class LossyProxy:
    """Forwards everything to `upstream`; the first message sent to a room with a
    transaction id starting with `drop_prefix` reaches Synapse, and its answer is lost. So
    is the answer to the HTTP library's own immediate resend of the same request (aiohttp
    retries an idempotent PUT once on a dropped keep-alive connection): the bot itself
    must see the failure and send again later."""

    def __init__(self, upstream: str, drop_prefix: str) -> None:
        self.upstream = upstream
        self.drop_prefix = drop_prefix
        self.port = free_port()
        self.sends: list[str] = []  # transaction ids of the messages sent, in order
        self.dropped: list[str] = []  # transaction ids whose answer was lost, per loss
        self._dropping_until = 0.0
        self._runner: web.AppRunner | None = None
        self._http: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._http = ClientSession(timeout=ClientTimeout(total=None), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in HOP)
        async with self._http.request(request.method, self.upstream + request.path_qs,
                                      headers=headers, data=await request.read()) as upstream:
            body = await upstream.read()
            status = upstream.status
            answer = CIMultiDict((k, v) for k, v in upstream.headers.items()
                                 if k.lower() not in HOP)
            if upstream.headers.get("Content-Encoding"):
                answer["Content-Encoding"] = upstream.headers["Content-Encoding"]
        sent = SEND.match(request.path) if request.method == "PUT" else None
        if sent is not None:
            txn = sent["txn"]
            self.sends.append(txn)
            now = asyncio.get_running_loop().time()
            first = not self.dropped and txn.startswith(self.drop_prefix)
            if first:
                self._dropping_until = now + RESEND_WINDOW
            if status == 200 and (first or (txn in self.dropped
                                            and now < self._dropping_until)):
                self.dropped.append(txn)
                assert request.transport is not None
                request.transport.close()  # Synapse stored it; the bot never hears so
                raise asyncio.CancelledError
        return web.Response(body=body, status=status, headers=answer)


@pytest.fixture
async def proxy(synapse: Synapse) -> AsyncIterator[LossyProxy]:
    found = LossyProxy(synapse.url, "subdesk.outbox.")
    await found.start()
    yield found
    await found.stop()


async def test_a_send_whose_answer_is_lost_lands_once(
    synapse: Synapse, proxy: LossyProxy, tmp_path: Path
) -> None:
    """An alert for a room: its first send is stored by Synapse and its answer lost; the
    outbox sends it again with the same transaction id. Tom's client sees it once, and
    the outbox row is sent, pointing at that event."""
    bot, tom = await synapse.register("bot", "tom")
    database = tmp_path / "subdesk.db"
    env = matrix_env(synapse, bot, SUBDESK_DATABASE_URL=f"sqlite:///{database}",
                     MATRIX_HOMESERVER=proxy.url, SUBDESK_OUTBOX_BASE_DELAY="2",
                     SUBDESK_OUTBOX_MAX_DELAY="4", SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0")
    subdesk = Subdesk(env, tmp_path)
    person = await Person(synapse, tom, tmp_path / "tom").start()
    await subdesk.start()
    try:
        await until(lambda: _ready(subdesk), 60, "the bot's first sync")
        room = await person.room(bot.user_id, name="alerts")
        status, report = await subdesk.post(
            "/api/v1/orders", orders(1, prefix="lost", channels=(f"matrix:{room}",)))
        assert status == 200, report
        status, received = await subdesk.post("/hooks/alertmanager",
                                              alerts("lost1", 1, tag="lost"))
        assert (status, received["posted"]) == (200, 1), received
        await until(lambda: _sent(database), 60, "the alert to be recorded as sent")
        await person.wait_text(room, bot.user_id, "lost alert 001")
        await asyncio.sleep(2.0)  # time for a second copy to show
        posts = [text_of(e) for e in person.posts(room, bot.user_id)]
    finally:
        await subdesk.stop()
        await person.stop()
    assert proxy.dropped, "no send was dropped: the fault did not happen"
    assert sum("lost alert 001" in text for text in posts) == 1, posts
    # Sent again by the outbox, with the same transaction id, and answered that time.
    assert proxy.sends.count(proxy.dropped[0]) == len(proxy.dropped) + 1, proxy.sends
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT status, attempts, platform_ref FROM outbox "
                            "WHERE platform = 'matrix'").fetchall()
    assert len(rows) == 1 and rows[0][0] == "sent", rows
    event_ids = [e["event_id"] for e in person.posts(room, bot.user_id)]
    assert rows[0][2] in event_ids, (rows, event_ids)
    assert "Traceback" not in subdesk.log_text()


async def _ready(subdesk: Subdesk) -> bool:
    return (await subdesk.ready())[0] == 200


def _sent(database: Path) -> bool:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM outbox WHERE platform = 'matrix' AND "
                            "status = 'sent'").fetchone()[0] == 1

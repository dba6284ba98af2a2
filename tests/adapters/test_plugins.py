"""A chat platform plugged in through the adapter contract alone: the runtime builds it from
its factory, starts it, mounts its route on the one HTTP server, runs its task and delivers
its outbox items through its transport, with nothing in bot/ knowing its name."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence

import pytest
from aiohttp import ClientSession, web
from pydantic import SecretStr

from adapters.http.app import HttpAdapter
from bot.clock import FixedClock
from bot.commands.invocation import Invocation, Sender
from bot.delivery.ports import Route, Terminal, Transport
from bot.domain import Platform
from bot.presentation.messages import Message, Reply
from bot.wiring.background import start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_TECH, seed_demo
from bot.wiring.runtime import AdapterFactory, App, adapter_factories, build_app
from storage.db import Database
from storage.outbox import OutboxItem

WORKSPACE = "T0FAKE"


class FakeTransport:
    platform = "slack"

    def __init__(self) -> None:
        self.delivered: list[tuple[OutboxItem, Message]] = []
        self.arrived: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def deliver(self, item: OutboxItem, message: Message) -> str | None:
        self.delivered.append((item, message))
        self.arrived[item.target].set()
        return f"fake:{item.id}"


class FakeChat:
    """A chat platform whose events arrive by HTTP POST and whose task feeds them to the core."""

    chat = True

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport = FakeTransport()
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.replies: list[Reply] = []
        self.calls: list[str] = []

    @property
    def transports(self) -> Mapping[str, Transport]:
        return {"slack": self.transport}

    @property
    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/fake/events", self.event)]

    async def event(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.events.put((body["user"], body["text"]))
        return web.json_response({"ok": True}, status=202)

    async def start(self) -> None:
        self.calls.append("start")

    async def run(self) -> None:
        self.calls.append("run")
        while True:
            user, text = await self.events.get()
            sender = Sender(Platform.SLACK, WORKSPACE, user)
            self.replies.append(await self.app.core.handle(Invocation(sender, text)))
            self.app.dispatcher.poke()

    async def stop(self) -> None:
        self.calls.append("stop")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"http_port": 0, "triage_channels": ("slack:CFAKE",),
                                       "outbox_poll_interval": 0.05})


async def test_a_plugged_in_adapter_serves_runs_and_delivers(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """A command POSTed to the fake adapter's route on the one HTTP server reaches the core
    through its task, and the triage card it causes is delivered through its transport."""
    built: list[FakeChat] = []

    def fake(settings: Settings, app: App) -> FakeChat:
        built.append(FakeChat(app))
        return built[-1]

    factories: dict[str, AdapterFactory] = {**adapter_factories(), "fake": fake}
    app = await build_app(settings, clock=clock, db=db, factories=factories)
    try:
        assert sorted(app.adapters) == ["fake", "http"], "no terminal, no SMTP: no console, email"
        adapter = built[0]
        assert app.dispatcher.transports["slack"] is adapter.transport
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, WORKSPACE, "U0TOM")
        background = await start_background(app)
        try:
            http = app.adapters["http"]
            assert isinstance(http, HttpAdapter) and http.port
            async with ClientSession() as client, client.post(
                f"http://127.0.0.1:{http.port}/fake/events",
                json={"user": "U0TOM", "text": "/ticket new sev2 Database down"},
            ) as response:
                assert response.status == 202
            await asyncio.wait_for(adapter.transport.arrived["CFAKE"].wait(), timeout=10)
        finally:
            await background.close()
    finally:
        await app.close()
    assert adapter.calls == ["start", "run", "stop"]
    assert [reply.ok for reply in adapter.replies] == [True]
    cards = [m for item, m in adapter.transport.delivered if item.target == "CFAKE"]
    assert "Database down" in cards[0].text


async def test_two_plugins_delivering_one_platform_are_refused(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """Two adapters claiming the same platform's deliveries is a wiring error, not a race."""

    def fake(settings: Settings, app: App) -> FakeChat:
        return FakeChat(app)

    with pytest.raises(RuntimeError, match="'one' and 'two' both deliver 'slack'"):
        await build_app(settings, clock=clock, db=db, factories={"one": fake, "two": fake})


async def test_console_plugin_steps_aside_for_a_chat_platform(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """`subdesk run`'s console is built only without a chat platform; emails go to the
    console only without SMTP; `console --as` gets the console either way."""
    out: list[str] = []
    run = Terminal(out.append, fallback=True)
    app = await build_app(settings, clock=clock, db=db, terminal=run)
    assert sorted(app.adapters) == ["console", "http"]
    assert sorted(app.transports) == ["console", "email"]
    with_slack = settings.model_copy(update={"slack_bot_token": SecretStr("xoxb-test"),
                                             "slack_signing_secret": SecretStr("s" * 32)})
    assert with_slack.chat_platform_configured
    app = await build_app(with_slack, clock=clock, db=db, terminal=run)
    assert "console" not in app.adapters
    app = await build_app(with_slack, clock=clock, db=db, terminal=Terminal(out.append))
    assert "console" in app.adapters

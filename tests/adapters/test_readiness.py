"""`GET /readyz` asks every configured adapter whether it is connected: Slack through the
running server with slack_sdk against the local fake Web API (down, refusing the token,
back), and any plug-in through the optional `readiness` method."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import text

from adapters.http.app import HttpAdapter
from adapters.http.server import build_http_app
from adapters.slack.app import SlackAdapter
from bot.clock import FixedClock
from bot.domain import Platform
from bot.wiring.background import start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from bot.wiring.runtime import App, build_app
from storage.db import Database
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, SlackClient
from tests.harness import Harness

TOM, SAM, TRIAGE = "U0TOM", "U0SAM", "C0TRIAGE"
Probe = tuple[int, dict[str, Any]]


@dataclass
class Running:
    app: App
    adapter: SlackAdapter
    fake: FakeSlack
    slack: SlackClient
    http: ClientSession
    base: str

    async def ready(self) -> Probe:
        async with self.http.get(f"{self.base}/readyz") as response:
            return response.status, await response.json()

    async def until(self, done: Callable[[Probe], bool], seconds: float = 10.0
                    ) -> list[Probe]:
        """Probe /readyz until `done`; every distinct answer seen, in order."""
        seen: list[Probe] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            probe = await self.ready()
            if not seen or seen[-1] != probe:
                seen.append(probe)
            if done(probe):
                return seen
            if loop.time() > deadline:
                raise AssertionError(f"/readyz never settled: {seen}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running(settings: Settings, clock: FixedClock, db: Database, fake: FakeSlack,
                  *, slack_up: bool) -> AsyncIterator[Running]:
    """`subdesk run` with Slack configured against `fake` (down at start unless `slack_up`),
    the demo organization, Tom and Sam on Slack. A delivery held for the operator is probed
    again after 0.5-1 s."""
    tuned = settings.model_copy(update={
        "http_port": 0, "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SECRET), "slack_api_url": fake.url,
        "triage_channels": (f"slack:{TRIAGE}",), "outbox_poll_interval": 0.05,
        "outbox_base_delay": 1.0, "outbox_max_delay": 1.0,
    })
    if not slack_up:
        await fake.stop()
    app = await build_app(tuned, clock=clock, db=db)
    try:
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, TOM)
        await app.services.identity.admin_link(DEMO_STAFF, Platform.SLACK, TEAM, SAM)
        background = await start_background(app)
        try:
            http, adapter = app.adapters["http"], app.adapters["slack"]
            assert isinstance(http, HttpAdapter) and isinstance(adapter, SlackAdapter)
            base = f"http://127.0.0.1:{http.port}"
            async with ClientSession() as session:
                yield Running(app, adapter, fake, SlackClient(f"{base}/slack/events", fake,
                                                              session), session, base)
        finally:
            await background.close()
    finally:
        await app.close()


async def test_slack_down_at_start_then_refusing_the_token_then_back(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """Slack out of reach when the process starts: /readyz says so (503) without asking
    Slack on every probe; once Slack answers, a background `auth.test` re-check finds the
    token refused (`invalid_auth`), then accepted: 200."""
    fake = FakeSlack()
    await fake.start()
    try:
        async with running(settings, clock, db, fake, slack_up=False) as r:
            status, body = await r.ready()
            assert status == 503
            assert body["adapters"] == {"slack": "Slack not reachable at SLACK_API_URL "
                                                 "(ClientConnectorError)"}
            assert body["status"] == body["adapters"]["slack"]

            fake.errors["auth.test"] = "invalid_auth"
            await fake.start()  # back on the same port
            for _ in range(20):  # within the re-check interval nothing asks Slack again
                assert (await r.ready())[0] == 503
            assert fake.of("auth.test") == []

            r.adapter.recheck_seconds = 0.0
            seen = await r.until(lambda probe: probe[0] == 200)
            reasons = [body.get("adapters", {}).get("slack") for _, body in seen]
            assert reasons == ["Slack not reachable at SLACK_API_URL (ClientConnectorError)",
                               "Slack refused SLACK_BOT_TOKEN: invalid_auth", None]
            assert seen[-1][1]["status"] == "ready"
            checks = len(fake.of("auth.test"))
            assert checks == 2
            for _ in range(20):  # once ready, the answer is cached
                assert (await r.ready())[0] == 200
            assert len(fake.of("auth.test")) == checks
    finally:
        await fake.stop()


async def test_slack_refusing_the_token_on_a_delivery_is_not_ready_until_one_works(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """A token Slack refuses on `chat.postMessage` (revoked after start) holds Slack
    delivery and makes /readyz answer 503 with Slack's reason, told once; when the held
    message's probe is delivered, Slack is ready again."""
    fake = FakeSlack()
    await fake.start()
    try:
        async with running(settings, clock, db, fake, slack_up=True) as r:
            assert await r.ready() == (200, {"status": "ready"})
            # Tom's card (an IM opened first) and the triage card are both refused.
            fake.errors.update({"conversations.open": "invalid_auth",
                                "chat.postMessage": "invalid_auth"})
            status, _, _ = await r.slack.command(TOM, "/ticket", "new sev2 VPN drops")
            assert status == 200
            seen = await r.until(lambda probe: probe[0] == 503)
            reason = "Slack refused the bot token or its scopes: invalid_auth"
            assert seen[-1] == (503, {"status": reason, "adapters": {"slack": reason}})
            clock.advance(dt.timedelta(minutes=1))  # the held messages are due again
            await r.until(lambda probe: probe == (200, {"status": "ready"}))
            await fake.wait_for("chat.postMessage", 3)  # the refused one, then both cards
            assert len(fake.posted(TRIAGE)) == 1
    finally:
        await fake.stop()


class _Quiet:
    """A plug-in from before readiness existed: no `readiness` method."""

    chat = False
    transports: Mapping[str, Any] = MappingProxyType({})
    routes: tuple[Any, ...] = ()


class _Down(_Quiet):
    async def readiness(self) -> str | None:
        return "peer down for maintenance"


class _Broken(_Quiet):
    async def readiness(self) -> str | None:
        raise RuntimeError("bug")


async def test_plugins_without_readiness_count_as_ready(harness: Harness) -> None:
    """An adapter without `readiness` is ready; one that says it is not, or whose check
    fails, makes /readyz answer 503 naming it."""
    harness.app.adapters["quiet"] = _Quiet()  # type: ignore[assignment]
    async with TestClient(TestServer(build_http_app(harness.app))) as client:
        response = await client.get("/readyz")
        assert (response.status, await response.json()) == (200, {"status": "ready"})
        harness.app.adapters["down"] = _Down()  # type: ignore[assignment]
        harness.app.adapters["broken"] = _Broken()  # type: ignore[assignment]
        response = await client.get("/readyz")
        assert response.status == 503
        assert await response.json() == {
            "status": "its readiness check failed (RuntimeError); peer down for maintenance",
            "adapters": {"broken": "its readiness check failed (RuntimeError)",
                         "down": "peer down for maintenance"},
        }


async def test_readiness_does_not_wait_behind_a_long_write(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """While an import holds a write transaction open, /readyz still answers at once that
    the database is there (on SQLite its check used to take the write lock itself, and
    waited for it, up to 30 s, then said "unavailable")."""
    harness = await Harness.create(settings, clock, db)
    async with (TestClient(TestServer(build_http_app(harness.app))) as client,
                db.transaction() as session):
        await session.execute(text("UPDATE outbox SET attempts = attempts"))
        started = asyncio.get_running_loop().time()
        response = await client.get("/readyz")
        took = asyncio.get_running_loop().time() - started
        body = await response.json()
    assert "database unavailable" not in str(body) and took < 5, (took, body)

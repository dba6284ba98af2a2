"""Benchmark: signed `/ticket new` slash commands over HTTP against SQLite.

    .venv/bin/python bench/slack_ack.py [--requests 300] [--concurrency 1,10,50]

For each concurrency: p50/p99 time-to-ack and acks per second of Subdesk's
`POST /slack/events`, and completed commands per second (ticket stored, answer sent
through `response_url`, cards queued); side by side, in the same run, a bare slack-bolt
`AsyncApp` that only acks the same command, in its fastest configuration
(`process_before_response=True`, aiohttp). The Web API and `response_url` are the local
fake Slack of the tests; the outbox dispatcher runs, delivering the cards to it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import ClientSession, web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from bot.domain import Platform
from bot.wiring.background import start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_TECH, seed_demo
from bot.wiring.runtime import build_app
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, signed

Send = Callable[[int], Awaitable[float]]


async def load(send: Send, requests: int, concurrency: int) -> tuple[list[float], float]:
    """Ack latencies (seconds) and the wall time of `requests` sends by `concurrency`
    workers."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for n in counter:
            latencies.append(await send(n))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def sender(http: ClientSession, url: str, fake: FakeSlack, tag: str) -> Send:
    async def send(n: int) -> float:
        body = urlencode({
            "token": "x", "team_id": TEAM, "channel_id": "C0GENERAL", "user_id": "U0TOM",
            "user_name": "tom", "command": "/ticket", "text": f"new sev3 Bench {tag} {n}",
            "api_app_id": "A0APP", "response_url": fake.response_url(),
            "trigger_id": f"{tag}.{n}.bench"})
        headers = {"Content-Type": "application/x-www-form-urlencoded", **signed(body)}
        started = time.perf_counter()
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
        return time.perf_counter() - started
    return send


async def bare_server() -> tuple[web.AppRunner, str]:
    """A slack-bolt app that only acks `/ticket`, as fast as bolt goes."""
    async def authorize() -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id=TEAM, bot_token="xoxb-bench",
                               bot_user_id="U0BOT", bot_id="B0BOT")

    bolt = AsyncApp(signing_secret=SECRET, authorize=authorize, process_before_response=True)

    @bolt.command("/ticket")
    async def ack_only(ack: Any) -> None:
        await ack()

    async def handle(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(
            await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(requests: int, levels: list[int]) -> None:
    fake = FakeSlack()
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{tmp}/bench.db", http_port=0,
            slack_bot_token=SecretStr("xoxb-bench"), slack_signing_secret=SecretStr(SECRET),
            slack_api_url=fake.url, triage_channels=("slack:C0TRIAGE",),
            outbox_per_target_interval=0.0, outbox_poll_interval=0.05,
        )
        app = await build_app(settings, upgrade=True)
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, "U0TOM")
        background = await start_background(app)
        ours = f"http://127.0.0.1:{app.adapters['http'].port}/slack/events"  # type: ignore[attr-defined]
        bare_runner, bare = await bare_server()
        print(f"{requests} signed `/ticket new` per run, SQLite")
        print(f"{'app':8} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'acks/s':>8} {'done/s':>8}")
        try:
            async with ClientSession() as http:
                for concurrency in levels:
                    for name, url in (("bare", bare), ("subdesk", ours)):
                        tag = f"{name}{concurrency}"
                        answered = len(fake.of("response_url"))
                        lat, wall = await load(sender(http, url, fake, tag), requests,
                                               concurrency)
                        done = ""
                        if name == "subdesk":
                            started = time.perf_counter() - wall
                            await fake.wait_for("response_url", answered + requests, 600)
                            done = f"{requests / (time.perf_counter() - started):8.0f}"
                        print(f"{name:8} {concurrency:>4} {ms(lat, 0.5):8.2f} "
                              f"{ms(lat, 0.99):8.2f} {requests / wall:8.0f} {done:>8}")
                        await asyncio.sleep(0.5)
        finally:
            await bare_runner.cleanup()
            await background.close()
            await app.close()
            await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", default="1,10,50")
    args = parser.parse_args()
    asyncio.run(main(args.requests, [int(c) for c in args.concurrency.split(",")]))

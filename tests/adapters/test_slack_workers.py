"""Acknowledged Slack requests run in worker processes (`SUBDESK_SLACK_WORKERS`): the front
acks and forwards, a real `python -m adapters.slack.worker` child runs the work against the
same database and the local fake Slack. First with the front built in this process (so what
its core does can be counted), then as `subdesk run` itself: a worker SIGKILLed is replaced,
and SIGTERM lets the acknowledged work finish."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession
from cryptography.fernet import Fernet

from adapters.http.app import HttpAdapter
from adapters.slack import pool as pool_module
from adapters.slack.app import BUSY, SlackAdapter
from adapters.slack.worker import NICENESS
from bot.commands.invocation import Invocation
from bot.domain import Platform
from bot.presentation.messages import Reply
from bot.wiring.background import Background, start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_TECH, seed_demo
from bot.wiring.runtime import App, build_app
from storage.db import Database
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, SlackClient, SocketSlack
from tests.adapters.test_slack import TOM, TOM_DM, TRIAGE, World
from tests.adapters.test_slack_oauth import (
    ACME,
    ACME_TOKEN,
    BETA,
    BETA_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    Installs,
)

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
pytestmark = pytest.mark.slow


def _slack_env(db_url: str, fake: FakeSlack) -> dict[str, str]:
    """What a worker process (or `subdesk run`) reads: the same database and fake Slack."""
    return dict(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING",
                SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SECRET,
                SLACK_API_URL=fake.url, SUBDESK_TRIAGE_CHANNELS=f"slack:{TRIAGE}",
                SUBDESK_SLACK_WORKERS="1", SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0",
                SUBDESK_OUTBOX_POLL_INTERVAL="0.2")


async def _seed(settings: Settings, db: Database, team: str = TEAM) -> None:
    """The demo organization, Tom (its technical contact) linked in `team`'s Slack."""
    app = await build_app(settings, db=db, factories={})
    await seed_demo(app.services)
    await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, team, TOM)


async def _until(check: Any, seconds: float = 30.0) -> None:
    """Until `check()` holds: something another process does, polled."""
    for _ in range(int(seconds * 20)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s")


@dataclass
class Front(World):
    handled: list[Invocation] = field(default_factory=list)  # by the front's own core


@contextlib.asynccontextmanager
async def _front(settings: Settings, db: Database, db_url: str, fake: FakeSlack,
                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path, team: str = TEAM,
                 **more: str | None
                 ) -> AsyncIterator[tuple[App, SlackAdapter, Background, list[Invocation]]]:
    """The front in this process, its one worker a child process (inheriting the
    environment set here, with `more` settings, None unsetting one); the front's core
    counts what it is asked to handle."""
    for name in list(os.environ):
        if name.startswith(("SUBDESK_", "SLACK_", "MATRIX_")):
            monkeypatch.delenv(name)
    for name, value in (_slack_env(db_url, fake) | more).items():
        if value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env or subdesk.toml of the repository's
    await _seed(settings, db, team)
    app = await build_app(Settings(_env_file=None, http_port=0,  # type: ignore[call-arg]
                                   outbox_poll_interval=0.05), db=db)
    handled: list[Invocation] = []
    handle = app.core.handle

    async def counted(invocation: Invocation) -> Reply:
        handled.append(invocation)
        return await handle(invocation)

    monkeypatch.setattr(app.core, "handle", counted)
    background = await start_background(app)
    try:
        adapter = app.adapters["slack"]
        assert isinstance(adapter, SlackAdapter) and adapter.role == "front"
        yield app, adapter, background, handled
    finally:
        await background.close()
        await app.close()


@pytest.fixture
async def front(settings: Settings, db: Database, db_url: str, fake: FakeSlack,
                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Front]:
    """Slack's requests over HTTP."""
    async with _front(settings, db, db_url, fake, monkeypatch, tmp_path) as (
            app, adapter, background, handled), ClientSession() as session:
        http = app.adapters["http"]
        assert isinstance(http, HttpAdapter)
        url = f"http://127.0.0.1:{http.port}/slack/events"
        yield Front(app, adapter, fake, SlackClient(url, fake, session), background, handled)


async def test_the_front_acks_and_a_worker_process_does_the_work(front: Front) -> None:
    """Three `/ticket new` are acked at once (empty 200); the tickets are stored, each
    answered through its `response_url` and its cards delivered by the front's outbox, and
    the front's own core was never asked to handle anything: the work ran in the worker."""
    for n in range(3):
        assert (await front.slack.command(TOM, "/ticket", f"new sev3 Forwarded {n}"))[:2] == (
            200, "")
    await front.adapter.settle(60)
    assert sorted(s for _, s, _ in await front.tickets()) == [f"Forwarded {n}" for n in range(3)]
    answers = front.fake.of("response_url")
    assert len(answers) == 3 and all(a["response_type"] == "ephemeral" for a in answers)
    await _until(lambda: front.sent(6))
    assert len(front.fake.posted(TOM_DM)) == 3 and len(front.fake.posted(TRIAGE)) == 3
    assert front.handled == []
    pool = front.adapter.pool
    assert pool is not None
    workers = [w.process.pid for w in pool._workers]
    assert workers and all(  # the work yields the CPU to the acks
        os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0)
                                                    + NICENESS) for pid in workers)
    if hasattr(os, "SCHED_IDLE"):
        assert all(os.sched_getscheduler(pid) == os.SCHED_IDLE for pid in workers)


async def test_a_full_backlog_counts_what_the_workers_hold_and_answers_busy(
    front: Front
) -> None:
    """The backlog counts requests forwarded and not reported done: with two held by the
    worker (their answers slow), a third command is answered BUSY and an event gets 503;
    once the worker reports them done, both were answered and the next command is taken."""
    front.adapter.backlog = 2
    front.fake.hook_delay = 1.5
    for n in range(2):
        assert (await front.slack.command(TOM, "/ticket", f"new sev3 Held {n}"))[:2] == (
            200, "")
    assert front.adapter.full
    status, body, took = await front.slack.command(TOM, "/ticket", "new sev3 Refused")
    assert status == 200 and took < 0.5
    assert json.loads(body) == {"text": BUSY, "response_type": "ephemeral"}
    reply = {"type": "message", "channel": TOM_DM, "channel_type": "im", "user": TOM,
             "team": TEAM, "text": "Any news?", "ts": "1700000600.000001",
             "thread_ts": "1700000100.000001"}
    assert (await front.slack.event(reply, "Ev0100"))[0] == 503
    await front.adapter.settle(30)
    assert not front.adapter.full
    assert len(front.fake.of("response_url")) == 2
    front.fake.hook_delay = 0
    assert (await front.slack.command(TOM, "/ticket", "new sev3 Later"))[:2] == (200, "")
    await front.adapter.settle(30)
    assert sorted(s for _, s, _ in await front.tickets()) == ["Held 0", "Held 1", "Later"]


async def test_socket_mode_requests_go_to_the_worker_too(
    settings: Settings, db: Database, db_url: str, fake: FakeSlack,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over Socket Mode the front acks the envelope and forwards its payload: the worker
    stores the ticket and answers through the `response_url`; the front handled nothing."""
    async with _front(settings, db, db_url, fake, monkeypatch, tmp_path,
                      SLACK_APP_TOKEN="xapp-1-A0APP-1234-socketsecret") as (
            _, adapter, _, handled):
        await fake.linked()
        slack = SocketSlack(fake)
        acked = await fake.ack(await slack.command(TOM, "/ticket", "new sev3 Over the link"))
        assert not acked.get("payload")
        await fake.wait_for("response_url", 1, seconds=30)
        await adapter.settle(30)
        assert await _tickets(db) == ["Over the link"]
        assert handled == []


async def test_with_oauth_installs_the_worker_authorizes_through_the_installations(
    settings: Settings, db: Database, db_url: str, fake: FakeSlack,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """OAuth installs: ACME and BETA installed through the front's install pages; Tom's
    command from ACME is authorized by the worker too with ACME's token, read from the
    installation on its own database connection (`auth.test`), and the cards go out from
    the front with each workspace's token. The front handled nothing."""
    key = Fernet.generate_key().decode()
    async with _front(settings, db, db_url, fake, monkeypatch, tmp_path, team=ACME,
                      SLACK_BOT_TOKEN=None, SLACK_CLIENT_ID=CLIENT_ID,
                      SLACK_CLIENT_SECRET=CLIENT_SECRET, SUBDESK_SLACK_TOKEN_KEY=key,
                      SUBDESK_TRIAGE_CHANNELS=f"slack:{BETA}:{TRIAGE}") as (
            app, adapter, background, handled), ClientSession() as session:
        http = app.adapters["http"]
        assert isinstance(http, HttpAdapter) and adapter.installs is not None
        base = f"http://127.0.0.1:{http.port}"
        slack = SlackClient(f"{base}/slack/events", fake, session)
        installs = Installs(app, adapter, fake, slack, session, base, key, background)
        await installs.install(ACME, ACME_TOKEN)
        await installs.install(BETA, BETA_TOKEN)
        fake.calls.clear()
        assert (await slack.command(TOM, "/ticket", "new sev2 VPN down", team=ACME))[:2] == (
            200, "")
        await fake.wait_for("chat.postMessage", 2, seconds=30)
        await fake.wait_for("response_url", 1, seconds=30)
        # bolt authorizes the request in the front, then again in the worker, each once
        assert installs.tokens_of("auth.test") == [ACME_TOKEN, ACME_TOKEN]
        posted = {c.args["channel"]: c.token for c in fake.calls
                  if c.method == "chat.postMessage"}
        assert posted == {"DU0TOM": ACME_TOKEN, TRIAGE: BETA_TOKEN}
        assert await _tickets(db) == ["VPN down"]
        assert handled == []


# `subdesk run` -----------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    """`subdesk run` with one Slack worker; its stderr kept line by line."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.lines.append(line.decode(errors="replace").rstrip())

    def workers(self) -> list[int]:
        """The process ids of the front's children: its Slack workers."""
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    async def ready(self, http: ClientSession) -> None:
        async def up() -> bool:
            assert self.process.returncode is None, "\n".join(self.lines)
            try:
                async with http.get(f"{self.base}/readyz") as response:
                    return response.status == 200
            except (ClientError, OSError):
                return False

        await _until(up, 60)

    async def end(self) -> int:
        if self.process.returncode is None:
            self.process.kill()
        code = await self.process.wait()
        await self._reading
        return code


@pytest.fixture
async def run(settings: Settings, db: Database, db_url: str, fake: FakeSlack,
              tmp_path: Path) -> AsyncIterator[Run]:
    await _seed(settings, db)
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBDESK_", "SLACK_",
                                                                     "MATRIX_"))}
    env.update(_slack_env(db_url, fake), SUBDESK_HTTP_HOST="127.0.0.1",
               SUBDESK_HTTP_PORT=str(port), SUBDESK_LOG_LEVEL="INFO")
    process = await asyncio.create_subprocess_exec(
        SUBDESK, "run", env=env, cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    running = Run(process, port)
    try:
        yield running
    finally:
        await running.end()


async def _tickets(db: Database) -> list[str]:
    from sqlalchemy import select

    from storage.models import TicketRow

    async with db.read() as session:
        return list((await session.execute(
            select(TicketRow.subject).order_by(TicketRow.id))).scalars())


async def test_subdesk_run_replaces_a_worker_killed_and_says_what_it_lost(
    run: Run, fake: FakeSlack, db: Database
) -> None:
    """`subdesk run` answers a command through its worker (ticket stored, `response_url`
    answered, cards delivered); the worker SIGKILLed while it holds one is logged with the
    one request lost, a new worker is started, and the next command is answered."""
    async with ClientSession() as http:
        await run.ready(http)
        slack = SlackClient(f"{run.base}/slack/events", fake, http)
        assert (await slack.command(TOM, "/ticket", "new sev3 First"))[:2] == (200, "")
        await fake.wait_for("response_url", 1, seconds=30)
        await fake.until(lambda: bool(fake.posted(TOM_DM) and fake.posted(TRIAGE)), 30)
        [worker] = run.workers()
        fake.hook_delay = 5  # the next answer is slow: the worker holds the request
        assert (await slack.command(TOM, "/ticket", "new sev3 Held"))[:2] == (200, "")
        await _until(lambda: _has(db, "Held"))
        os.kill(worker, signal.SIGKILL)
        lost = "holding 1 acknowledged requests, lost"
        await _until(lambda: _logged(run, lost))
        await _until(lambda: _replaced(run, worker))
        fake.hook_delay = 0
        # Until the new worker is registered the front answers BUSY (nothing done): sent
        # again, as the answer asks, it is taken.
        await _until(lambda: _taken(slack, "new sev3 After"), 10)
        await fake.until(lambda: any("After" in str(a) for a in fake.of("response_url")), 30)
    assert await _tickets(db) == ["First", "Held", "After"]
    assert sum(lost in line for line in run.lines) == 1


async def _taken(slack: SlackClient, text: str) -> bool:
    status, body, _ = await slack.command(TOM, "/ticket", text)
    assert status == 200, status
    if body:
        assert json.loads(body) == {"text": BUSY, "response_type": "ephemeral"}
    return body == ""


async def _has(db: Database, subject: str) -> bool:
    return subject in await _tickets(db)


async def _logged(run: Run, text: str) -> bool:
    return any(text in line for line in run.lines)


async def _replaced(run: Run, dead: int) -> bool:
    return bool(run.workers()) and dead not in run.workers()


async def test_sigterm_lets_the_acknowledged_work_finish(
    run: Run, fake: FakeSlack, db: Database
) -> None:
    """Three commands acked while their answers are slow, then SIGTERM: `subdesk run` ends
    cleanly, after its worker has stored and answered all three."""
    async with ClientSession() as http:
        await run.ready(http)
        slack = SlackClient(f"{run.base}/slack/events", fake, http)
        fake.hook_delay = 1.0
        for n in range(3):
            assert (await slack.command(TOM, "/ticket", f"new sev3 Ending {n}"))[:2] == (
                200, "")
        run.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await run.process.wait() == 0, "\n".join(run.lines)
    assert len(fake.of("response_url")) == 3
    assert sorted(await _tickets(db)) == [f"Ending {n}" for n in range(3)]
    assert not any("not answered at shutdown" in line for line in run.lines)


@pytest.mark.nodb
async def test_a_worker_that_cannot_start_is_retried_ever_more_slowly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that ends as soon as it starts (say it cannot reach the database) is not
    restarted in a loop: each successor waits twice as long, up to a cap, and meanwhile
    the pool tells readiness that no worker is running."""
    monkeypatch.setattr(pool_module, "MODULE", "adapters.slack.no_such_worker")
    monkeypatch.setattr(pool_module, "RESTART_AFTER", 0.05)
    monkeypatch.setattr(pool_module, "RESTART_MAX", 0.2)
    pool = pool_module.Pool(1, done=lambda: None)
    with caplog.at_level(logging.ERROR, logger=pool_module.__name__):
        await pool.start()
        problems = set()
        for _ in range(300):
            if (problem := pool.problem) is not None:
                problems.add(problem)
            if len(caplog.records) >= 5:
                break
            await asyncio.sleep(0.01)
        await pool.stop(1.0)
    waits = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records[:5]]
    assert waits == ["0.05 s", "0.1 s", "0.2 s", "0.2 s", "0.2 s"]
    assert problems == {"no Slack worker process is running (one is being started)"}
    assert pool.problem is None, "a stopping pool is not a readiness problem"

"""Workspaces installed through OAuth, end to end on the running server: the Add to Slack
page and Slack's redirect (`oauth.v2.access` answered by the local fake), installations in
the database with every token sealed, each workspace's requests and outbox messages carried
by its own token, and uninstall and revocation removing them."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import io
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientSession
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.http.app import HttpAdapter
from adapters.slack.app import SlackAdapter
from bot.clock import FixedClock
from bot.delivery.ports import DeliveryError
from bot.domain import Platform
from bot.presentation.messages import Message
from bot.services.base import ServiceError
from bot.wiring.background import Background, start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from bot.wiring.logs import configure
from bot.wiring.runtime import App, build_app
from storage.db import Database
from storage.models import (
    SlackBotRow,
    SlackInstallationRow,
    SlackOAuthStateRow,
    TicketRow,
)
from tests.adapters.slack_fake import SECRET, FakeSlack, Install, SlackClient
from tests.adapters.test_slack_transport import item

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "1234567890.0987654321", "oauth-client-secret-0f1e2d"
ACME, BETA = "T0ACME", "T0BETA"
ACME_TOKEN = "xoxb-1111-2222-acmebottokenvalue"
BETA_TOKEN = "xoxb-3333-4444-betabottokenvalue"
TOM, SAM = "U0TOM", "U0SAM"


@dataclass
class Installs:
    app: App
    adapter: SlackAdapter
    fake: FakeSlack
    slack: SlackClient
    http: ClientSession
    base: str
    key: str
    background: Background

    async def install(self, team: str, token: str) -> None:
        """An admin of `team` clicks Add to Slack, approves, and comes back."""
        state, cookie = await self.begin()
        self.fake.installs[f"code-{team}"] = Install(team, token)
        status, page = await self.finish(f"code-{team}", state, cookie)
        assert status == 200, page

    async def begin(self) -> tuple[str, str]:
        """`GET /slack/install`: the state in the Add to Slack link and in the cookie."""
        async with self.http.get(f"{self.base}/slack/install") as resp:
            assert resp.status == 200
            page = await resp.text()
            cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
        [link] = re.findall(r'href="(https://slack\.com/oauth/v2/authorize[^"]+)"', page)
        query = parse_qs(urlsplit(html.unescape(link)).query)
        assert query["client_id"] == [CLIENT_ID] and "chat:write" in query["scope"][0]
        [state] = query["state"]
        assert cookie == f"slack-app-oauth-state={state}"
        return state, cookie

    async def finish(self, code: str, state: str, cookie: str | None) -> tuple[int, str]:
        """Slack sends the browser back to `GET /slack/oauth_redirect`."""
        headers = {"Cookie": cookie} if cookie else {}
        async with self.http.get(f"{self.base}/slack/oauth_redirect",
                                 params={"code": code, "state": state},
                                 headers=headers) as resp:
            return resp.status, await resp.text()

    async def bots(self) -> list[tuple[str | None, str | None]]:
        async with self.app.db.read() as session:
            return [tuple(r) for r in (await session.execute(  # type: ignore[misc]
                select(SlackBotRow.team_id, SlackBotRow.bot_token)
                .order_by(SlackBotRow.id))).all()]

    async def installations(self) -> list[tuple[str | None, str | None]]:
        async with self.app.db.read() as session:
            return [tuple(r) for r in (await session.execute(  # type: ignore[misc]
                select(SlackInstallationRow.team_id, SlackInstallationRow.bot_token)
                .order_by(SlackInstallationRow.id))).all()]

    async def tickets(self) -> list[str]:
        async with self.app.db.read() as session:
            return list((await session.execute(
                select(TicketRow.subject).order_by(TicketRow.id))).scalars())

    def tokens_of(self, method: str) -> list[str | None]:
        return [c.token for c in self.fake.calls if c.method == method]


def oauth_settings(settings: Settings, fake: FakeSlack, key: str) -> Settings:
    return settings.model_copy(update={
        "http_port": 0, "slack_client_id": CLIENT_ID,
        "slack_client_secret": SecretStr(CLIENT_SECRET),
        "slack_signing_secret": SecretStr(SECRET), "slack_token_key": SecretStr(key),
        "slack_api_url": fake.url, "triage_channels": (f"slack:{BETA}:C0TRIAGE",),
        "outbox_poll_interval": 0.05,
    })


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def installs(settings: Settings, clock: FixedClock, db: Database
                   ) -> AsyncIterator[Installs]:
    """OAuth installs configured (no bot token); Tom linked in ACME's workspace, Sam (support)
    in BETA's, the triage channel in BETA's. Nothing installed yet."""
    fake = FakeSlack()
    await fake.start()
    key = Fernet.generate_key().decode()
    app = await build_app(oauth_settings(settings, fake, key), clock=clock, db=db)
    try:
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, ACME, TOM)
        await app.services.identity.admin_link(DEMO_STAFF, Platform.SLACK, BETA, SAM)
        background = await start_background(app)
        try:
            http, adapter = app.adapters["http"], app.adapters["slack"]
            assert isinstance(http, HttpAdapter) and isinstance(adapter, SlackAdapter)
            base = f"http://127.0.0.1:{http.port}"
            async with ClientSession() as session:
                slack = SlackClient(f"{base}/slack/events", fake, session)
                yield Installs(app, adapter, fake, slack, session, base, key, background)
        finally:
            await background.close()
    finally:
        await app.close()
        await fake.stop()


async def test_the_oauth_dance_stores_the_installation_with_its_tokens_sealed(
    installs: Installs,
) -> None:
    """Add to Slack hands out a state (in the link and a cookie, and in the database); the
    redirect with it exchanges the code (`oauth.v2.access` with the client's credentials)
    and stores the workspace's installation. The database holds the tokens sealed (Fernet
    under the configured key), never in the clear; the state is used up."""
    state, cookie = await installs.begin()
    async with installs.app.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(
            SlackOAuthStateRow))).scalar_one() == 1
    installs.fake.installs["code-acme"] = Install(ACME, ACME_TOKEN)
    status, page = await installs.finish("code-acme", state, cookie)
    assert status == 200 and "Thank you!" in page, page
    [exchange] = installs.fake.of("oauth.v2.access")
    assert (exchange["code"], exchange["client_id"]) == ("code-acme", CLIENT_ID)
    assert exchange["client_secret"] == CLIENT_SECRET
    assert installs.tokens_of("auth.test") == [ACME_TOKEN]
    for team, sealed in [*await installs.bots(), *await installs.installations()]:
        assert team == ACME and sealed is not None
        assert ACME_TOKEN not in sealed and "xoxb" not in sealed
        assert Fernet(installs.key.encode()).decrypt(sealed.encode()).decode() == ACME_TOKEN
    async with installs.app.db.read() as session:
        assert (await session.execute(select(func.count()).select_from(
            SlackOAuthStateRow))).scalar_one() == 0
    # the same state again, or a browser without the cookie, installs nothing
    assert (await installs.finish("code-acme", state, cookie))[0] == 401
    state, _ = await installs.begin()
    assert (await installs.finish("code-acme", state, None))[0] == 400
    assert (await installs.finish("code-acme", state, "slack-app-oauth-state=forged"))[0] == 400
    assert len(installs.fake.of("oauth.v2.access")) == 1
    assert len(await installs.bots()) == 1


async def test_install_links_are_bounded_and_expired_ones_dropped(installs: Installs) -> None:
    """Each `GET /slack/install` stores a state; expired ones are deleted as new ones are
    handed out, and past the bound of live ones the page answers 503 and stores nothing."""
    flow = installs.adapter.bolt.oauth_flow
    assert flow is not None
    flow.settings.state_store.limit = 2
    async with installs.app.db.transaction() as session:
        session.add(SlackOAuthStateRow(state="old", expire_at=dt.datetime(2020, 1, 1)))
    await installs.begin()
    await installs.begin()
    async with installs.http.get(f"{installs.base}/slack/install") as resp:
        assert resp.status == 503 and "Set-Cookie" not in resp.headers
    async with installs.app.db.read() as session:
        states = list((await session.execute(select(SlackOAuthStateRow.state))).scalars())
    assert len(states) == 2 and "old" not in states


async def test_each_workspace_is_served_with_its_own_token(installs: Installs) -> None:
    """With ACME and BETA installed, Tom's signed command from ACME is authorized with ACME's
    token (`auth.test`, then `views.open` for the form); the ticket's card to Tom goes with
    ACME's token and the triage card to BETA's channel with BETA's."""
    await installs.install(ACME, ACME_TOKEN)
    await installs.install(BETA, BETA_TOKEN)
    installs.fake.calls.clear()
    status, _, _ = await installs.slack.command(TOM, "/ticket", "new sev3", team=ACME)
    assert status == 200
    [opened] = await installs.fake.wait_for("views.open")
    assert installs.tokens_of("views.open") == [ACME_TOKEN]
    assert installs.tokens_of("auth.test") == [ACME_TOKEN]

    status, _, _ = await installs.slack.command(TOM, "/ticket", "new sev2 VPN down", team=ACME)
    assert status == 200
    await installs.fake.wait_for("chat.postMessage", 2)
    posted = {c.args["channel"]: c.token for c in installs.fake.calls
              if c.method == "chat.postMessage"}
    assert posted == {"DU0TOM": ACME_TOKEN, "C0TRIAGE": BETA_TOKEN}
    assert installs.tokens_of("conversations.open") == [ACME_TOKEN]
    assert installs.tokens_of("auth.test") == [ACME_TOKEN]  # remembered per token
    assert opened["trigger_id"]


async def test_a_slow_database_does_not_hold_up_the_ack(
    installs: Installs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workspace's installation, once looked up, is remembered: when it is due to be
    looked up again and the database takes seconds, the command is acknowledged at once on
    the installation known, and answered."""
    await installs.install(ACME, ACME_TOKEN)
    await installs.slack.command(TOM, "/ticket", "list", team=ACME)
    await installs.fake.wait_for("response_url")
    store = installs.adapter.installs
    assert store is not None
    slow = store.inner.async_find_bot

    async def stuck(**kwargs: Any) -> Any:
        await asyncio.sleep(3.0)
        return await slow(**kwargs)

    monkeypatch.setattr(store.inner, "async_find_bot", stuck)
    later = time.monotonic() + 3600
    monkeypatch.setattr(store, "clock", lambda: later)
    status, body, took = await installs.slack.command(TOM, "/ticket", "list", team=ACME)
    assert (status, body) == (200, "") and took < 2.0, took
    await installs.fake.wait_for("response_url", 2)


async def test_uninstall_and_revocation_remove_what_they_name(installs: Installs) -> None:
    """`app_uninstalled` from ACME removes its installation: its next command is not run
    (bolt tells the person to reinstall) and no token is used for it. `tokens_revoked` for
    BETA's bot removes BETA's bot token."""
    await installs.install(ACME, ACME_TOKEN)
    await installs.install(BETA, BETA_TOKEN)
    status, _, _ = await installs.slack.event({"type": "app_uninstalled"}, "Ev0U1", team=ACME)
    assert status == 200
    assert [team for team, _ in await installs.bots()] == [BETA]
    assert [team for team, _ in await installs.installations()] == [BETA]

    installs.fake.calls.clear()
    status, _, _ = await installs.slack.command(TOM, "/ticket", "new sev2 Gone", team=ACME)
    assert status == 200
    [told] = await installs.fake.wait_for("response_url")
    assert "reinstall this app" in told["text"]
    await installs.adapter.settle()
    assert await installs.tickets() == []

    revoked = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0BOT"]}}
    status, _, _ = await installs.slack.event(revoked, "Ev0U2", team=BETA)
    assert status == 200
    assert await installs.bots() == []
    assert installs.fake.of("chat.postMessage") == []


async def test_a_message_to_a_workspace_not_installed_fails_for_good(
    installs: Installs,
) -> None:
    """An outbox message addressed in a workspace with no installation, or naming no
    workspace, fails for good with the reason and no token is tried; one in an installed
    workspace goes with its token."""
    await installs.install(BETA, BETA_TOKEN)
    transport = installs.adapter.transport
    with pytest.raises(DeliveryError) as raised:
        await transport.deliver(item(f"{ACME}:C0OPS"), Message("hi"))
    assert raised.value.permanent and "no Slack installation for workspace T0ACME" in str(
        raised.value)
    with pytest.raises(DeliveryError) as raised:
        await transport.deliver(item("C0OPS"), Message("hi"))
    assert raised.value.permanent and "names no workspace" in str(raised.value)
    ref = await transport.deliver(item(f"{BETA}:C0OPS"), Message("hi"))
    assert ref is not None and installs.tokens_of("chat.postMessage") == [BETA_TOKEN]


async def test_no_token_reaches_the_logs(
    installs: Installs, restore_logging: None
) -> None:
    """With DEBUG logging (slack_sdk prints whole `oauth.v2.access` answers there), the
    install, a command and an uninstall leave no workspace token, client secret or token
    key in the log."""
    captured = io.StringIO()
    configure(installs.app.settings.model_copy(update={"log_level": "DEBUG"}), captured)
    await installs.install(ACME, ACME_TOKEN)
    await installs.slack.command(TOM, "/ticket", "new sev2 Logged", team=ACME)
    await installs.fake.wait_for("chat.postMessage", 1)
    await installs.adapter.settle()
    await installs.slack.event({"type": "app_uninstalled"}, "Ev0L1", team=ACME)
    text = captured.getvalue()
    assert "oauth.v2.access" in text and "**********" in text  # it went by, masked
    leaked = [s for s in (ACME_TOKEN, CLIENT_SECRET, installs.key) if s in text]
    assert leaked == []


async def test_sealed_tokens_open_after_a_key_rotation(
    installs: Installs, settings: Settings, clock: FixedClock, db: Database
) -> None:
    """A new key put first, the old one after it: at start the installations are sealed
    again under the new key, and the old one can then be dropped; a workspace whose token
    no configured key opens is treated as not installed, with a warning."""
    await installs.install(ACME, ACME_TOKEN)
    new = Fernet.generate_key().decode()
    rotated = await build_app(oauth_settings(settings, installs.fake, f"{new},{installs.key}"),
                              clock=clock, db=db)
    try:
        adapter = rotated.adapters["slack"]
        assert isinstance(adapter, SlackAdapter) and adapter.installs is not None
        await adapter.start()
        for _, sealed in [*await installs.bots(), *await installs.installations()]:
            assert sealed is not None
            assert Fernet(new.encode()).decrypt(sealed.encode()).decode() == ACME_TOKEN
        await adapter.stop()
    finally:
        await rotated.close()
    only_new = await build_app(oauth_settings(settings, installs.fake, new), clock=clock, db=db)
    try:
        adapter = only_new.adapters["slack"]
        assert isinstance(adapter, SlackAdapter) and adapter.installs is not None
        assert await adapter.installs.bot_token(ACME) == ACME_TOKEN
    finally:
        await only_new.close()
    stranger = await build_app(oauth_settings(settings, installs.fake,
                                              Fernet.generate_key().decode()),
                               clock=clock, db=db)
    try:
        adapter = stranger.adapters["slack"]
        assert isinstance(adapter, SlackAdapter) and adapter.installs is not None
        assert await adapter.installs.bot_token(ACME) is None
        assert await adapter.installs.async_find_bot(enterprise_id=None, team_id=ACME) is None
    finally:
        await stranger.close()


async def test_oauth_settings_that_do_not_fit_are_one_clear_error(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """OAuth without a token key, with a key that is not one, beside a bot token, with half
    the client credentials, or with a triage channel that names no workspace: one error
    naming the settings, never quoting a secret."""
    fake = FakeSlack()
    good = oauth_settings(settings, fake, Fernet.generate_key().decode())
    cases = {
        "SUBDESK_SLACK_TOKEN_KEY is needed": {"slack_token_key": None},
        "key 1 is not a Fernet key": {"slack_token_key": SecretStr("not-a-key-SeCrEt")},
        "key 2 is not a Fernet key": {"slack_token_key": SecretStr(
            Fernet.generate_key().decode() + ",short-SeCrEt")},
        "SLACK_BOT_TOKEN and SLACK_CLIENT_ID": {"slack_bot_token": SecretStr("xoxb-1-SeCrEt")},
        "go together": {"slack_client_id": None},
        "names its workspace": {"triage_channels": ("slack:C0TRIAGE",)},
    }
    for expected, change in cases.items():
        with pytest.raises(ServiceError, match=expected) as raised:
            await build_app(good.model_copy(update=change), clock=clock, db=db)
        assert "SeCrEt" not in str(raised.value)


@pytest.mark.nodb
def test_the_command_line_says_what_is_missing_in_one_line(tmp_path: Path) -> None:
    """`subdesk outbox status` with OAuth configured and no token key: one `error:` line
    naming SUBDESK_SLACK_TOKEN_KEY, exit status 1, no traceback."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
    env |= {"SUBDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'subdesk.db'}",
            "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_SIGNING_SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", "from bot.wiring.cli import main; main()", "outbox", "status"],
        cwd=tmp_path, env=env | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SUBDESK_SLACK_TOKEN_KEY is needed")
    assert CLIENT_SECRET not in result.stderr + result.stdout

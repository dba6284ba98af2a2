"""Socket Mode end to end: the app opens its link at the local fake's `apps.connections.open`
URL, envelopes arrive as Slack sends them over the websocket, and each is acknowledged by its
`envelope_id`; the real core and database behind, the Web API answered by the fake."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientSession
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.http.app import HttpAdapter
from adapters.slack.app import SlackAdapter
from bot.clock import FixedClock
from bot.domain import Platform
from bot.services.base import ServiceError
from bot.wiring.background import Background, start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from bot.wiring.manifest import BOT_EVENTS, manifest
from bot.wiring.runtime import App, build_app
from storage.db import Database
from storage.models import OutboxRow, TicketCommentRow, TicketRow
from tests.adapters.slack_fake import TEAM, FakeSlack, SocketSlack, buttons

APP_TOKEN = "xapp-1-A0APP-1234-socketsecret"
TOM, SAM = "U0TOM", "U0SAM"
TOM_DM, TRIAGE = "DU0TOM", "C0TRIAGE"


@dataclass
class Linked:
    app: App
    adapter: SlackAdapter
    fake: FakeSlack
    slack: SocketSlack
    background: Background

    async def tickets(self) -> list[str]:
        async with self.app.db.read() as session:
            return list((await session.execute(
                select(TicketRow.subject).order_by(TicketRow.id))).scalars())

    async def comments(self) -> list[str]:
        async with self.app.db.read() as session:
            return list((await session.execute(
                select(TicketCommentRow.body).order_by(TicketCommentRow.id))).scalars())

    async def open_ticket(self) -> tuple[str, str]:
        """Tom opens a ticket by a slash command over the link; the ts of his card and of
        the triage card, once both are posted."""
        acked = await self.fake.ack(await self.slack.command(TOM, "/ticket", "new sev2 VPN"))
        assert "payload" not in acked or not acked["payload"]
        await self.fake.until(lambda: bool(self.fake.posted(TOM_DM) and
                                           self.fake.posted(TRIAGE)))
        for _ in range(500):  # and their references kept, so replies under them resolve
            async with self.app.db.read() as session:
                kept = (await session.execute(select(func.count()).select_from(OutboxRow)
                                              .where(OutboxRow.platform == "slack",
                                                     OutboxRow.platform_ref.is_not(None))
                                              )).scalar_one()
            if kept >= 2:
                break
            await asyncio.sleep(0.02)
        return self.fake.posted(TOM_DM)[0][1], self.fake.posted(TRIAGE)[0][1]

    def reply(self, thread_ts: str, ts: str, text: str) -> dict[str, Any]:
        return {"type": "message", "channel": TOM_DM, "channel_type": "im", "user": TOM,
                "team": TEAM, "text": text, "ts": ts, "thread_ts": thread_ts}


@pytest.fixture
async def linked(settings: Settings, clock: FixedClock, db: Database) -> AsyncIterator[Linked]:
    """The demo organization on Slack over Socket Mode: an app token and a bot token, no
    signing secret (nothing comes over HTTP)."""
    fake = FakeSlack()
    await fake.start()
    tuned = settings.model_copy(update={
        "http_port": 0, "slack_bot_token": SecretStr(fake.token),
        "slack_app_token": SecretStr(APP_TOKEN), "slack_api_url": fake.url,
        "triage_channels": (f"slack:{TRIAGE}",), "outbox_poll_interval": 0.05,
    })
    app = await build_app(tuned, clock=clock, db=db)
    try:
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, TOM)
        await app.services.identity.admin_link(DEMO_STAFF, Platform.SLACK, TEAM, SAM)
        background = await start_background(app)
        try:
            adapter = app.adapters["slack"]
            assert isinstance(adapter, SlackAdapter)
            await fake.linked()
            yield Linked(app, adapter, fake, SocketSlack(fake), background)
        finally:
            await background.close()
    finally:
        await app.close()
        await fake.stop()


async def test_a_command_over_the_link_is_acked_by_its_envelope_and_answered(
    linked: Linked,
) -> None:
    """The link is opened with the app token (and only it); a slash command envelope is
    acknowledged with its envelope id, answered through `response_url`, and opens the
    ticket with its cards. `POST /slack/events` is not served in Socket Mode."""
    [opened] = [c for c in linked.fake.calls if c.method == "apps.connections.open"]
    assert opened.token == APP_TOKEN
    assert all(c.token != APP_TOKEN for c in linked.fake.calls if c is not opened)
    envelope = await linked.slack.command(TOM, "/ticket", "new sev2 VPN drops every hour")
    ack = await linked.fake.ack(envelope)
    assert ack == {"envelope_id": envelope}
    [answer] = await linked.fake.wait_for("response_url")
    assert "#1" in answer["text"] and answer["response_type"] == "ephemeral"
    await linked.fake.until(lambda: bool(linked.fake.posted(TRIAGE)))
    assert await linked.tickets() == ["VPN drops every hour"]
    http = linked.app.adapters["http"]
    assert isinstance(http, HttpAdapter)
    async with ClientSession() as session, session.post(
            f"http://127.0.0.1:{http.port}/slack/events", data=b"{}") as resp:
        assert resp.status in (404, 405)
    # bolt times each answer for a debug line unless the level set on the client's logger
    # says otherwise: it carries the level in effect
    assert linked.adapter.socket is not None and linked.adapter.socket.handler is not None
    client_log = linked.adapter.socket.handler.client.logger
    assert client_log.name == "adapters.slack.socket.client"
    assert client_log.level == logging.getLogger("adapters.slack.socket").getEffectiveLevel()


async def test_a_reply_in_the_ticket_thread_over_the_link_is_a_comment(linked: Linked) -> None:
    """An `events_api` message under Tom's card is acknowledged and becomes a public
    comment; the bot's own message in the thread adds nothing."""
    card_ts, _ = await linked.open_ticket()
    envelope = await linked.slack.event(
        linked.reply(card_ts, "1700000500.000001", "Still broken &amp; slow"), "Ev0S1")
    assert (await linked.fake.ack(envelope))["envelope_id"] == envelope
    bots = {**linked.reply(card_ts, "1700000500.000002", "echo"), "bot_id": "B0BOT",
            "user": "U0BOT"}
    await linked.fake.ack(await linked.slack.event(bots, "Ev0S2"))
    await linked.adapter.settle()
    assert await linked.comments() == ["Still broken & slow"]


async def test_buttons_and_modal_errors_come_over_the_link(linked: Linked) -> None:
    """An `interactive` envelope (Claim on the triage card) runs the action and edits the
    card; a modal submitted with a blank subject is refused in the acknowledgement's payload,
    on its field, as Slack expects over Socket Mode."""
    _, triage_ts = await linked.open_ticket()
    [triage] = [args for args, ts in linked.fake.posted(TRIAGE) if ts == triage_ts]
    claim = buttons(triage["blocks"])["Claim"]
    press = {"type": "block_actions", "api_app_id": "A0APP", "trigger_id": "9.1.socket",
             "team": {"id": TEAM, "domain": "demo"},
             "user": {"id": SAM, "username": "sam", "team_id": TEAM},
             "container": {"type": "message", "message_ts": triage_ts, "channel_id": TRIAGE},
             "channel": {"id": TRIAGE, "name": "triage"},
             "message": {"type": "message", "ts": triage_ts, "text": "card"},
             "response_url": linked.fake.response_url(),
             "actions": [{"type": "button", "block_id": "b1", "action_id": claim["action_id"],
                          "value": claim["value"], "text": claim["text"],
                          "action_ts": "1700000100.000001"}]}
    await linked.fake.ack(await linked.slack.interact(press))
    await linked.fake.until(lambda: any(u["channel"] == TRIAGE and u["ts"] == triage_ts
                                        for u in linked.fake.of("chat.update")))

    await linked.fake.ack(await linked.slack.command(TOM, "/ticket", "new sev3"))
    [opened] = await linked.fake.wait_for("views.open")
    view = opened["view"]
    state = {"values": {"SUBJECT": {"value": {"type": "plain_text_input", "value": " "}},
                        "DESCRIPTION": {"value": {"type": "plain_text_input", "value": None}}}}
    submission = {"type": "view_submission", "api_app_id": "A0APP", "trigger_id": "9.2.s",
                  "team": {"id": TEAM, "domain": "demo"},
                  "user": {"id": TOM, "username": "tom", "team_id": TEAM},
                  "view": {**view, "id": "V0001", "team_id": TEAM, "state": state}}
    ack = await linked.fake.ack(await linked.slack.interact(submission))
    assert ack["payload"]["response_action"] == "errors"
    assert list(ack["payload"]["errors"]) == ["SUBJECT"]
    assert await linked.tickets() == ["VPN"]


async def test_reconnects_lose_nothing_and_double_nothing(linked: Linked) -> None:
    """The link dropped by Slack's side right after an event, and a `disconnect` envelope:
    each time the app opens a new link (asking `apps.connections.open` again). The event
    sent just before the drop, sent again on the new link as Slack does with what it did
    not see acknowledged, is one comment; the event sent after the `disconnect` arrives on
    the new link and is one comment too."""
    card_ts, _ = await linked.open_ticket()
    first = linked.reply(card_ts, "1700000600.000001", "first reply")
    await linked.slack.event(first, "Ev0R1")
    await linked.fake.link.close()  # Slack's side goes away, acknowledged or not
    await linked.fake.linked(2)
    again = await linked.slack.event(first, "Ev0R1", retry=1)
    assert (await linked.fake.ack(again))["envelope_id"] == again

    await linked.slack.disconnect()
    await linked.fake.linked(3)
    await linked.fake.until(lambda: linked.fake.links[1].closed)  # the old one is let go
    second = await linked.slack.event(
        linked.reply(card_ts, "1700000600.000002", "second reply"), "Ev0R2")
    await linked.fake.ack(second)
    await linked.adapter.settle()
    assert await linked.comments() == ["first reply", "second reply"]
    assert len(linked.fake.of("apps.connections.open")) == 3


async def test_a_redelivered_envelope_counts_once(linked: Linked) -> None:
    """The same event (same `event_id`, a new envelope with `retry_attempt`) and the same
    slash command delivered twice each run once; every envelope is acknowledged."""
    card_ts, _ = await linked.open_ticket()
    reply = linked.reply(card_ts, "1700000700.000001", "only once")
    envelopes = [await linked.slack.event(reply, "Ev0D1", retry=n) for n in range(3)]
    payload = {"envelope_id": linked.slack.envelope_id(), "type": "slash_commands",
               "accepts_response_payload": True,
               "payload": {"token": "x", "team_id": TEAM, "team_domain": "demo",
                           "channel_id": "C0GENERAL", "channel_name": "general",
                           "user_id": TOM, "user_name": "tom", "command": "/ticket",
                           "text": "new sev4 Printer jam", "api_app_id": "A0APP",
                           "is_enterprise_install": "false",
                           "response_url": linked.fake.response_url(),
                           "trigger_id": "77.13579.same"}}
    envelopes.append(await linked.fake.send(payload))
    envelopes.append(await linked.fake.send({**payload, "envelope_id": "redelivered-1"}))
    for envelope in envelopes:
        await linked.fake.ack(envelope)
    await linked.adapter.settle()
    assert await linked.comments() == ["only once"]
    assert await linked.tickets() == ["VPN", "Printer jam"]


async def test_a_refused_app_token_stops_the_start(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """`apps.connections.open` refusing the app token at start is one clear error naming
    the setting, without the token; nothing is left connecting."""
    fake = FakeSlack(errors={"apps.connections.open": "invalid_auth"})
    await fake.start()
    tuned = settings.model_copy(update={
        "slack_bot_token": SecretStr(fake.token), "slack_app_token": SecretStr(APP_TOKEN),
        "slack_api_url": fake.url,
    })
    app = await build_app(tuned, clock=clock, db=db)
    try:
        adapter = app.adapters["slack"]
        with pytest.raises(ServiceError, match="SLACK_APP_TOKEN: invalid_auth") as raised:
            await adapter.start()
        assert APP_TOKEN not in str(raised.value)
        await adapter.stop()
        await asyncio.sleep(0.2)
        assert fake.links == []
    finally:
        await app.close()
        await fake.stop()


@pytest.mark.nodb
def test_the_socket_mode_manifest_subscribes_to_what_the_adapter_listens_to() -> None:
    """`subdesk manifest --socket-mode` turns Socket Mode on, names no request URL for
    commands, events or interactivity, and subscribes to the events the adapter handles
    (messages, reactions, App Home, uninstall and revocation)."""
    data = manifest("https://bot.example.org", socket_mode=True)
    settings = data["settings"]
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]
    assert "request_url" not in settings["interactivity"]
    assert settings["interactivity"]["is_enabled"] is True
    assert all("url" not in c for c in data["features"]["slash_commands"])
    assert settings["event_subscriptions"]["bot_events"] == list(BOT_EVENTS)
    assert {"message.im", "reaction_added", "app_home_opened", "app_uninstalled",
            "tokens_revoked"} <= set(BOT_EVENTS)
    assert json.dumps(data).count("/slack/events") == 0

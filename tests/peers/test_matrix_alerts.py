"""Alerts on a deployment served on Slack and Matrix at once: Alertmanager notifications
(webhook version 4) come in over real HTTP, and what reached the fake Slack Web API and the
Matrix rooms of a real Synapse (read back from the homeserver) is asserted message by
message. A support engineer acknowledges and resolves from Matrix with the `!` commands the
alert message names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientSession
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.http.app import HttpAdapter
from bot.domain import OutboxStatus, Platform
from bot.services.onboarding import OrderForm
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from storage.db import Database
from storage.models import OutboxRow
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, SlackClient, buttons
from tests.adapters.test_alertmanager import alert, notification
from tests.peers.matrix_people import Event, Person, relation
from tests.peers.matrix_world import Bot, matrix_settings, people, start_bot, until
from tests.peers.synapse import SERVER_NAME, Synapse
from tests.scenarios.orders import contact, form, organization

pytestmark = pytest.mark.peers

TOKEN = "am-hook-token"
SLACK_TRIAGE = "C0TRIAGE"
SLACK_ACME = "C0ACME"
UNDELIVERED = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)


@dataclass
class World:
    bot: Bot
    bot_id: str
    sam: Person  # support engineer, on Matrix and Slack
    triage: str  # the Matrix triage room
    acme: str  # the Matrix alert room of the organization `acme`
    fake: FakeSlack
    http: ClientSession
    base: str  # the bot's HTTP server

    async def notify(self, status: str, *alerts: dict[str, Any]) -> dict[str, int]:
        """POST an Alertmanager notification; the changes it reports, once every message
        it queued reached Slack and the homeserver."""
        async with self.http.post(f"{self.base}/hooks/alertmanager",
                                  json=notification(status, *alerts),
                                  headers={"Authorization": f"Bearer {TOKEN}"}) as response:
            assert response.status == 200, await response.text()
            found: dict[str, int] = await response.json()
        await self.settled()
        return found

    async def settled(self) -> None:
        """Until no Slack or Matrix message is waiting in the outbox: each one sent has its
        event in the room (Synapse answered the send with its id) or its Slack call made."""
        async def delivered() -> bool:
            async with self.bot.app.db.read() as session:
                waiting = await session.scalar(
                    select(func.count()).select_from(OutboxRow).where(
                        OutboxRow.platform.in_(("slack", "matrix")),
                        OutboxRow.status.in_(UNDELIVERED)))
            return waiting == 0

        await until(delivered, what="the outbox delivered")

    async def room(self, room_id: str) -> list[Event]:
        """The bot's messages in a room as the homeserver has them now, oldest first
        (edits included, as events of their own)."""
        client = self.sam.client
        assert client is not None
        url = (f"{self.sam.server.url}/_matrix/client/v3/rooms/{quote(room_id)}/messages"
               "?dir=b&limit=500")
        async with self.http.get(url, headers={
                "Authorization": f"Bearer {client.access_token}"}) as response:
            assert response.status == 200, await response.text()
            chunk = (await response.json())["chunk"]
        return [e for e in reversed(chunk)
                if e["type"] == "m.room.message" and e["sender"] == self.bot_id]

    async def command(self, room_id: str, line: str) -> str:
        """Sam types `line` in the room; the bot's answer to it, once what the command
        queued before answering (the edits it made) was delivered too."""
        asked = await self.sam.say(room_id, line)

        async def answered() -> list[Event]:
            return [e for e in await self.room(room_id)
                    if relation(e).get("m.in_reply_to", {}).get("event_id") == asked]

        await until(answered, what=f"the answer to {line}")
        await self.settled()
        (answer,) = await answered()
        return str(answer["content"]["body"])

    def slack_posts(self, channel: str) -> list[tuple[dict[str, Any], str]]:
        return self.fake.posted(channel)

    def slack_updates(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return [u for u in self.fake.of("chat.update")
                if u["channel"] == channel and u["ts"] == ts]


def ids(events: list[Event]) -> list[str]:
    return [str(e["event_id"]) for e in events]


def posts(events: list[Event]) -> list[Event]:
    """Messages that are not edits."""
    return [e for e in events if relation(e).get("rel_type") != "m.replace"]


def edits(events: list[Event], original: Event) -> list[Event]:
    return [e for e in events if relation(e) == {"rel_type": "m.replace",
                                                 "event_id": original["event_id"]}]


def shown(events: list[Event], message: Event) -> str:
    """A message's text as clients show it: its latest edit's new content, else its own."""
    found = edits(events, message)
    content = found[-1]["content"]["m.new_content"] if found else message["content"]
    return str(content["body"])


def action(text: str, label: str) -> str:
    """The command a Matrix alert message names for an action (`Acknowledge: !alert ack 3`),
    as an engineer copies it."""
    (line,) = [line for line in text.splitlines() if line.startswith(f"{label}: ")]
    return line.removeprefix(f"{label}: ")


def actions(text: str) -> list[str]:
    return [label for label in ("Acknowledge", "Resolve", "Claim")
            if any(line.startswith(f"{label}: !") for line in text.splitlines())]


def slack_text(blocks: list[dict[str, Any]]) -> str:
    return str(blocks)


@pytest.fixture
async def world(synapse: Synapse, settings: Settings, db: Database, tmp_path: Path
                ) -> AsyncIterator[World]:
    """The bot on Slack (fake Web API) and Matrix (real Synapse), triage on both; the
    organization `acme` with alert channels on both; Sam, a support engineer, linked on
    both, made the two Matrix rooms and invited the bot."""
    bot_account, sam_account = await synapse.register("bot", "sam")
    fake = FakeSlack()
    await fake.start()
    try:
        async with people(synapse, tmp_path, sam_account) as (sam,), ClientSession() as http:
            triage = await sam.room(name="triage")
            acme = await sam.room(name="acme alerts")
            tuned = matrix_settings(
                settings, synapse, bot_account, tmp_path / "data",
                api_token=SecretStr(TOKEN), slack_bot_token=SecretStr("xoxb-test-token"),
                slack_signing_secret=SecretStr(SECRET), slack_api_url=fake.url,
                triage_channels=(f"slack:{SLACK_TRIAGE}", f"matrix:{triage}"))
            bot = await start_bot(tuned, db)
            try:
                services = bot.app.services
                await seed_demo(services)
                await services.onboarding.import_orders(OrderForm.model_validate(form(
                    organization("acme", [contact("main", "ana@acme.test", "Ana Main")],
                                 name="Acme Corp", starts_on="2026-01-01",
                                 ends_on="2030-12-31",
                                 alert_channels=[f"slack:{SLACK_ACME}", f"matrix:{acme}"]))))
                await services.identity.admin_link(DEMO_STAFF, Platform.MATRIX, SERVER_NAME,
                                                   sam_account.user_id)
                await services.identity.admin_link(DEMO_STAFF, Platform.SLACK, TEAM, "U0SAM")
                await services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, "U0TOM")
                await sam.invite(triage, bot_account.user_id)
                await sam.invite(acme, bot_account.user_id)
                http_adapter = bot.app.adapters["http"]
                assert isinstance(http_adapter, HttpAdapter)
                world = World(bot, bot_account.user_id, sam, triage, acme, fake, http,
                              f"http://127.0.0.1:{http_adapter.port}")
                await world.settled()
                assert await world.room(triage) == [] and await world.room(acme) == []
                assert fake.of("chat.postMessage") == []
                yield world
            finally:
                await bot.close()
    finally:
        await fake.stop()


async def test_one_message_per_fingerprint_on_slack_and_matrix(world: World) -> None:
    """A firing alert labelled `org="acme"` posts one message in each of acme's alert
    channels (Slack and Matrix) and none in triage; the same notification again posts
    nothing. Sam acknowledges from Matrix with the command the message names: both messages
    are edited to show him. `resolved` edits them again (`m.replace`, `chat.update`), no new
    message; resolved again changes nothing; a new episode firing after that is a new message
    on each."""
    assert await world.notify("firing", alert("fp-1")) == {
        "posted": 1, "updated": 0, "unchanged": 0}
    room = await world.room(world.acme)
    (card,) = posts(room)
    text = str(card["content"]["body"])
    assert text.startswith("🚨 [FIRING] CRITICAL · API error rate above 5%")
    assert "5xx responses are 7.2% of requests." in text and "Organization: Acme Corp" in text
    assert actions(text) == ["Acknowledge", "Resolve"]
    assert "API error rate above 5%" in card["content"]["formatted_body"]
    ((slack_card, ts),) = world.slack_posts(SLACK_ACME)
    assert list(buttons(slack_card["blocks"])) == ["Acknowledge", "Resolve"]

    assert await world.notify("firing", alert("fp-1")) == {
        "posted": 0, "updated": 0, "unchanged": 1}
    assert ids(await world.room(world.acme)) == ids(room)
    assert len(world.slack_posts(SLACK_ACME)) == 1 and world.fake.of("chat.update") == []

    ack = action(text, "Acknowledge")
    answer = await world.command(world.acme, ack)
    assert answer.startswith("Alert ") and "acknowledged: API error rate above 5%" in answer
    room = await world.room(world.acme)
    assert ids(posts(room))[0] == card["event_id"]
    assert len(posts(room)) == 2  # the card and the answer to Sam's command
    (acked,) = edits(room, card)
    now = shown(room, card)
    assert "Acknowledged by: Sam Support" in now and actions(now) == ["Resolve"]
    assert acked["content"]["body"].startswith("* ")
    (slack_ack,) = world.slack_updates(SLACK_ACME, ts)
    assert "Acknowledged by" in slack_text(slack_ack["blocks"])
    assert list(buttons(slack_ack["blocks"])) == ["Resolve"]

    assert await world.notify("resolved", alert("fp-1", "resolved")) == {
        "posted": 0, "updated": 1, "unchanged": 0}
    room = await world.room(world.acme)
    assert len(posts(room)) == 2 and len(edits(room, card)) == 2
    now = shown(room, card)
    assert now.startswith("✅ [RESOLVED] CRITICAL · API error rate above 5%")
    assert "Acknowledged by: Sam Support" in now and actions(now) == []
    (_, slack_resolved) = world.slack_updates(SLACK_ACME, ts)
    assert "[RESOLVED]" in slack_resolved["text"] and buttons(slack_resolved["blocks"]) == {}
    assert len(world.slack_posts(SLACK_ACME)) == 1

    assert await world.notify("resolved", alert("fp-1", "resolved")) == {
        "posted": 0, "updated": 0, "unchanged": 1}
    assert await world.notify("firing", alert("fp-1", starts="2026-11-25T11:05:00Z")) == {
        "posted": 1, "updated": 0, "unchanged": 0}
    room = await world.room(world.acme)
    assert len(posts(room)) == 3 and len(edits(room, card)) == 2
    again = posts(room)[2]
    assert again["content"]["body"].startswith("🚨 [FIRING] CRITICAL")
    assert actions(str(again["content"]["body"])) == ["Acknowledge", "Resolve"]
    assert "Acknowledged by" not in again["content"]["body"]  # a new episode
    assert len(world.slack_posts(SLACK_ACME)) == 2 and len(world.fake.of("chat.update")) == 2
    assert await world.room(world.triage) == [] and world.slack_posts(SLACK_TRIAGE) == []


async def test_unknown_and_unlabelled_alerts_go_to_the_triage_rooms(world: World) -> None:
    """No `org` label and an unknown one: one message each in the triage channels of both
    platforms, none in acme's. Sam resolves one from Matrix (both messages show him, no
    action left) and the other with the Slack button (the Matrix message is edited); the
    resolutions Alertmanager sends afterwards change nothing."""
    assert await world.notify("firing", alert("fp-a", org=None, severity="warning"),
                              alert("fp-b", org="nobody")) == {
        "posted": 2, "updated": 0, "unchanged": 0}
    room = await world.room(world.triage)
    first, second = posts(room)
    assert str(first["content"]["body"]).startswith("⚠️ [FIRING] WARNING")
    assert str(second["content"]["body"]).startswith("🚨 [FIRING] CRITICAL")
    assert "Organization:" not in str(first["content"]["body"])
    slack = world.slack_posts(SLACK_TRIAGE)
    assert [("[FIRING] WARNING" in p["text"], "[FIRING] CRITICAL" in p["text"])
            for p, _ in slack] == [(True, False), (False, True)]
    assert await world.room(world.acme) == [] and world.slack_posts(SLACK_ACME) == []

    answer = await world.command(world.triage,
                                 action(str(first["content"]["body"]), "Resolve"))
    assert "resolved: API error rate above 5%" in answer
    room = await world.room(world.triage)
    assert len(posts(room)) == 3 and len(edits(room, first)) == 1
    now = shown(room, first)
    assert now.startswith("✅ [RESOLVED] WARNING") and "Resolved by: Sam Support" in now
    assert actions(now) == []
    (update,) = world.slack_updates(SLACK_TRIAGE, slack[0][1])
    assert "Resolved by" in slack_text(update["blocks"])

    slack_client = SlackClient(f"{world.base}/slack/events", world.fake, world.http)
    status, _, _ = await slack_client.press(
        "U0SAM", buttons(slack[1][0]["blocks"])["Resolve"], channel=SLACK_TRIAGE,
        message_ts=slack[1][1])
    assert status == 200
    await until(lambda: world.slack_updates(SLACK_TRIAGE, slack[1][1]), what="Slack edit")
    await world.settled()
    room = await world.room(world.triage)
    assert len(edits(room, second)) == 1
    assert "Resolved by: Sam Support" in shown(room, second)

    assert await world.notify("resolved", alert("fp-a", "resolved", org=None),
                              alert("fp-b", "resolved", org="nobody")) == {
        "posted": 0, "updated": 0, "unchanged": 2}
    room = await world.room(world.triage)
    assert len(posts(room)) == 3 and len(edits(room, first)) == len(edits(room, second)) == 1
    assert len(world.slack_posts(SLACK_TRIAGE)) == 2
    assert len(world.fake.of("chat.update")) == 2


async def test_a_sev1_ticket_pages_the_matrix_triage_room(world: World) -> None:
    """An internal event takes the same path: Tom opens a sev1 ticket on Slack; the triage
    message in the Matrix room is the page (the alert on it, with Acknowledge and Resolve).
    Sam acknowledges from Matrix: the Matrix message is edited to show him, as is the Slack
    triage card; no other message is posted."""
    slack_client = SlackClient(f"{world.base}/slack/events", world.fake, world.http)
    status, _, _ = await slack_client.command("U0TOM", "/ticket", "new sev1 Checkout is down")
    assert status == 200
    await until(lambda: world.slack_posts(SLACK_TRIAGE), what="the Slack triage card")
    await world.settled()
    room = await world.room(world.triage)
    (card,) = posts(room)
    text = str(card["content"]["body"])
    assert "Checkout is down" in text and "Alert: firing (alert " in text
    assert actions(text) == ["Acknowledge", "Resolve", "Claim"]
    ((slack_card, ts),) = world.slack_posts(SLACK_TRIAGE)
    assert {"Claim", "Acknowledge", "Resolve"} <= set(buttons(slack_card["blocks"]))

    answer = await world.command(world.triage, action(text, "Acknowledge"))
    assert "acknowledged: SEV1" in answer
    room = await world.room(world.triage)
    assert len(posts(room)) == 2 and len(edits(room, card)) == 1
    now = shown(room, card)
    assert "Alert: firing · acknowledged by Sam Support" in now
    assert actions(now) == ["Resolve", "Claim"]
    (update,) = world.slack_updates(SLACK_TRIAGE, ts)
    assert "acknowledged by Sam Support" in slack_text(update["blocks"])
    assert len(world.slack_posts(SLACK_TRIAGE)) == 1

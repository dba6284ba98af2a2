"""`POST /hooks/alertmanager`: real Alertmanager notifications over HTTP, one message per
fingerprint, edits in place, Acknowledge and Resolve as typed actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from adapters.http.server import build_http_app
from bot.clock import FixedClock
from bot.commands.invocation import Sender
from bot.domain import Platform, StaffRole
from bot.presentation.messages import Actions
from bot.wiring.config import Settings
from storage.db import Database
from tests.fakechat import ChatUser, FakeChat, Post
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization

TOKEN = "am-hook-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRIAGE = "C0TRIAGE"
ACME = "C0ACME"
SAM = "sam@vendor.test"


def notification(status: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager webhook body, as Alertmanager 0.27 sends it."""
    return {
        "version": "4", "groupKey": '{}:{alertname="HighErrorRate"}', "truncatedAlerts": 0,
        "status": status, "receiver": "subdesk", "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def alert(fingerprint: str, status: str = "firing", org: str | None = "acme",
          severity: str = "critical", starts: str = "2026-11-25T09:58:00Z") -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", "severity": severity, "instance": "api-1:9100"}
    if org is not None:
        labels["org"] = org
    return {
        "status": status, "labels": labels,
        "annotations": {"summary": "API error rate above 5%",
                        "description": "5xx responses are 7.2% of requests."},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T10:20:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
        "fingerprint": fingerprint,
    }


@dataclass
class World:
    h: Harness
    chat: FakeChat
    sam: ChatUser
    client: TestClient[Any, Any]

    async def post(self, body: object, headers: dict[str, str] | None = None) -> Any:
        response = await self.client.post("/hooks/alertmanager", json=body,
                                          headers=AUTH if headers is None else headers)
        payload = await response.json()
        await self.h.drain()
        return response.status, payload


@pytest.fixture
async def world(settings: Settings, clock: FixedClock, db: Database) -> AsyncIterator[World]:
    chat = FakeChat()
    tuned = settings.model_copy(update={"api_token": SecretStr(TOKEN),
                                        "triage_channels": (f"slack:{TRIAGE}",)})
    h = await Harness.create(tuned, clock, db, extra={"slack": chat})
    await h.import_orders(form(organization(
        "acme", [contact("main", "ana@acme.test", "Ana Main")],
        alert_channels=[f"slack:{ACME}"])))
    await h.add_staff(SAM, StaffRole.ENGINEER, name="Sam Support")
    sam = ChatUser(h.app.core, Sender(Platform.SLACK, "T0VENDOR", "U0SAM", verified_email=SAM))
    assert (await sam.say("/subdesk link")).ok
    await h.drain()
    chat.posts.clear()
    async with TestClient(TestServer(build_http_app(h.app))) as client:
        yield World(h, chat, sam, client)


def buttons(post: Post) -> list[str]:
    return [b.label for block in post.current.blocks if isinstance(block, Actions)
            for b in block.buttons]


async def test_one_message_per_fingerprint_edited_in_place(world: World) -> None:
    """Firing posts once to the org's alert channel with Acknowledge and Resolve; a repeat
    posts nothing; an acknowledgement and the resolution edit that message; firing again
    after the resolution is a new message."""
    status, body = await world.post(notification("firing", alert("fp-1")))
    assert (status, body) == (200, {"posted": 1, "updated": 0, "unchanged": 0})
    [card] = world.chat.posts
    assert card.target == ACME and card.thread is None
    assert card.message.text.startswith("[FIRING] CRITICAL · API error rate above 5%")
    assert buttons(card) == ["Acknowledge", "Resolve"]

    status, body = await world.post(notification("firing", alert("fp-1")))
    assert body == {"posted": 0, "updated": 0, "unchanged": 1}
    assert world.chat.posts == [card] and card.edits == []

    reply = await world.sam.press(card.button("Acknowledge"))
    assert reply.ok, reply.message.text
    await world.h.drain()
    assert len(card.edits) == 1
    assert "Acknowledged by: Sam Support" in card.current.text
    assert buttons(card) == ["Resolve"]

    status, body = await world.post(notification("resolved", alert("fp-1", "resolved")))
    assert body == {"posted": 0, "updated": 1, "unchanged": 0}
    assert world.chat.posts == [card] and len(card.edits) == 2
    assert card.current.text.startswith("[RESOLVED] CRITICAL")
    assert "Acknowledged by: Sam Support" in card.current.text
    assert buttons(card) == []

    status, body = await world.post(notification("resolved", alert("fp-1", "resolved")))
    assert body == {"posted": 0, "updated": 0, "unchanged": 1}
    status, body = await world.post(notification("firing", alert("fp-1")))
    assert body == {"posted": 0, "updated": 0, "unchanged": 1}, "a replay of the ended episode"
    assert world.chat.posts == [card]
    later = "2026-11-25T11:05:00Z"
    status, body = await world.post(notification("firing", alert("fp-1", starts=later)))
    assert body == {"posted": 1, "updated": 0, "unchanged": 0}
    assert [p.target for p in world.chat.posts] == [ACME, ACME]
    again = world.chat.posts[1]
    assert again.thread is None and buttons(again) == ["Acknowledge", "Resolve"]
    assert len(card.edits) == 2


async def test_a_resolved_arriving_first_keeps_its_late_firing_quiet(world: World) -> None:
    """Notifications out of order: the `resolved` of an episode comes before its `firing`.
    The late `firing` posts nothing (the episode is over, and no `resolved` would follow
    to close it); the next episode posts as usual."""
    status, body = await world.post(notification("resolved", alert("fp-late", "resolved")))
    assert (status, body) == (200, {"posted": 0, "updated": 0, "unchanged": 1})
    status, body = await world.post(notification("firing", alert("fp-late")))
    assert body == {"posted": 0, "updated": 0, "unchanged": 1}
    assert world.chat.posts == []
    later = "2026-11-25T12:00:00Z"
    status, body = await world.post(notification("firing", alert("fp-late", starts=later)))
    assert body == {"posted": 1, "updated": 0, "unchanged": 0}
    assert [p.target for p in world.chat.posts] == [ACME]


async def test_unlabelled_and_unknown_orgs_go_to_triage(world: World) -> None:
    """No `org` label or an unknown one: the triage channel; a resolve button there edits
    the card, and the engineer's name is on it."""
    _, body = await world.post(notification(
        "firing", alert("fp-a", org=None, severity="warning"), alert("fp-b", org="nobody")))
    assert body == {"posted": 2, "updated": 0, "unchanged": 0}
    assert [p.target for p in world.chat.posts] == [TRIAGE, TRIAGE]
    first = world.chat.posts[0]
    assert first.message.text.startswith("[FIRING] WARNING")
    assert (await world.sam.press(first.button("Resolve"))).ok
    await world.h.drain()
    assert "Resolved by: Sam Support" in first.current.text and buttons(first) == []
    _, body = await world.post(notification("resolved", alert("fp-a", "resolved", None)))
    assert body == {"posted": 0, "updated": 0, "unchanged": 1}
    assert len(first.edits) == 1


async def test_customers_cannot_acknowledge(world: World) -> None:
    """The buttons run through the same permission check as typed commands."""
    await world.post(notification("firing", alert("fp-1")))
    [card] = world.chat.posts
    ana = ChatUser(world.h.app.core, Sender(Platform.SLACK, "T0ACME", "U0ANA",
                                            verified_email="ana@acme.test"))
    assert (await ana.say("/subdesk link")).ok
    reply = await ana.press(card.button("Acknowledge"))
    assert not reply.ok and "not available to you" in reply.message.text
    reply = await world.sam.say("/alert ack 99")
    assert not reply.ok and "no alert 99" in reply.message.text


async def test_refusals(world: World) -> None:
    """No or a wrong token: 401; a body that is not a version 4 notification: 400 naming
    the field; an oversized body: 413. Nothing is posted."""
    body = notification("firing", alert("fp-1"))
    assert (await world.post(body, headers={}))[0] == 401
    assert (await world.post(body, headers={"Authorization": "Bearer nope"}))[0] == 401
    status, answer = await world.post({**body, "version": "3"})
    assert status == 400 and any(e.startswith("version:") for e in answer["errors"])
    status, answer = await world.post(notification("firing", {"status": "firing"}))
    assert status == 400 and "alerts[0].fingerprint: Field required" in answer["errors"]
    limit = world.h.app.settings.api_max_body_bytes
    big = notification("firing", {**alert("fp-1"), "annotations": {"x": "y" * limit}})
    assert (await world.post(big))[0] == 413
    assert world.chat.posts == []


async def test_metrics_are_scraped(world: World) -> None:
    """`GET /metrics` counts commands by name and outcome, time to acknowledge, the outbox
    by status, reminders sent and alerts by state."""
    await world.post(notification("firing", alert("fp-1"), alert("fp-2")))
    world.h.clock.advance(dt.timedelta(minutes=4))
    assert (await world.sam.say("/alert ack 1")).ok
    assert not (await world.sam.say("/alert ack 1")).ok
    await world.post(notification("resolved", alert("fp-2", "resolved")))
    await world.h.drain()
    response = await world.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await response.text())
        for s in family.samples
    }
    assert samples[("subdesk_commands_total", (("command", "alert.ack"), ("outcome", "done")))] == 1
    refused = (("command", "alert.ack"), ("outcome", "refused"))
    assert samples[("subdesk_commands_total", refused)] == 1
    assert samples[("subdesk_alert_time_to_ack_seconds_count", ())] == 1
    assert samples[("subdesk_alert_time_to_ack_seconds_sum", ())] == 240
    assert samples[("subdesk_alerts", (("source", "alertmanager"), ("state", "firing")))] == 1
    assert samples[("subdesk_alerts", (("source", "alertmanager"), ("state", "resolved")))] == 1
    assert samples[("subdesk_outbox_messages", (("status", "sent"),))] >= 4
    assert samples[("subdesk_outbox_messages", (("status", "pending"),))] == 0
    assert samples[("subdesk_reminders_sent", (("kind", "invoice"),))] == 0

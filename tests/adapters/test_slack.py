"""The Slack plug-in end to end: signed requests to `POST /slack/events` on the running
server, the real core and database behind it, and its Web API calls answered by a local
fake Slack reached through `SLACK_API_URL` with slack_sdk's own client."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientSession
from pydantic import SecretStr
from sqlalchemy import select

from adapters.http.app import HttpAdapter
from adapters.slack.app import BUSY, WORKERS, SlackAdapter
from bot.clock import FixedClock
from bot.commands.invocation import Sender
from bot.domain import Platform
from bot.services.base import ServiceError
from bot.wiring.background import Background, start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from bot.wiring.runtime import App, build_app
from storage.db import Database
from storage.models import OutboxRow, TicketCommentRow, TicketRow
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, SlackClient, buttons

TOM, SAM = "U0TOM", "U0SAM"
TOM_DM = "DU0TOM"  # the IM channel the fake opens for Tom
TRIAGE = "C0TRIAGE"


def mrkdwn(node: object) -> list[str]:
    """Every mrkdwn text in a Block Kit structure: what Slack parses for mentions."""
    if isinstance(node, list):
        return [t for item in node for t in mrkdwn(item)]
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for value in node.values() for t in mrkdwn(value)]
    return []


@dataclass
class World:
    app: App
    adapter: SlackAdapter
    fake: FakeSlack
    slack: SlackClient
    background: Background

    async def tickets(self) -> list[tuple[int, str, str]]:
        async with self.app.db.read() as session:
            rows = await session.execute(
                select(TicketRow.id, TicketRow.subject, TicketRow.status).order_by(TicketRow.id))
            return [tuple(r) for r in rows.all()]  # type: ignore[misc]

    async def comments(self) -> list[tuple[str, bool]]:
        async with self.app.db.read() as session:
            rows = await session.execute(
                select(TicketCommentRow.body, TicketCommentRow.internal)
                .order_by(TicketCommentRow.id))
            return [(body, internal) for body, internal in rows.all()]

    async def open_ticket(self, text: str = "new sev2 VPN drops every hour"
                          ) -> tuple[tuple[dict[str, Any], str], tuple[dict[str, Any], str]]:
        """Tom opens a ticket; his card and the triage card, once both are posted."""
        status, _, _ = await self.slack.command(TOM, "/ticket", text)
        assert status == 200
        for _ in range(250):
            if self.fake.posted(TOM_DM) and self.fake.posted(TRIAGE) and await self.sent(2):
                return self.fake.posted(TOM_DM)[0], self.fake.posted(TRIAGE)[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"cards not posted: {self.fake.calls}")

    async def idle(self) -> bool:
        """Whether the outbox has nothing left to deliver to Slack."""
        async with self.app.db.read() as session:
            waiting = (await session.execute(select(OutboxRow.id).where(
                OutboxRow.platform == "slack",
                OutboxRow.status.in_(("pending", "sending"))))).all()
        return not waiting

    async def sent(self, count: int) -> bool:
        """Whether `count` Slack messages are recorded as sent (their references kept)."""
        async with self.app.db.read() as session:
            refs = (await session.execute(select(OutboxRow.platform_ref).where(
                OutboxRow.platform == "slack", OutboxRow.platform_ref.is_not(None)))).all()
        return len(refs) >= count


@pytest.fixture
async def world(settings: Settings, clock: FixedClock, db: Database) -> AsyncIterator[World]:
    """The demo organization with Tom (technical contact) and Sam (support) on Slack."""
    fake = FakeSlack()
    await fake.start()
    tuned = settings.model_copy(update={
        "http_port": 0, "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SECRET), "slack_api_url": fake.url,
        "triage_channels": (f"slack:{TRIAGE}",), "outbox_poll_interval": 0.05,
    })
    app = await build_app(tuned, clock=clock, db=db)
    try:
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, TOM)
        await app.services.identity.admin_link(DEMO_STAFF, Platform.SLACK, TEAM, SAM)
        background = await start_background(app)
        try:
            http, adapter = app.adapters["http"], app.adapters["slack"]
            assert isinstance(http, HttpAdapter) and isinstance(adapter, SlackAdapter)
            async with ClientSession() as session:
                url = f"http://127.0.0.1:{http.port}/slack/events"
                yield World(app, adapter, fake, SlackClient(url, fake, session), background)
        finally:
            await background.close()
    finally:
        await app.close()
        await fake.stop()


async def test_a_start_with_the_token_in_the_environment_logs_no_bolt_notice(
    settings: Settings, clock: FixedClock, db: Database, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bolt reads SLACK_BOT_TOKEN itself and warns that the client it is given wins; the
    token reaches bolt through `authorize` by design, so a start logs no such warning."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    fake = FakeSlack()
    await fake.start()
    tuned = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"), "slack_api_url": fake.url,
        "slack_signing_secret": SecretStr(SECRET)})
    try:
        with caplog.at_level(logging.WARNING):
            app = await build_app(tuned, clock=clock, db=db)
            await app.close()
    finally:
        await fake.stop()
    assert isinstance(app.adapters["slack"], SlackAdapter)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("adapters.slack")
            and r.levelno >= logging.WARNING] == []


async def test_bolt_composes_its_debug_lines_only_when_debug_is_on(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """bolt looks at the level set on its logger, not the effective one, before composing
    its debug lines (a dozen per request): its logger gets the level in effect, so at INFO
    a dispatch composes none, and with debug logging asked for they are there."""
    tuned = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"), "slack_api_url": "http://127.0.0.1:9/",
        "slack_signing_secret": SecretStr(SECRET)})
    root = logging.getLogger()
    for level in (logging.INFO, logging.DEBUG):
        saved = root.level
        root.setLevel(level)
        try:
            app = await build_app(tuned, clock=clock, db=db)
            await app.close()
        finally:
            root.setLevel(saved)
        adapter = app.adapters["slack"]
        assert isinstance(adapter, SlackAdapter)
        framework = adapter.bolt.logger
        assert framework.name == "adapters.slack.app.bolt" and framework.level == level


async def test_slack_keeps_the_process_serving_and_answers_url_verification(
    world: World,
) -> None:
    """With Slack as the chat platform, `subdesk run` serves until stopped (it does not end
    with the adapter's start), and Slack's signed URL check gets its challenge back."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(world.background.wait(), 0.2)
    body = json.dumps({"token": "x", "challenge": "c0ffee", "type": "url_verification"})
    status, text, _ = await world.slack.post(body, "application/json")
    assert status == 200 and json.loads(text) == {"challenge": "c0ffee"}


async def test_forged_or_stale_signatures_are_refused_and_nothing_runs(world: World) -> None:
    """A request signed with another secret, or signed more than five minutes ago, is
    answered 401 and reaches nothing: no ticket, no answer."""
    status, _, _ = await world.slack.command(TOM, "/ticket", "new sev2 Forged", secret="x" * 32)
    assert status == 401
    status, _, _ = await world.slack.command(TOM, "/ticket", "new sev2 Stale", age=600)
    assert status == 401
    await world.adapter.settle()
    assert world.fake.of("response_url") == [] and await world.tickets() == []


async def test_requests_not_signed_by_slack_are_refused_unread(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The signature is checked before the body is parsed or logged: unsigned bodies that
    are not even Slack's (bad JSON, a list, bytes that are not UTF-8, a timestamp that is
    not a number) get 401 or 400, never a 500 or a traceback, and no line quotes them; the
    refusals are counted in one line. A body over a megabyte is 413 unread. A signed body
    that is no Slack payload is one 400."""
    marker = "MARKER-" + "x" * 64
    forged = [
        (f"payload=%7Bnot-json{marker}", "application/x-www-form-urlencoded", {}),
        (f'[1, 2, "{marker}"]', "application/json", {}),
        (f"text={marker}", "application/x-www-form-urlencoded",
         {"X-Slack-Request-Timestamp": "soon"}),
    ]
    caplog.set_level(logging.INFO)
    for body, kind, headers in forged:
        status, text, _ = await world.slack.post(body, kind, secret="x" * 32, headers=headers)
        assert status == 401 and marker not in text, (body, status, text)
    async with world.slack.http.post(world.slack.events_url, data=b"text=caf\xe9\xff",
                                     headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 400
    huge = "text=" + "a" * (1024 * 1024)
    status, _, _ = await world.slack.post(huge, "application/x-www-form-urlencoded")
    assert status == 413, "even signed: no Slack payload is that large"
    status, _, _ = await world.slack.post("payload=%7Bnot-json", "application/json")
    assert status == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not [r for r in caplog.records if marker in r.getMessage()]
    refusals = [r for r in caplog.records if "Slack request refused" in r.getMessage()]
    assert len(refusals) == 1, "one line for the lot"
    await world.adapter.settle()
    assert world.fake.of("response_url") == [] and await world.tickets() == []


async def test_a_command_is_acked_at_once_even_when_the_database_is_slow(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ack does not wait for the core: with every actor lookup taking a second, the
    command is acknowledged (empty 200) at once and answered later through `response_url`,
    ephemerally."""
    identity = world.app.services.identity
    original = identity.actor

    async def slow(sender: Sender) -> Any:
        await asyncio.sleep(1.0)
        return await original(sender)

    monkeypatch.setattr(identity, "actor", slow)
    status, body, took = await world.slack.command(TOM, "/ticket", "list")
    assert (status, body) == (200, "") and took < 0.5, took
    assert world.fake.of("response_url") == []
    [answer] = await world.fake.wait_for("response_url")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] and "unavailable" not in answer["text"]


async def test_a_full_backlog_refuses_plainly_and_every_request_taken_is_answered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledged requests wait in a bounded queue for the workers. While it is full, a
    slash command is answered at once that nothing was done (and nothing is), and an event
    gets 503, so Slack sends it again; once there is room again, the retried event is taken,
    and every command taken before was run and answered, once."""
    identity = world.app.services.identity
    original = identity.actor
    release = asyncio.Event()

    async def held(sender: Sender) -> Any:
        await release.wait()
        return await original(sender)

    monkeypatch.setattr(identity, "actor", held)
    world.adapter.backlog = 2
    taken = WORKERS + 2  # one in each worker's hands, two waiting
    for n in range(taken):
        assert (await world.slack.command(TOM, "/ticket", f"new sev3 Taken {n}"))[:2] == (
            200, "")
    assert world.adapter.full
    status, body, took = await world.slack.command(TOM, "/ticket", "new sev3 Refused")
    assert status == 200 and took < 0.5
    assert json.loads(body) == {"text": BUSY, "response_type": "ephemeral"}
    reply = {"type": "message", "channel": TOM_DM, "channel_type": "im", "user": TOM,
             "team": TEAM, "text": "Any news?", "ts": "1700000600.000001",
             "thread_ts": "1700000100.000001"}
    assert (await world.slack.event(reply, "Ev0100"))[0] == 503
    release.set()
    await world.adapter.settle()
    assert not world.adapter.full
    assert (await world.slack.event(reply, "Ev0100", retry=1))[0] == 200
    await world.adapter.settle()
    subjects = sorted(subject for _, subject, _ in await world.tickets())
    assert subjects == sorted(f"Taken {n}" for n in range(taken))
    answered = [a for a in world.fake.of("response_url") if "Taken" in str(a)]
    assert len(answered) == taken


async def test_a_ticket_opened_from_slack_posts_cards_with_escaped_text(world: World) -> None:
    """`/ticket new` answers through `response_url`, the opener's card lands in the IM the
    bot opens for him and the triage card in the triage channel, with Block Kit buttons;
    what the user typed is shown, never acted on (`<!channel>`, mentions)."""
    (card, _), (triage, _) = await world.open_ticket(
        "new sev2 VPN drops <!channel> & <@U0SAM>")
    [answer] = await world.fake.wait_for("response_url")
    assert "#1" in answer["text"] and "<!channel>" not in json.dumps(answer)
    assert [c["users"] for c in world.fake.of("conversations.open")] == [TOM]
    assert [t[1] for t in await world.tickets()] == ["VPN drops <!channel> & <@U0SAM>"]
    for posted in (card, triage):
        parsed = [posted["text"], *mrkdwn(posted["blocks"])]  # plain_text is never parsed
        assert not [t for t in parsed if "<!channel>" in t or "<@U0SAM>" in t]
        assert any("&lt;!channel&gt; &amp; &lt;@U0SAM&gt;" in t for t in parsed)
    assert {"Claim", "Status", "Severity", "Reply"} <= set(buttons(triage["blocks"]))


async def test_claim_button_runs_the_action_and_edits_the_cards(world: World) -> None:
    """Pressing Claim on the triage card claims the ticket as the presser, and the card
    is edited where it was posted (`chat.update` on its channel and ts)."""
    _, (triage, ts) = await world.open_ticket()
    claim = buttons(triage["blocks"])["Claim"]
    status, _, took = await world.slack.press(SAM, claim, channel=TRIAGE, message_ts=ts)
    assert status == 200 and took < 0.5
    for _ in range(200):
        if any(u["channel"] == TRIAGE and u["ts"] == ts for u in world.fake.of("chat.update")):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"triage card not edited: {world.fake.calls}")
    [edit] = [u for u in world.fake.of("chat.update") if u["channel"] == TRIAGE]
    assert "Sam" in json.dumps(edit["blocks"])


async def test_a_comment_edits_no_card_and_a_status_change_edits_both(world: World) -> None:
    """A public comment adds to the ticket's threads but changes nothing its cards show, so
    Slack gets no `chat.update`; a status change edits the opener's card and the triage card
    where they were posted."""
    (_, card_ts), (_, triage_ts) = await world.open_ticket()
    status, _, _ = await world.slack.command(TOM, "/ticket", "comment 1 It dropped again")
    assert status == 200
    for _ in range(250):
        told = [c for c in world.fake.of("chat.postMessage")
                if c.get("thread_ts") == triage_ts and "It dropped again" in c["text"]]
        if told and await world.idle():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"comment not told to triage: {world.fake.calls}")
    assert world.fake.of("chat.update") == []

    status, _, _ = await world.slack.command(SAM, "/triage", "status 1 pending")
    assert status == 200
    edits = await world.fake.wait_for("chat.update", 2)
    assert sorted((e["channel"], e["ts"]) for e in edits) == sorted(
        [(TOM_DM, card_ts), (TRIAGE, triage_ts)])
    assert all("pending" in json.dumps(e["blocks"]) for e in edits)


async def test_status_button_opens_a_modal_whose_submission_changes_the_status(
    world: World,
) -> None:
    """Status opens the command's form as a modal (a select of the statuses, the ticket
    known); submitting it runs the typed action and the presser is told ephemerally."""
    _, (triage, ts) = await world.open_ticket()
    await world.slack.press(SAM, buttons(triage["blocks"])["Status"], channel=TRIAGE,
                            message_ts=ts)
    [opened] = await world.fake.wait_for("views.open")
    view = opened["view"]
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    assert [(b["block_id"], b["element"]["type"]) for b in inputs] == [
        ("STATUS", "static_select")]
    status, body, _ = await world.slack.submit(SAM, view, {"STATUS": "pending"})
    assert (status, body) == (200, "")
    [told] = await world.fake.wait_for("chat.postEphemeral")
    assert told["channel"] == TRIAGE and told["user"] == SAM
    assert [t[2] for t in await world.tickets()] == ["pending"]


async def test_ticket_new_without_subject_opens_a_modal_that_shows_its_errors(
    world: World,
) -> None:
    """`/ticket new sev3` opens the form with the command's trigger; a subject of nothing
    but invisible characters is refused in the modal, on its field; a real one opens the
    ticket."""
    await world.slack.command(TOM, "/ticket", "new sev3")
    [opened] = await world.fake.wait_for("views.open")
    assert opened["trigger_id"] == "1.98765.abcdef"
    view = opened["view"]
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["SUBJECT"]["type"] == "plain_text_input"
    assert inputs["DESCRIPTION"]["multiline"] is True and "SEVERITY" not in inputs
    status, body, _ = await world.slack.submit(TOM, view, {"SUBJECT": "\u200b"})
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    assert list(answer["errors"]) == ["SUBJECT"]
    assert await world.tickets() == []
    status, body, _ = await world.slack.submit(TOM, view, {"SUBJECT": "Printer on fire"})
    assert (status, body) == (200, "")
    await world.fake.wait_for("chat.postEphemeral")
    assert await world.tickets() == [(1, "Printer on fire", "new")]


async def test_a_reply_in_the_ticket_thread_is_one_comment_whatever_slack_retries(
    world: World,
) -> None:
    """A message under Tom's card becomes a public comment (Slack's escaping undone); the
    same event retried (`X-Slack-Retry-Num`) and the bot's own messages add nothing."""
    (_, card_ts), _ = await world.open_ticket()
    reply = {"type": "message", "channel": TOM_DM, "channel_type": "im", "user": TOM,
             "team": TEAM, "text": "Still broken &lt;here&gt; &amp; there",
             "ts": "1700000500.000001", "thread_ts": card_ts}
    status, _, took = await world.slack.event(reply, "Ev0001")
    assert status == 200 and took < 0.5
    assert (await world.slack.event(reply, "Ev0001", retry=1))[0] == 200
    bots = {**reply, "ts": "1700000500.000002", "bot_id": "B0BOT", "user": "U0BOT",
            "text": "echo"}
    assert (await world.slack.event(bots, "Ev0002"))[0] == 200
    await world.adapter.settle()
    assert await world.comments() == [("Still broken <here> & there", False)]


async def test_link_uses_the_workspace_verified_email_once_per_few_minutes(
    world: World,
) -> None:
    """`/subdesk link` without an email links Ana through the email her workspace
    verified (`users.info`), looked up once and then cached."""
    world.fake.users["U0ANA"] = {"id": "U0ANA", "team_id": TEAM, "is_email_confirmed": True,
                                 "profile": {"email": "ana@demo.test"}}
    await world.slack.command("U0ANA", "/subdesk", "link")
    [answer] = await world.fake.wait_for("response_url")
    assert answer["text"].startswith("Linked: you are Ana Main")
    await world.slack.command("U0ANA", "/subdesk", "link")
    await world.fake.wait_for("response_url", 2)
    assert [u["user"] for u in world.fake.of("users.info")] == ["U0ANA"]


async def test_a_rate_limited_card_waits_as_long_as_slack_asks(
    world: World, clock: FixedClock
) -> None:
    """A 429 on `chat.postMessage` puts that card back in the outbox until Retry-After
    has passed; nothing is lost and nothing is sent twice."""
    world.fake.limited["chat.postMessage"] = 7
    await world.slack.command(TOM, "/ticket", "new sev2 VPN drops every hour")
    await world.fake.wait_for("chat.postMessage", 2)
    for _ in range(200):
        async with world.app.db.read() as session:
            waiting = (await session.execute(
                select(OutboxRow.next_attempt_at, OutboxRow.last_error)
                .where(OutboxRow.platform == "slack", OutboxRow.last_error.is_not(None))
            )).all()
        if waiting:
            break
        await asyncio.sleep(0.02)
    [(due, error)] = waiting
    assert due.replace(tzinfo=dt.UTC) == clock.now() + dt.timedelta(seconds=7)
    assert "rate limit" in error


async def test_a_reply_under_the_triage_card_is_an_internal_note(world: World) -> None:
    """Sam's message under the triage card is an internal note; the same message delivered
    again under another event id (as an `app_mention`, say) adds nothing, and chatter
    under a channel message that is not ours gets no answer at all."""
    _, (_, triage_ts) = await world.open_ticket()
    note = {"type": "message", "channel": TRIAGE, "channel_type": "channel", "user": SAM,
            "team": TEAM, "text": "Looks like the MTU again", "ts": "1700000600.000001",
            "thread_ts": triage_ts}
    assert (await world.slack.event(note, "Ev0010"))[0] == 200
    assert (await world.slack.event(note, "Ev0011"))[0] == 200
    chatter = {**note, "ts": "1700000600.000002", "thread_ts": "1600000000.000001"}
    assert (await world.slack.event(chatter, "Ev0012"))[0] == 200
    await world.adapter.settle()
    assert await world.comments() == [("Looks like the MTU again", True)]
    assert world.fake.of("chat.postEphemeral") == []


async def test_a_refused_bot_token_stops_the_start(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """`auth.test` answering invalid_auth at start is one clear error naming the setting,
    without the token."""
    fake = FakeSlack(errors={"auth.test": "invalid_auth"})
    await fake.start()
    tuned = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-secret-value"),
        "slack_signing_secret": SecretStr(SECRET), "slack_api_url": fake.url.rstrip("/"),
    })
    app = await build_app(tuned, clock=clock, db=db)
    try:
        with pytest.raises(ServiceError, match="SLACK_BOT_TOKEN: invalid_auth") as raised:
            await app.adapters["slack"].start()
        assert "xoxb-secret-value" not in str(raised.value)
        assert [c.method for c in fake.calls] == ["auth.test"]
    finally:
        await app.close()
        await fake.stop()

"""Outbox delivery to Slack through slack_sdk's client against the local fake Web API:
where each message goes, and how each failure reads to the outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.transport import OneWorkspace, SlackTransport
from bot.delivery.ports import DeliveryError, FailureKind
from bot.domain import MessageRef, OutboxStatus
from bot.presentation.messages import Message, Paragraph
from storage.outbox import OutboxItem
from tests.adapters.slack_fake import TEAM, FakeSlack

pytestmark = pytest.mark.nodb

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
HELLO = Message("Hello <!here>", blocks=(Paragraph("Hello <!here>"),))


def item(target: str, kind: str = "channel", *, thread: MessageRef | None = None,
         replaces: MessageRef | None = None) -> OutboxItem:
    return OutboxItem(
        id=7, key="k", platform="slack", target=target, kind=kind, recipient="", payload={},
        status=OutboxStatus.SENDING, attempts=1, next_attempt_at=NOW, last_error=None,
        platform_ref=None, created_at=NOW, sent_at=None, thread=thread, replaces=replaces,
    )


@pytest.fixture
async def transport(fake: FakeSlack) -> AsyncIterator[SlackTransport]:
    client = AsyncWebClient(token="xoxb-test", base_url=fake.url)
    transport = SlackTransport(OneWorkspace(client, TEAM))
    yield transport
    await transport.close()


async def test_messages_land_where_their_address_says(
    fake: FakeSlack, transport: SlackTransport
) -> None:
    """A DM opens the user's IM once; a channel is posted to as named (with or without its
    workspace); a thread root is posted under; an edit replaces its message. Each send
    says where it landed."""
    first = await transport.deliver(item(f"{TEAM}:U0TOM", "dm"), HELLO)
    again = await transport.deliver(item(f"{TEAM}:U0TOM", "dm"), HELLO)
    assert first is not None and again is not None and first.channel == again.channel == "DU0TOM"
    assert [c["users"] for c in fake.of("conversations.open")] == ["U0TOM"]
    assert (await transport.deliver(item(f"{TEAM}:C0OPS"), HELLO)) is not None
    assert (await transport.deliver(item("C0BARE"), HELLO)) is not None
    root = MessageRef("C0OPS", "1700000000.000003")
    under = await transport.deliver(item("C0OPS", thread=root), HELLO)
    assert under is not None and under.channel == "C0OPS" and under.id != root.id
    assert await transport.deliver(item("C0OPS", replaces=root), HELLO) == root
    posts = fake.of("chat.postMessage")
    assert [p["channel"] for p in posts] == ["DU0TOM", "DU0TOM", "C0OPS", "C0BARE", "C0OPS"]
    assert posts[-1]["thread_ts"] == root.id and "thread_ts" not in posts[0]
    [edit] = fake.of("chat.update")
    assert (edit["channel"], edit["ts"]) == (root.channel, root.id)
    assert posts[0]["text"] == "Hello &lt;!here&gt;"


async def test_a_rate_limit_says_when_to_come_back(
    fake: FakeSlack, transport: SlackTransport
) -> None:
    """HTTP 429 is a rate limit carrying Slack's Retry-After: the whole channel waits that
    long, and no attempt is used up."""
    fake.limited["chat.postMessage"] = 7
    with pytest.raises(DeliveryError) as raised:
        await transport.deliver(item("C0OPS"), HELLO)
    assert raised.value.kind is FailureKind.RATE_LIMITED and raised.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("error", "kind"),
    [("channel_not_found", FailureKind.PERMANENT), ("not_in_channel", FailureKind.PERMANENT),
     ("invalid_auth", FailureKind.CONFIGURATION), ("missing_scope", FailureKind.CONFIGURATION),
     ("internal_error", FailureKind.TRANSIENT)],
)
async def test_slack_errors_read_as_the_right_failure(
    fake: FakeSlack, transport: SlackTransport, error: str, kind: FailureKind
) -> None:
    """An unknown channel cannot be fixed by retrying; a bad token is the operator's to
    fix (every Slack message waits); anything else is retried."""
    fake.errors["chat.postMessage"] = error
    with pytest.raises(DeliveryError) as raised:
        await transport.deliver(item("C0OPS"), HELLO)
    assert raised.value.kind is kind and error in str(raised.value)


async def test_a_peer_that_cannot_be_reached_holds_the_platform(
    transport: SlackTransport
) -> None:
    """Slack out of reach (nothing listening) holds Slack delivery until it answers again,
    with no attempt used, not in doubt (nothing was sent); never a dead letter."""
    transport.workspaces = OneWorkspace(
        AsyncWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/api/"), TEAM)
    with pytest.raises(DeliveryError) as raised:
        await transport.deliver(item("C0OPS"), HELLO)
    assert raised.value.kind is FailureKind.UNREACHABLE and not raised.value.in_doubt


async def test_another_workspace_is_not_reached_with_this_token(
    fake: FakeSlack, transport: SlackTransport
) -> None:
    """An address in a workspace the bot token does not belong to is undeliverable."""
    with pytest.raises(DeliveryError) as raised:
        await transport.deliver(item("T0OTHER:U0X", "dm"), HELLO)
    assert raised.value.permanent and fake.calls == []

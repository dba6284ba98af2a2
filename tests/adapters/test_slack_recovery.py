"""Slack crash recovery: a post whose sender died before it learned the outcome is found by
its metadata (the outbox key) and recorded, not posted a second time."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import sys
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.transport import OneWorkspace, SlackTransport, delivery_client
from bot.clock import SystemClock
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.ports import DeliveryError
from bot.domain import MessageRef, OutboxStatus
from bot.presentation.messages import Message, Paragraph
from bot.wiring.config import Settings
from storage.db import Database
from storage.outbox import OutboxItem, OutboxStore
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
HELLO = Message("Hello", blocks=(Paragraph("Hello"),))


def _item(key: str, *, in_doubt: dt.datetime | None, thread: MessageRef | None = None
          ) -> OutboxItem:
    now = dt.datetime.now(dt.UTC)
    return OutboxItem(
        id=1, key=key, platform="slack", target="C0OPS", kind="channel", recipient="",
        payload={}, status=OutboxStatus.SENDING, attempts=2, next_attempt_at=now,
        last_error=None, platform_ref=None, created_at=now, sent_at=None, in_doubt=in_doubt,
        thread=thread,
    )


@pytest.mark.nodb
async def test_a_message_in_doubt_is_looked_up_in_its_channel_or_thread(
    fake: FakeSlack
) -> None:
    """In doubt, a root message is looked for in the channel's history and a reply in its
    thread, by the outbox key in its metadata: found, it is the delivery; not found (a
    different key), it is posted."""
    transport = SlackTransport(OneWorkspace(AsyncWebClient(token="xoxb-t", base_url=fake.url),
                                            TEAM))
    since = dt.datetime.now(dt.UTC)
    root = await transport.deliver(_item("root-key", in_doubt=None), HELLO)
    assert root is not None
    reply = await transport.deliver(_item("reply-key", in_doubt=None, thread=root), HELLO)
    assert reply is not None
    assert fake.of("chat.postMessage")[0]["metadata"] == {
        "event_type": "subdesk_outbox", "event_payload": {"key": "root-key"}}
    assert await transport.deliver(_item("root-key", in_doubt=since), HELLO) == root
    assert await transport.deliver(_item("reply-key", in_doubt=since, thread=root),
                                   HELLO) == reply
    assert transport.found == 2 and len(fake.of("chat.postMessage")) == 2
    [history] = fake.of("conversations.history")
    [replies] = fake.of("conversations.replies")
    assert replies["ts"] == root.id
    assert float(history["oldest"]) <= since.timestamp() - 59
    other = await transport.deliver(_item("other-key", in_doubt=since, thread=root), HELLO)
    await transport.close()
    assert other not in (root, reply) and len(fake.of("chat.postMessage")) == 3


@pytest.mark.parametrize("how", ["reset", "cut", "bare", "502", "reset-default-client"])
async def test_a_post_whose_answer_broke_is_looked_up_not_posted_again(
    fake: FakeSlack, db: Database, settings: Settings, how: str
) -> None:
    """Slack stored the post, but its answer never came back whole: the connection reset,
    the body cut short, `ok` naming no message, or a gateway's 502. The dispatcher retries
    it in doubt, finds it by its metadata and records it: one message in the channel.
    With slack_sdk's default client instead of the outbox's (the negative control), its
    own retry sends the post again at once after the reset: two in the channel."""
    default_client = how == "reset-default-client"
    how = how.removesuffix("-default-client")
    clock = SystemClock()
    async with db.transaction() as session:
        item_id = await OutboxStore(session, clock.now()).enqueue(
            f"broken-{how}", platform="slack", target="C0CUT", kind="channel",
            payload=HELLO.to_json())
    assert item_id is not None
    fake.broken["chat.postMessage"] = how
    client = (AsyncWebClient(token="xoxb-t", base_url=fake.url) if default_client
              else delivery_client("xoxb-t", fake.url))
    transport = SlackTransport(OneWorkspace(client, TEAM))
    settings = settings.model_copy(update={"outbox_base_delay": 1.0, "outbox_max_delay": 1.0})
    try:
        first = await Dispatcher(db, settings, clock, {"slack": transport}).run_once()
        if default_client:
            assert first.sent == 1 and len(fake.posted("C0CUT")) == 2, "posted twice"
            return
        async with db.read() as session:
            doubted = await OutboxStore(session, clock.now()).get(item_id)
        assert first.retried == 1 and doubted is not None
        assert doubted.status is OutboxStatus.PENDING and doubted.in_doubt is not None
        await asyncio.sleep(1.05)  # past its backoff (0.5 to 1 s)
        again = await Dispatcher(db, settings, clock, {"slack": transport}).run_once()
    finally:
        await transport.close()
    async with db.read() as session:
        done = await OutboxStore(session, clock.now()).get(item_id)
    posts = fake.posted("C0CUT")
    assert again.sent == 1 and transport.found == 1
    assert len(posts) == 1, "found by its metadata, not posted again"
    assert done is not None and done.status is OutboxStatus.SENT
    assert done.platform_ref == posts[0][1]


@pytest.mark.nodb
async def test_a_post_that_never_connected_is_not_in_doubt() -> None:
    """Nothing listening: the post cannot have arrived, so its retry is not looked up."""
    with socket.socket() as sock:  # a free port, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = SlackTransport(OneWorkspace(
        delivery_client("xoxb-t", f"http://127.0.0.1:{port}/api/"), TEAM))
    try:
        with pytest.raises(DeliveryError) as failed:
            await transport.deliver(_item("nowhere", in_doubt=None), HELLO)
    finally:
        await transport.close()
    assert not failed.value.in_doubt and "unreachable" in str(failed.value)


def _env(db_url: str, fake: FakeSlack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBDESK_", "SLACK_",
                                                                     "MATRIX_"))}
    env.update(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING",
               SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SECRET,
               SLACK_API_URL=fake.url, SUBDESK_OUTBOX_LEASE="1",
               SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("metadata", [True, False],
                         ids=["looked-up", "negative-control-without-metadata"])
async def test_a_post_cut_off_by_sigkill_is_posted_once(
    fake: FakeSlack, db: Database, db_url: str, metadata: bool
) -> None:
    """`subdesk outbox drain` is SIGKILLed after Slack stored its post but before it learned
    so (the answer is held back); a second drain, once the lease ran out, finds the post by
    its metadata and records it: one message in the channel, its ref in the row. Where the
    metadata does not come back (the negative control), the same run posts it twice."""
    clock = SystemClock()
    async with db.transaction() as session:
        item_id = await OutboxStore(session, clock.now()).enqueue(
            "crash-1", platform="slack", target="C0CRASH", kind="channel",
            payload=HELLO.to_json())
    assert item_id is not None
    fake.keep_metadata = metadata
    fake.stall = "chat.postMessage"
    first = await asyncio.create_subprocess_exec(
        SUBDESK, "outbox", "drain", "--max-wait", "0", env=_env(db_url, fake),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_for("chat.postMessage", 1, seconds=90)
    finally:
        first.kill()
        await first.communicate()
    async with db.read() as session:
        cut_off = await OutboxStore(session, clock.now()).get(item_id)
    assert cut_off is not None and cut_off.status is OutboxStatus.SENDING
    assert cut_off.platform_ref is None
    fake.stall = None
    fake.answer.set()
    await asyncio.sleep(1.2)  # the dead holder's lease runs out
    second = await asyncio.create_subprocess_exec(
        SUBDESK, "outbox", "drain", "--max-wait", "5", env=_env(db_url, fake),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await second.communicate()
    assert second.returncode == 0, err.decode()
    async with db.read() as session:
        done = await OutboxStore(session, clock.now()).get(item_id)
    posts = fake.posted("C0CRASH")
    assert done is not None and done.status is OutboxStatus.SENT
    if metadata:
        assert len(posts) == 1, "found by its metadata, not posted again"
        assert done.platform_ref == posts[0][1]
        assert len(fake.of("conversations.history")) == 1
    else:
        assert len(posts) == 2, "without the lookup the post is doubled"

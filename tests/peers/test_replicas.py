"""Several `subdesk run` replicas on one PostgreSQL draining the outbox to the fake Slack:
every message delivered exactly once, the lines spread across replicas, and a replica
killed (SIGKILL) or stopped (SIGTERM) while holding claimed messages loses and doubles
none: the others take them over, after the lease or at once, and find the posts that
may have arrived by their metadata."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.clock import SystemClock
from bot.presentation.messages import Message
from storage.bulk import OutboxDraft
from storage.db import Database
from storage.models import OutboxRow
from storage.outbox import OutboxStore
from tests.adapters.slack_fake import SECRET, FakeSlack

pytestmark = [
    pytest.mark.peers,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("SUBDESK_TEST_DATABASE_URL"),
                       reason="replicas share one PostgreSQL (SUBDESK_TEST_DATABASE_URL); "
                              "SQLite serves one process"),
]

SUBDESK = str(Path(sys.executable).with_name("subdesk"))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _replica(db_url: str, fake: FakeSlack, cwd: Path, **extra: str
                   ) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBDESK_", "SLACK_",
                                                                     "MATRIX_"))}
    env.update(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING",
               SUBDESK_HTTP_HOST="127.0.0.1", SUBDESK_HTTP_PORT=str(_port()),
               SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SECRET,
               SLACK_API_URL=fake.url, SUBDESK_OUTBOX_LEASE="2",
               SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0.1", SUBDESK_OUTBOX_POLL_INTERVAL="0.2",
               SUBDESK_SLACK_WORKERS="0",  # delivery only: no Slack requests to work on
               **extra)
    return await asyncio.create_subprocess_exec(
        SUBDESK, "run", env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _queue(db: Database, channels: int, each: int) -> int:
    """`each` messages to each of `channels` Slack channels, queued in turn."""
    clock = SystemClock()
    drafts = [OutboxDraft(key=f"msg:{c}:{n}", platform="slack", target=f"C{c:04d}",
                          kind="channel", recipient="",
                          payload=Message(f"message {n} to {c}").to_json())
              for n in range(each) for c in range(channels)]
    async with db.transaction() as session:
        return await OutboxStore(session, clock.now()).enqueue_many(drafts)


async def _sent(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(
            select(func.count()).where(OutboxRow.status == "sent")) or 0)


async def _until(check: Any, seconds: float, procs: list[asyncio.subprocess.Process]
                 ) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        for proc in procs:
            if proc.returncode is not None:
                _, err = await proc.communicate()
                raise AssertionError(f"a replica exited {proc.returncode}: {err.decode()}")
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


def _posted(fake: FakeSlack) -> Counter[str]:
    """Posts Slack accepted, by the outbox key in their metadata."""
    keys: Counter[str] = Counter()
    for call in fake.calls:
        if call.method == "chat.postMessage" and call.result.get("ok"):
            metadata = call.args.get("metadata")
            if isinstance(metadata, str):
                import json
                metadata = json.loads(metadata)
            keys[metadata["event_payload"]["key"]] += 1
    return keys


async def _stop(procs: list[asyncio.subprocess.Process]) -> list[int | None]:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 30)
    return [p.returncode for p in procs]


async def test_three_replicas_deliver_every_message_once(
    fake: FakeSlack, db: Database, db_url: str, tmp_path: Path
) -> None:
    """Three replicas drain 240 messages to 40 channels: each posted once, in order per
    channel, the work shared; SIGTERM stops each cleanly."""
    total = await _queue(db, channels=40, each=6)
    procs = [await _replica(db_url, fake, tmp_path, SUBDESK_OUTBOX_CONCURRENCY="8")
             for _ in range(3)]
    try:
        await _until(lambda: _is(db, total), 120, procs)
    finally:
        codes = await _stop(procs)
    assert codes == [0, 0, 0]
    posted = _posted(fake)
    assert len(posted) == total and set(posted.values()) == {1}
    for c in range(40):
        order = [int(call.args["text"].split()[1]) for call in fake.calls
                 if call.method == "chat.postMessage" and call.result.get("ok")
                 and call.args["channel"] == f"C{c:04d}"]
        assert order == list(range(6)), (c, order)
    async with db.read() as session:
        workers = {w for w, in (await session.execute(select(OutboxRow.claimed_by).distinct()))}
    assert len(workers) >= 2, f"the lines were shared: {workers}"


async def _is(db: Database, total: int) -> bool:
    return await _sent(db) == total


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_replica_lost_while_holding_claims_doubles_nothing(
    fake: FakeSlack, db: Database, db_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    """A replica holds ten claimed messages whose posts Slack stored but has not answered;
    it is killed (SIGKILL: the others take its messages once the lease runs out) or
    stopped (SIGTERM: it hands them back, in doubt). Two other replicas deliver everything:
    the held ones are found by their metadata, none is posted twice, none is lost."""
    total = await _queue(db, channels=20, each=3)
    fake.stall = "chat.postMessage"
    first = await _replica(db_url, fake, tmp_path, SUBDESK_OUTBOX_CONCURRENCY="10")
    try:
        await fake.wait_for("chat.postMessage", 10, seconds=90)
        async with db.read() as session:
            held = int(await session.scalar(
                select(func.count()).where(OutboxRow.status == "sending")) or 0)
        assert held == 20, "ten posts stalled, ten more claimed, waiting for a delivery slot"
        first.send_signal(how)
        await asyncio.wait_for(first.communicate(), 30)
    finally:
        if first.returncode is None:  # the test failed before: no process outlives it
            first.kill()
            await first.wait()
    assert first.returncode == (-signal.SIGKILL if how is signal.SIGKILL else 0)
    fake.stall = None
    fake.answer.set()
    others = [await _replica(db_url, fake, tmp_path) for _ in range(2)]
    try:
        await _until(lambda: _is(db, total), 120, others)
    finally:
        codes = await _stop(others)
    assert codes == [0, 0]
    posted = _posted(fake)
    assert len(posted) == total and set(posted.values()) == {1}, (
        [k for k, n in posted.items() if n > 1])
    assert len(fake.of("conversations.history")) >= 10, "the held ones were looked up"

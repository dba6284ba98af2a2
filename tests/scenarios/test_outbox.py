"""The outbox (SPEC §5): one row per logical message, retries, dead letters, leases."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from bot.clock import Clock, FixedClock, SystemClock
from bot.delivery.dispatcher import LEASE, Dispatcher, backoff
from bot.delivery.ports import DeliveryError
from bot.domain import MessageRef, OutboxStatus, Platform
from bot.presentation.messages import Message
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_MAIN
from storage import wakeup
from storage.bulk import ANALYZE_AFTER, OutboxDraft
from storage.db import Database
from storage.outbox import OutboxItem, OutboxStore
from tests.harness import Harness


@dataclass
class Recorder:
    """A transport that follows a script of failures, then succeeds, recording each call."""

    platform: str = "console"
    script: list[BaseException] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    calls: list[tuple[int, float]] = field(default_factory=list)

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        self.calls.append((item.id, time.monotonic()))
        if self.script:
            raise self.script.pop(0)
        self.delivered.append(item.id)
        return MessageRef(item.target, f"ref-{item.id}")


def tuned(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


async def enqueue(db: Database, clock: Clock, key: str, *, platform: str = "console",
                  target: str = "alice", text: str = "hello") -> int | None:
    async with db.transaction() as session:
        return await OutboxStore(session, clock.now()).enqueue(
            key, platform=platform, target=target, kind="dm",
            payload=Message(text).to_json(), recipient=f"{target} <{target}@x.test>",
        )


@contextlib.asynccontextmanager
async def running(d: Dispatcher, *, stops_within: float = 5.0) -> AsyncIterator[None]:
    """`d.run_forever` for the length of the block, then stopped and awaited."""
    stop = asyncio.Event()
    task = asyncio.create_task(d.run_forever(stop))
    try:
        yield
    finally:
        stop.set()
        d.poke()
        await asyncio.wait_for(task, timeout=stops_within)


async def eventually(check: Callable[[], Awaitable[bool] | bool], seconds: float = 5.0) -> None:
    """Wait until `check()` holds, looking every 10 ms for up to `seconds`."""
    for _ in range(int(seconds * 100)):
        done = check()
        if done if isinstance(done, bool) else await done:
            return
        await asyncio.sleep(0.01)


async def row(db: Database, clock: Clock, item_id: int) -> OutboxItem:
    async with db.read() as session:
        item = await OutboxStore(session, clock.now()).get(item_id)
    assert item is not None
    return item


def dispatcher(db: Database, settings: Settings, clock: Clock, *transports: Recorder,
               worker: str = "w1", seed: int = 7, dead: list[int] | None = None) -> Dispatcher:
    return Dispatcher(
        db, settings, clock, {t.platform: t for t in transports}, worker=worker,
        rng=random.Random(seed),
        on_dead=(lambda item, _error: dead.append(item.id)) if dead is not None else None,
    )


async def test_same_key_twice_is_one_row_delivered_once(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """Enqueueing one logical message twice keeps one row, and it is delivered once."""
    first = await enqueue(db, clock, "welcome:acme:ana")
    second = await enqueue(db, clock, "welcome:acme:ana", text="a different body")
    assert first is not None and second is None
    transport = Recorder()
    d = dispatcher(db, settings, clock, transport)
    stats = await d.drain(max_wait=0)
    assert stats.sent == 1 and transport.delivered == [first]
    assert (await enqueue(db, clock, "welcome:acme:ana")) is None, "also after delivery"
    assert (await d.drain(max_wait=0)).sent == 0
    sent = await row(db, clock, first)
    assert sent.status is OutboxStatus.SENT and sent.platform_ref == f"ref-{first}"
    assert sent.payload["text"] == "hello"


async def test_delivery_error_retries_with_backoff(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A failed send goes back to pending with a jittered exponential delay, then succeeds."""
    s = tuned(settings, outbox_base_delay=10.0, outbox_max_delay=900.0, outbox_max_attempts=5)
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    transport = Recorder(script=[DeliveryError("503"), DeliveryError("503")])
    d = dispatcher(db, s, clock, transport)

    assert (await d.run_once()).retried == 1
    first = await row(db, clock, item_id)
    assert first.status is OutboxStatus.PENDING and first.attempts == 1
    assert first.last_error == "503"
    delay = (first.next_attempt_at - clock.now()).total_seconds()
    assert 5.0 <= delay <= 10.0
    assert (await d.run_once()).sent == 0, "not due yet"

    clock.advance(dt.timedelta(seconds=delay))
    assert (await d.run_once()).retried == 1
    second = await row(db, clock, item_id)
    delay2 = (second.next_attempt_at - clock.now()).total_seconds()
    assert 10.0 <= delay2 <= 20.0 and second.attempts == 2

    clock.advance(dt.timedelta(seconds=delay2))
    assert (await d.run_once()).sent == 1
    done = await row(db, clock, item_id)
    assert done.status is OutboxStatus.SENT and done.attempts == 3 and done.last_error is None


async def test_retry_after_is_honoured(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A peer's Retry-After decides the next attempt, not the backoff."""
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    d = dispatcher(db, settings, clock, Recorder(script=[DeliveryError("429", retry_after=30)]))
    await d.run_once()
    item = await row(db, clock, item_id)
    assert item.next_attempt_at == clock.now() + dt.timedelta(seconds=30)
    clock.advance(dt.timedelta(seconds=29))
    assert (await d.run_once()).sent == 0
    clock.advance(dt.timedelta(seconds=1))
    assert (await d.run_once()).sent == 1


async def test_dead_after_max_attempts(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A message that keeps failing is dead after `outbox_max_attempts`, and reported."""
    s = tuned(settings, outbox_max_attempts=3)
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    dead: list[int] = []
    transport = Recorder(script=[DeliveryError("down")] * 10)
    d = dispatcher(db, s, clock, transport, dead=dead)
    outcomes = []
    for _ in range(5):
        stats = await d.run_once()
        outcomes.append((stats.retried, stats.dead))
        clock.advance(dt.timedelta(seconds=s.outbox_max_delay))
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    item = await row(db, clock, item_id)
    assert item.status is OutboxStatus.DEAD and item.attempts == 3
    assert dead == [item_id] and len(transport.calls) == 3


async def test_permanent_error_is_dead_at_once(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """An error retrying cannot fix dead-letters the message on the first attempt."""
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    d = dispatcher(db, settings, clock,
                   Recorder(script=[DeliveryError("channel_not_found", permanent=True)]))
    assert (await d.run_once()).dead == 1
    item = await row(db, clock, item_id)
    assert item.status is OutboxStatus.DEAD and item.attempts == 1
    assert item.last_error == "channel_not_found"


async def test_unexpected_transport_exception_is_retried(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A transport bug does not stop the dispatcher or lose the message."""
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    d = dispatcher(db, settings, clock, Recorder(script=[KeyError("ts")]))
    assert (await d.run_once()).retried == 1
    item = await row(db, clock, item_id)
    assert item.status is OutboxStatus.PENDING and "KeyError" in (item.last_error or "")


async def test_retry_requeues_dead_messages_only(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """`outbox retry` gives a dead message fresh attempts; sent ones cannot be retried."""
    dead_id = await enqueue(db, clock, "dead")
    assert dead_id is not None
    transport = Recorder(script=[DeliveryError("gone", permanent=True)])
    d = dispatcher(db, settings, clock, transport)
    await d.run_once()
    async with db.transaction() as session:
        assert await OutboxStore(session, clock.now()).retry(dead_id)
    item = await row(db, clock, dead_id)
    assert item.status is OutboxStatus.PENDING and item.attempts == 0
    assert (await d.run_once()).sent == 1
    async with db.transaction() as session:
        store = OutboxStore(session, clock.now())
        assert not await store.retry(dead_id), "a sent message stays sent"
        assert not await store.retry(9999)
    assert transport.delivered == [dead_id]


async def test_retry_leaves_a_message_being_delivered_alone(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """Retrying a message another dispatcher holds would send it twice; it is refused."""
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    async with db.transaction() as session:
        await OutboxStore(session, clock.now()).claim_due(
            limit=10, worker="busy", lease=LEASE, platforms=["console"])
    async with db.transaction() as session:
        assert not await OutboxStore(session, clock.now()).retry(item_id)
    assert (await row(db, clock, item_id)).status is OutboxStatus.SENDING


async def test_lease_expiry_redelivers_after_a_crash(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A dispatcher that claimed a message and died: once the lease runs out, another
    dispatcher delivers it; before that, nobody touches it."""
    item_id = await enqueue(db, clock, "k1")
    assert item_id is not None
    async with db.transaction() as session:
        claimed = await OutboxStore(session, clock.now()).claim_due(
            limit=10, worker="crashed", lease=LEASE, platforms=["console"])
    assert [c.id for c in claimed] == [item_id]
    survivor = Recorder()
    d = dispatcher(db, settings, clock, survivor, worker="survivor")
    assert (await d.run_once()).sent == 0
    clock.advance(LEASE)
    assert (await d.run_once()).sent == 0, "the lease is still held at its last instant"
    clock.advance(dt.timedelta(seconds=1))
    assert (await d.run_once()).sent == 1
    assert survivor.delivered == [item_id]
    item = await row(db, clock, item_id)
    assert item.status is OutboxStatus.SENT and item.attempts == 2


async def test_only_platforms_with_a_transport_are_claimed(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A dispatcher without a Slack transport leaves Slack messages for one that has it."""
    slack_id = await enqueue(db, clock, "s", platform="slack", target="U1")
    console_id = await enqueue(db, clock, "c")
    assert slack_id is not None and console_id is not None
    console = Recorder()
    assert (await dispatcher(db, settings, clock, console).drain(max_wait=0)).sent == 1
    slack_row = await row(db, clock, slack_id)
    assert slack_row.status is OutboxStatus.PENDING and slack_row.attempts == 0
    slack = Recorder(platform="slack")
    assert (await dispatcher(db, settings, clock, slack, worker="w2").drain(max_wait=0)).sent == 1
    assert slack.delivered == [slack_id] and console.delivered == [console_id]


async def test_per_target_pacing(db: Database, settings: Settings) -> None:
    """Messages to one target are spaced by the per-target interval (kept in the table, so
    every dispatcher paces a line alike); targets run in parallel."""
    s = tuned(settings, outbox_per_target_interval=0.15)
    clock = SystemClock()
    rooms: dict[int, str] = {}
    for n in range(3):
        for room in ("room-a", "room-b"):
            item_id = await enqueue(db, clock, f"{room}-{n}", target=room)
            assert item_id is not None
            rooms[item_id] = room
    transport = Recorder()
    assert (await dispatcher(db, s, clock, transport).drain(max_wait=5)).sent == 6
    times = {room: sorted(t for i, t in transport.calls if rooms[i] == room)
             for room in ("room-a", "room-b")}
    for room, stamps in times.items():
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert len(gaps) == 2 and all(g >= 0.14 for g in gaps), (room, gaps)
    assert times["room-a"][0] < times["room-b"][-1] and times["room-b"][0] < times["room-a"][-1], (
        "different targets do not wait for each other")


async def test_a_line_is_claimed_one_message_at_a_time(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A claim takes the first message of each line only; the next one of a line waits
    until the one in flight is settled, and a line whose first message waits for a retry
    holds up no other line."""
    a = [await enqueue(db, clock, f"a{n}", target="room-a") for n in range(3)]
    b = [await enqueue(db, clock, f"b{n}", target="room-b") for n in range(2)]

    async def claim(worker: str) -> list[int]:
        async with db.transaction() as session:
            items = await OutboxStore(session, clock.now()).claim_due(
                limit=10, worker=worker, lease=LEASE, platforms=["console"])
        return [i.id for i in items]

    assert await claim("w1") == [a[0], b[0]]
    assert await claim("w2") == [], "both lines have a message in flight"
    async with db.transaction() as session:
        store = OutboxStore(session, clock.now())
        await store.mark_sent(a[0], None)
        await store.mark_retry(b[0], clock.now() + dt.timedelta(seconds=30), "peer down")
    assert await claim("w2") == [a[1]], "room-b waits for its retry; room-a goes on"


async def test_a_claim_taken_over_from_a_dead_holder_is_in_doubt(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A message whose holder's lease ran out may have been sent: the next claim says since
    when it is in doubt; one handed back on stopping is due again at once, in doubt too;
    a delivery clears it."""
    first = await enqueue(db, clock, "k1")
    second = await enqueue(db, clock, "k2", target="bob")
    assert first is not None and second is not None
    lease = dt.timedelta(seconds=5)
    async with db.transaction() as session:
        claimed = await OutboxStore(session, clock.now()).claim_due(
            limit=10, worker="dead", lease=lease, platforms=["console"])
    started = clock.now()
    assert {c.id for c in claimed} == {first, second} and all(c.in_doubt is None
                                                              for c in claimed)
    async with db.transaction() as session:
        await OutboxStore(session, clock.now()).hand_back([second], "dead")
    handed = await row(db, clock, second)
    assert handed.status is OutboxStatus.PENDING and handed.in_doubt == started
    clock.advance(lease + dt.timedelta(seconds=1))
    async with db.transaction() as session:
        again = await OutboxStore(session, clock.now()).claim_due(
            limit=10, worker="next", lease=lease, platforms=["console"])
    assert {c.id: c.in_doubt for c in again} == {first: started, second: started}
    async with db.transaction() as session:
        await OutboxStore(session, clock.now()).mark_sent(first, None)
    assert (await row(db, clock, first)).in_doubt is None


async def test_a_running_dispatcher_renews_its_leases(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A delivery that runs longer than its lease keeps its claim: the holder renews it, so
    no other dispatcher takes the message meanwhile."""
    item_id = await enqueue(db, clock, "slow")
    assert item_id is not None
    release = asyncio.Event()

    @dataclass
    class Slow(Recorder):
        async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
            await release.wait()
            return await super().deliver(item, message)

    clock_ = SystemClock()
    s = tuned(settings, outbox_poll_interval=0.05, outbox_lease=0.6)
    slow = Slow()
    d = dispatcher(db, s, clock_, slow, worker="slow")
    other = Recorder()
    async with running(d):
        for _ in range(10):
            await asyncio.sleep(0.2)
            assert (await dispatcher(db, s, clock_, other, worker="other").run_once()).sent == 0
        release.set()
        await eventually(lambda: bool(slow.delivered), 2.0)
    assert slow.delivered == [item_id] and other.delivered == []


async def test_stopping_hands_back_deliveries_in_flight(
    db: Database, settings: Settings
) -> None:
    """A dispatcher told to stop waits a moment for its deliveries, then hands back the ones
    still out: due again at once for another dispatcher, in doubt. One it claimed that is
    still waiting for a delivery slot goes back as it was: not tried, not in doubt."""
    item_id = await enqueue(db, SystemClock(), "stuck")
    waiting_id = await enqueue(db, SystemClock(), "waiting", target="bob")
    assert item_id is not None and waiting_id is not None

    @dataclass
    class Stuck(Recorder):
        async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
            self.calls.append((item.id, time.monotonic()))
            await asyncio.Event().wait()
            return None

    s = tuned(settings, outbox_poll_interval=0.05, outbox_concurrency=1)
    stuck = Stuck()
    d = dispatcher(db, s, SystemClock(), stuck, worker="stopping")

    async def both_claimed() -> bool:
        waiting = await row(db, SystemClock(), waiting_id)
        return bool(stuck.calls) and waiting.status is OutboxStatus.SENDING

    async with running(d, stops_within=10):
        await eventually(both_claimed, 3.0)
        assert [item_id] == [call[0] for call in stuck.calls], "one slot: the other waits"
    item = await row(db, SystemClock(), item_id)
    assert item.status is OutboxStatus.PENDING and item.in_doubt is not None
    assert item.next_attempt_at <= SystemClock().now()
    waiting = await row(db, SystemClock(), waiting_id)
    assert waiting.status is OutboxStatus.PENDING and waiting.in_doubt is None
    assert waiting.attempts == 0 and stuck.calls[-1][0] == item_id


async def test_running_dispatcher_delivers_when_poked_and_stops(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A long-running dispatcher delivers soon after a poke, without waiting for its poll."""
    s = tuned(settings, outbox_poll_interval=30.0)
    transport = Recorder()
    d = dispatcher(db, s, clock, transport)
    async with running(d, stops_within=2):
        await asyncio.sleep(0.05)
        item_id = await enqueue(db, clock, "poked")
        d.poke()
        await eventually(lambda: bool(transport.delivered))
        assert transport.delivered == [item_id]


async def test_a_line_with_a_backlog_drains_without_waiting_for_polls(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """Twelve messages to one target go out one after another as each is recorded, not one
    per poll: with a 30 s poll they all arrive long before a second poll."""
    s = tuned(settings, outbox_poll_interval=30.0, outbox_per_target_interval=0.0)
    transport = Recorder()
    d = dispatcher(db, s, clock, transport)
    ids = [await enqueue(db, clock, f"backlog-{n}") for n in range(12)]
    async with running(d):
        await eventually(lambda: len(transport.delivered) == len(ids), 20.0)
        assert transport.delivered == ids, "the line waited for the poll between messages"


async def test_pokes_faster_than_claims_are_taken_together(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A poke per answered command must not cost a claim each, nor a feed and a look at the
    next due time (those wait for the poll): pokes every 2 ms for half a second make a
    handful of claims, and what was queued meanwhile is delivered."""
    feeds = claims = 0

    async def feed() -> int:
        nonlocal feeds
        feeds += 1
        return 0

    transport = Recorder()
    d = Dispatcher(db, tuned(settings, outbox_poll_interval=30.0), clock,
                   {transport.platform: transport}, worker="w1", feed=feed)
    real_claim = d._claim

    async def claim(room: int, ahead: float = 0.0) -> list[OutboxItem]:
        nonlocal claims
        claims += 1
        return await real_claim(room, ahead)

    d._claim = claim  # type: ignore[method-assign]
    async with running(d):
        await asyncio.sleep(0.05)
        first = (feeds, claims)
        item_id = await enqueue(db, clock, "poked-often")
        for _ in range(250):
            d.poke()
            await asyncio.sleep(0.002)
        await eventually(lambda: bool(transport.delivered))
        assert transport.delivered == [item_id]
        assert claims - first[1] <= 12, f"{claims - first[1]} claims for 250 pokes"
        assert feeds == first[0], "the feed waits for the poll"


async def test_poke_during_a_poll_is_not_lost(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A message queued while the dispatcher is polling is delivered at once, not after
    the next poll interval."""
    s = tuned(settings, outbox_poll_interval=30.0)
    transport = Recorder()
    d = dispatcher(db, s, clock, transport)
    real_claim = d._claim
    polls = 0

    async def claim(room: int, ahead: float = 0.0) -> list[OutboxItem]:
        nonlocal polls
        polls += 1
        items = await real_claim(room, ahead)
        if polls == 1:
            await enqueue(db, clock, "during-poll")
            d.poke()
        return items

    d._claim = claim  # type: ignore[method-assign]
    async with running(d, stops_within=2):
        await eventually(lambda: bool(transport.delivered))
    assert len(transport.delivered) == 1


async def test_messages_are_delivered_in_order_per_target(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """Messages to the same person arrive in the order they were queued."""
    ids = [await enqueue(db, clock, f"k{n}") for n in range(5)]
    transport = Recorder()
    await dispatcher(db, settings, clock, transport).drain(max_wait=0)
    assert transport.delivered == ids


@pytest.mark.nodb
@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12, 40])
def test_backoff_jitter_bounds(attempt: int) -> None:
    """Backoff is uniform in [d/2, d] for d = base·2^(attempt-1), capped."""
    rng = random.Random(attempt)
    ceiling = min(900.0, 2.0 * 2 ** (attempt - 1))
    samples = [backoff(attempt, 2.0, 900.0, rng) for _ in range(500)]
    assert all(ceiling / 2 <= x <= ceiling for x in samples)
    assert max(samples) - min(samples) > ceiling / 10, "there is jitter"


@pytest.mark.nodb
def test_backoff_grows_then_caps() -> None:
    """Successive attempts wait longer, up to the cap, never less than half of it."""
    rng = random.Random(1)
    lows = [min(backoff(a, 1.0, 60.0, rng) for _ in range(200)) for a in range(1, 10)]
    assert lows[:6] == sorted(lows[:6])
    assert all(30.0 <= x <= 60.0 for x in lows[6:])
    assert 0.5 <= backoff(0, 1.0, 60.0, rng) <= 1.0


async def test_concurrent_dispatchers_never_double_deliver(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """Several dispatchers racing over 200 rows on PostgreSQL deliver each exactly once."""
    if not db.is_postgres:
        pytest.skip("SKIP LOCKED concurrency is a PostgreSQL property")
    for n in range(200):
        await enqueue(db, clock, f"race-{n}", target=f"user-{n % 17}")
    deliveries: Counter[int] = Counter()

    @dataclass
    class Shared(Recorder):
        async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
            deliveries[item.id] += 1
            await asyncio.sleep(0)
            return await super().deliver(item, message)

    workers = [dispatcher(db, settings, clock, Shared(), worker=f"w{n}") for n in range(6)]

    async def run(d: Dispatcher) -> int:
        total = 0
        while (stats := await d.run_once(limit=7)).sent:
            total += stats.sent
        return total

    totals = await asyncio.gather(*(run(d) for d in workers))
    assert sum(totals) == 200
    assert len(deliveries) == 200 and set(deliveries.values()) == {1}
    assert sum(1 for t in totals if t) > 1, "the work was actually shared"
    async with db.read() as session:
        counts = await OutboxStore(session, clock.now()).counts()
    assert counts["sent"] == 200 and counts["pending"] == counts["sending"] == 0


async def test_a_burst_queued_on_postgresql_refreshes_the_claim_statistics(
    db: Database, clock: FixedClock
) -> None:
    """Thousands of messages queued at once on PostgreSQL are analyzed with the queueing:
    planned on stale statistics (a near-empty table) the claim query rescans every line for
    each row, seconds per claim, until autovacuum looks a minute later."""
    if not db.is_postgres:
        pytest.skip("planner statistics are PostgreSQL's")
    drafts = [OutboxDraft(key=f"burst:{n}", platform="console", target=f"line-{n % 1000}",
                          kind="dm", recipient="", payload=Message(f"m{n}").to_json())
              for n in range(ANALYZE_AFTER + 500)]
    async with db.transaction() as session:
        await session.execute(text("ANALYZE outbox"))  # statistics of the empty table
        assert await OutboxStore(session, clock.now()).enqueue_many(drafts) == len(drafts)
    async with db.read() as session:
        planned = await session.scalar(
            text("SELECT reltuples FROM pg_class WHERE oid = 'outbox'::regclass"))
    assert planned is not None and planned >= len(drafts)
    async with db.transaction() as session:
        claimed = await OutboxStore(session, clock.now()).claim_due(
            limit=1000, worker="w", lease=LEASE, platforms=["console"])
    assert len(claimed) == 1000 and len({item.target for item in claimed}) == 1000


async def test_console_shows_deliveries_to_others_as_who_they_are_for(
    harness: Harness
) -> None:
    """What the outbox delivers to other people shows on the console, labelled by recipient."""
    await harness.seed_demo()
    welcome = [line for line in harness.lines if line.startswith("── email to Ana Main")]
    assert welcome == ["── email to Ana Main <ana@demo.test> · subject: Welcome to your "
                       "standard subscription ──\n" + welcome[0].split("──\n", 1)[1]]
    harness.lines.clear()
    await harness.as_(DEMO_MAIN).send("/contacts request-technical nia@demo.test Nia")
    assert harness.lines[0].startswith("✓ Request #1")
    assert harness.lines[1].startswith("── email to Sam Support <sam@vendor.test> · subject: "
                                       "Technical Contact request #1 (Demo Corp) ──")


async def test_notifications_are_queued_once_per_channel(harness: Harness) -> None:
    """The same notification queued twice for a person is delivered once per channel."""
    await harness.seed_demo()
    notifier = harness.app.services.notifier
    identity = harness.app.services.identity
    await identity.admin_link(DEMO_MAIN, Platform.CONSOLE, "local", "ana-console")
    before = len(harness.delivered)
    services = harness.app.services
    for _ in range(2):
        async with services.contacts.tx() as tx:
            ana = await tx.directory.contacts_with_email(DEMO_MAIN)
            await notifier.to_contact(tx, ana[0], "notice:1", Message("Heads up"), critical=True)
    await harness.drain()
    new = harness.delivered[before:]
    assert sorted((item.platform, item.target) for item, _ in new) == [
        ("console", "ana-console"), ("email", DEMO_MAIN)]


async def test_unknown_intent_is_a_dead_letter_and_render_failures_retry(
    db: Database, settings: Settings, clock: FixedClock
) -> None:
    """A payload naming no registered intent is dead at once, with the kind in the error; a
    renderer that fails (database hiccup) is retried like a failed send."""
    async with db.transaction() as session:
        store = OutboxStore(session, clock.now())
        unknown = await store.enqueue("k-unknown", platform="console", target="alice",
                                      kind="dm", payload={"kind": "no_such_intent"})
        broken = await store.enqueue("k-broken", platform="console", target="alice",
                                     kind="dm", payload={"kind": "invoice_reminder"})
    assert unknown is not None and broken is not None
    transport = Recorder()
    stats = await dispatcher(db, settings, clock, transport).run_once()
    assert (stats.dead, stats.retried, transport.delivered) == (1, 1, [])
    dead = await row(db, clock, unknown)
    assert dead.status is OutboxStatus.DEAD and "no_such_intent" in (dead.last_error or "")
    retried = await row(db, clock, broken)
    assert retried.status is OutboxStatus.PENDING and "KeyError" in (retried.last_error or "")


async def test_messages_queued_by_another_process_wake_a_listening_dispatcher_at_commit(
    db: Database, db_url: str, clock: FixedClock
) -> None:
    """On PostgreSQL a transaction that queues outbox messages notifies every listening
    process when it commits (not before, and not at all when it rolls back or queues
    nothing new): a replica claims them at once instead of at its next poll. A listener
    whose connection is cut reconnects, and pokes on reconnecting (a notification sent
    meanwhile was missed)."""
    if not db.is_postgres:
        pytest.skip("LISTEN / NOTIFY is PostgreSQL's")
    pokes: list[float] = []
    stop = asyncio.Event()
    other = Database(db_url)  # another process's engine
    listener = asyncio.create_task(wakeup.listen(other, lambda: pokes.append(time.monotonic()),
                                                 stop))
    try:
        await eventually(lambda: len(pokes) == 1)  # connected: one poke for what it missed
        assert len(pokes) == 1
        async with db.transaction() as session:
            await enqueue_in(session, clock, "woken-1")
            await asyncio.sleep(0.3)
            assert len(pokes) == 1, "nothing is told before the commit"
        committed = time.monotonic()
        await eventually(lambda: len(pokes) == 2, 2.0)
        assert len(pokes) == 2 and pokes[1] - committed < 0.5
        with contextlib.suppress(RuntimeError):
            async with db.transaction() as session:
                await enqueue_in(session, clock, "woken-2")
                raise RuntimeError("rolled back")
        async with db.transaction() as session:
            await enqueue_in(session, clock, "woken-1")  # already queued: nothing new
        await asyncio.sleep(0.5)
        assert len(pokes) == 2
        async with db.transaction() as session:  # the listener's connection is cut
            cut = await session.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"),
                {"name": wakeup.APPLICATION})
        assert cut == 1
        await eventually(lambda: len(pokes) == 3, wakeup.CHECK_EVERY + wakeup.RECONNECT_MIN
                         + 5)
        assert len(pokes) == 3
        async with db.transaction() as session:
            await enqueue_in(session, clock, "woken-3")
        await eventually(lambda: len(pokes) == 4, 2.0)
        assert len(pokes) == 4
    finally:
        stop.set()
        await asyncio.wait_for(listener, 10)
        await other.dispose()


async def enqueue_in(session: Any, clock: Clock, key: str) -> None:
    await OutboxStore(session, clock.now()).enqueue(
        key, platform="console", target="someone", kind="dm",
        payload=Message(key).to_json())

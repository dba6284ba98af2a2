"""The outbox dispatcher: claims due messages, delivers them, retries, dead-letters.

Delivery is at-least-once at the transport and exactly-once per idempotency key in the
table; transports that can (Matrix transaction ids, email Message-IDs) make a resend after
a crash land as the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace

from bot.clock import Clock
from bot.delivery.intents import Audience, Dropped, Intents, UnknownIntent
from bot.delivery.ports import DeliveryError, FailureKind, Transport
from bot.domain import MessageRef, OutboxStatus
from bot.presentation import billing_notices, notices, ticket_cards
from bot.presentation.messages import Message
from bot.wiring.config import Settings
from storage.db import Database, is_outage
from storage.links import LinkStore
from storage.outbox import OutboxItem, OutboxStore

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=120)
# An edit whose card has not been delivered yet waits this long before looking again.
CARD_WAIT = dt.timedelta(seconds=2)
# Recording a delivery's outcome through a database outage: tried again at most this often.
SETTLE_MAX_DELAY = 2.0


@dataclass
class DispatchStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    dropped: int = 0
    held: int = 0  # waiting for the operator to fix the configuration
    fed: int = 0  # queue entries turned into messages by the feed
    throttled: float | None = None  # seconds the peer asked to wait (rate limited)

    def __iadd__(self, other: DispatchStats) -> DispatchStats:
        if other.throttled is not None:
            self.throttled = max(self.throttled or 0.0, other.throttled)
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.dropped += other.dropped
        self.held += other.held
        self.fed += other.fed
        return self

    @property
    def busy(self) -> bool:
        """Something moved: worth another batch straight away."""
        return bool(self.sent or self.retried or self.dead or self.dropped or self.fed)


# Turns queue entries kept elsewhere (claimed reminders) into outbox rows, one batch per
# call; returns how many entries it took.
Feed = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Hold:
    """A platform whose delivery waits for the operator (wrong password, TLS settings)."""

    reason: str
    until: float  # time.monotonic() of the next probe
    failures: int


@dataclass
class _Pacer:
    """Per-target spacing (Slack allows about one message a second per channel)."""

    interval: float
    last: dict[tuple[str, str], float] = field(default_factory=dict)

    def delay(self, key: tuple[str, str]) -> float:
        """Seconds until `key` may be sent to again."""
        if self.interval <= 0:
            return 0.0
        return max(0.0, self.last.get(key, 0.0) + self.interval - time.monotonic())

    async def wait(self, key: tuple[str, str]) -> None:
        if self.interval <= 0:
            return
        if (delay := self.delay(key)) > 0:
            await asyncio.sleep(delay)
        self.last[key] = time.monotonic()


def standard_intents() -> Intents:
    """Every intent Subdesk queues, with its renderer."""
    intents = Intents()
    billing_notices.register(intents)
    ticket_cards.register(intents)
    notices.register(intents)
    return intents


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d] for d = base·2^(attempt-1)."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return rng.uniform(delay / 2, delay)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        transports: Mapping[str, Transport],
        *,
        worker: str | None = None,
        on_dead: Callable[[OutboxItem, str], None] | None = None,
        alarm: Callable[[OutboxItem], Awaitable[object]] | None = None,
        rng: random.Random | None = None,
        lease: dt.timedelta = LEASE,
        intents: Intents | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.transports = dict(transports)
        # outbox.claimed_by holds 64 characters; a host name alone may take 64.
        self.worker = worker or f"{socket.gethostname()[:48]}:{os.getpid()}"
        self.on_dead = on_dead
        self.alarm = alarm  # raises the internal "dead letters" alert
        self.rng = rng or random.Random()
        self.lease = lease
        self.intents = intents or standard_intents()
        self.feed = feed
        self.feed_failure: str | None = None
        self.pacer = _Pacer(settings.outbox_per_target_interval)
        self.wakeup = asyncio.Event()
        self.holds: dict[str, Hold] = {}
        self.probing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _holding(self, platform: str) -> bool:
        hold = self.holds.get(platform)
        return hold is not None and time.monotonic() < hold.until

    def _open_platforms(self) -> list[str]:
        """Platforms to claim messages for: not held, and whose transport delivers from
        this process now (see `Transport.active`)."""
        return [p for p, transport in self.transports.items()
                if not self._holding(p) and getattr(transport, "active", True)]

    def poke(self) -> None:
        """Tell a running dispatcher that something was queued."""
        self.wakeup.set()

    async def run_once(self, limit: int = 100) -> DispatchStats:
        """Feed the outbox (see `Feed`), then claim one batch of due messages and deliver it."""
        fed = await self._feed()
        platforms = self._open_platforms()
        if self.holds and not platforms:  # every platform waits for the operator
            return DispatchStats(fed=fed)
        async with self.db.transaction() as session:
            store = OutboxStore(session, self.clock.now())
            items = await store.claim_due(
                limit=limit, worker=self.worker, lease=self.lease, platforms=platforms
            )
        if not items:
            return DispatchStats(fed=fed)
        # Stop starting deliveries well before the lease runs out: after that another
        # dispatcher may claim the same rows, and a paced queue to one target can be long.
        budget_end = time.monotonic() + self.lease.total_seconds() / 2
        groups: dict[tuple[str, str], list[OutboxItem]] = defaultdict(list)
        for item in items:
            groups[(item.platform, item.target)].append(item)
        results = await asyncio.gather(
            *(self._deliver_group(k, g, budget_end) for k, g in groups.items())
        )
        total = DispatchStats(fed=fed)
        for stats in results:
            total += stats
        return total

    async def _feed(self) -> int:
        """Run the feed; its failure holds up no delivery of what is already queued, and
        is logged once until the feed works again."""
        if self.feed is None:
            return 0
        try:
            fed = await self.feed()
        except Exception as exc:
            failure = type(exc).__name__
            if failure != self.feed_failure:
                log.warning("outbox feed: %s; messages already queued are still delivered",
                            failure)
            self.feed_failure = failure
            return 0
        self.feed_failure = None
        return fed

    async def _deliver_group(
        self, key: tuple[str, str], items: list[OutboxItem], budget_end: float
    ) -> DispatchStats:
        stats = DispatchStats()
        for index, item in enumerate(items):
            if self._holding(key[0]) or time.monotonic() + self.pacer.delay(key) >= budget_end:
                await self._release(items[index:])
                break
            await self.pacer.wait(key)
            if key[0] not in self.holds:
                done = await self._deliver(item)
                stats += done
                if done.throttled is not None:  # the rest of this target waits as long
                    await self._postpone(items[index + 1:], done.throttled)
                    break
                continue
            # Probing after a configuration failure: one message at a time on the platform,
            # and none more once a probe has failed again meanwhile.
            before = self.holds.get(key[0])
            async with self.probing[key[0]]:
                if self._holding(key[0]) or self.holds.get(key[0]) is not before:
                    await self._release(items[index:])
                    break
                stats += await self._deliver(item)
        return stats

    async def _release(self, items: list[OutboxItem]) -> None:
        """Hand claimed but unattempted messages back, as if never claimed."""
        async with self.db.transaction() as session:
            await OutboxStore(session, self.clock.now()).release(
                [item.id for item in items], self.worker
            )

    async def _deliver(self, item: OutboxItem) -> DispatchStats:
        transport = self.transports[item.platform]
        try:
            message = await self.intents.render(
                self.db, self.clock, item.payload, Audience(item.platform)
            )
            if isinstance(message, Dropped):
                return await self._dropped(item, message.reason)
            placed = await self._place(item, message)
            if placed is None:
                return await self._wait_for_card(item)
            ref = await transport.deliver(placed, message)
        except UnknownIntent as exc:
            return await self._failed(item, str(exc), None, True)
        except DeliveryError as exc:
            if exc.kind is FailureKind.CONFIGURATION:
                return await self._hold(item, str(exc))
            if exc.kind is FailureKind.RATE_LIMITED:
                log.info("outbox %s: %s; again in %.1f s", item.id, exc, exc.retry_after or 0)
                await self._postpone([item], exc.retry_after or 0.0, target=True,
                                     error=str(exc))
                return DispatchStats(retried=1, throttled=exc.retry_after or 0.0)
            return await self._failed(item, str(exc), exc.retry_after, exc.permanent)
        except Exception as exc:  # a transport bug or an unexpected peer answer
            log.warning("outbox %s: %s while delivering", item.id, type(exc).__name__)
            return await self._failed(item, f"{type(exc).__name__}: {exc}", None, False)
        async def record() -> None:
            async with self.db.transaction() as session:
                now = self.clock.now()
                store = OutboxStore(session, now)
                await store.mark_sent(item.id, ref)
                if ref is not None:
                    links = LinkStore(session, now)
                    if message.thread_key is not None and placed.thread is None:
                        await links.remember(item.platform, item.target, message.thread_key,
                                             ref)
                    if message.card_key is not None and not item.edit:
                        await links.remember(item.platform, item.target, message.card_key, ref)
                if item.platform in self.holds:
                    waiting = await store.resume(item.platform)
                    log.warning("outbox: %s delivery works again; %s held message(s) due now",
                                item.platform, waiting)
            self.holds.pop(item.platform, None)

        # The message is out: forgetting that would send it again once the lease ends.
        await self._settle(item, record)
        return DispatchStats(sent=1)

    async def _settle(self, item: OutboxItem, write: Callable[[], Awaitable[None]]) -> None:
        """Run `write`, which records what became of a claimed message, until the database
        takes it: through an outage the outcome waits here instead of being lost (a sent
        message would go again, a failed one would wait for its lease to end)."""
        delay, told = 0.1, False
        while True:
            try:
                await write()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if not told:
                    log.warning("outbox %s: database unavailable (%s); its outcome is "
                                "recorded once the database answers", item.id,
                                type(exc).__name__)
                    told = True
                await asyncio.sleep(delay)
                delay = min(SETTLE_MAX_DELAY, delay * 2)
                continue
            if told:
                log.warning("outbox %s: outcome recorded after the database came back", item.id)
            return

    async def _place(self, item: OutboxItem, message: Message) -> OutboxItem | None:
        """`item` with the thread root to reply under and, for an edit, the message it
        replaces; None when it is an edit of a card not delivered yet."""
        if message.thread_key is None and not item.edit:
            return item
        async with self.db.read() as session:
            links = LinkStore(session, self.clock.now())
            thread = (
                None
                if message.thread_key is None
                else await links.find(item.platform, item.target, message.thread_key)
            )
            replaces: MessageRef | None = None
            if item.edit and item.card is not None:
                replaces = await links.find(item.platform, item.target, item.card)
                if replaces is None:
                    copies = await OutboxStore(session, self.clock.now()).card_copies(item.card)
                    if any(c.platform == item.platform and c.target == item.target
                           and c.status in (OutboxStatus.PENDING, OutboxStatus.SENDING)
                           for c in copies):
                        return None
        # An edit of a card that never arrived (dead letter) goes out as a new message.
        return replace(item, thread=thread, replaces=replaces)

    async def _postpone(self, items: list[OutboxItem], seconds: float, *,
                        target: bool = False, error: str | None = None) -> None:
        """Due again in `seconds`, the attempt not counted: a peer's rate limit says when
        to come back, and is no reason ever to dead-letter a message. With `target`, the
        other messages waiting for the same target (not claimed in this batch) wait too."""
        if not items:
            return
        at = self.clock.now() + dt.timedelta(seconds=seconds)
        async with self.db.transaction() as session:
            store = OutboxStore(session, self.clock.now())
            for item in items:
                await store.postpone(item.id, at, error)
            if target:
                await store.hold_target(items[0].platform, items[0].target, at)

    async def _wait_for_card(self, item: OutboxItem) -> DispatchStats:
        """Put an edit back until the card it replaces has been delivered (no attempt used)."""
        async with self.db.transaction() as session:
            await OutboxStore(session, self.clock.now()).postpone(
                item.id, self.clock.now() + CARD_WAIT
            )
        return DispatchStats(retried=1)

    async def _dropped(self, item: OutboxItem, reason: str) -> DispatchStats:
        async with self.db.transaction() as session:
            await OutboxStore(session, self.clock.now()).mark_dropped(item.id, reason)
        log.info("outbox %s dropped: %s", item.id, reason)
        return DispatchStats(dropped=1)

    async def _hold(self, item: OutboxItem, reason: str) -> DispatchStats:
        """A configuration failure: keep the message (the attempt does not count), stop
        sending on this platform, probe again with capped backoff, and say so once."""
        previous = self.holds.get(item.platform)
        failures = previous.failures + 1 if previous else 1
        delay = backoff(failures, self.settings.outbox_base_delay,
                        self.settings.outbox_max_delay, self.rng)
        self.holds[item.platform] = Hold(reason, time.monotonic() + delay, failures)
        async with self.db.transaction() as session:
            store = OutboxStore(session, self.clock.now())
            await store.mark_held(item.id, self.clock.now() + dt.timedelta(seconds=delay), reason)
        if previous is None or previous.reason != reason:
            log.error("outbox: %s delivery stopped until the configuration is fixed: %s; "
                      "messages stay queued", item.platform, reason)
        return DispatchStats(held=1)

    async def _failed(
        self, item: OutboxItem, error: str, retry_after: float | None, permanent: bool
    ) -> DispatchStats:
        dead = permanent or item.attempts >= self.settings.outbox_max_attempts

        async def record() -> None:
            now = self.clock.now()
            async with self.db.transaction() as session:
                store = OutboxStore(session, now)
                if dead:
                    await store.mark_dead(item.id, error)
                    return
                delay = (
                    retry_after
                    if retry_after is not None
                    else backoff(
                        item.attempts,
                        self.settings.outbox_base_delay,
                        self.settings.outbox_max_delay,
                        self.rng,
                    )
                )
                await store.mark_retry(item.id, now + dt.timedelta(seconds=delay), error)

        await self._settle(item, record)
        if dead:
            log.error("outbox %s dead after %s attempt(s): %s", item.id, item.attempts, error)
            if self.on_dead is not None:
                self.on_dead(item, error)
            if self.alarm is not None:
                try:
                    await self.alarm(item)
                except Exception:
                    log.exception("outbox: the dead-letter alert could not be raised")
            return DispatchStats(dead=1)
        log.info("outbox %s retry %s: %s", item.id, item.attempts, error)
        return DispatchStats(retried=1)

    async def drain(self, *, max_wait: float = 60.0) -> DispatchStats:
        """Deliver everything due now, waiting for retries due within `max_wait` seconds."""
        total = DispatchStats()
        deadline = time.monotonic() + max_wait
        while True:
            stats = await self.run_once()
            total += stats
            if stats.sent or stats.dead or stats.dropped or stats.fed:
                continue
            if not await self._sleep_until_next(deadline):
                return total

    async def _sleep_until_next(self, deadline: float) -> bool:
        """Sleep until the next pending message is due, if that is before the deadline."""
        async with self.db.read() as session:
            due = await OutboxStore(session, self.clock.now()).next_due(self._open_platforms())
        if due is None:
            return False
        wait = (due - self.clock.now()).total_seconds()
        if wait <= 0:
            return True
        if time.monotonic() + wait > deadline:
            return False
        await asyncio.sleep(wait)
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; sleeps between polls unless poked."""
        interval = self.settings.outbox_poll_interval
        while not stop.is_set():
            self.wakeup.clear()  # before polling, so a poke during the poll is not lost
            try:
                stats = await self.run_once()
            except Exception as exc:  # database down: keep going, nothing is lost
                log.warning("outbox dispatcher: %s; retrying", type(exc).__name__)
                stats = DispatchStats()
                await asyncio.sleep(min(5.0, interval * 4))
            if stats.busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=interval)

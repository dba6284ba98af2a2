"""The outbox dispatcher: claims due messages, delivers them, retries, dead-letters.

Each target (platform + address) is a line: its messages go out in order, one at a time,
spaced by the per-target interval, and a line waiting (a peer's `Retry-After`, a retry's
backoff, its pacing) holds up no other line. A dispatcher claims the first due message of
up to `outbox_concurrency` lines at once, delivers them side by side, and records the
outcomes in batches; several dispatchers (replicas) share the lines through the table, and
a line's pacing is kept there too, so whichever replica takes its next message paces it.

Delivery is at-least-once at the transport and exactly-once per idempotency key in the
table; transports that can (Matrix transaction ids, email Message-IDs, Slack message
metadata looked up for a message in doubt) make a resend after a crash land as the same
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import heapq
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from bot.clock import Clock
from bot.delivery.intents import Audience, Dropped, Intents, UnknownIntent
from bot.delivery.ports import DeliveryError, FailureKind, Transport
from bot.domain import MessageRef, OutboxStatus
from bot.presentation import billing_notices, notices, ticket_cards
from bot.presentation.messages import Message
from bot.wiring.config import Settings
from storage.db import Database
from storage.links import LinkStore
from storage.outbox import HELD_PREFIX, UNREACHABLE_PREFIX, OutboxItem, OutboxStore

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)
# An edit whose card has not been delivered yet waits this long before looking again.
CARD_WAIT = dt.timedelta(seconds=2)
# Pause that gathers finished deliveries into one write.
BATCH_WINDOW = 0.02
# A running dispatcher claims at most this often, taking the lines due within `AHEAD`
# (each delivery then waits for its line's time): one claim query serves many lines, and
# a line is claimed before its time comes rather than after.
CLAIM_EVERY = 0.1
AHEAD = 0.25
# Longest wait between two probes of a platform that cannot be reached (see `_hold`).
OUTAGE_PROBE_EVERY = 30.0
# Seconds a stopping dispatcher waits for the deliveries under way before handing them back.
HAND_BACK_GRACE = 3.0


@dataclass
class DispatchStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    dropped: int = 0
    held: int = 0  # waiting for the operator to fix the configuration
    fed: int = 0  # queue entries turned into messages by the feed

    def __iadd__(self, other: DispatchStats) -> DispatchStats:
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
class _Sent:
    """A delivery the peer confirmed, to be recorded with others in one transaction."""

    item: OutboxItem
    placed: OutboxItem
    message: Message
    ref: MessageRef | None
    at: dt.datetime
    landed: float  # time.monotonic() of the answer


Outcome = DispatchStats | _Sent


@dataclass
class _Flight:
    """A delivery under way: its task, and when its lease was last extended."""

    item: OutboxItem
    task: asyncio.Task[Outcome]
    renewed: float
    started: bool = False  # past its line's time and holding a delivery slot


@dataclass(frozen=True)
class Hold:
    """A platform whose delivery waits for the operator (wrong password, TLS settings)."""

    reason: str
    until: float  # time.monotonic() of the next probe
    failures: int


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
        lease: dt.timedelta | None = None,
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
        self.lease = lease or dt.timedelta(seconds=settings.outbox_lease)
        self.capacity = max(1, settings.outbox_concurrency)
        # Deliveries under way at once; as many more may be claimed, waiting for their time.
        self.slots = asyncio.Semaphore(self.capacity)
        self.interval = max(0.0, settings.outbox_per_target_interval)
        self.intents = intents or standard_intents()
        self.feed = feed
        self.feed_failure: str | None = None
        self.wakeup = asyncio.Event()
        self.holds: dict[str, Hold] = {}
        self.flights: dict[int, _Flight] = {}
        self.outcomes: list[Outcome] = []  # finished, not yet recorded
        self.landed = asyncio.Event()  # a flight finished
        self.recording: asyncio.Task[DispatchStats] | None = None
        self.recording_failed = False  # the last recording met the database down
        # time.monotonic() at which lines this dispatcher paced become due again.
        self.due_hints: list[float] = []

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

    # Claiming ----------------------------------------------------------------------------

    async def _claim(self, room: int, ahead: float = 0.0) -> list[OutboxItem]:
        """The first due message of up to `room` lines. A platform probing after a
        configuration failure gets one message at a time, and none while one is out."""
        platforms = self._open_platforms()
        flying = {f.item.platform for f in self.flights.values()}
        free = [p for p in platforms if p not in self.holds]
        probing = [p for p in platforms if p in self.holds and p not in flying]
        items: list[OutboxItem] = []
        async with self.db.transaction() as session:
            store = OutboxStore(session, self.clock.now())
            if free and room > 0:
                items += await store.claim_due(limit=room, worker=self.worker,
                                               lease=self.lease, platforms=free,
                                               ahead=dt.timedelta(seconds=ahead))
            for platform in probing:
                if len(items) < room:
                    items += await store.claim_due(limit=1, worker=self.worker,
                                                   lease=self.lease, platforms=[platform])
        return items

    def _launch(self, items: list[OutboxItem]) -> None:
        now = time.monotonic()
        for item in items:
            task = asyncio.create_task(self._attempt(item), name=f"outbox {item.id}")
            self.flights[item.id] = _Flight(item, task, now)
            task.add_done_callback(functools.partial(self._landed, item.id))

    def _landed(self, item_id: int, task: asyncio.Task[Outcome]) -> None:
        self.flights.pop(item_id, None)
        if not task.cancelled():
            self.outcomes.append(task.result())
        self.landed.set()

    async def run_once(self, limit: int = 100) -> DispatchStats:
        """Feed the outbox (see `Feed`), then deliver the due messages of every line, a
        batch of lines at a time, until `limit` were tried or no line has one due."""
        total = DispatchStats(fed=await self._feed())
        tried = 0
        while tried < limit:
            items = await self._claim(min(limit - tried, self.capacity))
            if not items:
                break
            tried += len(items)
            self._launch(items)
            await asyncio.gather(*(self.flights[i.id].task for i in items
                                   if i.id in self.flights))
            total += await self._record()
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

    # Recording ---------------------------------------------------------------------------

    async def _record(self) -> DispatchStats:
        """Write down the deliveries that finished, in one transaction; failures wrote
        their own. Kept for the next try when the database cannot take them now."""
        outcomes, self.outcomes = self.outcomes, []
        total = DispatchStats()
        sent = [o for o in outcomes if isinstance(o, _Sent)]
        for outcome in outcomes:
            if isinstance(outcome, DispatchStats):
                total += outcome
        if not sent:
            return total
        try:
            await self._record_sent(sent)
        except BaseException:
            self.outcomes[:0] = sent
            raise
        total.sent += len(sent)
        return total

    async def _record_sent(self, sent: list[_Sent]) -> None:
        async with self.db.transaction() as session:
            now = self.clock.now()
            store = OutboxStore(session, now)
            await store.mark_sent_many([(s.item.id, s.ref, s.at) for s in sent])
            links = LinkStore(session, now)
            for s in sent:
                if s.ref is None:
                    continue
                if s.message.thread_key is not None and s.placed.thread is None:
                    await links.remember(s.item.platform, s.item.target, s.message.thread_key,
                                         s.ref)
                if s.message.card_key is not None and not s.item.edit:
                    await links.remember(s.item.platform, s.item.target, s.message.card_key,
                                         s.ref)
            if self.interval > 0:
                pace = dt.timedelta(seconds=self.interval)
                await store.pace([(s.item.platform, s.item.target, s.at + pace) for s in sent])
            for platform in sorted({s.item.platform for s in sent}):
                if self.holds.pop(platform, None) is not None:
                    waiting = await store.resume(platform)
                    log.warning("outbox: %s delivery works again; %s held message(s) due now",
                                platform, waiting)
        # Each line's next message is claimable now that its last is recorded: due once
        # the pace allows (at once without one), so a backlog on one line does not wait
        # for the next poll between its messages.
        for s in sent:
            heapq.heappush(self.due_hints, s.landed + self.interval)
        self.landed.set()

    async def _renew(self) -> None:
        """Extend the leases of deliveries that have run for a third of theirs."""
        now = time.monotonic()
        third = self.lease.total_seconds() / 3
        stale = [f for f in self.flights.values() if now - f.renewed >= third]
        if not stale:
            return
        async with self.db.transaction() as session:
            await OutboxStore(session, self.clock.now()).renew(
                [f.item.id for f in stale], self.worker, self.lease)
        for flight in stale:
            flight.renewed = now

    # Delivering --------------------------------------------------------------------------

    async def _attempt(self, item: OutboxItem) -> Outcome:
        """One delivery (when its line's time comes, for one claimed ahead); a failure is
        recorded at once, a success returned for the batch."""
        if (wait := (item.next_attempt_at - self.clock.now()).total_seconds()) > 0:
            await asyncio.sleep(wait)
        try:
            async with self.slots:
                if (flight := self.flights.get(item.id)) is not None:
                    flight.started = True
                return await self._deliver(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database failed while recording a failure
            log.warning("outbox %s: %s while recording a failed attempt", item.id,
                        type(exc).__name__)
            return DispatchStats()

    async def _deliver(self, item: OutboxItem) -> Outcome:
        transport = self.transports[item.platform]
        try:
            message = await self.intents.render(
                self.db, self.clock, item.payload, Audience(item.platform, target=item.target)
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
            if exc.kind in (FailureKind.CONFIGURATION, FailureKind.UNREACHABLE):
                return await self._hold(item, str(exc), exc.kind)
            if exc.kind is FailureKind.RATE_LIMITED:
                log.info("outbox %s: %s; again in %.1f s", item.id, exc, exc.retry_after or 0)
                await self._postpone(item, exc.retry_after or 0.0, str(exc))
                return DispatchStats(retried=1)
            return await self._failed(item, str(exc), exc.retry_after, exc.permanent,
                                      in_doubt=exc.in_doubt)
        except Exception as exc:  # a transport bug or an unexpected peer answer
            log.warning("outbox %s: %s while delivering", item.id, type(exc).__name__)
            return await self._failed(item, f"{type(exc).__name__}: {exc}", None, False)
        return _Sent(item, placed, message, ref, self.clock.now(), time.monotonic())

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

    async def _postpone(self, item: OutboxItem, seconds: float, reason: str) -> None:
        """Due again in `seconds`, the attempt not counted: a peer's rate limit says when
        to come back, and is no reason ever to dead-letter a message. The rest of the line
        waits behind it; other lines do not."""
        at = self.clock.now() + dt.timedelta(seconds=seconds)
        async with self.db.transaction() as session:
            await OutboxStore(session, self.clock.now()).postpone(item.id, at, reason)
        heapq.heappush(self.due_hints, time.monotonic() + seconds)

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

    async def _hold(self, item: OutboxItem, reason: str,
                    kind: FailureKind = FailureKind.CONFIGURATION) -> DispatchStats:
        """A configuration failure, or the peer out of reach: keep the message (the attempt
        does not count), stop sending on this platform, probe again with capped backoff
        (an outage at least every `OUTAGE_PROBE_EVERY` seconds), and say so once."""
        outage = kind is FailureKind.UNREACHABLE
        previous = self.holds.get(item.platform)
        failures = previous.failures + 1 if previous else 1
        cap = self.settings.outbox_max_delay
        delay = backoff(failures, self.settings.outbox_base_delay,
                        min(cap, OUTAGE_PROBE_EVERY) if outage else cap, self.rng)
        self.holds[item.platform] = Hold(reason, time.monotonic() + delay, failures)
        async with self.db.transaction() as session:
            store = OutboxStore(session, self.clock.now())
            await store.mark_held(item.id, self.clock.now() + dt.timedelta(seconds=delay),
                                  reason, prefix=UNREACHABLE_PREFIX if outage else HELD_PREFIX)
        if previous is None or previous.reason != reason:
            if outage:
                log.warning("outbox: %s cannot be reached: %s; messages stay queued and go "
                            "out once it answers", item.platform, reason)
            else:
                log.error("outbox: %s delivery stopped until the configuration is fixed: "
                          "%s; messages stay queued", item.platform, reason)
        return DispatchStats(held=1)

    async def _failed(
        self, item: OutboxItem, error: str, retry_after: float | None, permanent: bool,
        *, in_doubt: bool = False,
    ) -> DispatchStats:
        now = self.clock.now()
        async with self.db.transaction() as session:
            store = OutboxStore(session, now)
            if permanent or item.attempts >= self.settings.outbox_max_attempts:
                await store.mark_dead(item.id, error)
                dead = True
            else:
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
                await store.mark_retry(
                    item.id, now + dt.timedelta(seconds=delay), error,
                    in_doubt=(item.attempted_at or now) if in_doubt else None,
                )
                dead = False
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
        """Deliver everything due now, waiting for retries and paced messages due within
        `max_wait` seconds."""
        total = DispatchStats()
        deadline = time.monotonic() + max_wait
        while True:
            stats = await self.run_once()
            total += stats
            if stats.sent or stats.dead or stats.dropped or stats.fed:
                continue
            if not await self._sleep_until_next(deadline):
                return total

    async def _next_due(self) -> float | None:
        """Seconds until the first message of a line is next due (None: nothing waits)."""
        async with self.db.read() as session:
            due = await OutboxStore(session, self.clock.now()).next_due(self._open_platforms())
        return None if due is None else (due - self.clock.now()).total_seconds()

    async def _sleep_until_next(self, deadline: float) -> bool:
        """Sleep until the next pending message is due, if that is before the deadline."""
        wait = await self._next_due()
        if wait is None:
            return False
        if wait <= 0:
            return True
        if time.monotonic() + wait > deadline:
            return False
        await asyncio.sleep(wait)
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then hand back what is still in hand.

        Lines are claimed shortly before their first message comes due (`AHEAD`), at most
        every `CLAIM_EVERY` seconds, up to `outbox_concurrency` deliveries under way at once
        and as many waiting for their time; finished ones are recorded together. Between
        rounds it sleeps until a delivery finishes, a line it paced is about to come due, it
        is poked, or the poll interval passes.
        """
        poll = self.settings.outbox_poll_interval
        fed_at = claimed_at = -poll
        full = False
        while not stop.is_set():
            poked = self.wakeup.is_set()
            self.wakeup.clear()  # before polling, so a poke during the poll is not lost
            self.landed.clear()
            now = time.monotonic()
            try:
                self._record_aside()
                await self._renew()
                polled = now - fed_at >= poll
                if polled:  # a poke means messages were queued: a claim takes them
                    fed_at = now
                    await self._feed()
                    # A line due before the next poll (a retry, a peer's Retry-After, one
                    # another replica paced) wakes this one in time.
                    if (wait := await self._next_due()) is not None and wait < poll:
                        heapq.heappush(self.due_hints, now + max(0.0, wait))
                room = 2 * self.capacity - len(self.flights)
                soon = bool(self.due_hints) and self.due_hints[0] <= now + AHEAD
                if room > 0 and (poked or polled or full or soon) and (
                        poked or now - claimed_at >= CLAIM_EVERY):
                    claimed_at = now
                    while self.due_hints and self.due_hints[0] <= now + AHEAD:
                        heapq.heappop(self.due_hints)
                    items = await self._claim(room, ahead=AHEAD)
                    full = len(items) == room
                    self._launch(items)
            except Exception as exc:  # database down: keep going, nothing is lost
                log.warning("outbox dispatcher: %s; retrying", type(exc).__name__)
                await asyncio.sleep(min(5.0, poll * 4))
                continue
            await self._idle(fed_at + poll, claimed_at + CLAIM_EVERY, full)
        await self._hand_back()

    def _record_aside(self) -> None:
        """Record finished deliveries in a task of its own, so claims go on meanwhile (a
        line's next message is claimable only once its last is recorded, so nothing is
        taken early)."""
        if self.recording is not None and self.recording.done():
            if not self.recording.cancelled() and (error := self.recording.exception()):
                if not self.recording_failed:
                    log.warning("outbox dispatcher: %s while recording deliveries; they are "
                                "kept and recorded once the database answers",
                                type(error).__name__)
                self.recording_failed = True
            elif self.recording_failed and not self.recording.cancelled():
                log.warning("outbox dispatcher: deliveries recorded after the database "
                            "came back")
                self.recording_failed = False
            self.recording = None
        if self.recording is None and self.outcomes:
            self.recording = asyncio.create_task(self._record(), name="outbox record")

    async def _idle(self, poll_at: float, claim_at: float, full: bool) -> None:
        """Sleep until a delivery lands, a paced line is about to come due, a poke, or the
        next poll (`poll_at`); claims wait for `claim_at`."""
        now = time.monotonic()
        until = poll_at
        if self.due_hints:
            until = min(until, max(self.due_hints[0] - AHEAD, claim_at))
        if full and len(self.flights) < 2 * self.capacity:
            until = min(until, claim_at)
        if self.outcomes:
            until = min(until, now + BATCH_WINDOW)
        timeout = max(0.005, until - now)
        waits = [asyncio.create_task(self.wakeup.wait()), asyncio.create_task(self.landed.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if self.wakeup.is_set() and (rest := claim_at - time.monotonic()) > 0:
            # Pokes coming faster than claims (one per command answered, say) are taken
            # together: each would otherwise cost a feed, a look at the next due time and
            # a claim, on the process that also answers the requests.
            await asyncio.sleep(rest)
        if self.landed.is_set() and not self.wakeup.is_set():
            await asyncio.sleep(BATCH_WINDOW)  # gather the deliveries landing together

    async def _hand_back(self) -> None:
        """Stopping: let deliveries under way finish for a moment, record them, and hand
        back the ones still out, due again at once (in doubt: they may have arrived); the
        ones claimed ahead and not started go back as they were."""
        waiting = [f.item.id for f in self.flights.values() if not f.started]
        for flight in self.flights.values():
            if not flight.started:
                flight.task.cancel()
        if started := [f.task for f in self.flights.values() if f.started]:
            await asyncio.wait(started, timeout=HAND_BACK_GRACE)
        if self.recording is not None:
            with contextlib.suppress(Exception):
                await self.recording
        out = [f.item.id for f in self.flights.values() if f.item.id not in waiting]
        for flight in list(self.flights.values()):
            flight.task.cancel()
        try:
            await self._record()
            if waiting or out:
                async with self.db.transaction() as session:
                    store = OutboxStore(session, self.clock.now())
                    await store.release(waiting, self.worker)
                    await store.hand_back(out, self.worker)
            if out:
                log.info("outbox: handed back %s message(s) in flight", len(out))
        except Exception as exc:
            log.warning("outbox: could not record or hand back deliveries on stopping (%s); "
                        "their leases run out and another dispatcher takes them",
                        type(exc).__name__)

"""What operators do with the outbox: see its state, requeue dead letters; and the record of
inbound platform events already handled (so a platform's retry runs once)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bot.domain import DEAD_LETTER_PREFIX, OutboxStatus
from bot.services.alerting import INTERNAL
from bot.services.base import Invalid, Service, Tx
from storage.outbox import OutboxItem


@dataclass(frozen=True, slots=True)
class OutboxReport:
    """Counts by state, the messages listed, and deliveries held for the operator."""

    counts: dict[str, int]
    items: list[OutboxItem]
    held: dict[str, tuple[str, int]]  # platform → (reason, messages waiting)
    # Claimed reminders not in the outbox: "pending" (to be queued by the dispatcher) and
    # "unsent" (nobody to send to).
    reminders: dict[str, int] = field(default_factory=dict)

    @property
    def reminder_lines(self) -> list[str]:
        lines = []
        if pending := self.reminders.get("pending", 0):
            lines.append(f"{pending} claimed reminder(s) waiting to be queued by the "
                         "dispatcher")
        if unsent := self.reminders.get("unsent", 0):
            lines.append(f"{unsent} claimed reminder(s) not sent: the organization had no "
                         "Main or Administrative contact to send to")
        return lines

    @property
    def held_lines(self) -> list[str]:
        return [f"{platform} delivery held ({waiting} waiting): {reason}"
                for platform, (reason, waiting) in sorted(self.held.items())]


class OutboxAdmin(Service):
    """The outbox as the operator sees it (`subdesk outbox`, `/readyz`)."""

    async def report(self, show: OutboxStatus = OutboxStatus.DEAD, limit: int = 50
                     ) -> OutboxReport:
        async with self.read() as tx:
            return OutboxReport(await tx.outbox.counts(), await tx.outbox.items(show, limit),
                                await tx.outbox.held(), await tx.reminder_queue.counts())

    async def held(self) -> dict[str, str]:
        """Deliveries waiting for the operator to fix the configuration: a line for each
        platform held."""
        async with self.read() as tx:
            held = await tx.outbox.held()
        return {platform: OutboxReport({}, [], {platform: state}).held_lines[0]
                for platform, state in sorted(held.items())}

    async def retry(self, item_id: int) -> None:
        """Queue a dead (or waiting) message again with fresh attempts."""
        if not 0 < item_id < 2**63:  # ids are positive 64-bit integers
            raise Invalid(f"no unsent outbox message #{item_id}")
        async with self.tx() as tx:
            if not await tx.outbox.retry(item_id):
                raise Invalid(f"no unsent outbox message #{item_id}")
            await self._settle_dead_letters(tx)

    async def retry_dead(self, since: dt.datetime | None = None) -> int:
        """Queue every dead letter (queued at or after `since`) again; how many."""
        async with self.tx() as tx:
            requeued = await tx.outbox.retry_dead(since)
            await self._settle_dead_letters(tx)
            return requeued

    async def _settle_dead_letters(self, tx: Tx) -> None:
        """Resolve the dead-letter alert of each platform left without dead letters: its
        card says they were requeued, and the next dead letter raises it anew."""
        firing = await tx.alerts.firing_with_prefix(INTERNAL, DEAD_LETTER_PREFIX)
        if not firing:
            return
        dead = await tx.outbox.dead_platforms()
        for alert in firing:
            if alert.fingerprint.removeprefix(DEAD_LETTER_PREFIX) not in dead:
                await self.alerting.settle(tx, alert.fingerprint, "dead letters requeued")


class EventLog(Service):
    """Inbound platform events already handled: a retry with the same id runs once."""

    async def first_time(self, platform: str, event_id: str) -> bool:
        """Record the event; False when it was handled (or is being handled) already."""
        async with self.tx() as tx:
            return await tx.claims.claim_event(platform, event_id)

    async def forget(self, platform: str, event_id: str) -> None:
        """Forget an event whose handling failed, so the platform's retry is served."""
        async with self.tx() as tx:
            await tx.claims.release_event(platform, event_id)

"""Invoice reminders and subscription renewal notices (SPEC §4 Reminders), exactly once.

A sweep at `now` only claims: it inserts, in `reminder_claims`, the latest reached stage of
every unpaid invoice (and subscription) due one, with INSERT … ON CONFLICT DO NOTHING, and
that claim is the reminder's queue entry (`queue = 'pending'`). For invoices the claim is
set-based, one INSERT … SELECT per window of due dates (and group of timezones sharing a
cut-off day): the zone, weekend and DST rules give one cut-off day per organization
timezone (`latest_reached_day`) and SQL compares due dates with it, so the sweep's cost is
a statement over the open invoices in the reminder window.

The dispatcher then takes pending claims (`queue_claimed`) and queues one outbox row per
recipient, in one transaction with clearing the claim's mark; the rows' idempotency keys
derive from the claim. So a restart, a crash mid-sweep or mid-queueing, a clock jump, or
several replicas sweeping and dispatching at once all end with one reminder per (invoice,
stage) and one message per recipient; after downtime only the latest missed stage goes
out. A claim with nobody to send to stays in the queue as "unsent", counted by
`subdesk outbox status`.

A claim belongs to the (invoice, due date, stage): when the due date moves later, the stages
of the new schedule still ahead are sent. Outbox rows hold intent (which invoice, which
stage), rendered when delivered, so a reminder whose invoice was paid in between is dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain import expiring_fingerprint
from bot.presentation import billing_notices
from bot.reminder_stages import (
    INVOICE,
    RENEWAL,
    invoice_stage,
    latest_reached_day,
    renewal_stage_due,
    zone,
)
from bot.services.alerting import Event
from bot.services.base import Service, Tx
from bot.services.notify import person_drafts
from bot.wiring.scheduler import Job
from storage.billing import RenewalCandidate
from storage.bulk import OutboxDraft
from storage.reminder_queue import PENDING, QueuedClaim

log = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 300.0
# Claimed reminders turned into messages per transaction (the dispatcher's step).
QUEUE_BATCH = 1000


@dataclass
class SweepReport:
    """What one sweep did (and, from `run_once`, how many messages were queued)."""

    candidates: int = 0
    invoice_reminders: int = 0
    renewal_notices: int = 0
    messages: int = 0

    def __str__(self) -> str:
        return (f"{self.invoice_reminders} invoice reminder(s) and {self.renewal_notices} "
                f"renewal notice(s) claimed, {self.messages} message(s) queued "
                f"({self.candidates} invoice(s) looked at)")


@dataclass
class QueueReport:
    """What one step of the queue did: claims taken, messages queued, claims unsent."""

    claims: int = 0
    messages: int = 0
    unsent: int = 0


class ReminderService(Service):
    """Sweeps for due invoice reminders and renewal notices, and queues their messages."""

    async def sweep(self, now: dt.datetime | None = None) -> SweepReport:
        """Claim every reminder due at `now` (default: the clock); the dispatcher queues
        their messages (`queue_claimed`)."""
        now = (now or self.clock.now()).astimezone(dt.UTC)
        report = SweepReport()
        await self._invoices(now, report)
        await self._renewals(now, report)
        if report.invoice_reminders or report.renewal_notices:
            log.info("reminder sweep at %s: %s", now.isoformat(), report)
        return report

    async def run_once(self, now: dt.datetime | None = None) -> SweepReport:
        """One sweep, then every claimed reminder queued as messages (the CLI's run-once)."""
        report = await self.sweep(now)
        while (step := await self.queue_claimed()).claims:
            report.messages += step.messages
        return report

    # Invoices -----------------------------------------------------------------------------

    async def _invoices(self, now: dt.datetime, report: SweepReport) -> None:
        offsets = tuple(sorted(set(self.settings.reminder_offsets)))
        if not offsets:
            return
        stages = [(offset, invoice_stage(offset)) for offset in offsets]
        at = self.settings.reminder_time
        async with self.read() as tx:
            cutoffs = {tz: latest_reached_day(tz, at, now)
                       for tz in await tx.reminder_queue.timezones()}
            if not cutoffs:
                return
            # Nothing due after this has reached its first stage in any zone.
            due_until = max(cutoffs.values()) - dt.timedelta(days=offsets[0])
            dates = await tx.reminder_queue.open_due_dates(due_until)
        after: dt.date | None = None
        for last, count in _windows(dates, due_until, self.settings.reminder_batch):
            async with self.tx() as tx:  # a window commits whole or not at all
                report.invoice_reminders += await tx.reminder_queue.claim_invoices(
                    stages, cutoffs, after, last, now
                )
            report.candidates += count
            after = last

    # Renewals -----------------------------------------------------------------------------

    async def _renewals(self, now: dt.datetime, report: SweepReport) -> None:
        days = tuple(sorted(set(self.settings.renewal_offsets)))
        if not days:
            return
        at = self.settings.reminder_time
        async with self.tx() as tx:
            candidates = await tx.billing.renewal_candidates(
                ends_from=now.date() - dt.timedelta(days=1),
                ends_until=now.date() + dt.timedelta(days=days[-1] + 1),
            )
            wanted: dict[tuple[int, str], RenewalCandidate] = {}
            for c in candidates:
                due = renewal_stage_due(c.ends_on, days, c.timezone, at, now, c.claimed)
                if due is not None:
                    wanted[(c.org_id, due[0])] = c
            won = await tx.claims.claim_many(RENEWAL, sorted(wanted), at=now, queue=PENDING)
            for org_id, stage in sorted(won):  # the staff's alert goes with the first notice
                c = wanted[(org_id, stage)]
                days_left = (c.ends_on - now.astimezone(zone(c.timezone)).date()).days
                await self._expiring(tx, c, days_left)
        report.renewal_notices += len(won)

    async def _expiring(self, tx: Tx, c: RenewalCandidate, days_left: int) -> None:
        """The internal "subscription expiring" alert for the vendor's staff, raised with the
        first renewal notice (a later notice while it fires adds nothing) and resolved when
        the organization renews (its end date moves)."""
        org = await tx.directory.org(c.org_id)
        if org is None:
            return
        ends = c.ends_on.isoformat()
        await self.alerting.fire(tx, Event(
            expiring_fingerprint(org.key, c.ends_on), "firing", "warning",
            f"{org.name}'s subscription ends on {ends}",
            f"The {org.level.value} subscription of {org.name} ({org.key}) ends on {ends}, "
            f"in {days_left} day(s); the Main Contact has been sent a renewal notice. An order "
            "form with the new end date resolves this alert.",
            org_id=org.id,
        ))

    # The queue ----------------------------------------------------------------------------

    async def queue_claimed(self) -> QueueReport:
        """Turn a batch of claimed reminders into outbox rows, one per recipient: the Main
        and Administrative contacts of the invoice's organization (the Main Contact for a
        renewal notice), each by DM on every linked account, else by email (one statement
        on PostgreSQL). The rows and the claims' mark change in one transaction; keys
        derive from the claim, so a retry after a crash queues nothing twice. The
        dispatcher calls this before each batch."""
        async with self.read() as tx:
            if not await tx.reminder_queue.has_pending():
                return QueueReport()
        report = QueueReport()
        async with self.tx() as tx:
            entries = await tx.reminder_queue.take(
                min(self.settings.reminder_batch, QUEUE_BATCH),
                with_administrative=[k for k, main_only in _AUDIENCE.items() if not main_only],
            )
            if not entries:
                return report
            notices: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
            queued: list[int] = []
            unsent: list[int] = []
            for entry in entries:
                payload = _intent(entry)
                if (payload is None or entry.org_id is None or not entry.reachable
                        or entry.kind not in _AUDIENCE):
                    unsent.append(entry.id)
                    continue
                key = f"reminder:{entry.kind}:{entry.subject_id}:{entry.stage}"
                notices.setdefault(entry.kind, []).append((key, entry.org_id, payload))
                queued.append(entry.id)
            for kind, batch in notices.items():
                report.messages += await _queue(tx, batch, main_only=_AUDIENCE[kind])
            await tx.reminder_queue.settle(queued, unsent)
        report.claims, report.unsent = len(entries), len(unsent)
        if unsent:
            log.warning("%s claimed reminder(s) had nobody to send to (no Main or "
                        "Administrative contact); `subdesk outbox status` counts them",
                        len(unsent))
        return report

    async def queue_counts(self) -> dict[str, int]:
        """Claimed reminders waiting to be queued ("pending") and with nobody to send to
        ("unsent")."""
        async with self.read() as tx:
            return await tx.reminder_queue.counts()


# Who gets each kind of reminder: True for the Main Contact only, False for the Main and
# Administrative contacts.
_AUDIENCE = {INVOICE: False, RENEWAL: True}




async def _queue(
    tx: Tx, notices: Sequence[tuple[str, int, dict[str, Any]]], *, main_only: bool
) -> int:
    """Queue (key, organization id, payload) notices to each organization's Main (and
    unless `main_only`, Administrative) contacts: in one statement where the engine can,
    else person by person with the shared `person_drafts` rule. Returns the rows queued."""
    queued = await tx.outbox.fan_out_to_billing_contacts(notices, main_only=main_only)
    if queued is not None:
        return queued
    recipients = await tx.billing.billing_recipients(
        sorted({org_id for _, org_id, _ in notices}), main_only=main_only
    )
    drafts: list[OutboxDraft] = []
    for key, org_id, payload in notices:
        for person in recipients.get(org_id, []):
            drafts.extend(person_drafts(person.name, person.email, person.accounts, key,
                                        payload))
    return await tx.outbox.enqueue_many(drafts)


def _windows(
    dates: Sequence[tuple[dt.date, int]], due_until: dt.date, size: int
) -> list[tuple[dt.date, int]]:
    """Consecutive due dates cut into windows of about `size` open invoices, as (last due
    date, invoices): each window runs from the day after the previous one's last date and
    the last one to `due_until`, so together they cover every date up to it (also one that
    gained an invoice since it was counted). A date with more than `size` invoices is one
    window of its own."""
    windows: list[tuple[dt.date, int]] = []
    count = 0
    for day, n in dates:
        count += n
        if count >= size:
            windows.append((day, count))
            count = 0
    if count or not windows:
        windows.append((due_until, count))
    else:
        windows[-1] = (due_until, windows[-1][1])
    return windows


def _intent(entry: QueuedClaim) -> dict[str, Any] | None:
    """The intent payload a claimed reminder stands for; None when it cannot be read."""
    # "In N days" counts from the day it was claimed, in the organization's timezone.
    today = entry.claimed_at.astimezone(zone(entry.timezone)).date()
    try:
        if entry.kind == INVOICE:
            day, sep, _ = entry.stage.rpartition(":")
            due_on = dt.date.fromisoformat(day) if sep else entry.due_on
            if due_on is None:
                return None
            return billing_notices.invoice_reminder_intent(
                entry.subject_id, due_on, (today - due_on).days
            )
        if entry.kind == RENEWAL:
            ends_on = dt.date.fromisoformat(entry.stage.partition(":")[0])
            return billing_notices.renewal_notice_intent(
                entry.subject_id, ends_on, (ends_on - today).days
            )
    except ValueError:
        return None
    return None


def reminder_job(reminders: ReminderService) -> Job:
    """The scheduler job that sweeps reminders every few minutes."""
    return Job("reminders", reminders.sweep, SWEEP_EVERY_SECONDS)

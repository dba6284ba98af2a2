"""Invoice reminders and subscription renewal notices (SPEC §4 Reminders), exactly once.

A sweep at `now` selects, with indexed SQL, only unpaid invoices whose reminder window may
have opened, works out each one's latest reached stage, and claims it in `reminder_claims`
(INSERT … ON CONFLICT DO NOTHING). Only the claims this sweep wins get outbox rows, whose
idempotency keys derive from the claim, in the same transaction. So a restart, a crash
mid-sweep (a batch commits whole or not at all), a clock jump, or several replicas sweeping
at once all end with one reminder per (invoice, stage); after downtime only the latest missed
stage goes out.

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
from zoneinfo import ZoneInfo

from bot.domain import expiring_fingerprint
from bot.presentation import billing_notices
from bot.reminder_stages import (
    INVOICE,
    RENEWAL,
    invoice_stage,
    invoice_stage_due,
    renewal_stage_due,
)
from bot.services.alerting import Event
from bot.services.base import Service, Tx
from bot.services.notify import person_drafts
from bot.wiring.scheduler import Job
from storage.billing import ReminderCandidate, RenewalCandidate
from storage.bulk import OutboxDraft

log = logging.getLogger(__name__)

SWEEP_EVERY_SECONDS = 300.0


@dataclass
class SweepReport:
    """What one sweep did."""

    candidates: int = 0
    invoice_reminders: int = 0
    renewal_notices: int = 0
    messages: int = 0

    def __str__(self) -> str:
        return (f"{self.invoice_reminders} invoice reminder(s) and {self.renewal_notices} "
                f"renewal notice(s) claimed, {self.messages} message(s) queued "
                f"({self.candidates} invoice(s) looked at)")


class ReminderService(Service):
    """Sweeps for due invoice reminders and renewal notices."""

    async def sweep(self, now: dt.datetime | None = None) -> SweepReport:
        """Claim and queue every reminder due at `now` (default: the clock)."""
        now = (now or self.clock.now()).astimezone(dt.UTC)
        report = SweepReport()
        await self._invoices(now, report)
        await self._renewals(now, report)
        if report.invoice_reminders or report.renewal_notices:
            log.info("reminder sweep at %s: %s", now.isoformat(), report)
        return report

    # Invoices -----------------------------------------------------------------------------

    async def _invoices(self, now: dt.datetime, report: SweepReport) -> None:
        offsets = tuple(sorted(set(self.settings.reminder_offsets)))
        if not offsets:
            return
        # No zone is more than a day ahead of UTC, so nothing due later can have a stage yet.
        due_until = now.date() + dt.timedelta(days=1 - offsets[0])
        final = invoice_stage(offsets[-1])  # claimed as "<due date>:due+30"
        after: tuple[dt.date, int] | None = None
        limit = self.settings.reminder_batch
        while True:
            async with self.tx() as tx:
                batch = await tx.billing.reminder_candidates(
                    due_until=due_until, final_stage=final, after=after, limit=limit
                )
                if not batch:
                    return
                after = (batch[-1].due_on, batch[-1].invoice_id)
                report.candidates += len(batch)
                await self._invoice_batch(tx, now, offsets, batch, report)
            if len(batch) < limit:
                return

    async def _invoice_batch(
        self,
        tx: Tx,
        now: dt.datetime,
        offsets: tuple[int, ...],
        batch: Sequence[ReminderCandidate],
        report: SweepReport,
    ) -> None:
        at = self.settings.reminder_time
        wanted: dict[tuple[int, str], ReminderCandidate] = {}
        for c in batch:
            stage = invoice_stage_due(c.due_on, offsets, c.timezone, at, now, c.claimed)
            if stage is not None:
                wanted[(c.invoice_id, stage)] = c
        won = await tx.claims.claim_many(INVOICE, sorted(wanted), at=now)
        if not won:
            return
        report.invoice_reminders += len(won)
        notices: list[tuple[str, int, dict[str, Any]]] = []
        today: dict[str, dt.date] = {}
        for invoice_id, stage in sorted(won):
            c = wanted[(invoice_id, stage)]
            if c.timezone not in today:
                today[c.timezone] = _local_day(now, c.timezone)
            payload = billing_notices.invoice_reminder_intent(
                invoice_id, c.due_on, (today[c.timezone] - c.due_on).days
            )
            notices.append((f"reminder:{INVOICE}:{invoice_id}:{stage}", c.org_id, payload))
        report.messages += await _queue(tx, notices, main_only=False)

    # Renewals -----------------------------------------------------------------------------

    async def _renewals(self, now: dt.datetime, report: SweepReport) -> None:
        days = tuple(sorted(set(self.settings.renewal_offsets)))
        if not days:
            return
        async with self.tx() as tx:
            candidates = await tx.billing.renewal_candidates(
                ends_from=now.date() - dt.timedelta(days=1),
                ends_until=now.date() + dt.timedelta(days=days[-1] + 1),
            )
            await self._renewal_batch(tx, now, days, candidates, report)

    async def _renewal_batch(
        self,
        tx: Tx,
        now: dt.datetime,
        days: tuple[int, ...],
        candidates: Sequence[RenewalCandidate],
        report: SweepReport,
    ) -> None:
        at = self.settings.reminder_time
        wanted: dict[tuple[int, str], tuple[RenewalCandidate, int]] = {}
        for c in candidates:
            due = renewal_stage_due(c.ends_on, days, c.timezone, at, now, c.claimed)
            if due is not None:
                wanted[(c.org_id, due[0])] = (c, due[1])
        won = await tx.claims.claim_many(RENEWAL, sorted(wanted), at=now)
        if not won:
            return
        report.renewal_notices += len(won)
        notices: list[tuple[str, int, dict[str, Any]]] = []
        for org_id, stage in sorted(won):
            c, days_before = wanted[(org_id, stage)]
            days_left = (c.ends_on - _local_day(now, c.timezone)).days
            payload = billing_notices.renewal_notice_intent(org_id, c.ends_on, days_left)
            key = f"reminder:{RENEWAL}:{org_id}:{c.ends_on.isoformat()}:{days_before}"
            notices.append((key, org_id, payload))
            await self._expiring(tx, c, days_left)
        report.messages += await _queue(tx, notices, main_only=True)

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


async def _queue(
    tx: Tx, notices: Sequence[tuple[str, int, dict[str, Any]]], *, main_only: bool
) -> int:
    """Queue (key, organization id, payload) notices to each organization's Main (and unless
    `main_only`, Administrative) contacts: in one statement where the engine can, else
    person by person with the shared `person_drafts` rule."""
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


def _local_day(now: dt.datetime, timezone: str) -> dt.date:
    """Today's date in the organization's timezone: what "in N days" is counted from."""
    return now.astimezone(ZoneInfo(timezone)).date()


def reminder_job(reminders: ReminderService) -> Job:
    """The scheduler job that sweeps reminders every few minutes."""
    return Job("reminders", reminders.sweep, SWEEP_EVERY_SECONDS)

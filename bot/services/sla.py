"""First-response SLA: due times, pauses, and the sweep that posts "at risk" and "breached".

The sweep is safe to run any number of times on any number of replicas: each (ticket,
stage) alert is guarded by a claim in the database (`ClaimStore`, kind "sla"), taken in the
same transaction that queues the alert, so it is posted exactly once across restarts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from bot.domain import ACTIVE_STATUSES, Level, Severity, Ticket, TicketStatus
from bot.presentation.ticket_cards import sla_alert
from bot.services.base import Service
from bot.wiring.config import Settings
from bot.wiring.scheduler import Job

log = logging.getLogger(__name__)

AT_RISK = "at_risk"
BREACHED = "breached"
CLAIM_KIND = "sla"
SWEEP_BATCH = 500


def first_response_due(
    settings: Settings, level: Level, severity: Severity, opened_at: dt.datetime
) -> dt.datetime:
    return opened_at + settings.sla_target(level, severity)


def warning_at(settings: Settings, level: Level, ticket: Ticket) -> dt.datetime | None:
    """When the ticket becomes "at risk": `sla_warning_ratio` of its target has elapsed."""
    if ticket.first_response_due_at is None:
        return None
    target = settings.sla_target(level, ticket.severity)
    return ticket.first_response_due_at - target * (1 - settings.sla_warning_ratio)


def stage_at(settings: Settings, level: Level, ticket: Ticket, now: dt.datetime) -> str | None:
    """The SLA stage a ticket has reached at `now`: None, "at_risk" or "breached"."""
    if not ticket.awaiting_first_response or ticket.first_response_due_at is None:
        return None
    if now >= ticket.first_response_due_at:
        return BREACHED
    warn = warning_at(settings, level, ticket)
    if warn is not None and now >= warn:
        return AT_RISK
    return None


def resized_due(
    settings: Settings, level: Level, ticket: Ticket, severity: Severity
) -> dt.datetime | None:
    """The due time after a severity change: the new target, keeping time already paused."""
    due = ticket.first_response_due_at
    if due is None or ticket.first_responded_at is not None:
        return due
    return due - settings.sla_target(level, ticket.severity) + settings.sla_target(
        level, severity
    )


def status_changes(ticket: Ticket, status: TicketStatus, now: dt.datetime) -> dict[str, Any]:
    """Column changes for a status change: `pending` pauses the first-response clock and
    leaving it pushes the due time by the time spent paused."""
    changes: dict[str, Any] = {"status": status}
    if status is TicketStatus.PENDING:
        if ticket.sla_paused_at is None:
            changes["sla_paused_at"] = now
    elif ticket.sla_paused_at is not None:
        changes["sla_paused_at"] = None
        if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
            changes["first_response_due_at"] = ticket.first_response_due_at + (
                now - ticket.sla_paused_at
            )
    if status is TicketStatus.SOLVED:
        changes["solved_at"] = now
    elif status is TicketStatus.CLOSED:
        changes["closed_at"] = now
    if status in ACTIVE_STATUSES:
        changes["solved_at"] = None
        changes["closed_at"] = None
    return changes


@dataclass(frozen=True, slots=True)
class SweepResult:
    at_risk: int = 0
    breached: int = 0


class SlaService(Service):
    """Sweeps for first-response clocks at risk or breached."""

    def horizon(self) -> dt.timedelta:
        """How far ahead of its due time a ticket can turn "at risk" (the longest lead)."""
        longest = max(
            (
                self.settings.sla_target(level, severity)
                for level in Level
                for severity in Severity
            ),
            default=dt.timedelta(0),
        )
        return longest * (1 - self.settings.sla_warning_ratio)

    async def sweep(self) -> SweepResult:
        """Claim and queue every due "at risk" and "breached" alert.

        After downtime a ticket that already breached gets only the breach alert; its
        "at risk" stage is claimed silently, never posted late.
        """
        at_risk = breached = 0
        now = self.clock.now()
        after: tuple[dt.datetime, int] | None = None
        while True:
            async with self.tx() as tx:
                candidates = await tx.tickets.sla_candidates(
                    now + self.horizon(), SWEEP_BATCH, after
                )
                due = [
                    (c, stage) for c in candidates
                    if (stage := stage_at(self.settings, c.level, c.ticket, now)) is not None
                ]
                # A breached ticket's "at risk" stage is claimed with it, so it never posts late.
                claims = {(c.ticket.id, stage) for c, stage in due} | {
                    (c.ticket.id, AT_RISK) for c, stage in due if stage == BREACHED
                }
                won = await tx.claims.claim_many(CLAIM_KIND, sorted(claims))
                for c, stage in due:
                    if (c.ticket.id, stage) not in won:
                        continue
                    key = f"ticket:{c.ticket.id}:sla:{stage}"
                    await self.notifier.to_triage(
                        tx, self.settings.triage_channels, key, sla_alert(c, stage, now)
                    )
                    if stage == BREACHED:
                        breached += 1
                    else:
                        at_risk += 1
            if len(candidates) < SWEEP_BATCH:
                break
            last = candidates[-1].ticket
            assert last.first_response_due_at is not None
            after = (last.first_response_due_at, last.id)
        if at_risk or breached:
            log.info("SLA sweep: %s at risk, %s breached", at_risk, breached)
        return SweepResult(at_risk, breached)


def sla_job(sla: SlaService, every_seconds: float = 60.0) -> Job:
    """The scheduler job that runs the SLA sweep."""
    return Job("sla", sla.sweep, every_seconds)

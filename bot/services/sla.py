"""Response SLAs in business time: due times, pauses, and the sweep that posts "at risk" and
"breached".

A ticket has at most one open response target: the first response, then, after it, one
"next response" per customer comment that asks for an answer (a new cycle, numbered by
`response_cycle`), met by the engineer's next public reply. Time `pending` on the customer
does not count; the target resumes with the covered time it had left.

The sweep is safe to run any number of times on any number of replicas: each (ticket,
stage) alert is guarded by a claim in the database (`ClaimStore`, kind "sla"), taken in the
same transaction that raises the alert, so it is posted exactly once across restarts. The
alerts take the one alert path (`sla-risk:ticket:1042:first-response`, `sla-breach:…`):
one message each in the triage channels, resolved in place when the response is given or
the ticket is solved or closed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from bot.business_time import Schedule, describe, hours_and_minutes
from bot.domain import (
    ACTIVE_STATUSES,
    Organization,
    Severity,
    Ticket,
    TicketStatus,
    sla_fingerprint,
)
from bot.presentation.ticket_cards import sla_alert_text, target_kind, zone
from bot.services.alerting import Event
from bot.services.base import Service
from bot.wiring.config import Settings
from bot.wiring.scheduler import Job

log = logging.getLogger(__name__)

AT_RISK = "at_risk"
BREACHED = "breached"
CLAIM_KIND = "sla"
SWEEP_BATCH = 500


def schedule_for(settings: Settings, org: Organization, severity: Severity) -> Schedule:
    """The hours a ticket's clock runs: the level's coverage for the severity, in the
    organization's timezone, minus its country's public holidays."""
    return Schedule(org.timezone, settings.sla_coverage(org.level, severity), org.country)


def stage_name(stage: str, cycle: int) -> str:
    """The claim stage of a target cycle: `at_risk` for the first response, `next2:at_risk`
    for the second next response."""
    return stage if cycle == 0 else f"next{cycle}:{stage}"


def target_length(settings: Settings, org: Organization, severity: Severity,
                  cycle: int) -> dt.timedelta:
    """Covered time allowed for a response: first-response target for cycle 0, then the
    next-response target."""
    if cycle == 0:
        return settings.sla_target(org.level, severity)
    return settings.sla_next_target(org.level, severity)


@dataclass(frozen=True, slots=True)
class Target:
    """A response target as the contract words it, and when it falls due."""

    due: dt.datetime
    warn: dt.datetime
    length: dt.timedelta
    schedule: Schedule

    @property
    def wording(self) -> str:
        """`4 business hours` or `2 hours, 24×7`."""
        return describe(self.length, self.schedule)


def response_target(
    settings: Settings, org: Organization, severity: Severity, start: dt.datetime,
    cycle: int = 0,
) -> Target:
    """The response target of a clock started at `start`: due once the level's target of
    covered time has passed, "at risk" once `sla_warning_ratio` of it has."""
    schedule = schedule_for(settings, org, severity)
    length = target_length(settings, org, severity, cycle)
    return Target(
        schedule.add(start, length),
        schedule.add(start, length * settings.sla_warning_ratio),
        length,
        schedule,
    )


def _local(at: dt.datetime, tz: str) -> str:
    """`Mon 30 Nov 11:00 CET` in the IANA zone `tz`."""
    local = at.astimezone(zone(tz))
    return f"{local:%a} {local.day} {local:%b %H:%M} {local.tzname() or 'UTC'}"


def promise(settings: Settings, org: Organization, ticket: Ticket) -> str | None:
    """The open target as the contract words it, in the organization's timezone:
    `first response by Mon 30 Nov 11:00 CET — 4 business hours, Standard 9×5`."""
    due = ticket.response_due_at
    if not ticket.clock_set or due is None:
        return None
    length = target_length(settings, org, ticket.severity, ticket.response_cycle)
    wording = describe(length, schedule_for(settings, org, ticket.severity), org.level.value)
    return f"{target_kind(ticket)} by {_local(due, org.timezone)} — {wording}"


def clock_line(settings: Settings, org: Organization, ticket: Ticket, now: dt.datetime) -> str:
    """What is due next and how much covered time is left, for `/ticket show`."""
    left = business_left(schedule_for(settings, org, ticket.severity), ticket, now)
    due = ticket.response_due_at
    if left is None or due is None:
        return "responded, nothing due" if ticket.first_responded_at else "nothing due"
    head = f"{target_kind(ticket)} by {_local(due, org.timezone)}"
    if ticket.sla_paused_at is not None:
        return f"{head}, paused while pending ({hours_and_minutes(left)} left)"
    if left <= dt.timedelta(0):
        return f"{head}, overdue by {hours_and_minutes(left)} of covered time"
    return f"{head}, {hours_and_minutes(left)} of {_coverage(settings, org, ticket)} left"


def _coverage(settings: Settings, org: Organization, ticket: Ticket) -> str:
    always = schedule_for(settings, org, ticket.severity).always
    return "time (24×7)" if always else "business time"


def _due_column(ticket: Ticket) -> str:
    return "first_response_due_at" if ticket.first_responded_at is None else (
        "next_response_due_at")


def started(settings: Settings, org: Organization, ticket: Ticket,
            now: dt.datetime) -> dict[str, Any]:
    """Column changes when a customer's public comment asks for an answer: a new target
    cycle (a next response once the first was given), unless a target is already open."""
    if ticket.clock_set:
        return {}
    cycle = ticket.response_cycle + 1
    target = response_target(settings, org, ticket.severity, now, cycle)
    return {"response_cycle": cycle, _due_column(ticket): target.due, "sla_warn_at": target.warn}


def met(ticket: Ticket, now: dt.datetime) -> dict[str, Any]:
    """Column changes for an engineer's public reply: it meets the open target."""
    changes: dict[str, Any] = {"sla_warn_at": None, "next_response_due_at": None}
    if ticket.first_responded_at is None:
        changes["first_responded_at"] = now
    return changes


def stage_at(ticket: Ticket, now: dt.datetime) -> str | None:
    """The SLA stage a ticket's running target has reached at `now`: None, "at_risk" or
    "breached"."""
    due = ticket.response_due_at
    if not ticket.awaiting_response or due is None:
        return None
    if now >= due:
        return BREACHED
    if ticket.sla_warn_at is not None and now >= ticket.sla_warn_at:
        return AT_RISK
    return None


def business_left(schedule: Schedule, ticket: Ticket, now: dt.datetime) -> dt.timedelta | None:
    """Covered time left before the open target is due (negative once overdue); None when
    no target is open. A paused clock keeps what it had when it paused."""
    due = ticket.response_due_at
    if not ticket.clock_set or due is None:
        return None
    return schedule.between(ticket.sla_paused_at or now, due)


def resized(
    settings: Settings, org: Organization, ticket: Ticket, severity: Severity, now: dt.datetime
) -> dict[str, Any]:
    """Column changes for a severity change: an open target takes the new length, keeping
    the covered time already used."""
    due = ticket.response_due_at
    if not ticket.clock_set or due is None:
        return {}
    ref = ticket.sla_paused_at or now
    cycle = ticket.response_cycle
    used = target_length(settings, org, ticket.severity, cycle) - schedule_for(
        settings, org, ticket.severity).between(ref, due)
    schedule = schedule_for(settings, org, severity)
    length = target_length(settings, org, severity, cycle)
    return {
        _due_column(ticket): schedule.add(ref, length - used),
        "sla_warn_at": schedule.add(ref, length * settings.sla_warning_ratio - used),
    }


def status_changes(
    ticket: Ticket, status: TicketStatus, now: dt.datetime, schedule: Schedule
) -> dict[str, Any]:
    """Column changes for a status change: `pending` pauses the response clock, and leaving
    it resumes the clock with the covered time it had left when it paused; solving or
    closing ends any open target."""
    changes: dict[str, Any] = {"status": status}
    if status in (TicketStatus.SOLVED, TicketStatus.CLOSED):
        changes.update(sla_paused_at=None, sla_warn_at=None, next_response_due_at=None)
    elif status is TicketStatus.PENDING:
        if ticket.sla_paused_at is None:
            changes["sla_paused_at"] = now
    elif (paused := ticket.sla_paused_at) is not None:
        changes["sla_paused_at"] = None
        if ticket.clock_set:
            for column in (_due_column(ticket), "sla_warn_at"):
                at = getattr(ticket, column)
                if at is not None and at > paused:
                    changes[column] = schedule.add(now, schedule.between(paused, at))
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
                candidates = await tx.tickets.sla_candidates(SWEEP_BATCH, after)
                due = [
                    (c, stage) for c in candidates
                    if (stage := stage_at(c.ticket, now)) is not None
                ]
                # A breached target's "at risk" stage is claimed with it, so it never posts late.
                claims = {(c.ticket.id, stage_name(stage, c.ticket.response_cycle))
                          for c, stage in due} | {
                    (c.ticket.id, stage_name(AT_RISK, c.ticket.response_cycle))
                    for c, stage in due if stage == BREACHED
                }
                won = await tx.claims.claim_many(CLAIM_KIND, sorted(claims))
                for c, stage in due:
                    ticket = c.ticket
                    if (ticket.id, stage_name(stage, ticket.response_cycle)) not in won:
                        continue
                    title, body = sla_alert_text(c, stage, now)
                    await self.alerting.fire(tx, Event(
                        sla_fingerprint(ticket.id, stage == BREACHED, ticket.response_cycle),
                        "firing", "critical" if stage == BREACHED else "warning", title, body,
                        org_id=ticket.org_id, ticket_id=ticket.id,
                    ))
                    if stage == BREACHED:
                        breached += 1
                    else:
                        at_risk += 1
            if len(candidates) < SWEEP_BATCH:
                break
            last = candidates[-1].ticket
            assert last.sla_warn_at is not None
            after = (last.sla_warn_at, last.id)
        if at_risk or breached:
            log.info("SLA sweep: %s at risk, %s breached", at_risk, breached)
        return SweepResult(at_risk, breached)


def sla_job(sla: SlaService, every_seconds: float = 60.0) -> Job:
    """The scheduler job that runs the SLA sweep."""
    return Job("sla", sla.sweep, every_seconds)

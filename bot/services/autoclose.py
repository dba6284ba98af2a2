"""Auto-close: a ticket `pending` on the customer is reminded, then solved; a `solved` ticket
closes unless the customer comments (which reopens it).

Pending spells are counted in the organization's business days (its level's hours, minus
its country's public holidays); the close after solving in calendar days. Each step of each
spell is claimed (kind "autoclose") in the transaction that queues its messages, so it
happens once across restarts and replicas; after downtime a spell past its solve time is
solved without a late reminder.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from bot.business_time import Schedule
from bot.domain import Level, Ticket, TicketStatus
from bot.presentation.messages import command
from bot.presentation.ticket_cards import customer_update, triage_update, zone
from bot.services.base import Tx
from bot.services.sla import schedule_for, status_changes
from bot.services.tickets import TicketBase
from bot.wiring.scheduler import Job
from storage.tickets import OrgTicket

log = logging.getLogger(__name__)

CLAIM_KIND = "autoclose"
BATCH = 500


@dataclass(frozen=True, slots=True)
class AutoCloseResult:
    reminded: int = 0
    solved: int = 0
    closed: int = 0
    unreachable: int = 0  # due a reminder nobody could get: the support engineers were told


def _stamp(at: dt.datetime) -> int:
    return int(at.timestamp())


def _day(at: dt.datetime, schedule: Schedule) -> str:
    local = at.astimezone(zone(schedule.timezone))
    return f"{local:%a} {local.day} {local:%b}"


class AutoCloseService(TicketBase):
    """The sweep that reminds and solves idle pending tickets and closes solved ones."""

    def _calendar(self, item: OrgTicket) -> tuple[Schedule, dt.timedelta]:
        hours = self.settings.business_hours(item.level)
        return Schedule(item.timezone, hours, item.country), hours.day_length

    async def sweep(self) -> AutoCloseResult:
        """Claim and act on every due step: remind, solve, close."""
        now = self.clock.now()
        reminded = solved = closed = unreachable = 0
        # n business days hold at least n day-lengths of calendar time: a safe lower bound.
        shortest = min(self.settings.business_hours(level).day_length for level in Level)
        pending_cutoff = now - shortest * self.settings.pending_reminder_days
        after = 0
        while True:
            async with self.tx() as tx:
                batch = await tx.tickets.idle(TicketStatus.PENDING, pending_cutoff, BATCH, after)
                for item in batch:
                    step = await self._pending_step(tx, item, now)
                    reminded += step == "remind"
                    solved += step == "solve"
                    unreachable += step == "unreachable"
            if len(batch) < BATCH:
                break
            after = batch[-1].ticket.id
        close_cutoff = now - dt.timedelta(days=self.settings.solved_close_days)
        after = 0
        while True:
            async with self.tx() as tx:
                batch = await tx.tickets.idle(TicketStatus.SOLVED, close_cutoff, BATCH, after)
                for item in batch:
                    closed += await self._close(tx, item.ticket)
            if len(batch) < BATCH:
                break
            after = batch[-1].ticket.id
        if reminded or solved or closed or unreachable:
            log.info("Auto-close: %s reminded, %s solved, %s closed, %s with nobody to remind",
                     reminded, solved, closed, unreachable)
        return AutoCloseResult(reminded, solved, closed, unreachable)

    async def _pending_step(self, tx: Tx, item: OrgTicket, now: dt.datetime) -> str | None:
        ticket = item.ticket
        paused = ticket.sla_paused_at
        assert paused is not None
        schedule, day = self._calendar(item)
        remind_at = schedule.add(paused, day * self.settings.pending_reminder_days)
        solve_at = schedule.add(paused, day * self.settings.pending_solve_days)
        spell = _stamp(paused)
        if now < remind_at:
            return None
        fresh = await tx.tickets.get(ticket.id, lock=True)
        if fresh is None or fresh.status is not TicketStatus.PENDING or (
                fresh.sla_paused_at != paused):
            return None  # answered meanwhile: this spell is over
        ticket = fresh
        if now >= solve_at:
            won = await tx.claims.claim_many(
                CLAIM_KIND, [(ticket.id, f"remind:{spell}"), (ticket.id, f"solve:{spell}")])
            if (ticket.id, f"solve:{spell}") in won:
                await self._solve(tx, ticket)
                return "solve"
        else:
            won = await tx.claims.claim_many(CLAIM_KIND, [(ticket.id, f"remind:{spell}")])
            if won:
                told = await self._remind(tx, ticket, _day(solve_at, schedule))
                return "remind" if told else "unreachable"
        return None

    async def _remind(self, tx: Tx, ticket: Ticket, solve_day: str) -> int:
        """Remind the customers; with nobody to remind (whoever opened it is no longer a
        contact), tell the support engineers instead. The number of customers told."""
        days = self.settings.pending_reminder_days
        key = f"ticket:{ticket.id}:autoclose:remind:{_stamp(tx.now)}"
        told = await self._tell_customers(
            tx, ticket, key,
            customer_update(
                ticket, f"Ticket {ticket.ref} is waiting for your answer",
                f"We have been waiting {days} business days for your answer. Without one, "
                f"{ticket.ref} will be solved on {solve_day}. Answer with "
                f"{command('ticket comment', ticket.id, 'TEXT')}.",
            ),
        )
        if not told:
            await self._tell_triage(tx, f"{key}:triage", triage_update(
                ticket, f"Nobody can be reminded that {ticket.ref} waits for an answer",
                f"It has waited {days} business days for the customer, and whoever opened "
                f"it is no longer a contact of the organization. Without an answer it will "
                f"be solved on {solve_day}."), reach_someone=True)
        return told

    async def _solve(self, tx: Tx, ticket: Ticket) -> None:
        org = await tx.directory.org(ticket.org_id)
        assert org is not None
        before, ticket = ticket, await tx.tickets.update(ticket.id, **status_changes(
            ticket, TicketStatus.SOLVED, tx.now, schedule_for(self.settings, org,
                                                              ticket.severity)))
        days = self.settings.pending_solve_days
        await self._ask_rating(tx, ticket)
        await self._announce(
            tx, ticket, f"ticket:{ticket.id}:autoclose:solved:{_stamp(tx.now)}",
            f"{ticket.ref} was solved automatically after {days} business days pending",
            f"No answer came for {days} business days. A comment reopens it: "
            f"{command('ticket comment', ticket.id, 'TEXT')}",
            before=before,
            customer_headline=f"Ticket {ticket.ref} was solved: no answer for {days} "
                              "business days",
        )

    async def _close(self, tx: Tx, ticket: Ticket) -> int:
        solved = ticket.solved_at
        assert solved is not None
        fresh = await tx.tickets.get(ticket.id, lock=True)
        if fresh is None or fresh.status is not TicketStatus.SOLVED or fresh.solved_at != solved:
            return 0  # reopened meanwhile
        ticket = fresh
        won = await tx.claims.claim_many(CLAIM_KIND, [(ticket.id, f"close:{_stamp(solved)}")])
        if not won:
            return 0
        org = await tx.directory.org(ticket.org_id)
        assert org is not None
        before, ticket = ticket, await tx.tickets.update(ticket.id, **status_changes(
            ticket, TicketStatus.CLOSED, tx.now, schedule_for(self.settings, org,
                                                              ticket.severity)))
        days = self.settings.solved_close_days
        await self._announce(
            tx, ticket, f"ticket:{ticket.id}:autoclose:closed:{_stamp(tx.now)}",
            f"{ticket.ref} closed {days} days after it was solved",
            f"{command('ticket reopen', ticket.id)} brings it back.",
            before=before, customer_headline=f"Ticket {ticket.ref} is closed",
        )
        return 1


def autoclose_job(service: AutoCloseService, every_seconds: float = 300.0) -> Job:
    """The scheduler job that runs the auto-close sweep."""
    return Job("autoclose", service.sweep, every_seconds)

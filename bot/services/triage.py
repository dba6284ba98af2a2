"""Triage for support engineers: the queue, claim, status, severity, notes and replies.

Every public change is told to the opener (and, with sharing on, to following colleagues)
through the outbox; internal notes go to the triage channels only.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.business_time import Hours, Schedule
from bot.commands.invocation import IncomingFile
from bot.domain import (
    Actor,
    Attachment,
    Level,
    Severity,
    StaffMember,
    Ticket,
    TicketComment,
    TicketStatus,
)
from bot.policy import Permission, allows
from bot.presentation.ticket_cards import triage_update
from bot.services.base import Denied, Invalid, Tx
from bot.services.sla import business_left, met, resized, schedule_for, status_changes
from bot.services.tickets import TicketBase
from storage.tickets import QueueEntry, RunningClock

QUEUE_LIMIT = 25


@dataclass(frozen=True, slots=True)
class Queued:
    """A ticket in the triage queue, with the covered time its open target has left (None
    when no target is open)."""

    entry: QueueEntry
    left: dt.timedelta | None

_STATUS_WORDS = {
    TicketStatus.NEW: "new",
    TicketStatus.OPEN: "open",
    TicketStatus.PENDING: "pending (waiting for your answer)",
    TicketStatus.ON_HOLD: "on hold",
    TicketStatus.SOLVED: "solved",
    TicketStatus.CLOSED: "closed",
}


@dataclass(frozen=True, slots=True)
class Change:
    """A public change an engineer made, and how many customer contacts were told of it."""

    ticket: Ticket
    customers_told: int
    comment: TicketComment | None = None

    @property
    def reach_note(self) -> str:
        """What the engineer must know when the change reached no one ("" otherwise)."""
        if self.customers_told:
            return ""
        return (f" No customer contact can be reached for {self.ticket.ref}: whoever opened "
                "it is no longer a contact of the organization.")


def most_urgent(
    clocks: list[RunningClock], limit: int, now: dt.datetime,
    coverage: Callable[[Level, Severity], Hours | None],
) -> list[tuple[RunningClock, dt.timedelta]]:
    """The `limit` clocks with the least covered time left at `now` (then the soonest due,
    then the lowest id), with that time. `coverage` gives a level's hours for a severity
    (None: 24×7). Within one calendar and severity that order is the due time's, so their
    sorted runs are merged, working out the time left of each run's head only."""
    runs: dict[tuple[str, str | None, Level, Severity], list[RunningClock]] = {}
    for clock in sorted(clocks, key=lambda c: (c.due, c.ticket_id)):
        runs.setdefault((clock.timezone, clock.country, clock.level, clock.severity),
                        []).append(clock)
    schedules = {key: Schedule(key[0], coverage(key[2], key[3]), key[1]) for key in runs}

    def head(key: tuple[str, str | None, Level, Severity], at: int) -> tuple[Any, ...]:
        clock = runs[key][at]
        return (schedules[key].between(now, clock.due), clock.due, clock.ticket_id, at, key)

    heads = [head(key, 0) for key in runs]
    heapq.heapify(heads)
    ranked: list[tuple[RunningClock, dt.timedelta]] = []
    while heads and len(ranked) < limit:
        left, _, _, at, key = heapq.heappop(heads)
        ranked.append((runs[key][at], left))
        if at + 1 < len(runs[key]):
            heapq.heappush(heads, head(key, at + 1))
    return ranked


class TriageService(TicketBase):
    """Tickets as support engineers work them."""

    def _engineer(self, actor: Actor) -> StaffMember:
        if actor.staff is None or not allows(actor, Permission.TRIAGE):
            raise Denied("Triage is for support engineers.")
        return actor.staff

    async def _schedule(self, tx: Tx, ticket: Ticket) -> Schedule:
        org = await tx.directory.org(ticket.org_id)
        assert org is not None
        return schedule_for(self.settings, org, ticket.severity)

    async def queue(self, actor: Actor, limit: int = QUEUE_LIMIT) -> list[Queued]:
        """Active tickets: running response clocks by covered time left (business time in
        each organization's hours, or 24×7; then due time, then id), then every other
        active ticket, oldest first."""
        self._engineer(actor)
        now = self.clock.now()
        async with self.read() as tx:
            ranked = most_urgent(await tx.tickets.running_soonest(limit), limit, now,
                                 self.settings.sla_coverage)
            shown = {e.ticket.id: e for e in await tx.tickets.queue_entries(
                [clock.ticket_id for clock, _ in ranked])}
            rest = await tx.tickets.queue_rest(limit - len(ranked))
        queued = [Queued(shown[c.ticket_id], left) for c, left in ranked if c.ticket_id in shown]
        for e in rest:
            schedule = Schedule(e.timezone, self.settings.sla_coverage(e.level, e.ticket.severity),
                                e.country)
            queued.append(Queued(e, business_left(schedule, e.ticket, now)))
        return queued

    async def claim(self, actor: Actor, ticket_id: int) -> Change:
        """Assign the ticket to oneself; a new ticket becomes open."""
        staff = self._engineer(actor)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            if ticket.assignee_id == staff.id:
                raise Invalid(f"{ticket.ref} is already yours.")
            changes: dict[str, object] = {"assignee_id": staff.id}
            if ticket.status is TicketStatus.NEW:
                changes.update(status_changes(ticket, TicketStatus.OPEN, tx.now,
                                              await self._schedule(tx, ticket)))
            before, ticket = ticket, await tx.tickets.update(ticket.id, **changes)
            key = f"ticket:{ticket.id}:assigned:{staff.id}:{tx.now.isoformat()}"
            told = await self._announce(
                tx, ticket, key, f"{staff.name} claimed {ticket.ref}", before=before,
                customer_headline=f"{staff.name} is handling your ticket {ticket.ref}",
            )
            return Change(ticket, told)

    async def set_status(self, actor: Actor, ticket_id: int, status: TicketStatus) -> Change:
        """Change the status; `pending` pauses the first-response clock."""
        staff = self._engineer(actor)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            if ticket.status is status:
                raise Invalid(f"{ticket.ref} is already {status.value}.")
            before, ticket = ticket, await tx.tickets.update(ticket.id, **status_changes(
                ticket, status, tx.now, await self._schedule(tx, ticket)))
            if status is TicketStatus.SOLVED:
                await self._ask_rating(tx, ticket)
            key = f"ticket:{ticket.id}:status:{status.value}:{tx.now.isoformat()}"
            told = await self._announce(
                tx, ticket, key, f"{staff.name} set {ticket.ref} to {status.value}",
                before=before,
                customer_headline=f"Ticket {ticket.ref} is now {_STATUS_WORDS[status]}",
            )
            return Change(ticket, told)

    async def set_severity(self, actor: Actor, ticket_id: int, severity: Severity) -> Change:
        """Change the severity; a running first-response clock takes the new target."""
        staff = self._engineer(actor)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            if ticket.severity is severity:
                raise Invalid(f"{ticket.ref} is already {severity.value}.")
            org = await tx.directory.org(ticket.org_id)
            assert org is not None
            before, ticket = ticket, await tx.tickets.update(
                ticket.id, severity=severity,
                **resized(self.settings, org, ticket, severity, tx.now))
            key = f"ticket:{ticket.id}:severity:{severity.value}:{tx.now.isoformat()}"
            told = await self._announce(
                tx, ticket, key, f"{staff.name} set {ticket.ref} to {severity.value}",
                before=before, customer_headline=f"Ticket {ticket.ref} is now {severity.value}",
            )
            return Change(ticket, told)

    async def note(
        self, actor: Actor, ticket_id: int, text: str, *, files: Sequence[IncomingFile] = (),
        source_platform: str = "console",
    ) -> tuple[TicketComment, list[Attachment]]:
        """An internal note: stored, shown to staff, never sent to a customer."""
        change, stored = await self._comment(actor, ticket_id, text, files, source_platform,
                                             internal=True)
        assert change.comment is not None
        return change.comment, stored

    async def reply(
        self, actor: Actor, ticket_id: int, text: str, *, files: Sequence[IncomingFile] = (),
        source_platform: str = "console",
    ) -> Change:
        """A public reply: it meets the open response target (first or next)."""
        change, _ = await self._comment(actor, ticket_id, text, files, source_platform,
                                        internal=False)
        return change

    async def _comment(
        self, actor: Actor, ticket_id: int, text: str, files: Sequence[IncomingFile],
        platform: str, *, internal: bool,
    ) -> tuple[Change, list[Attachment]]:
        staff = self._engineer(actor)
        checked = self._check_files(files)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            comment = await tx.tickets.add_comment(
                ticket.id, body=text, internal=internal, source_platform=platform,
                author_staff_id=staff.id, author_name=staff.name,
            )
            stored = await self._store_files(tx, actor, ticket, checked, internal=internal,
                                             comment_id=comment.id)
            key = f"ticket:{ticket.id}:comment:{comment.id}"
            files_note = f"\n({len(stored)} file(s) attached)" if stored else ""
            if internal:
                ticket = await tx.tickets.update(ticket.id)
                await self._tell_triage(
                    tx, f"{key}:triage",
                    triage_update(ticket, f"{staff.name} added an internal note to {ticket.ref}",
                                  text + files_note, internal=True),
                )
                return Change(ticket, 0, comment), stored
            changes: dict[str, object] = met(ticket, tx.now)
            if ticket.status is TicketStatus.NEW:
                changes.update(status_changes(ticket, TicketStatus.OPEN, tx.now,
                                              await self._schedule(tx, ticket)))
            before, ticket = ticket, await tx.tickets.update(ticket.id, **changes)
            told = await self._announce(tx, ticket, key, f"{staff.name} replied on {ticket.ref}",
                                        text + files_note, before=before, answered_by=staff.name)
            return Change(ticket, told, comment), stored

"""Tickets for Technical Contacts (SPEC §1, §4): open, list, show, comment, close, reopen.

A ticket one may not see answers exactly like a missing one: the same single lookup, the
same text. Internal notes never reach a customer by any path.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.commands.invocation import IncomingFile
from bot.domain import (
    Actor,
    Attachment,
    Contact,
    ContactRole,
    Organization,
    Rating,
    Severity,
    Ticket,
    TicketComment,
    TicketStatus,
    sev1_fingerprint,
)
from bot.policy import (
    Permission,
    allows,
    may_change_ticket,
    may_comment_ticket,
    may_see_internal,
    may_view_ticket,
    sharing_for,
    visible_attachments,
    visible_comments,
)
from bot.presentation.messages import Message, command
from bot.presentation.ticket_cards import (
    card_facts,
    customer_update,
    rating_request,
    ticket_card,
    triage_update,
    zone,
)
from bot.services.alerting import Event
from bot.services.base import Denied, Invalid, NotFound, Service, Tx
from bot.services.notify import Queued
from bot.services.sla import (
    response_target,
    schedule_for,
    started,
    status_changes,
)

SUBJECT_MAX = 300
LIST_LIMIT = 20


def not_found(ticket_id: int) -> NotFound:
    """The one answer for a ticket that is missing or hidden from the asker."""
    return NotFound(f"There is no ticket #{ticket_id} you can see.")


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 1024 * 1024 else f"{size} bytes"


def clean_name(name: str) -> str:
    """A file name safe to store and show: no path, no control characters, bounded."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return (base or "attachment")[:255]


@dataclass(frozen=True, slots=True)
class TicketList:
    tickets: list[Ticket]
    org: Organization
    org_wide: bool
    include_closed: bool


@dataclass(frozen=True, slots=True)
class TicketView:
    """One ticket as its reader may see it (`staff` readers get internal notes, marked)."""

    ticket: Ticket
    org: Organization
    opener: str
    assignee: str | None
    comments: list[TicketComment]
    attachments: list[Attachment]
    staff: bool
    ratings: list[Rating] = field(default_factory=list)  # staff readers only


class TicketBase(Service):
    """Lookups, attachments and notifications shared by tickets and triage."""

    async def _visible(self, tx: Tx, actor: Actor, ticket_id: int, *, lock: bool = False
                       ) -> Ticket:
        ticket = await tx.tickets.get(ticket_id, lock=lock)
        if ticket is None or not may_view_ticket(
            actor,
            org_id=ticket.org_id,
            opener_id=ticket.opener_id,
            sharing=sharing_for(actor, ticket.org_id),
        ):
            raise not_found(ticket_id)
        return ticket

    def _check_files(self, files: Sequence[IncomingFile]) -> list[IncomingFile]:
        """Refuse the whole batch when one file is too big or of a type not allowed."""
        limit = self.settings.attachment_max_bytes
        allowed = {t.lower() for t in self.settings.attachment_types}
        checked: list[IncomingFile] = []
        for f in files:
            name = clean_name(f.name)
            kind = f.content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
            if len(f.content) > limit:
                raise Invalid(
                    f"{name} is {_megabytes(len(f.content))}; the limit is {_megabytes(limit)}. "
                    "Nothing was stored."
                )
            if kind not in allowed:
                raise Invalid(
                    f"{name} is {kind}, which is not accepted. Allowed: "
                    f"{', '.join(sorted(allowed))}. Nothing was stored."
                )
            checked.append(IncomingFile(name, kind, f.content))
        return checked

    async def _store_files(
        self,
        tx: Tx,
        actor: Actor,
        ticket: Ticket,
        files: Sequence[IncomingFile],
        *,
        internal: bool,
        comment_id: int | None,
    ) -> list[Attachment]:
        stored = []
        for f in files:
            stored.append(
                await tx.tickets.add_attachment(
                    ticket.id,
                    name=f.name,
                    content_type=f.content_type,
                    content=f.content,
                    storage_ref="db:sha256:" + hashlib.sha256(f.content).hexdigest(),
                    internal=internal,
                    comment_id=comment_id,
                    contact_id=actor.contact.id if actor.contact else None,
                    staff_id=actor.staff.id if actor.staff else None,
                )
            )
        return stored

    async def _audience(self, tx: Tx, ticket: Ticket) -> tuple[Organization, list[Contact]]:
        """Who hears public changes: the opener, and with sharing on the organization's
        contacts who follow the ticket and may still see it."""
        org = await tx.directory.org(ticket.org_id)
        assert org is not None
        contacts = await tx.directory.contacts(org.id)
        followers = set(await tx.tickets.followers(ticket.id)) if org.sharing else set()
        sole = len(contacts) == 1
        audience = []
        for c in contacts:
            if c.id != ticket.opener_id and c.id not in followers:
                continue
            as_actor = Actor(contact=c, org=org,
                             sole_contact=sole and ContactRole.MAIN in c.roles)
            if may_view_ticket(as_actor, org_id=org.id, opener_id=ticket.opener_id,
                               sharing=org.sharing):
                audience.append(c)
        return org, audience

    async def _tell_customers(
        self, tx: Tx, ticket: Ticket, key: str, message: Message, *, skip: int | None = None
    ) -> int:
        """Queue a public change for the opener and followers (never the author); the number
        of people told, so a change that reaches no one is never reported as delivered."""
        _, audience = await self._audience(tx, ticket)
        sends = [(c, f"{key}:contact:{c.id}", message) for c in audience if c.id != skip]
        await self.notifier.to_contacts(tx, sends)
        return len(sends)

    async def _tell_triage(
        self, tx: Tx, key: str, message: Queued, *, reach_someone: bool = False
    ) -> None:
        """Post to the triage channels; with none configured and `reach_someone`, tell
        every support engineer directly so a new ticket is never seen by nobody."""
        if reach_someone:
            await self.notifier.to_triage(tx, self.settings.triage_channels, key, message)
        else:
            await self.notifier.to_channels(tx, self.settings.triage_channels, key, message)

    async def _announce(
        self, tx: Tx, ticket: Ticket, key: str, headline: str, body: str | None = None, *,
        before: Ticket, customer_headline: str | None = None, skip: int | None = None,
        answered_by: str | None = None,
    ) -> int:
        """Tell a public change (the ticket was `before`, is `ticket`) to the customers (as
        `customer_headline` when they read it differently from staff) and to the triage
        channels, bring its alerts up to date and redraw the cards it changed; the number
        of customers told. `answered_by` names the engineer whose public reply it is."""
        told = await self._tell_customers(
            tx, ticket, key, customer_update(ticket, customer_headline or headline, body),
            skip=skip,
        )
        await self._tell_triage(tx, f"{key}:triage", triage_update(ticket, headline, body))
        await self._update_alerts(tx, before, ticket, answered_by)
        await self._refresh_cards(tx, before, ticket)
        return told

    async def _ask_rating(self, tx: Tx, ticket: Ticket) -> None:
        """Ask the opener of a just-solved ticket how it went: once per solve."""
        if ticket.opener_id is None or ticket.solved_at is None:
            return
        opener = await tx.directory.contact(ticket.opener_id)
        if opener is None:
            return
        key = f"ticket:{ticket.id}:rate:{ticket.solved_at.isoformat()}"
        await self.notifier.to_contact(tx, opener, key, rating_request(ticket))

    async def _refresh_cards(self, tx: Tx, before: Ticket, ticket: Ticket) -> None:
        """Edit the ticket's cards in place (opener's and triage) where what they show
        changed: each edit renders the ticket as it is when delivered. A comment alone
        changes no card, so it edits none."""
        for side in ("opener", "triage"):
            if card_facts(before, side) != card_facts(ticket, side):
                await self.notifier.update_card(tx, ticket_card(ticket.id, side))

    async def _raise_sev1(self, tx: Tx, ticket: Ticket) -> None:
        """The internal sev1 alert: shown on the ticket's triage card (already the loud
        message a sev1 ticket posts), counted with the alerts, acknowledged from the card."""
        await self.alerting.fire(tx, Event(
            sev1_fingerprint(ticket.id), "firing", "critical",
            f"SEV1 {ticket.ref} {ticket.subject}", org_id=ticket.org_id, ticket_id=ticket.id,
        ))

    async def _update_alerts(
        self, tx: Tx, before: Ticket, ticket: Ticket, answered_by: str | None
    ) -> None:
        """Resolve the ticket's alerts when an engineer answers it publicly or it is solved
        or closed; resolve the sev1 alert when the severity drops; raise it when a ticket
        becomes sev1 (raised, or reopened)."""
        if answered_by is not None:
            await self.alerting.settle_ticket(tx, ticket.id, f"answered by {answered_by}")
        elif before.active and not ticket.active:
            await self.alerting.settle_ticket(tx, ticket.id, f"ticket {ticket.status.value}")
        elif before.severity is Severity.SEV1 and ticket.severity is not Severity.SEV1:
            await self.alerting.settle(tx, sev1_fingerprint(ticket.id),
                                       f"severity lowered to {ticket.severity.value}")
        sev1_now = ticket.severity is Severity.SEV1 and ticket.active
        sev1_before = before.severity is Severity.SEV1 and before.active
        if sev1_now and not sev1_before:
            await self._raise_sev1(tx, ticket)


class TicketService(TicketBase):
    """Tickets as Technical Contacts use them: open, list, show, comment, close, reopen."""

    def require_tickets(self, actor: Actor) -> tuple[Contact, Organization]:
        """The actor's contact and organization, if they may open tickets right now (by role:
        Technical Contacts, or the sole Main Contact)."""
        if actor.contact is None or actor.org is None or not allows(actor, Permission.TICKETS):
            raise Denied("Tickets are for your organization's Technical Contacts.")
        return self.require_following(actor)

    def require_following(self, actor: Actor) -> tuple[Contact, Organization]:
        """The actor's contact and organization, if they may follow tickets right now: any
        contact follows the tickets they opened (by authorship), whatever their roles now."""
        if actor.contact is None or actor.org is None:
            raise Denied("Tickets are for your organization's Technical Contacts.")
        org = actor.org
        today = self.clock.now().astimezone(zone(org.timezone)).date()
        if not org.subscription_active(today):
            period = (f"it started on {org.starts_on}" if org.starts_on and today < org.starts_on
                      else f"it ended on {org.ends_on}")
            raise Denied(
                f"{org.name}'s support subscription is not active ({period}), so tickets are "
                "unavailable. Billing stays open to your Main and Administrative Contacts, "
                "who can renew."
            )
        return actor.contact, org

    async def open(
        self,
        actor: Actor,
        subject: str,
        severity: Severity = Severity.SEV3,
        *,
        description: str = "",
        source_platform: str = "console",
        files: Sequence[IncomingFile] = (),
    ) -> Ticket:
        """Open a ticket: card to the opener, triage card to every triage channel. `files`
        (a message's, when a ticket is opened from a conversation) are its attachments."""
        contact, org = self.require_tickets(actor)
        checked = self._check_files(files)
        subject = " ".join(subject.split())
        if not subject:
            raise Invalid("A ticket needs a subject: "
                          + command("ticket new [sev1|sev2|sev3|sev4] SUBJECT"))
        if len(subject) > SUBJECT_MAX:
            description = f"{subject}\n\n{description}".strip()
            subject = subject[: SUBJECT_MAX - 1] + "…"
        async with self.tx() as tx:
            target = response_target(self.settings, org, severity, tx.now)
            ticket = await tx.tickets.create(
                org_id=org.id,
                opener_id=contact.id,
                subject=subject,
                description=description,
                severity=severity,
                source_platform=source_platform,
                first_response_due_at=target.due,
                sla_warn_at=target.warn,
                calendar=org.calendar,
            )
            await tx.tickets.follow(ticket.id, contact.id)
            await self._store_files(tx, actor, ticket, checked, internal=False, comment_id=None)
            await self.notifier.to_contact(
                tx, contact, f"ticket:{ticket.id}:created:opener", ticket_card(ticket.id, "opener")
            )
            await self._tell_triage(
                tx,
                f"ticket:{ticket.id}:created:triage",
                ticket_card(ticket.id, "triage"),
                reach_someone=True,
            )
            if severity is Severity.SEV1:
                await self._raise_sev1(tx, ticket)
            return ticket

    async def list_tickets(self, actor: Actor, *, include_closed: bool = False) -> TicketList:
        """The contact's tickets, or the organization's when sharing is on; newest first."""
        contact, org = self.require_following(actor)
        org_wide = org.sharing and allows(actor, Permission.TICKETS)
        async with self.read() as tx:
            tickets = await tx.tickets.for_contacts(
                org.id,
                None if org_wide else contact.id,
                active_only=not include_closed,
                limit=LIST_LIMIT,
            )
        return TicketList(tickets, org, org_wide, include_closed)

    async def show(self, actor: Actor, ticket_id: int) -> TicketView:
        if actor.contact is not None:
            self.require_following(actor)
        staff = may_see_internal(actor)
        async with self.read() as tx:
            ticket = await self._visible(tx, actor, ticket_id)
            org = await tx.directory.org(ticket.org_id)
            assert org is not None
            opener = await tx.directory.contact(ticket.opener_id) if ticket.opener_id else None
            assignee = await tx.directory.staff(ticket.assignee_id) if ticket.assignee_id else None
            comments = await tx.tickets.comments(ticket.id, include_internal=staff)
            attachments = await tx.tickets.attachments(ticket.id, include_internal=staff)
            ratings = await tx.tickets.ratings(ticket.id) if staff else []
        return TicketView(
            ticket,
            org,
            f"{opener.name} <{opener.email}>" if opener else "a former contact",
            assignee.name if assignee else None,
            visible_comments(actor, comments),
            visible_attachments(actor, attachments),
            staff,
            ratings,
        )

    async def comment(
        self,
        actor: Actor,
        ticket_id: int,
        text: str,
        *,
        files: Sequence[IncomingFile] = (),
        source_platform: str = "console",
    ) -> tuple[TicketComment, list[Attachment]]:
        """A public comment from a contact, with any files as attachments."""
        contact, org = self.require_following(actor)
        checked = self._check_files(files)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            if not may_comment_ticket(actor, org_id=ticket.org_id, opener_id=ticket.opener_id,
                                      sharing=sharing_for(actor, ticket.org_id)):
                raise not_found(ticket_id)
            if ticket.status is TicketStatus.CLOSED:
                raise Invalid(f"Ticket {ticket.ref} is closed. Reopen it first: "
                              f"{command('ticket reopen', ticket.id)}")
            note = await tx.tickets.add_comment(
                ticket.id, body=text, internal=False, source_platform=source_platform,
                author_contact_id=contact.id, author_name=contact.name,
            )
            stored = await self._store_files(tx, actor, ticket, checked, internal=False,
                                             comment_id=note.id)
            await tx.tickets.follow(ticket.id, contact.id)
            before = ticket
            if ticket.status in (TicketStatus.PENDING, TicketStatus.SOLVED):
                ticket = await tx.tickets.update(ticket.id, **status_changes(
                    ticket, TicketStatus.OPEN, tx.now,
                    schedule_for(self.settings, org, ticket.severity)))
            # A customer's comment asks for an answer: a next-response target opens.
            ticket = await tx.tickets.update(
                ticket.id, **started(self.settings, org, ticket, tx.now))
            files_note = f"\n({len(stored)} file(s) attached)" if stored else ""
            key = f"ticket:{ticket.id}:comment:{note.id}"
            await self._announce(tx, ticket, key, f"{contact.name} commented on {ticket.ref}",
                                 text + files_note, before=before, skip=contact.id)
            return note, stored

    async def attach(
        self,
        actor: Actor,
        ticket_id: int,
        name: str,
        content_type: str,
        content: bytes,
        *,
        internal: bool | None = None,
    ) -> Attachment:
        """Attach one file (adapters: files shared in a ticket thread).

        Contacts' files are public; staff files are internal unless `internal=False`.
        """
        if actor.contact is not None:
            self.require_following(actor)
            hidden = False
        else:
            hidden = True if internal is None else internal
        (checked,) = self._check_files([IncomingFile(name, content_type, content)])
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            if not may_comment_ticket(actor, org_id=ticket.org_id, opener_id=ticket.opener_id,
                                      sharing=sharing_for(actor, ticket.org_id)):
                raise Denied(f"You cannot add files to {ticket.ref}.")
            (stored,) = await self._store_files(tx, actor, ticket, [checked], internal=hidden,
                                                comment_id=None)
            await tx.tickets.update(ticket.id)
            who = actor.contact.name if actor.contact else actor.label
            line = f"{who} attached {stored.name} ({_megabytes(stored.size)})"
            key = f"ticket:{ticket.id}:attachment:{stored.id}"
            if not hidden:
                await self._tell_customers(tx, ticket, key, customer_update(ticket, line),
                                           skip=actor.contact.id if actor.contact else None)
            await self._tell_triage(tx, f"{key}:triage",
                                    triage_update(ticket, line, internal=hidden))
            return stored

    async def rate(self, actor: Actor, ticket_id: int, rating: str, comment: str = "") -> Ticket:
        """The opener rates the latest solve of their ticket (again to change it)."""
        contact, _ = self.require_following(actor)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            if not may_change_ticket(actor, org_id=ticket.org_id, opener_id=ticket.opener_id):
                raise Denied(f"Only the contact who opened {ticket.ref} can rate it.")
            solved = ticket.solved_at
            if ticket.active or solved is None:
                raise Invalid(f"You can rate {ticket.ref} once it is solved.")
            await tx.tickets.rate(ticket.id, solved, contact.id, rating, comment)
            await self._tell_triage(
                tx, f"ticket:{ticket.id}:rated:{solved.isoformat()}:{tx.now.isoformat()}",
                triage_update(ticket, f"{contact.name} rated {ticket.ref} {rating}",
                              comment or None),
            )
            return ticket

    async def close(self, actor: Actor, ticket_id: int, text: str | None = None,
                    *, source_platform: str = "console") -> Ticket:
        return await self._set_open(actor, ticket_id, False, text, source_platform)

    async def reopen(self, actor: Actor, ticket_id: int, text: str | None = None,
                     *, source_platform: str = "console") -> Ticket:
        return await self._set_open(actor, ticket_id, True, text, source_platform)

    async def _set_open(
        self, actor: Actor, ticket_id: int, reopen: bool, text: str | None, platform: str
    ) -> Ticket:
        contact, org = self.require_following(actor)
        async with self.tx() as tx:
            ticket = await self._visible(tx, actor, ticket_id, lock=True)
            verb = "reopen" if reopen else "close"
            if not may_change_ticket(actor, org_id=ticket.org_id, opener_id=ticket.opener_id):
                raise Denied(f"Only the contact who opened {ticket.ref} can {verb} it.")
            closed = ticket.status in (TicketStatus.SOLVED, TicketStatus.CLOSED)
            if reopen and not closed:
                raise Invalid(f"Ticket {ticket.ref} is {ticket.status.value}, not closed.")
            if not reopen and ticket.status is TicketStatus.CLOSED:
                raise Invalid(f"Ticket {ticket.ref} is already closed.")
            target = TicketStatus.OPEN if reopen else TicketStatus.CLOSED
            before = ticket
            ticket = await tx.tickets.update(ticket.id, **status_changes(
                ticket, target, tx.now, schedule_for(self.settings, org, ticket.severity)))
            if reopen:
                ticket = await tx.tickets.update(
                    ticket.id, **started(self.settings, org, ticket, tx.now))
            suffix = "reopened" if reopen else "closed"
            key = f"ticket:{ticket.id}:{suffix}:{tx.now.isoformat()}"
            if text:
                note = await tx.tickets.add_comment(
                    ticket.id, body=text, internal=False, source_platform=platform,
                    author_contact_id=contact.id, author_name=contact.name,
                )
                key = f"ticket:{ticket.id}:comment:{note.id}"
            headline = f"{contact.name} {suffix} {ticket.ref}"
            await self._announce(tx, ticket, key, headline, text, before=before,
                                 skip=contact.id)
            return ticket

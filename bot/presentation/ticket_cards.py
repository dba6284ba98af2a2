"""Neutral messages about tickets: the opener's card, triage cards, updates, SLA alerts.

Customer-facing builders take only public facts; internal notes have their own builder
that only staff channels ever receive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.delivery.intents import Dropped, Intent
from bot.domain import Organization, Severity, Ticket, sev1_fingerprint
from bot.presentation.alerts import alert_buttons, alert_state
from bot.presentation.messages import (
    Actions,
    Button,
    Context,
    Fields,
    Heading,
    Message,
    Paragraph,
    Tone,
    command,
)

if TYPE_CHECKING:
    from bot.delivery.intents import Audience, Intents, Rendered
    from bot.services.base import Tx
    from storage.alerts import Alert
    from storage.tickets import SlaCandidate

TICKET_CARD = "ticket_card"


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def when(at: dt.datetime | None, tz: str | None = None) -> str:
    """`2026-11-25 11:00 CET` in the given IANA zone (UTC by default)."""
    if at is None:
        return "—"
    local = at.astimezone(zone(tz))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or 'UTC'}"


def span(delta: dt.timedelta) -> str:
    """A short duration: `2d 3h`, `1h 20m`, `45m`."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def target_kind(ticket: Ticket) -> str:
    """Which response the open target asks for."""
    return "first response" if ticket.first_responded_at is None else "next response"


def due_label(ticket: Ticket, now: dt.datetime) -> str:
    """Where the response clock stands, for staff."""
    due = ticket.response_due_at
    if not ticket.clock_set or due is None:
        return "responded" if ticket.first_responded_at is not None else "—"
    if ticket.sla_paused_at is not None:
        return "paused (pending)"
    left = due - now
    text = f"due in {span(left)}" if left.total_seconds() > 0 else f"overdue {span(left)}"
    return text if ticket.first_responded_at is None else f"next response {text}"


def ticket_line(ticket: Ticket, tz: str | None = None) -> str:
    return (
        f"{ticket.ref} · {ticket.severity.value} · {ticket.status.value} · {ticket.subject} · "
        f"updated {when(ticket.updated_at, tz)}"
    )


def opener_thread(ticket_id: int) -> str:
    return f"ticket:{ticket_id}:opener"


def triage_thread(ticket_id: int) -> str:
    return f"ticket:{ticket_id}:triage"


def card_of(thread: str) -> str:
    """The key of the card that heads `thread`: edits of the card replace it in place."""
    return f"card:{thread}"


def ticket_card(ticket_id: int, side: str) -> Intent:
    """The card of a ticket (`side` "opener" or "triage") as queued intent: rendered from the
    ticket as it is when delivered, so an edit always shows the latest state."""
    thread = opener_thread(ticket_id) if side == "opener" else triage_thread(ticket_id)
    return Intent({"kind": TICKET_CARD, "ticket": ticket_id, "side": side}, card_of(thread))


async def render_ticket_card(tx: Tx, intent: Mapping[str, Any], audience: Audience) -> Rendered:
    ticket = await tx.tickets.get(int(intent["ticket"]))
    if ticket is None:
        return Dropped("the ticket no longer exists")
    org = await tx.directory.org(ticket.org_id)
    if org is None:
        return Dropped("the organization no longer exists")
    if intent["side"] == "opener":
        return opener_card(ticket, org)
    opener = None if ticket.opener_id is None else await tx.directory.contact(ticket.opener_id)
    assignee = None if ticket.assignee_id is None else await tx.directory.staff(
        ticket.assignee_id)
    who = "a former contact" if opener is None else f"{opener.name} <{opener.email}>"
    alert = None
    if ticket.severity is Severity.SEV1:
        alert = await tx.alerts.find("internal", sev1_fingerprint(ticket.id))
    return triage_card(ticket, org, who, tx.now, assignee.name if assignee else None, alert)


def card_facts(ticket: Ticket, side: str) -> tuple[object, ...]:
    """What the ticket's card on `side` ("opener" or "triage") shows of the ticket, so a
    change that leaves these alone needs no edit (a comment, a note, an attachment)."""
    shown: tuple[object, ...] = (ticket.subject, ticket.severity, ticket.status,
                                 ticket.first_response_due_at)
    if side == "opener":
        return shown
    # The triage card also shows the description, the assignee, and where the response
    # clock stands (`due_label`: which target runs, its due time, paused or answered).
    return (*shown, ticket.description, ticket.assignee_id, ticket.clock_set,
            ticket.response_due_at, ticket.sla_paused_at is not None,
            ticket.first_responded_at is not None)


def register(intents: Intents) -> None:
    """Register the ticket cards' renderer."""
    intents.register(TICKET_CARD, render_ticket_card)


def opener_card(ticket: Ticket, org: Organization) -> Message:
    """The card a Technical Contact gets for a ticket they opened; replies in its thread
    become public comments. It is edited in place as the ticket changes."""
    return Message(
        text=f"Ticket {ticket.ref} ({ticket.severity.value}, {ticket.status.value}): "
        f"{ticket.subject}",
        subject=f"[{ticket.ref}] {ticket.subject}",
        thread_key=opener_thread(ticket.id),
        card_key=card_of(opener_thread(ticket.id)),
        blocks=(
            Heading(f"Ticket {ticket.ref}: {ticket.subject}"),
            Fields(
                (
                    ("Severity", ticket.severity.value),
                    ("Status", ticket.status.value),
                    ("Organization", org.name),
                    ("First response due", when(ticket.first_response_due_at, org.timezone)),
                )
            ),
            Paragraph(
                f"Reply in this thread or use {command('ticket comment', ticket.id, 'TEXT')} "
                "to add to it."
            ),
        ),
    )


def triage_card(
    ticket: Ticket, org: Organization, opener: str, now: dt.datetime, assignee: str | None = None,
    alert: Alert | None = None,
) -> Message:
    """The staff triage card of a ticket; sev1 is loud and is the page: it shows the sev1
    alert (firing, acknowledged, resolved) with its Acknowledge and Resolve buttons. It is
    edited in place as the ticket or the alert changes (claim, status, severity, ack)."""
    loud = ticket.severity is Severity.SEV1
    paging = () if alert is None else (("Alert", f"{alert_state(alert)} (alert {alert.id})"),)
    head = (
        f"SEV1 — {ticket.ref} {ticket.subject}"
        if loud
        else f"New ticket {ticket.ref}: {ticket.subject}"
    )
    return Message(
        text=f"{'SEV1 ' if loud else ''}New ticket {ticket.ref} from {org.name} "
        f"({ticket.severity.value}): {ticket.subject}",
        subject=f"[{ticket.ref}] {ticket.subject}",
        tone=Tone.DANGER if loud else Tone.NORMAL,
        thread_key=triage_thread(ticket.id),
        card_key=card_of(triage_thread(ticket.id)),
        blocks=(
            Heading(head),
            Fields(
                (
                    ("Organization", f"{org.name} ({org.key}, {org.level.value})"),
                    ("Opened by", opener),
                    ("Severity", ticket.severity.value),
                    ("Status", ticket.status.value),
                    ("Assignee", assignee or "unassigned"),
                    ("First response", f"{when(ticket.first_response_due_at)} "
                                       f"({due_label(ticket, now)})"),
                    *paging,
                )
            ),
            *((Paragraph(ticket.description),) if ticket.description else ()),
            Actions(
                (
                    Button("Claim", "triage.claim", (("ID", str(ticket.id)),), "primary"),
                    Button("Status", "triage.status", (("ID", str(ticket.id)),), form=True),
                    Button("Severity", "triage.severity", (("ID", str(ticket.id)),), form=True),
                    Button("Reply", "triage.reply", (("ID", str(ticket.id)),), form=True),
                    *(() if alert is None else alert_buttons(alert)),
                )
            ),
        ),
    )


def customer_update(ticket: Ticket, headline: str, body: str | None = None) -> Message:
    """A public change, told to the opener and followers in the ticket's thread."""
    return Message(
        text=headline + (f"\n{body}" if body else ""),
        subject=f"[{ticket.ref}] {ticket.subject}",
        thread_key=opener_thread(ticket.id),
        blocks=(
            Heading(headline),
            *((Paragraph(body),) if body else ()),
            Context(f"{ticket.ref} · {ticket.severity.value} · {ticket.status.value}"),
        ),
    )


def rating_request(ticket: Ticket) -> Message:
    """"How did we do?" to the opener of a solved ticket, with good and bad buttons."""
    args = (("ID", str(ticket.id)),)
    return Message(
        text=f"Ticket {ticket.ref} is solved. How did we do?",
        subject=f"[{ticket.ref}] {ticket.subject}",
        thread_key=opener_thread(ticket.id),
        blocks=(
            Heading(f"Ticket {ticket.ref} is solved. How did we do?"),
            Actions((
                Button("Good", "ticket.rate", (*args, ("RATING", "good")), "primary"),
                Button("Bad", "ticket.rate", (*args, ("RATING", "bad")), "danger"),
            )),
            Context(command("ticket rate", ticket.id, "good|bad", "[COMMENT]")),
        ),
    )


def triage_update(
    ticket: Ticket, headline: str, body: str | None = None, *, internal: bool = False
) -> Message:
    """A change told to the triage channels in the ticket's triage thread."""
    return Message(
        text=headline + (f"\n{body}" if body else ""),
        thread_key=triage_thread(ticket.id),
        tone=Tone.DANGER if ticket.severity is Severity.SEV1 else Tone.NORMAL,
        blocks=(
            Heading(headline),
            *((Paragraph(body),) if body else ()),
            Context(
                ("internal note · " if internal else "")
                + f"{ticket.ref} · {ticket.severity.value} · {ticket.status.value}"
            ),
        ),
    )


def sla_alert_text(candidate: SlaCandidate, stage: str, now: dt.datetime) -> tuple[str, str]:
    """The title and text of an "at risk" or "breached" alert."""
    ticket = candidate.ticket
    label = "SLA breached" if stage == "breached" else "SLA at risk"
    if ticket.first_responded_at is not None:
        label += " (next response)"
    due = f"{target_kind(ticket).capitalize()} due {when(ticket.response_due_at)}"
    body = (f"{candidate.org_name} ({candidate.org_key}) · {ticket.severity.value} · "
            f"{ticket.status.value} · {due} ({due_label(ticket, now)})")
    return f"{label}: {ticket.ref} {ticket.subject}", body

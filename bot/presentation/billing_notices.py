"""The billing messages Subdesk sends: invoice reminders, renewal notices, billing requests.

Reminders and renewal notices are queued as intents (`invoice_reminder_intent`,
`renewal_notice_intent`) and rendered here when delivered, from the invoice and the
organization as they are then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bot.delivery.intents import Audience, Dropped, Intents, Rendered
from bot.domain import Platform
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
from bot.presentation.money import day, money
from bot.services.base import Tx
from storage.billing import InvoiceStatus

INVOICE_REMINDER = "invoice_reminder"
RENEWAL_NOTICE = "renewal_notice"
_PAID_HINT = Context("Paid already? Reminders stop once it is recorded. Questions: "
                     + command("billing question TEXT"))


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def invoice_reminder(
    *,
    org_name: str,
    region: str,
    number: str,
    due_on: dt.date,
    outstanding: Decimal,
    currency: str,
    offset: int,
) -> Message:
    """A reminder `offset` days from the due date (negative: before it)."""
    amount = money(outstanding, currency, region)
    due = day(due_on, region)
    if offset < 0:
        when = f"is due in {_days(-offset)}, on {due}"
        tone = Tone.NORMAL
    elif offset == 0:
        when = f"is due today, {due}"
        tone = Tone.WARNING
    else:
        when = f"is {_days(offset)} overdue (it was due on {due})"
        tone = Tone.DANGER if offset >= 30 else Tone.WARNING
    text = f"Invoice {number} of {org_name} for {amount} {when}."
    return Message(
        text=text,
        subject=f"Invoice {number}: {amount} {when.split(' (')[0]}",
        tone=tone,
        blocks=(Paragraph(text), Fields((("Outstanding", amount), ("Due", due))),
                _PAID_HINT),
    )


def renewal_notice(
    *, org_name: str, region: str, level: str, ends_on: dt.date, days_before: int,
) -> Message:
    end = day(ends_on, region)
    if days_before > 0:
        text = (f"{org_name}'s {level} subscription ends on {end}, in {_days(days_before)}. "
                "Contact us to renew it.")
    else:
        text = f"{org_name}'s {level} subscription ends today, {end}. Contact us to renew it."
    return Message(
        text=text,
        subject=f"Your {level} subscription ends on {end}",
        tone=Tone.WARNING if days_before <= 7 else Tone.NORMAL,
        blocks=(
            Heading("Subscription renewal"),
            Paragraph(text),
            Fields((("Organization", org_name), ("Level", level), ("Ends on", end))),
            Context(f"Questions about renewal: {command('billing question TEXT')}"),
        ),
    )


def invoice_reminder_intent(invoice_id: int, due_on: dt.date, days: int) -> dict[str, Any]:
    """A queued reminder of the invoice falling due on `due_on`, sent `days` from that date
    (negative: before it)."""
    return {"kind": INVOICE_REMINDER, "invoice": invoice_id, "due_on": due_on.isoformat(),
            "days": days}


def renewal_notice_intent(org_id: int, ends_on: dt.date, days_before: int) -> dict[str, Any]:
    """A queued notice that the subscription ending on `ends_on` ends in `days_before` days."""
    return {"kind": RENEWAL_NOTICE, "org": org_id, "ends_on": ends_on.isoformat(),
            "days": days_before}


async def render_invoice_reminder(
    tx: Tx, intent: Mapping[str, Any], audience: Audience
) -> Rendered:
    """The reminder as the invoice is now; dropped once it is paid, void or due later."""
    invoice = await tx.billing.invoice(int(intent["invoice"]))
    if invoice is None:
        return Dropped("the invoice no longer exists")
    outstanding = invoice.amount - invoice.paid_amount
    if invoice.status is not InvoiceStatus.OPEN or outstanding <= 0:
        return Dropped(f"invoice {invoice.number} is {invoice.status.value}")
    if invoice.due_on.isoformat() != intent["due_on"]:
        return Dropped(f"invoice {invoice.number} is now due on {invoice.due_on.isoformat()}")
    org = await tx.directory.org(invoice.org_id)
    if org is None:
        return Dropped("the organization no longer exists")
    if not await _still_billing_contact(tx, org.id, audience, main_only=False):
        return Dropped("the recipient is no longer a Main or Administrative Contact")
    return invoice_reminder(
        org_name=org.name, region=org.region.value, number=invoice.number,
        due_on=invoice.due_on, outstanding=outstanding, currency=invoice.currency,
        offset=int(intent["days"]),
    )


async def render_renewal_notice(
    tx: Tx, intent: Mapping[str, Any], audience: Audience
) -> Rendered:
    """The renewal notice; dropped when the subscription's end date has moved (renewed)."""
    org = await tx.directory.org(int(intent["org"]))
    if org is None:
        return Dropped("the organization no longer exists")
    if org.ends_on is None or org.ends_on.isoformat() != intent["ends_on"]:
        return Dropped(f"{org.name}'s subscription no longer ends on {intent['ends_on']}")
    if not await _still_billing_contact(tx, org.id, audience, main_only=True):
        return Dropped("the recipient is no longer the Main Contact")
    return renewal_notice(
        org_name=org.name, region=org.region.value, level=org.level.value,
        ends_on=org.ends_on, days_before=int(intent["days"]),
    )


async def notice_of(tx: Tx, payload: Mapping[str, Any], org_id: int) -> str | None:
    """The kind of billing notice `payload` is when it is about organization `org_id`
    (INVOICE_REMINDER or RENEWAL_NOTICE); None for anything else."""
    kind = payload.get("kind")
    try:
        if kind == INVOICE_REMINDER:
            invoice = await tx.billing.invoice(int(payload["invoice"]))
            return kind if invoice is not None and invoice.org_id == org_id else None
        if kind == RENEWAL_NOTICE:
            return kind if int(payload["org"]) == org_id else None
    except (KeyError, TypeError, ValueError):
        return None
    return None


async def _still_billing_contact(tx: Tx, org_id: int, audience: Audience, *,
                                 main_only: bool) -> bool:
    """Whether the address a notice goes to still belongs to one of the organization's
    Main (or Administrative) contacts, by the rule it was queued by: their email, or a chat
    account linked to them. A contact replaced since it was queued gets nothing."""
    if audience.target is None:
        return True
    people = (await tx.billing.billing_recipients([org_id], main_only=main_only)).get(
        org_id, [])
    if audience.platform == Platform.EMAIL.value:
        return any(p.email == audience.target for p in people)
    return any((audience.platform, audience.target) in p.accounts for p in people)


def register(intents: Intents) -> None:
    """Register the billing intents' renderers."""
    intents.register(INVOICE_REMINDER, render_invoice_reminder)
    intents.register(RENEWAL_NOTICE, render_renewal_notice)


def request_card(
    *, request_id: int, kind: str, org_name: str, org_key: str, requester: str, text: str,
    servers: int | None,
) -> Message:
    """Posted to the billing channel(s); answered with the button or /billing answer."""
    title = (f"Billing question #{request_id}" if kind == "question"
             else f"Additional services #{request_id}: {servers} server(s)")
    fields: list[tuple[str, str]] = [("Organization", f"{org_name} ({org_key})"),
                                     ("From", requester)]
    if servers is not None:
        fields.append(("Servers", str(servers)))
    body = text or "(no note)"
    return Message(
        text=f"{title} from {requester} of {org_name}: {body}",
        subject=f"{title} — {org_name}",
        thread_key=f"billing:{request_id}",
        blocks=(
            Heading(title),
            Fields(tuple(fields)),
            Paragraph(body),
            Actions((Button("Answer", "billing.answer", (("ID", str(request_id)),), "primary",
                             form=True),)),
            Context(f"Reply in this thread or use {command('billing answer', request_id, 'TEXT')}"),
        ),
    )


def request_answer(*, request_id: int, question: str, answer: str, agent: str) -> Message:
    """The billing team's answer, sent to the person who asked."""
    return Message(
        text=f"Answer to your billing request #{request_id}: {answer}",
        subject=f"Answer to your billing request #{request_id}",
        thread_key=f"billing:{request_id}",
        tone=Tone.GOOD,
        blocks=(
            Heading(f"Billing request #{request_id} answered"),
            Paragraph(answer),
            Context(f"You asked: {question[:300]} · answered by {agent}"),
        ),
    )


def request_answered(*, request_id: int, agent: str, answer: str) -> Message:
    """Posted in the billing channel thread once a request is answered."""
    return Message(
        text=f"Billing request #{request_id} answered by {agent}: {answer}",
        subject=f"Billing request #{request_id} answered by {agent}",
        thread_key=f"billing:{request_id}",
        tone=Tone.GOOD,
        blocks=(Paragraph(f"Answered by {agent}: {answer}"),),
    )

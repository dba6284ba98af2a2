"""The billing messages Subdesk sends: invoice reminders, renewal notices, billing requests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from bot.messages import (
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
from bot.money import day, money

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
        blocks=(Paragraph(text), Fields((("Outstanding", amount), ("Due", due))), _PAID_HINT),
    )


def renewal_notice(
    *, org_name: str, region: str, level: str, ends_on: dt.date, days_before: int
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

"""Neutral messages for alerts: a staff announcement, and the card of a monitored alert
(firing or resolved, with who acknowledged it) carrying Acknowledge and Resolve actions."""

from __future__ import annotations

from bot.presentation.messages import (
    Actions,
    Button,
    Context,
    Fields,
    Heading,
    Message,
    Paragraph,
    Tone,
)
from storage.alerts import Alert

_TONES = {"info": Tone.NORMAL, "warning": Tone.WARNING, "critical": Tone.DANGER}
_SOURCES = {"staff": "support team", "alertmanager": "monitoring", "internal": "Subdesk"}


def announcement(level: str, org_name: str, text: str, sender: str) -> Message:
    """An alert a support engineer sent to an organization (`/alert`)."""
    head = f"{level.upper()} alert for {org_name}"
    return Message(
        text=f"{head}\n{text}",
        subject=f"[{level.upper()}] Alert for {org_name}",
        tone=_TONES.get(level, Tone.NORMAL),
        blocks=(Heading(head), Paragraph(text), Context(f"from {sender} · {_SOURCES['staff']}")),
    )


def alert_buttons(alert: Alert) -> tuple[Button, ...]:
    """Acknowledge (until someone has) and Resolve, while the alert fires."""
    if alert.status != "firing":
        return ()
    ref = (("ID", str(alert.id)),)
    resolve = Button("Resolve", "alert.resolve", ref, "danger")
    if alert.acked_by:
        return (resolve,)
    return (Button("Acknowledge", "alert.ack", ref, "primary"), resolve)


def alert_state(alert: Alert) -> str:
    """An alert's state in a line: `firing · acknowledged by Sam Support`, `resolved:
    answered by Sam Support`."""
    if alert.status == "firing":
        return "firing" + (f" · acknowledged by {alert.acked_by}" if alert.acked_by else "")
    if alert.resolved_by:
        return f"resolved by {alert.resolved_by}"
    return f"resolved: {alert.resolution}" if alert.resolution else "resolved"


def alert_card(alert: Alert, org_name: str | None) -> Message:
    """The one message of an alert episode; edits replace it as its state changes."""
    firing = alert.status == "firing"
    state = "FIRING" if firing else "RESOLVED"
    head = f"[{state}] {alert.level.upper()} · {alert.title}"
    fields: list[tuple[str, str]] = [("Status", alert.status)]
    if org_name:
        fields.append(("Organization", org_name))
    if alert.acked_by:
        fields.append(("Acknowledged by", alert.acked_by))
    if alert.resolved_by:
        fields.append(("Resolved by", alert.resolved_by))
    if alert.resolution and not firing:
        fields.append(("Resolution", alert.resolution))
    ref = str(alert.id)
    buttons = list(alert_buttons(alert))
    if firing and alert.ticket_id is not None:  # an alert about a ticket: work it from here
        ticket = (("ID", str(alert.ticket_id)),)
        buttons += [Button("Claim", "triage.claim", ticket),
                    Button("Reply", "triage.reply", ticket, form=True)]
    # The actions' commands are not repeated here: where there are no buttons, each
    # button is shown with the command it stands for.
    hint = f"alert {ref} · {_SOURCES.get(alert.source, alert.source)}"
    lines = [head, *(f"{label}: {value}" for label, value in fields[1:])]
    if alert.body:
        lines.insert(1, alert.body)
    return Message(
        text="\n".join(lines),
        tone=_TONES.get(alert.level, Tone.NORMAL) if firing else Tone.GOOD,
        card_key=alert.card_key,
        blocks=(
            Heading(head),
            *((Paragraph(alert.body),) if alert.body else ()),
            Fields(tuple(fields)),
            *((Actions(tuple(buttons)),) if buttons else ()),
            Context(hint),
        ),
    )

"""/triage: the queue by SLA urgency, claim, status, severity, notes and public replies."""

from __future__ import annotations

import datetime as dt

from bot.business_time import hours_and_minutes
from bot.commands.registry import CommandContext, Registry
from bot.domain import Severity, TicketStatus
from bot.presentation.messages import BulletList, Context, Heading, Message, Reply, command
from bot.presentation.ticket_cards import due_label
from bot.wiring.services import Services


def _left(left: dt.timedelta | None, label: str) -> str:
    """Covered time left on a running clock (`2h 0m left`, `overdue 1h 5m`), else the
    clock's state (`responded`, `paused (pending)`)."""
    if left is None or label.startswith("paused"):
        return label
    kind = "next response " if label.startswith("next response") else ""
    if left <= dt.timedelta(0):
        return f"{kind}overdue {hours_and_minutes(left)}"
    return f"{kind}{hours_and_minutes(left)} left"


def register(registry: Registry, services: Services) -> None:
    triage = services.triage

    @registry.command("triage.queue")
    async def queue(ctx: CommandContext) -> Reply:
        entries = await triage.queue(ctx.actor)
        if not entries:
            return Reply.text("The triage queue is empty.")
        now = services.clock.now()
        lines = tuple(
            f"{q.entry.ticket.ref} · {q.entry.ticket.severity.value} · "
            f"{q.entry.ticket.status.value} · {q.entry.org_key} · {q.entry.ticket.subject} · "
            f"{_left(q.left, due_label(q.entry.ticket, now))} · "
            f"{q.entry.assignee_name or 'unassigned'}"
            for q in entries
        )
        hint = f"{command('triage claim ID')} · {command('ticket show ID')}"
        text = "\n".join(["Triage queue (most urgent first):", *lines])
        return Reply(Message(text, blocks=(Heading("Triage queue (most urgent first)"),
                                           BulletList(lines), Context(hint))))

    @registry.command("triage.claim")
    async def claim(ctx: CommandContext) -> Reply:
        change = await triage.claim(ctx.actor, ctx.parsed.number("ID"))
        ticket = change.ticket
        return Reply.text(f"{ticket.ref} is yours ({ticket.status.value}).{change.reach_note}")

    @registry.command("triage.status")
    async def status(ctx: CommandContext) -> Reply:
        change = await triage.set_status(
            ctx.actor, ctx.parsed.number("ID"), TicketStatus(str(ctx.parsed.text("STATUS")))
        )
        return Reply.text(f"{change.ticket.ref} is now {change.ticket.status.value}."
                          f"{change.reach_note}")

    @registry.command("triage.severity")
    async def severity(ctx: CommandContext) -> Reply:
        change = await triage.set_severity(
            ctx.actor, ctx.parsed.number("ID"), Severity(str(ctx.parsed.text("SEV")))
        )
        return Reply.text(f"{change.ticket.ref} is now {change.ticket.severity.value}."
                          f"{change.reach_note}")

    @registry.command("triage.note")
    async def note(ctx: CommandContext) -> Reply:
        number = ctx.parsed.number("ID")
        await triage.note(ctx.actor, number, str(ctx.parsed.text("TEXT")),
                          files=ctx.invocation.files, source_platform=ctx.platform)
        return Reply.text(f"Internal note added to #{number} (not visible to the customer).")

    @registry.command("triage.reply")
    async def reply(ctx: CommandContext) -> Reply:
        number = ctx.parsed.number("ID")
        change = await triage.reply(ctx.actor, number, str(ctx.parsed.text("TEXT")),
                                    files=ctx.invocation.files, source_platform=ctx.platform)
        if not change.customers_told:
            return Reply.text(f"Reply saved on #{number}.{change.reach_note}")
        return Reply.text(f"Reply sent on #{number}.")

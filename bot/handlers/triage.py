"""/triage: the queue by SLA urgency, claim, status, severity, notes and public replies."""

from __future__ import annotations

from bot.commands.registry import CommandContext, Registry
from bot.domain import Severity, TicketStatus
from bot.presentation.messages import BulletList, Context, Heading, Message, Reply, command
from bot.presentation.ticket_cards import due_label
from bot.wiring.services import Services


def register(registry: Registry, services: Services) -> None:
    triage = services.triage

    @registry.command("triage.queue")
    async def queue(ctx: CommandContext) -> Reply:
        entries = await triage.queue(ctx.actor)
        if not entries:
            return Reply.text("The triage queue is empty.")
        now = services.clock.now()
        lines = tuple(
            f"{e.ticket.ref} · {e.ticket.severity.value} · {e.ticket.status.value} · "
            f"{e.org_key} · {e.ticket.subject} · {due_label(e.ticket, now)} · "
            f"{e.assignee_name or 'unassigned'}"
            for e in entries
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

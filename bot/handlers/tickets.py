"""/ticket: open, list, show, comment, close and reopen."""

from __future__ import annotations

from bot.commands import form_for
from bot.commands.grammar import BY_KEY
from bot.commands.registry import CommandContext, Registry
from bot.domain import Severity
from bot.presentation.messages import (
    Block,
    BulletList,
    Context,
    Fields,
    Heading,
    Message,
    Paragraph,
    Reply,
    Tone,
    command,
)
from bot.presentation.ticket_cards import ticket_line, when
from bot.services.sla import clock_line, promise
from bot.services.tickets import TicketView
from bot.wiring.services import Services


def render_view(view: TicketView, tz: str | None, clock: str | None = None) -> Message:
    """One ticket and its thread, as its reader may see it."""
    t = view.ticket
    fields = [
        ("Organization", f"{view.org.name} ({view.org.key})"),
        ("Severity", t.severity.value),
        ("Status", t.status.value),
        ("Opened by", view.opener),
        ("Assignee", view.assignee or "unassigned"),
        ("Opened", when(t.created_at, tz)),
        ("Updated", when(t.updated_at, tz)),
    ]
    if clock is not None:
        fields.append(("Due next", clock))
    if view.ratings:
        last = view.ratings[-1]
        said = f": {last.comment}" if last.comment else ""
        fields.append(("Satisfaction", f"{last.rating} from {last.author_name} "
                                       f"({when(last.rated_at, tz)}){said}"))
    thread = tuple(
        f"{when(c.created_at, tz)} {c.author_name}"
        + (" [internal note]" if c.internal else "")
        + f": {c.body}"
        for c in view.comments
    )
    files = tuple(
        f"{a.name} ({a.content_type}, {a.size} bytes)" + (" [internal]" if a.internal else "")
        for a in view.attachments
    )
    blocks: list[Block] = [Heading(f"Ticket {t.ref}: {t.subject}"), Fields(tuple(fields))]
    if t.description:
        blocks.append(Paragraph(t.description))
    blocks.append(BulletList(thread) if thread else Context("No comments yet."))
    if files:
        blocks.extend([Paragraph("Attachments:"), BulletList(files)])
    text = Message("", blocks=tuple(blocks)).plain()
    return Message(text, blocks=tuple(blocks), thread_key=f"ticket:{t.id}:opener")


def register(registry: Registry, services: Services) -> None:
    tickets = services.tickets

    @registry.command("ticket.new")
    async def new(ctx: CommandContext) -> Reply:
        severity = Severity(ctx.parsed.text("SEVERITY") or Severity.SEV3.value)
        subject = ctx.parsed.text("SUBJECT")
        if not subject:
            tickets.require_tickets(ctx.actor)
            spec = BY_KEY["ticket.new"]
            return Reply.needs(form_for(spec, ctx.parsed.args), f"Usage: {spec.usage()}")
        ticket = await tickets.open(ctx.actor, subject, severity,
                                    description=ctx.parsed.text("DESCRIPTION") or "",
                                    source_platform=ctx.platform, files=ctx.invocation.files)
        assert ctx.actor.org is not None
        due = promise(services.settings, ctx.actor.org, ticket)
        return Reply(
            Message(
                f"Opened ticket {ticket.ref} ({ticket.severity.value}): {ticket.subject}. "
                + (f"{due[0].upper()}{due[1:]}. " if due else "")
                + "Updates come to you here or by email.",
                tone=Tone.GOOD,
            )
        )

    @registry.command("ticket.list")
    async def list_(ctx: CommandContext) -> Reply:
        include_closed = ctx.parsed.text("SCOPE") == "all"
        result = await tickets.list_tickets(ctx.actor, include_closed=include_closed)
        tz = result.org.timezone
        whose = f"{result.org.name}'s" if result.org_wide else "Your"
        scope = "tickets" if include_closed else "open tickets"
        lines = tuple(ticket_line(t, tz) for t in result.tickets)
        head = f"{whose} {scope}"
        if not lines:
            hint = "" if include_closed else f" ({command('ticket list all')} shows closed ones)"
            return Reply.text(f"{head}: none{hint}.")
        text = "\n".join([f"{head}:", *lines])
        return Reply(Message(text, blocks=(Heading(head), BulletList(lines))))

    @registry.command("ticket.show")
    async def show(ctx: CommandContext) -> Reply:
        view = await tickets.show(ctx.actor, ctx.parsed.number("ID"))
        clock = clock_line(services.settings, view.org, view.ticket, services.clock.now())
        return Reply(render_view(view, None if view.staff else view.org.timezone, clock))

    @registry.command("ticket.comment")
    async def comment(ctx: CommandContext) -> Reply:
        number = ctx.parsed.number("ID")
        _, files = await tickets.comment(
            ctx.actor, number, str(ctx.parsed.text("TEXT")),
            files=ctx.invocation.files, source_platform=ctx.platform,
        )
        extra = f" with {len(files)} attachment(s)" if files else ""
        return Reply.text(f"Comment added to #{number}{extra}.")

    @registry.command("ticket.rate")
    async def rate(ctx: CommandContext) -> Reply:
        ticket = await tickets.rate(ctx.actor, ctx.parsed.number("ID"),
                                    str(ctx.parsed.text("RATING")),
                                    ctx.parsed.text("COMMENT") or "")
        return Reply.text(f"Thank you: your rating of {ticket.ref} is recorded.")

    @registry.command("ticket.close")
    async def close(ctx: CommandContext) -> Reply:
        ticket = await tickets.close(ctx.actor, ctx.parsed.number("ID"), ctx.parsed.text("TEXT"),
                                     source_platform=ctx.platform)
        return Reply.text(f"Closed ticket {ticket.ref}. {command('ticket reopen', ticket.id)} "
                          "brings it back.")

    @registry.command("ticket.reopen")
    async def reopen(ctx: CommandContext) -> Reply:
        ticket = await tickets.reopen(ctx.actor, ctx.parsed.number("ID"), ctx.parsed.text("TEXT"),
                                      source_platform=ctx.platform)
        return Reply.text(f"Reopened ticket {ticket.ref}.")

"""/billing: invoices, statement, questions, additional services, and agents' answers."""

from __future__ import annotations

from bot.commands.registry import CommandContext, Registry
from bot.presentation.messages import (
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
from bot.presentation.money import day, money
from bot.wiring.services import Services
from storage.billing import BillingRequestKind, Invoice, InvoiceStatus


def _line(inv: Invoice, region: str, today_overdue: bool) -> str:
    amount = money(inv.amount, inv.currency, region)
    if inv.status is InvoiceStatus.PAID:
        state = f"paid, {money(inv.credit, inv.currency, region)} credit" if inv.credit else "paid"
    elif inv.status is InvoiceStatus.VOID:
        state = "void"
    else:
        left = money(inv.outstanding, inv.currency, region)
        state = f"overdue, {left} outstanding" if today_overdue else f"open, {left} outstanding"
    return f"{inv.number} — {amount}, due {day(inv.due_on, region)} ({state})"


def _unreached(request_id: int) -> Reply:
    return Reply(Message(f"Request #{request_id} is saved, but no one on the billing team can be "
                         "reached yet; please contact your vendor directly.", tone=Tone.WARNING))


def register(registry: Registry, services: Services) -> None:
    billing = services.billing

    @registry.command("billing.invoices")
    async def invoices(ctx: CommandContext) -> Reply:
        scope = ctx.parsed.text("SCOPE") or "open"
        view = await billing.invoices(ctx.actor, open_only=scope == "open")
        region = view.org.region.value
        lines = tuple(
            _line(i, region, i.status is InvoiceStatus.OPEN and i.due_on < view.today)
            for i in view.invoices
        )
        title = f"{'Open invoices' if scope == 'open' else 'Invoices'} of {view.org.name}"
        if not lines:
            empty = "No open invoices." if scope == "open" else "No invoices yet."
            return Reply(Message(f"{title}: {empty}", blocks=(Heading(title), Paragraph(empty))))
        hint = (f"All invoices: {command('billing invoices all')}" if scope == "open"
                else f"Totals: {command('billing statement')}")
        return Reply(
            Message(
                f"{title}:\n" + "\n".join(lines),
                blocks=(Heading(title), BulletList(lines), Context(hint)),
            )
        )

    @registry.command("billing.statement")
    async def statement(ctx: CommandContext) -> Reply:
        view = await billing.statement(ctx.actor)
        region = view.org.region.value
        title = f"Statement of {view.org.name}"
        if not view.totals:
            return Reply(Message(f"{title}: no invoices yet.",
                                 blocks=(Heading(title), Paragraph("No invoices yet."))))
        blocks: list[Heading | Fields | Context | Paragraph] = [Heading(title)]
        text = [title]
        for t in view.totals:
            items = (
                ("Invoiced", money(t.invoiced, t.currency, region)),
                ("Paid", money(t.paid, t.currency, region)),
                ("Outstanding", money(t.outstanding, t.currency, region)),
                ("Overdue", money(t.overdue, t.currency, region)),
            ) + ((("Credit", money(t.credit, t.currency, region)),) if t.credit else ())
            if len(view.totals) > 1:
                blocks.append(Paragraph(t.currency))
                text.append(t.currency)
            blocks.append(Fields(items))
            text.extend(f"{k}: {v}" for k, v in items)
        blocks.append(Context(f"As of {day(view.today, region)}"))
        overdue = any(t.overdue for t in view.totals)
        return Reply(Message("\n".join(text), blocks=tuple(blocks),
                             tone=Tone.WARNING if overdue else Tone.NORMAL))

    @registry.command("billing.question")
    async def question(ctx: CommandContext) -> Reply:
        request, told = await billing.ask(ctx.actor, BillingRequestKind.QUESTION,
                                          str(ctx.parsed.text("TEXT") or ""), None,
                                          ctx.platform)
        if not told:
            return _unreached(request.id)
        return Reply(Message(f"Billing question #{request.id} is with the billing team; "
                             "their answer will reach you here.", tone=Tone.GOOD))

    @registry.command("billing.servers")
    async def servers(ctx: CommandContext) -> Reply:
        n = ctx.parsed.number("N")
        request, told = await billing.ask(ctx.actor, BillingRequestKind.SERVERS,
                                          str(ctx.parsed.text("NOTE") or ""), n,
                                          ctx.platform)
        if not told:
            return _unreached(request.id)
        return Reply(Message(f"Request #{request.id} for {n} additional server(s) is with the "
                             "billing team; their answer will reach you here.", tone=Tone.GOOD))

    @registry.command("billing.answer")
    async def answer(ctx: CommandContext) -> Reply:
        request_id = ctx.parsed.number("ID")
        _, told = await billing.answer(ctx.actor, request_id, str(ctx.parsed.text("TEXT") or ""))
        if not told:
            return Reply.text(
                f"Answer to billing request #{request_id} recorded, but its requester is no "
                "longer a contact of the organization: no one could be told. Reach them "
                "another way."
            )
        return Reply.text(f"Answer to billing request #{request_id} sent to the requester.")

"""/subdesk and /contacts: help, identity, linking, contacts and request decisions."""

from __future__ import annotations

from bot.commands.registry import CommandContext, Registry
from bot.domain import ContactRole
from bot.policy import allows, contact_roles
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
from bot.services.contacts import role_label
from bot.wiring.services import Services


def register(registry: Registry, services: Services) -> None:
    identity = services.identity
    contacts = services.contacts

    @registry.command("subdesk.help")
    async def help_(ctx: CommandContext) -> Reply:
        specs = [
            s
            for s in registry.specs()
            if allows(ctx.actor, s.permission) and registry.enabled(s)
        ]
        lines = tuple(f"{s.usage()} — {s.summary}" for s in specs)
        intro = (
            f"You are {ctx.actor.label}."
            if ctx.actor.known
            else f"Link your account first: {command('subdesk link EMAIL')}"
        )
        return Reply(
            Message(
                "Subdesk commands you can use:\n" + "\n".join(lines),
                blocks=(Heading("Subdesk commands you can use"), Paragraph(intro),
                        BulletList(lines)),
            )
        )

    @registry.command("subdesk.whoami")
    async def whoami(ctx: CommandContext) -> Reply:
        actor = ctx.actor
        sender = ctx.invocation.sender
        account = f"{sender.platform.value}:{sender.workspace}:{sender.user_id}"
        fields: tuple[tuple[str, str], ...]
        if actor.staff is not None:
            roles = ", ".join(sorted(r.value for r in actor.staff.roles)) or "none"
            fields = (("Name", actor.staff.name), ("Email", actor.staff.email),
                      ("Vendor roles", roles), ("Account", account))
        elif actor.contact is not None and actor.org is not None:
            roles = ", ".join(role_label(r) for r in sorted(contact_roles(actor)))
            if actor.sole_contact:
                roles += " (sole contact)"
            fields = (("Name", actor.contact.name), ("Email", actor.contact.email),
                      ("Organization", f"{actor.org.name} ({actor.org.key})"),
                      ("Roles", roles), ("Account", account))
        else:
            return Reply.text(
                f"This account ({account}) is not linked. Use {command('subdesk link EMAIL')}."
            )
        text = "\n".join(f"{k}: {v}" for k, v in fields)
        return Reply(Message(text, blocks=(Heading("Who you are"), Fields(fields))))

    @registry.command("subdesk.link")
    async def link(ctx: CommandContext) -> Reply:
        outcome = await identity.link(ctx.invocation.sender, ctx.parsed.text("EMAIL"))
        return Reply.text(outcome.text)

    @registry.command("subdesk.link.verify")
    async def verify(ctx: CommandContext) -> Reply:
        outcome = await identity.verify(ctx.invocation.sender, str(ctx.parsed.text("CODE")))
        return Reply.text(outcome.text) if outcome.linked else Reply.error(outcome.text)

    @registry.command("subdesk.unlink")
    async def unlink(ctx: CommandContext) -> Reply:
        if await identity.unlink(ctx.invocation.sender):
            return Reply.text("This chat account is no longer linked.")
        return Reply.error("This chat account was not linked.")

    @registry.command("subdesk.approve")
    async def approve(ctx: CommandContext) -> Reply:
        request, _ = await contacts.decide(ctx.actor, ctx.parsed.number("REQUEST_ID"), True)
        return Reply.text(
            f"Approved request #{request.id}: {request.name} <{request.email}> is a Technical "
            "Contact now; their Support Welcome message is on its way."
        )

    @registry.command("subdesk.deny")
    async def deny(ctx: CommandContext) -> Reply:
        request, _ = await contacts.decide(
            ctx.actor, ctx.parsed.number("REQUEST_ID"), False, ctx.parsed.text("REASON")
        )
        return Reply.text(f"Denied request #{request.id} for {request.email}.")

    @registry.command("contacts.list")
    async def list_(ctx: CommandContext) -> Reply:
        view = await contacts.view(ctx.actor)
        rows = []
        for c in view.contacts:
            roles = ", ".join(role_label(r) for r in sorted(c.roles))
            rows.append(f"{c.name} <{c.email}> — {roles}")
        technical = sum(1 for c in view.contacts if c.is_technical)
        pending = [f"request #{p.id}: {p.name} <{p.email}> (waiting for approval)"
                   for p in view.pending]
        head = (f"{view.org.name} ({view.org.level.value}): Technical Contacts "
                f"{technical}/{view.technical_limit}; ticket sharing "
                f"{'on' if view.org.sharing else 'off'}")
        text = "\n".join([head, *rows, *pending])
        return Reply(
            Message(
                text,
                blocks=(
                    Heading(f"Contacts of {view.org.name}"),
                    BulletList(tuple(rows + pending)),
                    Context(head),
                ),
            )
        )

    @registry.command("contacts.set")
    async def set_(ctx: CommandContext) -> Reply:
        role = ContactRole(str(ctx.parsed.text("ROLE")))
        done = await contacts.designate(
            ctx.actor, role, str(ctx.parsed.text("EMAIL")), ctx.parsed.text("NAME")
        )
        contact = done.contact
        return Reply.text("\n".join([
            f"{contact.name} <{contact.email}> is now the {role_label(role)}.", *done.notes
        ]))

    @registry.command("contacts.request_technical")
    async def request_technical(ctx: CommandContext) -> Reply:
        request, told = await contacts.request_technical(
            ctx.actor, str(ctx.parsed.text("EMAIL")), ctx.parsed.text("NAME")
        )
        if not told:
            return Reply(Message(
                f"Request #{request.id} for {request.name} <{request.email}> is saved, but no "
                "vendor admin can be reached to approve it yet; please tell your vendor.",
                tone=Tone.WARNING))
        return Reply(
            Message(
                f"Request #{request.id} for {request.name} <{request.email}> is waiting for a "
                "vendor admin's approval.",
                tone=Tone.GOOD,
            )
        )

    @registry.command("contacts.remove_technical")
    async def remove_technical(ctx: CommandContext) -> Reply:
        email = str(ctx.parsed.text("EMAIL"))
        await contacts.remove_technical(ctx.actor, email)
        return Reply.text(f"{email} is no longer a Technical Contact.")

    @registry.command("contacts.sharing")
    async def sharing(ctx: CommandContext) -> Reply:
        on = ctx.parsed.text("STATE") == "on"
        await contacts.set_sharing(ctx.actor, on)
        if on:
            return Reply.text("Ticket sharing is on: your Technical Contacts can read and "
                              "comment on each other's tickets.")
        return Reply.text("Ticket sharing is off: each Technical Contact sees only their own "
                          "tickets.")

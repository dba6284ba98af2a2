"""/alert: announcements to organizations, and acknowledging or resolving monitored alerts."""

from __future__ import annotations

from bot.commands.registry import CommandContext, Registry
from bot.domain import AlertLevel
from bot.presentation.messages import Reply
from bot.wiring.services import Services


def register(registry: Registry, services: Services) -> None:
    alerts = services.alerts

    @registry.command("alert.send")
    async def send(ctx: CommandContext) -> Reply:
        sent = await alerts.send(
            ctx.actor, AlertLevel(str(ctx.parsed.text("LEVEL"))),
            str(ctx.parsed.text("SCOPE")), str(ctx.parsed.text("TEXT")),
        )
        orgs = ", ".join(sent.orgs)
        noun = "organization" if len(sent.orgs) == 1 else "organizations"
        return Reply.text(f"Alert sent to {len(sent.orgs)} {noun} ({orgs}): "
                          f"{sent.messages} message(s) queued.")

    @registry.command("alert.ack")
    async def ack(ctx: CommandContext) -> Reply:
        alert = await alerts.acknowledge(ctx.actor, ctx.parsed.number("ID"))
        return Reply.text(f"Alert {alert.id} acknowledged: {alert.title}")

    @registry.command("alert.resolve")
    async def resolve(ctx: CommandContext) -> Reply:
        alert = await alerts.resolve(ctx.actor, ctx.parsed.number("ID"))
        return Reply.text(f"Alert {alert.id} resolved: {alert.title}")

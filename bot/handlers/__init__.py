"""Command handlers: parsed arguments in, service call, neutral `Reply` out."""

from __future__ import annotations

from bot.commands.registry import Registry
from bot.handlers import alerts, billing, directory, tickets, triage
from bot.wiring.services import Services


def build_registry(services: Services) -> Registry:
    """A registry with every feature this build provides."""
    registry = Registry()
    directory.register(registry, services)
    billing.register(registry, services)
    tickets.register(registry, services)
    triage.register(registry, services)
    alerts.register(registry, services)
    return registry

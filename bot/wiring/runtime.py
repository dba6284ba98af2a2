"""Wiring: settings → database, services, registry, core, dispatcher, and the adapters.

Adapters are plug-ins found through the `subdesk.adapters` entry-point group, so nothing in
the core names one: each factory looks at the settings and returns its adapter or None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from bot.clock import Clock, SystemClock
from bot.commands.registry import Registry
from bot.core import Core
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.ports import Adapter, Route, Terminal, Transport
from bot.handlers import build_registry
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.db import Database, alembic_config

log = logging.getLogger(__name__)

ADAPTER_GROUP = "subdesk.adapters"


class SchemaOutdated(RuntimeError):
    pass


@dataclass
class App:
    settings: Settings
    db: Database
    clock: Clock
    services: Services
    registry: Registry
    core: Core
    dispatcher: Dispatcher
    transports: dict[str, Transport] = field(default_factory=dict)
    terminal: Terminal | None = None
    adapters: dict[str, Adapter] = field(default_factory=dict)

    def routes(self) -> list[Route]:
        """Every route the adapters supply, for the one HTTP server."""
        return [route for adapter in self.adapters.values() for route in adapter.routes]

    async def close(self) -> None:
        await self.db.dispose()


AdapterFactory = Callable[[Settings, App], Adapter | None]
"""Builds an adapter from the settings, or returns None when it is not configured."""


def _current_and_head(connection: Connection) -> tuple[str | None, str | None]:
    current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return current, head


async def ensure_schema(db: Database, *, upgrade: bool) -> None:
    """Upgrade the embedded database; refuse to run on an outdated shared one."""
    if upgrade or db.dialect == "sqlite":
        await db.upgrade()
        return
    async with db.engine.connect() as conn:
        current, head = await conn.run_sync(_current_and_head)
    if current != head:
        raise SchemaOutdated(
            f"the database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `subdesk db upgrade`"
        )


def configuration_gaps(settings: Settings) -> list[str]:
    """Settings whose absence makes the bot work in a degraded way (not an error)."""
    gaps = []
    if not settings.triage_channels:
        gaps.append(
            "no triage channel configured (SUBDESK_TRIAGE_CHANNELS): new tickets and SLA "
            "alerts go to each support engineer directly"
        )
    return gaps


def adapter_factories() -> dict[str, AdapterFactory]:
    """The adapter factories installed in this environment, by registered name."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=ADAPTER_GROUP), key=lambda point: point.name)
    return {point.name: point.load() for point in found}


def add_adapters(app: App, factories: Mapping[str, AdapterFactory]) -> None:
    """Build each configured adapter and hand its transports to the dispatcher."""
    owners: dict[str, str] = {}
    for name, factory in factories.items():
        adapter = factory(app.settings, app)
        if adapter is None:
            continue
        app.adapters[name] = adapter
        for platform, transport in adapter.transports.items():
            if platform in owners:
                raise RuntimeError(
                    f"plug-ins {owners[platform]!r} and {name!r} both deliver {platform!r}"
                )
            owners[platform] = name
            app.transports[platform] = transport
            app.dispatcher.transports[platform] = transport


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    terminal: Terminal | None = None,
    factories: Mapping[str, AdapterFactory] | None = None,
    upgrade: bool = False,
    db: Database | None = None,
) -> App:
    """The wired application with every configured adapter built (not started).

    `factories` replaces the installed adapter plug-ins (tests, benchmarks)."""
    clock = clock or SystemClock()
    db = db or Database(settings.database_url)
    await ensure_schema(db, upgrade=upgrade)
    services = Services.build(db, settings, clock)
    registry = build_registry(services)
    core = Core(services, registry)

    async def feed() -> int:  # claimed reminders become messages before each batch
        return (await services.reminders.queue_claimed()).claims

    dispatcher = Dispatcher(db, settings, clock, {}, alarm=services.alerts.dead_letter,
                            feed=feed)
    app = App(settings, db, clock, services, registry, core, dispatcher, terminal=terminal)
    add_adapters(app, adapter_factories() if factories is None else factories)
    return app

"""Wiring: settings → database, services, registry, core, dispatcher and transports.

Adapters are imported lazily here, so the core packages stay free of platform libraries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.core import Core, Services
from bot.handlers import build_registry
from bot.outbox import Dispatcher
from bot.ports import Transport
from bot.registry import Registry
from storage.db import Database, alembic_config

log = logging.getLogger(__name__)


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

    async def close(self) -> None:
        await self.db.dispose()


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


def transports_for(
    settings: Settings, *, console_out: Callable[[str], None] | None
) -> dict[str, Transport]:
    """Transports this process can deliver with. Without SMTP, a console shows the emails."""
    from adapters.console.transport import ConsoleTransport

    transports: dict[str, Transport] = {}
    if console_out is not None:
        transports["console"] = ConsoleTransport("console", console_out)
    if settings.smtp_url is not None:
        from adapters.email.smtp import SmtpTransport

        transports["email"] = SmtpTransport(
            settings.smtp_url.get_secret_value(), settings.mail_from
        )
    elif console_out is not None:
        transports["email"] = ConsoleTransport("email", console_out)
    return transports


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    console_out: Callable[[str], None] | None = None,
    transports: dict[str, Transport] | None = None,
    upgrade: bool = False,
    db: Database | None = None,
) -> App:
    clock = clock or SystemClock()
    db = db or Database(settings.database_url)
    await ensure_schema(db, upgrade=upgrade)
    services = Services.build(db, settings, clock)
    registry = build_registry(services)
    core = Core(services, registry)
    chosen = transports if transports is not None else transports_for(
        settings, console_out=console_out
    )
    dispatcher = Dispatcher(db, settings, clock, chosen)
    return App(settings, db, clock, services, registry, core, dispatcher, chosen)

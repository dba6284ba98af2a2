"""The console adapter as a test fake: type as anyone, see every delivery.

    h = await Harness.create(settings, clock, db)
    await h.seed_demo()
    reply = await h.as_("tom@demo.test").send("/ticket new sev2 Database down")
    assert h.delivered_to("ana@demo.test")
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.console.app import ConsoleAdapter, ConsoleSession
from adapters.console.transport import ConsoleTransport
from bot.clock import FixedClock
from bot.delivery.ports import Terminal, Transport
from bot.domain import StaffRole
from bot.presentation.messages import Message
from bot.services.onboarding import OrderForm
from bot.wiring.config import Settings
from bot.wiring.demo import seed_demo
from bot.wiring.runtime import App, build_app
from storage.db import Database
from storage.outbox import OutboxItem


@dataclass
class Harness:
    app: App
    clock: FixedClock
    console: ConsoleTransport
    email: ConsoleTransport
    lines: list[str] = field(default_factory=list)

    @classmethod
    async def create(
        cls, settings: Settings, clock: FixedClock, db: Database,
        extra: dict[str, Transport] | None = None,
    ) -> Harness:
        """The app with console and email shown on the console, plus `extra` transports."""
        lines: list[str] = []
        built: list[ConsoleAdapter] = []

        def console(settings: Settings, app: App) -> ConsoleAdapter:
            built.append(ConsoleAdapter(app, Terminal(lines.append), emails=True))
            return built[-1]

        app = await build_app(settings, clock=clock, db=db, factories={"console": console})
        app.dispatcher.transports.update(extra or {})
        adapter = built[0]
        assert adapter.email is not None
        return cls(app, clock, adapter.console, adapter.email, lines)

    def as_(self, email: str | None = None, *, user_id: str = "local") -> ConsoleSession:
        """A console session acting as `email` (trusted), or as an unlinked console account."""
        return ConsoleSession(
            self.app.core, self.app.dispatcher, email=email, user_id=user_id,
            out=self.lines.append,
        )

    async def seed_demo(self) -> None:
        await seed_demo(self.app.services)
        await self.app.dispatcher.drain(max_wait=0)

    async def import_orders(self, form: dict[str, object]) -> None:
        await self.app.services.onboarding.import_orders(OrderForm.model_validate(form))
        await self.app.dispatcher.drain(max_wait=0)

    async def add_staff(self, email: str, *roles: StaffRole, name: str = "") -> None:
        await self.app.services.identity.add_staff(email, list(roles), name)

    @property
    def delivered(self) -> list[tuple[OutboxItem, Message]]:
        return sorted(self.console.delivered + self.email.delivered, key=lambda d: d[0].id)

    def delivered_to(self, target: str) -> list[Message]:
        """Messages delivered to an email address, console account or channel id."""
        return [m for item, m in self.delivered if item.target == target]

    def emails_to(self, address: str) -> list[Message]:
        return [m for item, m in self.email.delivered if item.target == address]

    async def drain(self) -> None:
        await self.app.dispatcher.drain(max_wait=0)

"""The bot on a real Synapse: the app with its Matrix plug-in (and the HTTP server), the
demo organization, Tom (its Technical Contact) and Sam (support) as Matrix people."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select

from adapters.matrix.app import MatrixAdapter, link_for
from adapters.matrix.client import Tuning
from bot.clock import SystemClock
from bot.wiring.background import Background, start_background
from bot.wiring.config import Settings
from bot.wiring.runtime import AdapterFactory, App, adapter_factories, build_app
from storage.db import Database
from storage.models import TicketCommentRow, TicketRow
from tests.peers.matrix_people import Person
from tests.peers.synapse import Account, Synapse

# Quick to notice a homeserver away, quick to come back: the defaults wait far longer.
TUNING = Tuning(sync_timeout_ms=5_000, request_timeout=5.0, backoff_base=0.2,
                backoff_cap=2.0, lease_poll=0.3, lease_term=6.0, room_wait=20.0,
                undecryptable_wait=5.0)


def matrix_settings(settings: Settings, server: Synapse, bot: Account, data: Path,
                    **more: object) -> Settings:
    return settings.model_copy(update={
        "http_port": 0, "matrix_homeserver": server.url, "matrix_user_id": bot.user_id,
        "matrix_password": SecretStr(bot.password), "data_dir": data,
        "outbox_poll_interval": 0.05, "outbox_per_target_interval": 0.0,
        "triage_channels": (), **more})


def factories(tuning: Tuning = TUNING) -> dict[str, AdapterFactory]:
    """The installed plug-ins, Matrix with test timings."""
    found: dict[str, AdapterFactory] = dict(adapter_factories())

    def matrix(settings: Settings, app: App) -> MatrixAdapter | None:
        return MatrixAdapter(app, link_for(settings, tuning)) if settings.matrix_enabled \
            else None

    found["matrix"] = matrix
    return found


@dataclass
class Bot:
    app: App
    adapter: MatrixAdapter
    background: Background
    closed: bool = False

    async def close(self) -> None:
        """Stop the process's work (once): its sync ends and its lease goes with it."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.background.close()
        finally:
            await self.app.close()


async def until(check: Callable[[], object], within: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


async def start_bot(settings: Settings, db: Database, *, ready: bool = True,
                    tuning: Tuning = TUNING) -> Bot:
    """Build and start the app; with `ready`, wait until its Matrix account has synced."""
    app = await build_app(settings, clock=SystemClock(), db=db, factories=factories(tuning))
    background = await start_background(app)
    adapter = app.adapters["matrix"]
    assert isinstance(adapter, MatrixAdapter)
    bot = Bot(app, adapter, background)
    if ready:
        try:
            await until(lambda: adapter.delivering, 60, "the bot's first sync")
        except BaseException:
            await bot.close()
            raise
    return bot


@asynccontextmanager
async def people(server: Synapse, root: Path, *accounts: Account) -> AsyncIterator[list[Person]]:
    started: list[Person] = []
    try:
        for account in accounts:
            started.append(await Person(server, account, root / account.localpart).start())
        yield started
    finally:
        for person in started:
            await person.stop()


@dataclass
class Records:
    db: Database
    seen: list[str] = field(default_factory=list)

    async def tickets(self) -> list[tuple[int, str, str]]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(TicketRow.id, TicketRow.subject, TicketRow.status).order_by(TicketRow.id))
            return [(int(r[0]), str(r[1]), str(r[2])) for r in rows.all()]

    async def comments(self) -> list[tuple[str, bool]]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(TicketCommentRow.body, TicketCommentRow.internal)
                .order_by(TicketCommentRow.id))
            return [(str(body), bool(internal)) for body, internal in rows.all()]

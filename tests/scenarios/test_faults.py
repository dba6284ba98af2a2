"""Faults (SPEC §7): with the database down, commands answer "temporarily unavailable"."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.clock import FixedClock
from bot.commands.invocation import Invocation, Sender
from bot.core import UNAVAILABLE, Core
from bot.delivery.dispatcher import Dispatcher
from bot.domain import Platform
from bot.handlers import build_registry
from bot.wiring.config import Settings
from bot.wiring.services import Services
from storage.db import Database

pytestmark = pytest.mark.nodb


@pytest.fixture
def broken_url() -> str:
    """A PostgreSQL server that is not there (connection refused)."""
    return "postgresql://subdesk:PaSsWoRd@127.0.0.1:1/subdesk"


@pytest.mark.parametrize("line", ["/subdesk whoami", "/contacts", "/subdesk link a@b.test",
                                  "/not-a-command"])
async def test_commands_answer_unavailable_when_the_database_is_down(
    broken_url: str, clock: FixedClock, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every command, even a malformed one, gets the "temporarily unavailable" answer,
    and the log names the error without the database password."""
    db = Database(broken_url)
    settings = Settings(_env_file=None, database_url=broken_url)
    services = Services.build(db, settings, clock)
    core = Core(services, build_registry(services))
    try:
        reply = await core.handle(Invocation(Sender(Platform.CONSOLE, "local", "u1"), line))
    finally:
        await db.dispose()
    assert not reply.ok
    assert reply.message.text == UNAVAILABLE
    assert "PaSsWoRd" not in caplog.text


async def test_running_dispatcher_survives_a_database_outage(
    broken_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The long-running dispatcher logs the outage and keeps going until told to stop."""
    caplog.set_level(logging.WARNING)
    db = Database(broken_url)
    settings = Settings(_env_file=None, database_url=broken_url,
                        outbox_poll_interval=0.01)
    dispatcher = Dispatcher(db, settings, clock, {})
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(stop))
    await asyncio.sleep(0.3)
    assert not task.done()
    stop.set()
    dispatcher.poke()
    await asyncio.wait_for(task, timeout=5)
    await db.dispose()
    assert "outbox dispatcher" in caplog.text
    assert "PaSsWoRd" not in caplog.text


async def test_a_sweep_during_a_database_outage_logs_one_line(
    broken_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A scheduled sweep that meets the database down says so in one line (no traceback,
    no password); the next run tries again."""
    from bot.services.sla import sla_job
    from bot.wiring.scheduler import build_scheduler

    caplog.set_level(logging.WARNING)
    db = Database(broken_url)
    settings = Settings(_env_file=None, database_url=broken_url)
    services = Services.build(db, settings, clock)
    scheduler = build_scheduler([sla_job(services.sla)])
    try:
        await scheduler.get_job("sla").func()
    finally:
        await db.dispose()
    [record] = [r for r in caplog.records if r.name == "bot.wiring.scheduler"]
    assert record.getMessage().startswith("scheduled job sla: database unavailable (")
    assert record.exc_info is None
    assert "PaSsWoRd" not in caplog.text

"""What `subdesk run` keeps going: every configured adapter (its start, its long-running
task, its stop), the scheduler's sweeps and the outbox dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from bot.delivery.ports import Adapter
from bot.services.autoclose import autoclose_job
from bot.services.reminders import reminder_job
from bot.services.sla import sla_job
from bot.services.sla_report import sla_report_job
from bot.wiring.runtime import App, configuration_gaps
from bot.wiring.scheduler import Job, build_scheduler
from bot.wiring.services import Services
from storage import wakeup

log = logging.getLogger(__name__)


def jobs_for(services: Services) -> list[Job]:
    """Every periodic sweep of this build, each given the one service it runs."""
    return [reminder_job(services.reminders), sla_job(services.sla),
            autoclose_job(services.autoclose), sla_report_job(services.sla_report)]


DISPATCHER_GRACE = 5.0  # seconds a closing dispatcher may take to finish its batch


@dataclass
class Background:
    scheduler: Any = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started: list[tuple[str, Adapter]] = field(default_factory=list)
    chat_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    wake_dispatcher: asyncio.Event | None = None

    async def wait(self) -> None:
        """Until a chat adapter's task ends (the console at the end of its input), raising
        what it raised; with no chat task, until `stop` is set."""
        if not self.chat_tasks:
            await self.stop.wait()
            return
        done, _ = await asyncio.wait(self.chat_tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def close(self) -> None:
        """Stop everything this started, in reverse order."""
        self.stop.set()
        if self.wake_dispatcher is not None:
            # Let the dispatcher finish the delivery in hand rather than cancel it inside a
            # database call (a connection cancelled mid-statement may never close).
            self.wake_dispatcher.set()
            ending = [t for t in self.tasks if t.get_name() == "dispatcher"]
            await asyncio.wait(ending, timeout=DISPATCHER_GRACE)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for task in reversed(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for name, adapter in reversed(self.started):
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s did not stop cleanly", name)


async def start_background(app: App, *, dispatcher: bool = True) -> Background:
    """Start every adapter of `app` and run its task, then the scheduler and (unless told
    not to) the dispatcher loop. An adapter whose start fails stops the ones started."""
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    background = Background()
    for gap in configuration_gaps(app.settings):
        log.warning("%s", gap)
    try:
        for name, adapter in app.adapters.items():
            await adapter.start()
            background.started.append((name, adapter))
    except BaseException:
        await background.close()
        raise
    background.scheduler = build_scheduler(jobs_for(app.services))
    background.scheduler.start()
    if dispatcher:
        background.tasks.append(
            asyncio.create_task(app.dispatcher.run_forever(background.stop), name="dispatcher")
        )
        background.wake_dispatcher = app.dispatcher.wakeup
        # PostgreSQL: messages other processes queue wake this one's dispatcher at once
        background.tasks.append(asyncio.create_task(
            wakeup.listen(app.db, app.dispatcher.poke, background.stop), name="outbox wake-ups"))
    for name, adapter in app.adapters.items():
        task = asyncio.create_task(adapter.run(), name=f"adapter {name}")
        background.tasks.append(task)
        if adapter.chat:
            background.chat_tasks.append(task)
        else:
            task.add_done_callback(_report)
    return background


def _report(task: asyncio.Task[None]) -> None:
    """Log the error that ended a task nobody waits on."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s stopped: %s", task.get_name(), error, exc_info=error)

"""What `subdesk run` keeps going beside the console or chat adapters: the HTTP server,
the scheduler's sweeps and the outbox dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from bot.runtime import App, configuration_gaps
from bot.scheduler import Job, build_scheduler
from bot.services.reminders import reminder_job
from bot.services.sla import sla_job

log = logging.getLogger(__name__)


def jobs_for(app: App) -> list[Job]:
    """Every periodic sweep of this build."""
    return [reminder_job(app.services), sla_job(app.services)]


@dataclass
class Background:
    runner: Any = None
    scheduler: Any = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop everything this started, in reverse order."""
        self.stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.runner is not None:
            await self.runner.cleanup()


async def start_background(app: App, *, dispatcher: bool = True) -> Background:
    """Start the HTTP server on SUBDESK_HTTP_HOST:PORT, the scheduler and (unless told not
    to) the dispatcher loop. A port already in use is logged, not fatal: the console and
    the sweeps still run."""
    from adapters.http.server import serve

    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    background = Background()
    for gap in configuration_gaps(app.settings):
        log.warning("%s", gap)
    host, port = app.settings.http_host, app.settings.http_port
    try:
        background.runner = await serve(app, host, port)
        log.info("HTTP server on http://%s:%s", host, port)
    except OSError as exc:
        log.warning("HTTP server not started on %s:%s: %s", host, port, exc.strerror or exc)
    background.scheduler = build_scheduler(jobs_for(app))
    background.scheduler.start()
    if dispatcher:
        background.tasks.append(
            asyncio.create_task(app.dispatcher.run_forever(background.stop), name="dispatcher")
        )
    return background

"""Periodic jobs on APScheduler: SLA watch, billing reminders, renewal notices.

Every job is a sweep that is safe to run at any time, any number of times, on any number
of replicas: what it sends is decided by idempotent claims in the database, never by
scheduler state. So a missed run, a restart or a second replica changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from storage.db import is_outage

log = logging.getLogger(__name__)

Sweep = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    sweep: Sweep
    every_seconds: float


def build_scheduler(jobs: list[Job]) -> AsyncIOScheduler:
    """An AsyncIOScheduler running each sweep on its interval, never overlapping itself."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in jobs:
        scheduler.add_job(
            _guarded(job),
            "interval",
            seconds=job.every_seconds,
            id=job.name,
            name=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
    return scheduler


def _guarded(job: Job) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job.sweep()
        except Exception as exc:  # the next run tries again; claims make that safe
            if is_outage(exc):
                log.warning("scheduled job %s: database unavailable (%s); the next run "
                            "tries again", job.name, type(exc).__name__)
                return
            log.exception("scheduled job %s failed", job.name)

    run.__name__ = f"sweep_{job.name}"
    return run

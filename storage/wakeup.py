"""Outbox wake-ups between processes on PostgreSQL (`LISTEN` / `NOTIFY`).

A transaction that makes outbox messages due (queues them, hands them back, retries them)
sends a notification on `CHANNEL`, delivered when it commits; every process that runs a
dispatcher listens on a connection of its own and pokes it. So messages queued by one
replica, a Slack worker process or a command-line import are claimed by every replica at
once rather than at each one's next poll, and a burst is shared among them from its first
message. The poll stays: a notification is only a hint (one missed while the connection was
down costs at most a poll interval), and SQLite, where there is one process, has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import CONNECT_TIMEOUT, Database

log = logging.getLogger(__name__)

CHANNEL = "subdesk_outbox"
APPLICATION = "subdesk outbox wake-ups"  # the listening connection, in pg_stat_activity
_ANNOUNCED = "subdesk_outbox_announced"
RECONNECT_MIN = 1.0  # seconds before listening again after the connection was lost,
RECONNECT_MAX = 30.0  # doubling up to this while it keeps failing
CHECK_EVERY = 5.0  # how often a quiet connection is checked to be still open


async def announce(session: AsyncSession) -> None:
    """Tell the listening processes, once this transaction commits, that outbox messages
    became due. Once per transaction; nothing on SQLite."""
    if session.info.get(_ANNOUNCED) or session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(text(f"NOTIFY {CHANNEL}"))
    session.info[_ANNOUNCED] = True


async def listen(db: Database, poke: Callable[[], None], stop: asyncio.Event) -> None:
    """Until `stop` is set: poke on every notification, on a connection of its own (not
    one of the pool's), connected again after a loss. Each (re)connection pokes too, as a
    notification sent meanwhile was missed. Returns at once on SQLite."""
    if not db.is_postgres:
        return
    import asyncpg  # PostgreSQL's driver, there whenever the database is PostgreSQL

    # The engine's own connection options (host, credentials, TLS…), less the ones only
    # SQLAlchemy's dialect reads.
    _, given = db.engine.dialect.create_connect_args(db.engine.url)
    accepted = inspect.signature(asyncpg.connect).parameters
    options = {k: v for k, v in given.items() if k in accepted}
    options["server_settings"] = {"application_name": APPLICATION,
                                  **(options.get("server_settings") or {})}
    wait = RECONNECT_MIN
    failure: str | None = None
    while not stop.is_set():
        connection: Any = None
        try:
            connection = await asyncpg.connect(**{**options, "timeout": CONNECT_TIMEOUT})
            await connection.add_listener(CHANNEL, lambda *_: poke())
            if failure is not None:
                log.info("outbox wake-ups: listening again")
            failure, wait = None, RECONNECT_MIN
            poke()
            while not stop.is_set() and not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), CHECK_EVERY)
                if not stop.is_set():
                    await connection.execute("SELECT 1")  # a connection lost shows here
        except Exception as exc:  # the database away: the poll carries on meanwhile
            if failure is None:
                log.warning("outbox wake-ups: %s; other processes' messages wait for the "
                            "poll until the database answers", type(exc).__name__)
            failure = type(exc).__name__
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT)
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            wait = min(RECONNECT_MAX, wait * 2)

"""Named leases: one holder at a time across processes and replicas.

On PostgreSQL a lease is a session advisory lock held on a connection of its own: when the
holder dies, its connection closes and the lock is free for the next. On the embedded SQLite
database (one machine) it is an exclusive `flock` on a file beside the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database

log = logging.getLogger(__name__)


class Lease(Protocol):
    name: str

    async def alive(self) -> bool:
        """Whether the lease is still held (its connection still answers)."""
        ...

    async def release(self) -> None:
        ...


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PgLease:
    def __init__(self, name: str, conn: AsyncConnection) -> None:
        self.name = name
        self.conn = conn

    async def alive(self) -> bool:
        try:
            # A session lock lives as long as its session: a connection that answers holds it.
            await self.conn.execute(text("SELECT 1"))
            await self.conn.commit()
        except Exception as exc:
            log.warning("lease %s lost: %s", self.name, type(exc).__name__)
            return False
        return True

    async def release(self) -> None:
        # Closing the connection for good (not back to the pool) frees the lock for sure.
        with contextlib.suppress(Exception):
            await self.conn.invalidate()
        with contextlib.suppress(Exception):
            await self.conn.close()


class FileLease:
    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self.fd = fd

    async def alive(self) -> bool:
        return self.fd >= 0

    async def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


async def try_lease(db: Database, name: str) -> Lease | None:
    """Take the lease `name` if nobody holds it; None when someone does."""
    if db.is_postgres:
        conn = await db.engine.connect()
        try:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": lock_key(name)})
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if got:
            return PgLease(name, conn)
        await conn.close()
        return None
    database = str(db.url.database)
    lock_path = f"{database}.{hashlib.sha256(name.encode()).hexdigest()[:12]}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return FileLease(name, fd)


class Tenure:
    """A lease held for a term, so its holder can ride out a database outage.

    Each `check` renews the lease; when the database cannot be reached the holder keeps
    the lease until `term` seconds after its last renewal, counted on its own clock from
    before that renewal was asked for. A PostgreSQL lock is dropped with its connection (a
    restarted server drops them all), so once the database answers again the lease is taken
    anew; if another process took it first, the holder has lost it. A process that takes
    the lease after others held it waits one term (`settle`) before acting on it: whoever
    held it before has stopped by then, by its own clock.
    """

    def __init__(self, db: Database, name: str, lease: Lease, term: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.name = name
        self.lease = lease
        self.term = term
        self._clock = clock
        self._renewed = clock()
        self.cut_off = False  # the last check could not reach the database

    @property
    def expired(self) -> bool:
        return self._clock() - self._renewed >= self.term

    async def check(self) -> bool:
        """Renew the lease; False when it is lost (another process holds it, or the term
        ran out while the database could not be reached)."""
        asked = self._clock()
        if not self.cut_off and await self.lease.alive():
            self._renewed = asked
            return True
        try:
            again = await try_lease(self.db, self.name)
        except (OperationalError, DBAPIError, PoolTimeout, ConnectionError, OSError) as exc:
            if not self.cut_off:
                log.warning("lease %s: database unreachable (%s); kept for %.0f s at most",
                            self.name, type(exc).__name__,
                            max(0.0, self.term - (asked - self._renewed)))
            self.cut_off = True
            return not self.expired
        await self.lease.release()
        if again is None:
            return False
        self.lease, self._renewed, self.cut_off = again, asked, False
        return True

    async def settle(self, stopped: asyncio.Event) -> bool:
        """Wait one term while keeping the lease (a previous holder cut off from the
        database may act on it until then); False when it was lost meanwhile."""
        deadline = self._clock() + self.term
        while (left := deadline - self._clock()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), timeout=min(left, 1.0))
            if stopped.is_set() or not await self.check():
                return False
        return True

    async def release(self) -> None:
        await self.lease.release()

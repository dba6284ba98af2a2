"""Named leases: one holder at a time across processes and replicas.

On PostgreSQL a lease is a session advisory lock held on a connection of its own: when the
holder dies, its connection closes and the lock is free for the next. On the embedded SQLite
database (one machine) it is an exclusive `flock` on a file beside the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from typing import Protocol

from sqlalchemy import text
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

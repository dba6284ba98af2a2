"""Engines, transactions and migrations for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite_driver
from storage.urls import pg_options

log = logging.getLogger(__name__)

# aiosqlite logs every call with its arguments at DEBUG: user text, link codes, tokens.
# Like SQLAlchemy's own loggers, it stays quiet unless someone configures it explicitly.
_aiosqlite_log = logging.getLogger("aiosqlite")
if _aiosqlite_log.level == logging.NOTSET:
    _aiosqlite_log.setLevel(logging.INFO)

MIGRATIONS = Path(__file__).with_name("migrations")
_READONLY = "subdesk_readonly"
# Any 64-bit constant: replicas starting at once run migrations one after the other.
_MIGRATION_LOCK = 0x5B_DE_5C_00_01
CONNECT_TIMEOUT = 10  # seconds to reach PostgreSQL before giving up (asyncpg waits 60)


class DatabaseUnusable(Exception):
    """The configured database cannot be opened or reached; the message is one line for
    the operator and never holds a password."""


def _check_sqlite_file(database: str | None) -> None:
    """Refuse a SQLite path that cannot hold the embedded database, rather than create
    directories on a typo or fail later with a driver traceback."""
    if not database or database == ":memory:":
        raise DatabaseUnusable(
            "SUBDESK_DATABASE_URL names no SQLite file; write sqlite:///path/to/subdesk.db"
        )
    path = Path(database).expanduser()
    if not path.parent.is_dir():
        raise DatabaseUnusable(
            f"the directory of the SQLite database {path} does not exist; create it first"
        )
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        raise DatabaseUnusable(f"the SQLite database {path} is not a file this user can write")
    if not path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise DatabaseUnusable(f"cannot create the SQLite database {path}: the directory is "
                               "not writable by this user")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is away (down, restarting, out of reach, its
    connection lost) rather than that a statement is wrong: worth trying again later."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, OperationalError
                                                                | InterfaceError)
    return isinstance(exc, PoolTimeout | ConnectionError | OSError)


def failure_reason(exc: BaseException) -> str | None:
    """One line saying why the database could not be used, for errors the driver raises on
    connecting (unknown database or role, refused or unresolvable host, unopenable file);
    None for anything else. Driver messages name hosts, databases and roles, never passwords."""
    if isinstance(exc, DatabaseUnusable):
        return str(exc)
    if isinstance(exc, DBAPIError):
        origin = exc.orig if exc.orig is not None else exc
        text_ = str(origin).splitlines()[0] if str(origin) else type(origin).__name__
        return re.sub(r"^<class '[\w.]+'>: ", "", text_)[:200]
    if isinstance(exc, socket.gaierror):
        return "the database host name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "the database server refused the connection (is it running, on that port?)"
    if isinstance(exc, TimeoutError):
        return "the database server did not answer in time"
    if isinstance(exc, OSError) and exc.filename is None:
        return f"cannot connect ({exc.strerror or type(exc).__name__})"
    return None


def async_url(url: str) -> URL:
    """Map the documented `sqlite:///…` and `postgresql://…` forms to async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg", query=pg_options(parsed.query))
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def _sqlite_setup(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and write transactions that take the lock up front."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        begin = "BEGIN" if readonly else "BEGIN IMMEDIATE"
        driver = conn.connection.driver_connection
        if isinstance(driver, sqlite_driver.SqliteConnection):
            driver.begin_with_next_statement(begin)  # no statement of its own to run
        else:
            conn.exec_driver_sql(begin)


class Database:
    """One engine and the two kinds of transaction the services use."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        # Statement parameters carry user text (and link codes); errors must not show them.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.dialect == "sqlite":
            _check_sqlite_file(self.url.database)
            if not self.url.query:  # the stock driver keeps any URL options
                path = str(self.url.database)
                kwargs["async_creator"] = lambda: sqlite_driver.connect(path)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                          connect_args={"timeout": CONNECT_TIMEOUT})
        self.engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        self._writer = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = async_sessionmaker(
            self.engine.execution_options(**{_READONLY: True}), expire_on_commit=False
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-write transaction, committed on success and rolled back on error."""
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction (no write lock on SQLite)."""
        async with self._reader() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Whether the database answers: a read, so it never waits behind a writer (on
        SQLite a plain connection would begin a write transaction and wait for the lock)."""
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    async def upgrade(self, revision: str = "head") -> None:
        """Run Alembic migrations up to `revision` on this database."""
        async with self.engine.begin() as conn:
            if self.is_postgres:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade, revision)

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)

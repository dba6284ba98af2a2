"""An aiosqlite connection that crosses to its worker thread once per statement.

SQLAlchemy's aiosqlite adapter opens a cursor, executes, fetches the rows and closes the
cursor: four hand-offs to the connection's thread for every statement, which is most of
what a short command costs on SQLite. This connection keeps aiosqlite's thread and queue
but sends a statement and brings back its rows in one hand-off; cursors open and close
without one, a `BEGIN` travels with the transaction's first statement, and ending a
transaction that never started costs nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

_BEGIN = frozenset({"BEGIN", "BEGIN DEFERRED", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"})
_Outcome = tuple[Any, int, int | None, list[Any], bool]


def _run(db: sqlite3.Connection, begin: str | None, sql: str, parameters: Any, many: bool
         ) -> _Outcome:
    """In the worker thread: the statement (after a pending BEGIN) and all its rows."""
    if begin is not None:
        db.execute(begin)
    cursor = db.executemany(sql, parameters) if many else db.execute(sql, parameters)
    try:
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows, db.in_transaction
    finally:
        cursor.close()


class Cursor:
    """A buffered cursor: `execute` runs the statement and fetches every row at once."""

    arraysize = 1

    def __init__(self, connection: SqliteConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        return await self._connection._statement(self, sql, parameters or (), many=False)

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        return await self._connection._statement(self, sql, list(parameters), many=True)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


class SqliteConnection(aiosqlite.Connection):
    """aiosqlite's connection, with one thread hand-off per statement (see module doc)."""

    def __init__(self, database: str) -> None:
        super().__init__(lambda: sqlite3.connect(database, check_same_thread=False), 64)
        self._thread.daemon = True
        self._pending_begin: str | None = None
        self._transaction = False

    def begin_with_next_statement(self, begin: str) -> None:
        """Start a transaction with `begin` (a BEGIN statement) when the next one is sent."""
        if self._transaction:
            raise sqlite3.OperationalError("cannot start a transaction within a transaction")
        self._pending_begin = begin

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    async def _statement(self, cursor: Cursor, sql: str, parameters: Sequence[Any] | Any,
                         *, many: bool) -> Cursor:
        if not many and sql.strip().upper() in _BEGIN and not self._transaction:
            self.begin_with_next_statement(sql)
            cursor.description, cursor.rowcount, cursor._rows = None, -1, []
            return cursor
        begin, self._pending_begin = self._pending_begin, None
        try:
            outcome: _Outcome = await self._execute(  # type: ignore[no-untyped-call]
                lambda: _run(self._conn, begin, sql, parameters, many)
            )
        except BaseException:
            self._transaction = True  # not known: let commit or rollback ask the database
            raise
        cursor.description, cursor.rowcount, cursor.lastrowid, cursor._rows = outcome[:4]
        self._transaction = outcome[4]
        return cursor

    async def commit(self) -> None:
        self._pending_begin = None
        if self._transaction:
            await self._end(sqlite3.Connection.commit)

    async def rollback(self) -> None:
        self._pending_begin = None
        if self._transaction:
            await self._end(sqlite3.Connection.rollback)

    async def _end(self, how: Any) -> None:
        def end() -> bool:
            how(self._conn)
            return self._conn.in_transaction

        self._transaction = True
        self._transaction = await self._execute(end)  # type: ignore[no-untyped-call]


async def connect(database: str) -> SqliteConnection:
    """Open `database` (a path, or `:memory:`) on its own worker thread."""
    connection = SqliteConnection(database)
    await connection
    return connection

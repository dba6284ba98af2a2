"""On SQLite, a command costs few hand-offs to the connection's thread, and transactions
still commit and roll back exactly as before."""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.commands.invocation import Invocation, Sender
from bot.domain import Platform
from bot.wiring.demo import DEMO_MAIN
from storage.db import Database
from storage.outbox import ClaimStore
from tests.conftest import NOW
from tests.harness import Harness


@pytest.fixture(autouse=True)
def sqlite_only(db: Database) -> None:
    if db.is_postgres:
        pytest.skip("hand-offs to a worker thread are how aiosqlite works; asyncpg has none")


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every function sent to an aiosqlite worker thread from now on."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return sent


async def test_whoami_is_one_statement_and_one_commit(harness: Harness,
                                                      hand_offs: list[str]) -> None:
    """Resolving the person and answering `/subdesk whoami` crosses to the database thread
    twice: the BEGIN travels with the one query, then the transaction ends."""
    await harness.seed_demo()
    sender = Sender(Platform.CONSOLE, "local", DEMO_MAIN, asserted_email=DEMO_MAIN)
    hand_offs.clear()
    reply = await harness.app.core.handle(Invocation(sender, "/subdesk whoami"))
    assert reply.ok
    assert len(hand_offs) == 2, hand_offs


async def test_a_failed_transaction_leaves_nothing_behind(db: Database) -> None:
    """A write rolled back by an error is gone, and the connection serves the next one."""
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            assert await ClaimStore(session, NOW).claim_event("console", "Ev1")
            raise RuntimeError("handler failed")
    async with db.transaction() as session:
        assert await ClaimStore(session, NOW).claim_event("console", "Ev1")
    async with db.transaction() as session:
        assert not await ClaimStore(session, NOW).claim_event("console", "Ev1")


async def test_a_failed_first_statement_ends_its_transaction(db: Database) -> None:
    """A statement that fails right after BEGIN rolls back; an empty transaction commits."""
    for _ in range(3):
        with pytest.raises(OperationalError):
            async with db.transaction() as session:
                await session.execute(text("SELECT * FROM no_such_table"))
        async with db.transaction():
            pass
    async with db.read() as session:
        assert await session.scalar(text("SELECT 1")) == 1

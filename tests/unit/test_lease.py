"""A lease held for a term (`Tenure`): kept through a database outage until the term runs
out on the holder's own clock, taken anew when the database answers, lost when another
process took it first. The database is the test's (SQLite or PostgreSQL); the outage is a
PostgreSQL URL on a port nothing listens on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storage.db import Database
from storage.lease import Tenure, try_lease
from tests.peers.synapse import free_port

NAME = "matrix-sync:test"
TERM = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def away() -> AsyncIterator[Database]:
    """A database that cannot be reached."""
    database = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    yield database
    await database.dispose()


async def _cut_off(db: Database, away: Database, clock: Clock) -> Tenure:
    """A tenure whose lease was dropped with the database (its connection is gone) and
    whose database does not answer."""
    lease = await try_lease(db, NAME)
    assert lease is not None
    tenure = Tenure(away, NAME, lease, TERM, clock=clock)
    await lease.release()  # as a restarted PostgreSQL drops its locks
    return tenure


async def test_an_outage_is_ridden_out_until_the_term_runs_out(db: Database,
                                                               away: Database) -> None:
    clock = Clock()
    tenure = await _cut_off(db, away, clock)
    clock.now += TERM - 1
    assert await tenure.check() is True
    assert tenure.cut_off and not tenure.expired
    clock.now += 1
    assert await tenure.check() is False
    assert tenure.expired


async def test_the_lease_is_taken_anew_when_the_database_answers(db: Database,
                                                                 away: Database) -> None:
    clock = Clock()
    tenure = await _cut_off(db, away, clock)
    clock.now += 10
    assert await tenure.check() is True and tenure.cut_off
    tenure.db = db  # the database is back
    clock.now += 40
    assert await tenure.check() is True
    assert not tenure.cut_off
    clock.now += TERM - 1  # the term counts from the renewal, not from the first taking
    assert not tenure.expired
    assert await try_lease(db, NAME) is None, "the lease is held again"
    await tenure.release()
    again = await try_lease(db, NAME)
    assert again is not None
    await again.release()


async def test_a_lease_another_process_took_meanwhile_is_lost(db: Database,
                                                              away: Database) -> None:
    clock = Clock()
    tenure = await _cut_off(db, away, clock)
    assert await tenure.check() is True
    other = await try_lease(db, NAME)  # a replica took it as the database came back
    assert other is not None
    try:
        tenure.db = db
        assert await tenure.check() is False
    finally:
        await other.release()


async def test_a_new_holder_waits_one_term_and_keeps_the_lease(db: Database) -> None:
    lease = await try_lease(db, NAME)
    assert lease is not None
    tenure = Tenure(db, NAME, lease, 0.3)
    started = asyncio.get_running_loop().time()
    assert await tenure.settle(asyncio.Event()) is True
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert await try_lease(db, NAME) is None
    await tenure.release()

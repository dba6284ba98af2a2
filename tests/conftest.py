"""Shared fixtures: a migrated database per test (SQLite, or PostgreSQL when
`SUBDESK_TEST_DATABASE_URL` names one), a fixed clock, and the console harness."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.clock import FixedClock
from bot.wiring.config import Settings
from storage.db import Database
from storage.models import Base
from tests.adapters.slack_fake import FakeSlack
from tests.harness import Harness

PG_URL = os.environ.get("SUBDESK_TEST_DATABASE_URL", "")
NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database for this test session (one per xdist worker)."""
    if PG_URL:
        name = f"subdesk_test_{_worker()}_{os.getpid()}"
        url = _create_pg_database(PG_URL, name)
        asyncio.run(_upgrade(url))
        yield url
        _drop_pg_database(PG_URL, name)
    else:
        template = tmp_path_factory.mktemp("db") / "template.db"
        url = f"sqlite:///{template}"
        asyncio.run(_upgrade(url))
        yield url


async def _upgrade(url: str) -> None:
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()


@asynccontextmanager
async def _pg_connect(url: str) -> AsyncIterator[Any]:
    """An asyncpg connection to the PostgreSQL database that `url` names."""
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        database=parsed.database or "postgres",
    )
    try:
        yield conn
    finally:
        await conn.close()


async def _pg_execute(url: str, *statements: str) -> None:
    """Run statements on the PostgreSQL database that `url` names (no transaction)."""
    async with _pg_connect(url) as conn:
        for statement in statements:
            await conn.execute(statement)


def _create_pg_database(url: str, name: str) -> str:
    asyncio.run(
        _pg_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    f'CREATE DATABASE "{name}"')
    )
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(url: str, name: str) -> None:
    asyncio.run(_pg_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def db_url(database_url: str, tmp_path: Path) -> str:
    """A clean database for one test: a copy of the SQLite template, or truncated tables."""
    if database_url.startswith("sqlite"):
        source = Path(make_url(database_url).database or "")
        target = tmp_path / "subdesk.db"
        shutil.copy(source, target)
        return f"sqlite:///{target}"
    asyncio.run(_pg_reset(database_url))
    return database_url


async def _pg_reset(url: str) -> None:
    """Empty every table and restart its ids: DELETE is far cheaper than TRUNCATE on tiny tables."""
    async with _pg_connect(url) as conn:
        sequences = await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        )
        statements = [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
        statements += [f'ALTER SEQUENCE "{row[0]}" RESTART' for row in sequences]
        await conn.execute(";".join(statements))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url,
        outbox_per_target_interval=0.0,
        outbox_base_delay=0.01,
        outbox_max_delay=0.05,
        triage_channels=("console:triage",),
        billing_channels=("console:billing",),
        slack_workers=0,  # in-process; the worker processes have tests of their own
    )


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def harness(settings: Settings, clock: FixedClock, db: Database) -> AsyncIterator[Harness]:
    h = await Harness.create(settings, clock, db)
    yield h



@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """Slack's Web API, faked on a free port (`fake.url` is the `SLACK_API_URL`); a test
    that held its answers back (`stall`) has them released before it stops."""
    server = FakeSlack()
    await server.start()
    yield server
    server.answer.set()
    await server.stop()

"""Link-code events (codes sent, wrong codes tried), counted per hashed scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LinkEventRow

KEEP = dt.timedelta(days=1)  # longer than any window the limits look at


@dataclass(frozen=True, slots=True)
class EventStats:
    """How many events of one kind a scope had since some time, and the first and last."""

    count: int
    first: dt.datetime | None
    last: dt.datetime | None


class LinkEventStore:
    """Append and count link events; never decides a limit."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    async def record(self, scopes: Iterable[str], kind: str) -> None:
        """One event of `kind` now for each scope; events older than a day are dropped."""
        await self.s.execute(delete(LinkEventRow).where(LinkEventRow.at < self.now - KEEP))
        self.s.add_all(LinkEventRow(scope=scope, kind=kind, at=self.now) for scope in scopes)
        await self.s.flush()

    async def stats(self, scope: str, kind: str, since: dt.datetime) -> EventStats:
        row = (await self.s.execute(
            select(func.count(), func.min(LinkEventRow.at), func.max(LinkEventRow.at)).where(
                LinkEventRow.scope == scope, LinkEventRow.kind == kind, LinkEventRow.at > since
            )
        )).one()
        return EventStats(int(row[0] or 0), row[1], row[2])

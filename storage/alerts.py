"""Alerts: one row per (source, fingerprint), with its firing episodes and acknowledgement."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AlertRow
from storage.sql import insert_for


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    source: str  # staff | alertmanager | internal
    fingerprint: str
    org_id: int | None
    level: str  # info | warning | critical
    status: str  # firing | resolved
    title: str
    body: str
    episode: int
    created_at: dt.datetime
    updated_at: dt.datetime
    acked_by: str | None = None
    acked_at: dt.datetime | None = None
    resolved_by: str | None = None
    ticket_id: int | None = None  # the ticket an internal alert is about
    resolution: str | None = None  # why its source resolved it
    started_at: dt.datetime | None = None  # when the monitored episode started

    @property
    def card_key(self) -> str:
        """The card of this episode: its edits replace it wherever it was posted."""
        return f"card:alert:{self.id}:{self.episode}"


def _value(row: AlertRow | Row[Any]) -> Alert:
    """The value of an alert row (an ORM row, or a row of its table's columns)."""
    return Alert(
        row.id, row.source, row.fingerprint, row.org_id, row.level, row.status, row.title,
        row.body, row.episode, row.created_at, row.updated_at, row.acked_by, row.acked_at,
        row.resolved_by, row.ticket_id, row.resolution, row.started_at,
    )


class AlertStore:
    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    async def add(
        self, source: str, fingerprint: str, *, org_id: int | None, level: str, status: str,
        title: str, body: str, ticket_id: int | None = None,
        started_at: dt.datetime | None = None,
    ) -> Alert | None:
        """A new alert row; None when (source, fingerprint) exists already."""
        table = AlertRow.__table__
        assert isinstance(table, Table)
        row = (await self.s.execute(
            insert_for(self.s, AlertRow)
            .values(source=source, fingerprint=fingerprint, org_id=org_id, level=level,
                    status=status, title=title, body=body, episode=1, ticket_id=ticket_id,
                    started_at=started_at, created_at=self.now, updated_at=self.now)
            .on_conflict_do_nothing(index_elements=["source", "fingerprint"])
            .returning(*table.c)
        )).first()
        return None if row is None else _value(row)

    async def get(self, alert_id: int, *, lock: bool = False) -> Alert | None:
        stmt = select(AlertRow).where(AlertRow.id == alert_id).execution_options(
            populate_existing=True)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self.s.scalars(stmt)).first()
        return None if row is None else _value(row)

    async def by_fingerprint(self, source: str, fingerprint: str) -> Alert | None:
        """The alert, locked for the rest of the transaction."""
        row = (await self.s.scalars(
            select(AlertRow)
            .where(AlertRow.source == source, AlertRow.fingerprint == fingerprint)
            .with_for_update()
        )).first()
        return None if row is None else _value(row)

    async def find(self, source: str, fingerprint: str) -> Alert | None:
        """The alert, unlocked (for reading, e.g. rendering a card at delivery)."""
        row = (await self.s.scalars(
            select(AlertRow)
            .where(AlertRow.source == source, AlertRow.fingerprint == fingerprint)
            .execution_options(populate_existing=True)
        )).first()
        return None if row is None else _value(row)

    async def firing_for_ticket(self, ticket_id: int) -> list[Alert]:
        """A ticket's firing alerts, locked for the rest of the transaction."""
        rows = await self.s.scalars(
            select(AlertRow)
            .where(AlertRow.ticket_id == ticket_id, AlertRow.status == "firing")
            .order_by(AlertRow.id)
            .with_for_update()
        )
        return [_value(r) for r in rows]

    async def firing_with_prefix(self, source: str, prefix: str) -> list[Alert]:
        """Firing alerts of `source` whose fingerprint starts with `prefix`, locked."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self.s.scalars(
            select(AlertRow)
            .where(AlertRow.source == source, AlertRow.status == "firing",
                   AlertRow.fingerprint.like(escaped + "%", escape="\\"))
            .order_by(AlertRow.id)
            .with_for_update()
        )
        return [_value(r) for r in rows]

    async def update(self, alert_id: int, **changes: Any) -> Alert:
        await self.s.execute(
            update(AlertRow).where(AlertRow.id == alert_id)
            .values(updated_at=self.now, **changes)
            .execution_options(synchronize_session=False)
        )
        found = await self.get(alert_id)
        assert found is not None
        return found

    async def counts(self) -> dict[tuple[str, str], int]:
        """Alerts by (source, status)."""
        rows = await self.s.execute(
            select(AlertRow.source, AlertRow.status, func.count()).group_by(
                AlertRow.source, AlertRow.status)
        )
        return {(source, status): int(n) for source, status, n in rows.all()}

"""The Matrix account's sync position: which device syncs and the token up to which every
event was handled."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MatrixStateRow
from storage.sql import insert_for


@dataclass(frozen=True, slots=True)
class SyncPosition:
    device_id: str
    sync_token: str | None


class MatrixStateStore:
    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    async def position(self, account: str) -> SyncPosition | None:
        row = (await self.s.execute(
            select(MatrixStateRow.device_id, MatrixStateRow.sync_token)
            .where(MatrixStateRow.account == account))).first()
        return None if row is None else SyncPosition(row.device_id, row.sync_token)

    async def save(self, account: str, device_id: str, sync_token: str | None) -> None:
        """Record the position (insert or update)."""
        values = {"account": account, "device_id": device_id, "sync_token": sync_token,
                  "updated_at": self.now}
        stmt = insert_for(self.s, MatrixStateRow).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account"],
            set_={"device_id": device_id, "sync_token": sync_token, "updated_at": self.now})
        await self.s.execute(stmt)

"""Message links: where each logical thread and card landed on each target, both ways."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import MessageRef
from storage.models import MessageLinkRow
from storage.sql import insert_ignore


class LinkStore:
    """Thread roots and card messages per (platform, target), and the way back from a
    platform message to its thread."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    async def find(self, platform: str, target: str, key: str) -> MessageRef | None:
        """The message `key` (a thread's root or a card) landed as on this target."""
        row = (
            await self.s.execute(
                select(MessageLinkRow.channel, MessageLinkRow.ref).where(
                    MessageLinkRow.platform == platform,
                    MessageLinkRow.target == target,
                    MessageLinkRow.key == key,
                )
            )
        ).first()
        return None if row is None else MessageRef(row.channel, row.ref)

    async def remember(self, platform: str, target: str, key: str, ref: MessageRef) -> bool:
        """Record where `key` landed; the first record wins (False when one existed)."""
        new_id = await insert_ignore(
            self.s,
            MessageLinkRow,
            {"platform": platform, "target": target, "key": key, "channel": ref.channel,
             "ref": ref.id, "created_at": self.now},
            ("platform", "target", "key"),
        )
        return new_id is not None

    async def keys_at(self, platform: str, ref: MessageRef) -> list[str]:
        """The thread and card keys whose message is `ref` (inbound: a reply's root)."""
        rows = await self.s.scalars(
            select(MessageLinkRow.key).where(
                MessageLinkRow.platform == platform,
                MessageLinkRow.channel == ref.channel,
                MessageLinkRow.ref == ref.id,
            )
        )
        return list(rows)

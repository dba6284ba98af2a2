"""Tickets, comments, followers, attachments and thread links."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession


class TicketStore:
    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

"""What every service shares: the transaction scope, errors, and the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.wiring.config import Settings
from storage.alerts import AlertStore
from storage.billing import BillingStore
from storage.db import Database
from storage.directory import Directory
from storage.identities import IdentityStore
from storage.link_events import LinkEventStore
from storage.links import LinkStore
from storage.outbox import ClaimStore, OutboxStore
from storage.reminder_queue import ReminderQueue
from storage.tickets import TicketStore

if TYPE_CHECKING:
    from bot.services.alerting import Alerting
    from bot.services.notify import Notifier


class ServiceError(Exception):
    """A refusal the user should read (never a stack trace)."""


class NotFound(ServiceError):
    pass


class Denied(ServiceError):
    pass


class Invalid(ServiceError):
    pass


class Tx:
    """The stores of one transaction, all seeing the same `now`."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.now = now
        self.directory = Directory(session, now)
        self.identities = IdentityStore(session, now)
        self.link_events = LinkEventStore(session, now)
        self.outbox = OutboxStore(session, now)
        self.claims = ClaimStore(session, now)
        self.reminder_queue = ReminderQueue(session, now)
        self.tickets = TicketStore(session, now)
        self.billing = BillingStore(session, now)
        self.links = LinkStore(session, now)
        self.alerts = AlertStore(session, now)


class Service:
    """A use case: decides policy and owns its transactions through `tx()` and `read()`."""

    def __init__(
        self, db: Database, settings: Settings, clock: Clock, notifier: Notifier,
        alerting: Alerting | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.notifier = notifier
        self._alerting = alerting

    @property
    def alerting(self) -> Alerting:
        """The alert path, for the internal events this service raises or resolves."""
        if self._alerting is None:
            from bot.services.alerting import Alerting  # it builds on this module

            self._alerting = Alerting(self.notifier, self.settings)
        return self._alerting

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        """A read-write transaction: committed when the block ends without error."""
        async with self.db.transaction() as session:
            yield Tx(session, self.clock.now())

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        async with self.db.read() as session:
            yield Tx(session, self.clock.now())

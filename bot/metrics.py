"""Prometheus metrics (`GET /metrics`): what this process counted, and what the database
holds for every replica (outbox by status, reminders sent, alerts by state), read at
scrape time.

One `Metrics` per application, on its own registry, handed to whoever counts.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.reminder_stages import INVOICE, RENEWAL
from bot.services.base import Tx
from storage.db import Database

_CLAIM_KINDS = {INVOICE: "invoice", RENEWAL: "renewal"}
_TIME_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ACK_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


class Metrics:
    """The application's metrics on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Counter("subdesk_commands", "Commands handled, by command and outcome.",
                                ("command", "outcome"), registry=r)
        self.command_seconds = Histogram(
            "subdesk_command_duration_seconds", "Time to handle a command.",
            buckets=_TIME_BUCKETS, registry=r)
        self.time_to_ack = Histogram(
            "subdesk_alert_time_to_ack_seconds",
            "Time from an alert firing to its acknowledgement.", buckets=_ACK_BUCKETS,
            registry=r)
        self.outbox = Gauge("subdesk_outbox_messages",
                            "Outbox messages by status (pending is the queue depth).",
                            ("status",), registry=r)
        self.reminders = Gauge("subdesk_reminders_sent",
                               "Billing reminders and renewal notices sent, by kind.",
                               ("kind",), registry=r)
        self.alerts = Gauge("subdesk_alerts", "Alerts by source and state.",
                            ("source", "state"), registry=r)

    def command(self, name: str, outcome: str, seconds: float) -> None:
        self.commands.labels(name, outcome).inc()
        self.command_seconds.observe(seconds)

    async def scrape(self, db: Database, now: dt.datetime) -> bytes:
        """The text exposition, with the database-held figures read now."""
        async with db.read() as session:
            tx = Tx(session, now)
            outbox = await tx.outbox.counts()
            claims = await tx.claims.counts()
            alerts = await tx.alerts.counts()
        for status, n in outbox.items():
            self.outbox.labels(status).set(n)
        for kind, label in _CLAIM_KINDS.items():
            self.reminders.labels(label).set(claims.get(kind, 0))
        self.alerts.clear()
        for (source, state), n in alerts.items():
            self.alerts.labels(source, state).set(n)
        return generate_latest(self.registry)


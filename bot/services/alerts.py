"""Alerts (SPEC §4): staff announcements (`/alert`), Prometheus Alertmanager notifications,
and acknowledging or resolving monitored alerts.

Monitored alerts — Alertmanager's and Subdesk's internal events — take the one alert path
in `bot.services.alerting`: one row per (source, fingerprint), one message per firing
episode, edits in place. Support engineers acknowledge (shown on the card) and resolve from
the card's buttons or `/alert ack|resolve ID`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.domain import (
    Actor,
    AlertLevel,
    Contact,
    ContactRole,
    Organization,
    dead_letter_fingerprint,
)
from bot.metrics import Metrics
from bot.policy import Permission, allows
from bot.presentation.alerts import announcement
from bot.services.alerting import INTERNAL, TITLE_MAX, Event
from bot.services.base import Denied, Invalid, NotFound, Service, Tx
from storage.alerts import Alert
from storage.outbox import OutboxItem

_LEVELS = {"critical": "critical", "error": "critical", "page": "critical",
           "warning": "warning", "warn": "warning"}


class AmAlert(BaseModel):
    """One alert of an Alertmanager webhook notification (payload version 4)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = Field(min_length=1, max_length=255)
    startsAt: dt.datetime | None = None  # Alertmanager's name


class AmPayload(BaseModel):
    """Alertmanager's webhook body; fields Subdesk does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[AmAlert] = Field(max_length=1000)


@dataclass(frozen=True, slots=True)
class Sent:
    """What `/alert` did: the organizations alerted, and messages queued."""

    orgs: tuple[str, ...]
    messages: int


@dataclass
class Received:
    """What one webhook notification did, alert by alert."""

    posted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def from_alertmanager(alert: AmAlert) -> Event:
    labels, notes = alert.labels, alert.annotations
    level = _LEVELS.get(labels.get("severity", "").lower(), "info")
    title = notes.get("summary") or labels.get("alertname") or "Alert"
    body = notes.get("description", "")
    started = alert.startsAt
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=dt.UTC)
    return Event(alert.fingerprint, alert.status, level, title[:TITLE_MAX], body[:4000],
                 labels.get("org") or None, started_at=started)


def _technical(contacts: list[Contact]) -> list[Contact]:
    """Who gets an organization's technical alerts: its Technical Contacts, or, with none
    (a sole Main Contact, or a Main and an Administrative Contact only), the Main Contact,
    so an alert never reaches nobody."""
    technical = [c for c in contacts if ContactRole.TECHNICAL in c.roles]
    return technical or [c for c in contacts if c.is_main]


class AlertService(Service):
    def __init__(self, *args: Any, metrics: Metrics) -> None:
        super().__init__(*args)
        self.metrics = metrics

    def _staff(self, actor: Actor) -> str:
        if actor.staff is None or not allows(actor, Permission.ALERTS):
            raise Denied("Alerts are for support engineers.")
        return actor.staff.name or actor.staff.email

    async def send(self, actor: Actor, level: AlertLevel, scope: str, text: str) -> Sent:
        """Post to each targeted organization's alert channels and tell its Technical
        Contacts (critical: by email as well)."""
        sender = self._staff(actor)
        text = text.strip()
        if not text:
            raise Invalid("An alert needs a text.")
        async with self.tx() as tx:
            if scope.lower() == "all":
                orgs = await tx.directory.orgs()
                if not orgs:
                    raise Invalid("There are no organizations to alert yet.")
            else:
                org = await tx.directory.org_by_key(scope)
                if org is None:
                    raise NotFound(f"There is no organization with key {scope!r}.")
                orgs = [org]
            queued = 0
            batch = uuid.uuid4().hex[:12]
            for org in orgs:
                queued += await self._announce(tx, org, level, text, sender, batch)
            return Sent(tuple(o.key for o in orgs), queued)

    async def _announce(
        self, tx: Tx, org: Organization, level: AlertLevel, text: str, sender: str, batch: str
    ) -> int:
        alert = await tx.alerts.add(
            "staff", f"staff:{batch}:{org.id}", org_id=org.id, level=level.value,
            status="firing", title=text.splitlines()[0][:TITLE_MAX], body=text,
        )
        assert alert is not None
        key = f"alert:{alert.id}"
        message = announcement(level.value, org.name, text, sender)
        queued = await self.notifier.to_channels(tx, org.alert_channels, key, message)
        critical = level is AlertLevel.CRITICAL
        for contact in _technical(await tx.directory.contacts(org.id)):
            queued += await self.notifier.to_contact(
                tx, contact, f"{key}:contact:{contact.id}", message, critical=critical)
        return queued

    async def receive(self, source: str, events: list[Event]) -> Received:
        """Apply a batch of monitored alert changes, one transaction for the batch."""
        received = Received()
        async with self.tx() as tx:
            for event in events:
                change, alert = await self.alerting.apply(tx, source, event)
                if alert is not None:
                    getattr(received, change).append(alert.id)
        return received

    async def dead_letter(self, item: OutboxItem) -> Received:
        """The internal alert that messages to a platform are dead letters: one message
        while it fires (however many follow), to the triage channels; requeueing the dead
        letters (`subdesk outbox retry`) resolves it, and the next one raises it anew."""
        body = (f"Outbox message {item.id} ({item.recipient or item.target}) was not delivered "
                f"after {item.attempts} attempt(s). `subdesk outbox status` lists dead letters; "
                "`subdesk outbox retry` requeues them.")
        return await self.receive(INTERNAL, [Event(
            dead_letter_fingerprint(item.platform), "firing", "warning",
            f"{item.platform.capitalize()} messages could not be delivered", body)])

    async def acknowledge(self, actor: Actor, alert_id: int) -> Alert:
        """Mark a firing alert acknowledged by the engineer; its card shows who."""
        who = self._staff(actor)
        async with self.tx() as tx:
            alert = await self._monitored(tx, alert_id)
            if alert.status != "firing":
                raise Invalid(f"Alert {alert_id} is resolved already.")
            if alert.acked_by:
                raise Invalid(f"Alert {alert_id} was acknowledged by {alert.acked_by} already.")
            # Until acknowledged, a firing alert last changed when this episode started.
            fired_at = alert.updated_at
            alert = await tx.alerts.update(alert.id, acked_by=who, acked_at=tx.now)
            self.metrics.time_to_ack.observe(max(0.0, (tx.now - fired_at).total_seconds()))
            await self.alerting.redraw(tx, alert)
            return alert

    async def resolve(self, actor: Actor, alert_id: int) -> Alert:
        """Resolve a firing alert by hand; its card shows who. Firing again is a new post."""
        who = self._staff(actor)
        async with self.tx() as tx:
            alert = await self._monitored(tx, alert_id)
            if alert.status != "firing":
                raise Invalid(f"Alert {alert_id} is resolved already.")
            alert = await tx.alerts.update(alert.id, status="resolved", resolved_by=who)
            await self.alerting.redraw(tx, alert)
            return alert

    async def _monitored(self, tx: Tx, alert_id: int) -> Alert:
        alert = await tx.alerts.get(alert_id, lock=True)
        if alert is None or alert.source == "staff":
            raise NotFound(f"There is no alert {alert_id} to act on.")
        return alert

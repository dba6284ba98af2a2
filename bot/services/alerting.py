"""The one alert path (SPEC §4 Alerts): Alertmanager's alerts and Subdesk's own internal
events alike are one row per (source, fingerprint) and one message per firing episode.

The first firing of a fingerprint posts its card; a repeat while it fires posts nothing; a
resolution edits the card in place; firing again after a resolution is a new episode, so a
new message. Alertmanager alerts go to the alert channels of the organization named by
their `org` label (none, unknown, or one without alert channels: the triage channels).
Internal events are the vendor's staff's business — a sev1 ticket waiting, a response
target at risk or breached, dead letters, a subscription nearing its end — so they go to
the triage channels (each support engineer directly when none is configured), never to a
customer's channel. A sev1 ticket's alert is shown on the ticket's triage card, which is
already the loud message its opening posts, instead of a second message about it.

Everything here runs inside the caller's transaction, so an alert is raised or resolved
atomically with the change that caused it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from bot.domain import Organization, sev1_fingerprint
from bot.presentation.alerts import alert_card
from bot.presentation.messages import Message
from bot.presentation.ticket_cards import ticket_card
from bot.services.base import Tx
from bot.services.notify import Notifier, Queued
from bot.wiring.config import Settings
from storage.alerts import Alert

INTERNAL = "internal"
ALERTMANAGER = "alertmanager"
TITLE_MAX = 300
BODY_MAX = 4000
RESOLUTION_MAX = 200

Change = Literal["posted", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class Event:
    """A monitored alert as Subdesk sees it, whatever its source.

    `org_key` routes an Alertmanager alert (its `org` label); `org_id` and `ticket_id` say
    what an internal event is about (shown on its card; they never route it to a customer).
    """

    fingerprint: str
    status: Literal["firing", "resolved"]
    level: str
    title: str
    body: str = ""
    org_key: str | None = None
    org_id: int | None = None
    ticket_id: int | None = None
    # When the monitored episode started, where the source says (Alertmanager's startsAt):
    # a notification of an episode that has ended changes nothing.
    started_at: dt.datetime | None = None


def on_ticket_card(alert: Alert) -> bool:
    """Whether the alert is shown on its ticket's triage card rather than a card of its own
    (a sev1 ticket: the triage card is the page)."""
    return alert.ticket_id is not None and alert.fingerprint == sev1_fingerprint(
        alert.ticket_id)


class Alerting:
    """Raises, resolves and redraws alerts in the caller's transaction."""

    def __init__(self, notifier: Notifier, settings: Settings) -> None:
        self.notifier = notifier
        self.settings = settings

    async def apply(self, tx: Tx, source: str, event: Event) -> tuple[Change, Alert | None]:
        """One firing or resolved notification of `event.fingerprint`: what it changed."""
        org = await self._org(tx, event)
        org_id = org.id if org is not None else None
        # Most often a new alert: one statement for it. A `resolved` never seen firing is
        # recorded too (nothing posted), so its `firing` arriving late changes nothing.
        added = await tx.alerts.add(
            source, event.fingerprint, org_id=org_id, level=event.level, status=event.status,
            title=event.title[:TITLE_MAX], body=event.body[:BODY_MAX],
            ticket_id=event.ticket_id, started_at=event.started_at,
        )
        if added is not None:
            if event.status == "resolved":
                return "unchanged", added
            await self._post(tx, added, org)
            return "posted", added
        alert = await tx.alerts.by_fingerprint(source, event.fingerprint)
        assert alert is not None  # it existed a moment ago, and alerts are never deleted
        if event.status == "firing" and alert.status == "firing":
            return "unchanged", alert
        if event.status == "firing":
            if (event.started_at is not None and alert.started_at is not None
                    and event.started_at <= alert.started_at):
                return "unchanged", alert  # a replay of an episode that has ended
            alert = await tx.alerts.update(
                alert.id, status="firing", episode=alert.episode + 1, level=event.level,
                title=event.title[:TITLE_MAX], body=event.body[:BODY_MAX], org_id=org_id,
                ticket_id=event.ticket_id, acked_by=None, acked_at=None, resolved_by=None,
                resolution=None, started_at=event.started_at,
            )
            await self._post(tx, alert, org)
            return "posted", alert
        if alert.status == "firing":
            alert = await tx.alerts.update(alert.id, status="resolved")
            await self.redraw(tx, alert)
            return "updated", alert
        return "unchanged", alert

    async def fire(self, tx: Tx, event: Event) -> Change:
        """Raise an internal alert (a repeat while it fires changes nothing)."""
        change, _ = await self.apply(tx, INTERNAL, event)
        return change

    async def settle(self, tx: Tx, fingerprint: str, resolution: str) -> bool:
        """Resolve the internal alert `fingerprint` if it fires, saying why; its card is
        edited in place. False when there was nothing firing."""
        alert = await tx.alerts.by_fingerprint(INTERNAL, fingerprint)
        if alert is None or alert.status != "firing":
            return False
        await self._resolve(tx, alert, resolution)
        return True

    async def settle_ticket(self, tx: Tx, ticket_id: int, resolution: str) -> int:
        """Resolve every firing alert about a ticket (answered, solved, closed)."""
        firing = await tx.alerts.firing_for_ticket(ticket_id)
        for alert in firing:
            await self._resolve(tx, alert, resolution)
        return len(firing)

    async def _resolve(self, tx: Tx, alert: Alert, resolution: str) -> Alert:
        alert = await tx.alerts.update(alert.id, status="resolved",
                                       resolution=resolution[:RESOLUTION_MAX])
        await self.redraw(tx, alert)
        return alert

    async def redraw(self, tx: Tx, alert: Alert) -> None:
        """Edit the alert's card in place, wherever it was posted."""
        await self.notifier.update_card(tx, await self._card(tx, alert))

    async def _card(self, tx: Tx, alert: Alert) -> Queued:
        if on_ticket_card(alert):
            assert alert.ticket_id is not None
            return ticket_card(alert.ticket_id, "triage")
        org = await tx.directory.org(alert.org_id) if alert.org_id is not None else None
        return alert_card(alert, org.name if org else None)

    async def _post(self, tx: Tx, alert: Alert, org: Organization | None) -> None:
        if on_ticket_card(alert):
            return  # the ticket's triage card shows it, and a severity change redraws it
        message: Message = alert_card(alert, org.name if org else None)
        key = f"alert:{alert.id}:{alert.episode}"
        if alert.source == ALERTMANAGER and org is not None and org.alert_channels:
            await self.notifier.to_channels(tx, org.alert_channels, key, message)
        else:
            await self.notifier.to_triage(tx, self.settings.triage_channels, key, message)

    async def _org(self, tx: Tx, event: Event) -> Organization | None:
        if event.org_id is not None:
            return await tx.directory.org(event.org_id)
        if event.org_key:
            return await tx.directory.org_by_key(event.org_key)
        return None

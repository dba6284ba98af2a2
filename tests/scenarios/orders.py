"""Order-form builders and database peeks shared by the scenario tests."""

from __future__ import annotations

from typing import Any

from bot.domain import Contact, Organization
from storage.directory import AuditEvent, Directory
from tests.harness import Harness


def contact(role: str, email: str, name: str | None = None, **extra: str) -> dict[str, str]:
    return {"role": role, "name": name or email.split("@")[0].title(), "email": email, **extra}


def organization(
    key: str,
    contacts: list[dict[str, str]],
    *,
    level: str = "standard",
    name: str | None = None,
    starts_on: str = "2026-01-01",
    ends_on: str = "2026-12-31",
    alert_channels: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "name": name or f"{key.title()} Corp",
        "program": "customer",
        "level": level,
        "region": "europe",
        "timezone": "Europe/Madrid",
        "subscription": {"starts_on": starts_on, "ends_on": ends_on},
        "contacts": contacts,
        "alert_channels": alert_channels or [],
    }


def form(*orgs: dict[str, Any]) -> dict[str, Any]:
    return {"organizations": list(orgs)}


async def org_by_key(h: Harness, key: str) -> Organization:
    async with h.app.db.read() as session:
        found = await Directory(session, h.clock.now()).org_by_key(key)
    assert found is not None, key
    return found


async def contacts_of(h: Harness, key: str) -> dict[str, Contact]:
    org = await org_by_key(h, key)
    async with h.app.db.read() as session:
        rows = await Directory(session, h.clock.now()).contacts(org.id)
    return {c.email: c for c in rows}


async def audit_of(h: Harness, key: str) -> list[AuditEvent]:
    """Audit events of one organization, oldest first."""
    org = await org_by_key(h, key)
    async with h.app.db.read() as session:
        events = await Directory(session, h.clock.now()).audit_events(org.id, limit=1000)
    return list(reversed(events))

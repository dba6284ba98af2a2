"""The longest valid values (a 254-character email with a 64-character local part, 200-character
names, 64-character keys and invoice numbers, 255-character chat ids) fit every idempotency key
and column, on PostgreSQL as on SQLite; one character more is refused, naming the field."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import func, select

from adapters.http.server import build_http_app
from bot.clock import FixedClock
from bot.domain import OutboxStatus, Platform, StaffRole
from bot.importing import ImportFailed
from bot.services.base import Invalid
from bot.services.onboarding import parse_orders
from bot.wiring.config import Settings
from storage.db import Database
from storage.models import OutboxRow
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization


def longest_email(tag: str) -> str:
    """254 characters, 64 of them before the @."""
    return f"{(tag + 'x' * 64)[:64]}@{'a' * 63}.{'b' * 63}.{'c' * 56}.test"


MAIN, TECH, NEW, STAFF = (longest_email(t) for t in ("main", "tech", "new", "staff"))
KEY = "k" * 64
NAME = "N" * 200
SLACK = f"{'T' * 255}:{'U' * 255}"
MXID = f"@{'u' * 200}:{'s' * 53}"
ROOM = f"matrix:!{'r' * 200}:{'s' * 53}"
CHANNEL = f"slack:{'C' * 255}"
NUMBER = "I" * 64
TOKEN = "t0ken"


def order() -> dict[str, Any]:
    org = organization(KEY, [contact("main", MAIN, NAME),
                             contact("technical", TECH, NAME, slack=SLACK, matrix=MXID)],
                       level="premium", name=NAME, alert_channels=[CHANNEL, ROOM])
    return form(org)


async def test_longest_valid_values_go_everywhere(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """Import by API, welcome messages, a request approved by a staff member with the longest
    email, tickets, triage, billing questions, invoices, reminders, admin links: all fit."""
    wide = settings.model_copy(update={"api_token": SecretStr(TOKEN),
                                       "triage_channels": (CHANNEL, ROOM)})
    harness = await Harness.create(wide, clock, db)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    invoices = {"invoices": [{"number": NUMBER, "organization": KEY, "issued_on": "2026-11-01",
                              "due_on": "2026-12-01", "amount": "10.00", "currency": "EUR"}]}
    async with TestClient(TestServer(build_http_app(harness.app))) as client:
        for path, doc in (("/api/v1/orders", order()), ("/api/v1/invoices", invoices)):
            for _ in range(2):
                response = await client.post(path, json=doc, headers=auth)
                assert response.status == 200, await response.text()
    await harness.add_staff(STAFF, StaffRole.ENGINEER, StaffRole.ADMIN, name=NAME)
    await harness.app.services.identity.admin_link(STAFF, Platform.MATRIX, "s" * 53, MXID[:-1])
    main, tech, staff = harness.as_(MAIN), harness.as_(TECH), harness.as_(STAFF)
    for session, line in (
        (main, f"/contacts request-technical {NEW}"),
        (staff, "/subdesk approve 1"),
        (tech, f"/ticket new sev1 {'S' * 400}"),
        (staff, "/triage reply 1 On it"),
        (main, "/billing question Why?"),
    ):
        reply = await session.send(line)
        assert reply.ok, (line, reply.message.text)
    await harness.app.services.reminders.sweep()
    clock.advance(dt.timedelta(days=30))
    await harness.app.services.reminders.sweep()
    await harness.app.services.sla.sweep()
    await harness.drain()
    async with harness.app.db.read() as session:
        keys = list(await session.scalars(select(OutboxRow.idempotency_key)))
        dead = await session.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status == OutboxStatus.DEAD.value))
    assert dead == 0
    assert any(len(k) == 255 and "#" in k for k in keys), "long keys are hashed to fit"
    assert len(keys) == len(set(keys))
    assert any(NEW in m.text or "Support" in m.text for m in harness.emails_to(NEW))


def test_one_character_more_is_refused_naming_the_field() -> None:
    """An over-long email, Matrix id or channel is an import error naming its field."""
    doc = order()
    org = doc["organizations"][0]
    org["contacts"][0]["email"] = "l" * 65 + "@a.test"
    org["contacts"][1]["matrix"] = MXID.replace("@", "@u", 1)
    org["alert_channels"] = [CHANNEL + "C"]
    with pytest.raises(ImportFailed) as info:
        parse_orders("o.json", json.dumps(doc).encode())
    errors = "\n".join(info.value.errors)
    assert "organizations[0].contacts[0].email:" in errors and "before the @-sign" in errors
    assert "organizations[0].contacts[1].matrix:" in errors and "at most 255" in errors
    assert "organizations[0].alert_channels:" in errors and "at most 255" in errors


async def test_over_long_staff_names_and_chat_ids_are_refused(harness: Harness) -> None:
    """`subdesk staff add` and `subdesk link` refuse names and ids longer than any column."""
    with pytest.raises(Invalid, match="NAME is too long"):
        await harness.app.services.identity.add_staff(STAFF, [StaffRole.ENGINEER], "N" * 201)
    with pytest.raises(Invalid, match="matrix user id is too long"):
        await harness.app.services.identity.add_staff(
            STAFF, [StaffRole.ENGINEER], links=[(Platform.MATRIX, "s", MXID + "x")])

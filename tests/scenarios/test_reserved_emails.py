"""Staff and customer identities never overlap: staff emails and the vendor's domains are
reserved in every path that creates or changes a contact (SPEC §1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.http.server import build_http_app
from bot.clock import FixedClock
from bot.domain import StaffRole
from bot.importing import ImportFailed
from bot.services.base import Invalid
from bot.services.onboarding import parse_orders
from bot.wiring.config import Settings
from storage.db import Database
from tests.harness import Harness
from tests.scenarios.orders import contact, contacts_of, form, organization

ADMIN = "admin@vendor.test"  # a vendor admin
OTHER = "newhire@corp.vendor.test"  # not staff (yet), but in the vendor's domain


TOKEN = "t0ken-for-tests"


@pytest.fixture
async def reserved(settings: Settings, clock: FixedClock, db: Database
                   ) -> AsyncIterator[Harness]:
    """A world where vendor.test is the vendor's domain and admin@vendor.test is staff."""
    configured = settings.model_copy(
        update={"vendor_domains": ("vendor.test",), "api_token": SecretStr(TOKEN)})
    h = await Harness.create(configured, clock, db)
    await h.import_orders(form(organization("acme", [contact("main", "ana@acme.test")])))
    await h.add_staff(ADMIN, StaffRole.ADMIN, name="Root Admin")
    yield h


async def test_commands_refuse_staff_emails_and_vendor_domains(reserved: Harness) -> None:
    """`/contacts set` and `request-technical` refuse a staff email or a vendor-domain one."""
    ana = reserved.as_("ana@acme.test")
    for line in (f"/contacts set administrative {ADMIN}", f"/contacts set main {OTHER}",
                 f"/contacts request-technical {ADMIN}", f"/contacts request-technical {OTHER}"):
        reply = await ana.send(line)
        assert not reply.ok and "needs their own email" in reply.message.text, line
    assert sorted(await contacts_of(reserved, "acme")) == ["ana@acme.test"]


async def test_approval_refuses_an_email_that_became_staff(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """A request made before the email became staff cannot be approved afterwards."""
    h = await Harness.create(settings, clock, db)
    await h.import_orders(form(organization("acme", [contact("main", "ana@acme.test")])))
    await h.add_staff(ADMIN, StaffRole.ADMIN)
    assert (await h.as_("ana@acme.test").send("/contacts request-technical eve@else.test")).ok
    await h.add_staff("eve@else.test", StaffRole.ENGINEER)
    reply = await h.as_(ADMIN).send("/subdesk approve 1")
    assert not reply.ok and "belongs to vendor staff" in reply.message.text
    assert sorted(await contacts_of(h, "acme")) == ["ana@acme.test"]


@pytest.mark.parametrize("name", ["orders.json", "orders.csv"])
async def test_order_files_refuse_reserved_emails(reserved: Harness, name: str) -> None:
    """JSON and CSV order files name the line of each reserved email and write nothing."""
    data = form(organization("beta", [contact("main", "bo@beta.test"),
                                      contact("administrative", ADMIN),
                                      contact("technical", OTHER)]))
    if name.endswith(".json"):
        raw = json.dumps(data).encode()
    else:
        org = data["organizations"][0]
        header = "key,name,program,level,region,timezone,starts_on,ends_on,role,contact_name,email"
        cols = (f"beta,Beta,customer,standard,europe,Europe/Madrid,"
                f"{org['subscription']['starts_on']},{org['subscription']['ends_on']}")
        raw = "\n".join([header] + [f"{cols},{c['role']},{c['name']},{c['email']}"
                                    for c in org["contacts"]]).encode()
    with pytest.raises(ImportFailed) as caught:
        await reserved.app.services.onboarding.import_orders(parse_orders(name, raw))
    errors = caught.value.errors
    assert any("contacts[1].email" in e and "vendor staff" in e for e in errors), errors
    assert any("contacts[2].email" in e and "vendor's domain" in e for e in errors), errors
    assert not await reserved.app.services.onboarding.has_organization("beta")


async def test_http_api_refuses_reserved_emails(reserved: Harness) -> None:
    """POST /api/v1/orders answers 400 naming the field, and imports nothing."""
    app = reserved.app
    body = form(organization("gamma", [contact("main", ADMIN)]))
    async with TestClient(TestServer(build_http_app(app))) as client:
        c: TestClient[Any, Any] = client
        response = await c.post("/api/v1/orders", json=body,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 400, await response.text()
        errors = (await response.json())["errors"]
    assert errors and errors[0].startswith("organizations[0].contacts[0].email:"), errors
    assert not await app.services.onboarding.has_organization("gamma")


async def test_staff_add_still_refuses_customer_emails(reserved: Harness) -> None:
    """The other direction holds too: a customer contact's email cannot become staff."""
    with pytest.raises(Invalid, match="is a customer contact"):
        await reserved.add_staff("ana@acme.test", StaffRole.ENGINEER)

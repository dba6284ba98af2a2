"""The HTTP server: health, readiness, bearer auth, OpenAPI validation and idempotent imports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from pydantic import SecretStr

from adapters.http.server import SPEC_PATH, build_http_app
from bot.clock import FixedClock
from bot.wiring.config import Settings
from storage.db import Database
from tests.harness import Harness

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDER = {"organizations": [{
    "key": "acme", "name": "ACME Corp", "program": "customer", "level": "standard",
    "region": "europe", "timezone": "Europe/Madrid",
    "subscription": {"starts_on": "2026-01-01", "ends_on": "2026-12-31"},
    "contacts": [{"role": "main", "name": "Ana Main", "email": "ana@acme.test"}]}]}
INVOICES = {
    "invoices": [{"number": "INV-1", "organization": "acme", "issued_on": "2026-11-01",
                  "due_on": "2026-12-01", "amount": "1200.00", "currency": "EUR"}],
    "payments": [{"invoice": "INV-1", "paid_on": "2026-11-20", "amount": "1200.00"}],
}


@pytest.fixture
async def client(
    settings: Settings, clock: FixedClock, db: Database
) -> AsyncIterator[TestClient[Any, Any]]:
    with_token = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    harness = await Harness.create(with_token, clock, db)
    async with TestClient(TestServer(build_http_app(harness.app))) as c:
        yield c


@pytest.mark.nodb
def test_openapi_document_is_valid() -> None:
    """The shipped document is a valid OpenAPI 3 description of both import endpoints."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    validate(spec)
    assert {"/api/v1/orders", "/api/v1/invoices", "/healthz", "/readyz"} <= set(spec["paths"])


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    """/healthz answers without the database; /readyz pings it."""
    assert (await client.get("/healthz")).status == 200
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json()) == {"status": "ready"}


async def test_readiness_shows_a_missing_triage_channel(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """Without triage channels /readyz stays ready (200) and names the gap."""
    harness = await Harness.create(settings.model_copy(update={"triage_channels": ()}), clock, db)
    async with TestClient(TestServer(build_http_app(harness.app))) as c:
        response = await c.get("/readyz")
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ready"
    assert any("SUBDESK_TRIAGE_CHANNELS" in w for w in body["warnings"])


async def test_requires_the_bearer_token(client: TestClient[Any, Any]) -> None:
    """No token or a wrong one: 401, nothing imported."""
    response = await client.post("/api/v1/orders", json=ORDER)
    assert response.status == 401
    response = await client.post("/api/v1/orders", json=ORDER,
                                 headers={"Authorization": "Bearer wrong"})
    assert response.status == 401
    assert TOKEN not in await response.text()
    response = await client.post("/api/v1/invoices", json=INVOICES, headers=AUTH)
    assert response.status == 400, "acme does not exist: nothing was imported before"


async def test_disabled_without_a_configured_token(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """Without SUBDESK_API_TOKEN the import API answers 503."""
    harness = await Harness.create(settings, clock, db)
    async with TestClient(TestServer(build_http_app(harness.app))) as c:
        response = await c.post("/api/v1/invoices", json=INVOICES, headers=AUTH)
        assert response.status == 503


@pytest.mark.parametrize("blank", ["", " ", "\u3000"])
async def test_a_blank_token_leaves_the_api_off(
    settings: Settings, clock: FixedClock, db: Database, monkeypatch: pytest.MonkeyPatch,
    blank: str
) -> None:
    """SUBDESK_API_TOKEN set to nothing (or spaces) is not a token: 503 to everyone, even
    to a bearer of nothing but a space."""
    monkeypatch.setenv("SUBDESK_API_TOKEN", blank)
    settings = Settings(_env_file=None,  # type: ignore[call-arg]
                        database_url=settings.database_url)
    assert settings.api_token is None
    harness = await Harness.create(settings, clock, db)
    async with TestClient(TestServer(build_http_app(harness.app))) as c:
        for credential in ("Bearer \u3000", "Bearer  ", f"Bearer {blank}"):
            response = await c.post("/api/v1/orders", json=ORDER,
                                    headers={"Authorization": credential})
            assert response.status in (400, 503), credential


async def test_a_token_of_bytes_no_token_has_is_refused(client: TestClient[Any, Any]) -> None:
    """A credential that is not UTF-8 is a wrong one (401), not a server error."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xa0\xff"
                 b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                 b"Connection: close\r\n\r\n{}")
    status = (await reader.readline()).split()[1]
    writer.close()
    assert status == b"401"


async def test_a_trailing_newline_is_no_part_of_a_key_or_number(
    client: TestClient[Any, Any]
) -> None:
    """`acme` followed by a newline is not a second organization `acme`, nor `INV-1` and a
    newline a second invoice: each is a 400 naming the field (`$` matched before it)."""
    order = {"organizations": [dict(ORDER["organizations"][0], key="acme\n")]}
    response = await client.post("/api/v1/orders", json=order, headers=AUTH)
    assert response.status == 400, await response.text()
    assert any("key" in e for e in (await response.json())["errors"])
    response = await client.post("/api/v1/orders", json=ORDER, headers=AUTH)
    assert response.status == 200
    invoices = {"invoices": [dict(INVOICES["invoices"][0], number="INV-1\n")],
                "payments": []}
    response = await client.post("/api/v1/invoices", json=invoices, headers=AUTH)
    assert response.status == 400, await response.text()
    assert any("number" in e for e in (await response.json())["errors"])


async def test_payments_adding_up_beyond_what_can_be_stored_are_a_400(
    client: TestClient[Any, Any]
) -> None:
    """Two payments each valid but together beyond what an invoice's paid total holds: a
    400 naming the payment (PostgreSQL refused the sum, answered "unavailable", and an
    integrator retried forever; SQLite stored it)."""
    response = await client.post("/api/v1/orders", json=ORDER, headers=AUTH)
    assert response.status == 200
    biggest = "999999999999.99"
    invoices = {"invoices": [dict(INVOICES["invoices"][0], amount=biggest)],
                "payments": [{"invoice": "INV-1", "paid_on": "2026-11-22", "amount": biggest},
                             {"invoice": "INV-1", "paid_on": "2026-11-23", "amount": biggest}]}
    response = await client.post("/api/v1/invoices", json=invoices, headers=AUTH)
    assert response.status == 400, await response.text()
    assert (await response.json())["errors"] == [
        "payments[1].amount: the payments of invoice 'INV-1' would add up to more than "
        "999999999999.99"]


@pytest.mark.parametrize("blank", ["   ", "\u200b", " \u200b "])
async def test_a_blank_name_is_refused(client: TestClient[Any, Any], blank: str) -> None:
    """An organization or contact named with spaces or a zero-width space alone is a 400
    naming the field (it was stored as an empty name)."""
    org = dict(ORDER["organizations"][0], name=blank)
    response = await client.post("/api/v1/orders", json={"organizations": [org]},
                                 headers=AUTH)
    assert response.status == 400, await response.text()
    assert any(e.startswith("organizations[0].name") and "blank" in e
               for e in (await response.json())["errors"])


async def test_orders_carry_an_optional_country(client: TestClient[Any, Any]) -> None:
    """The API accepts `country` (ISO 3166 alpha-2) beside the timezone."""
    order = {"organizations": [dict(ORDER["organizations"][0], country="ES")]}
    response = await client.post("/api/v1/orders", json=order, headers=AUTH)
    assert response.status == 200, await response.text()


async def test_imports_orders_then_invoices_idempotently(client: TestClient[Any, Any]) -> None:
    """Orders then invoices import; repeating either changes nothing."""
    response = await client.post("/api/v1/orders", json=ORDER, headers=AUTH)
    assert response.status == 200, await response.text()
    assert (await response.json())["created"] == 1
    response = await client.post("/api/v1/invoices", json=INVOICES, headers=AUTH)
    assert response.status == 200, await response.text()
    assert await response.json() == {"created": 1, "updated": 0, "unchanged": 0,
                                     "payments_recorded": 1, "payments_known": 0, "paid": 1}
    response = await client.post("/api/v1/invoices", json=INVOICES, headers=AUTH)
    assert await response.json() == {"created": 0, "updated": 0, "unchanged": 1,
                                     "payments_recorded": 0, "payments_known": 1, "paid": 0}
    response = await client.post("/api/v1/orders", json=ORDER, headers=AUTH)
    assert (await response.json())["unchanged"] == 1


async def test_an_invoice_never_moves_by_api(client: TestClient[Any, Any]) -> None:
    """The API refuses an invoice re-sent with another organization, naming the field."""
    other = {"organizations": [dict(ORDER["organizations"][0], key="other")]}
    for doc in (ORDER, other):
        assert (await client.post("/api/v1/orders", json=doc, headers=AUTH)).status == 200
    assert (await client.post("/api/v1/invoices", json=INVOICES, headers=AUTH)).status == 200
    moved = {"invoices": [dict(INVOICES["invoices"][0], organization="other")]}
    response = await client.post("/api/v1/invoices", json=moved, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"] == [
        "invoices[0].organization: invoice 'INV-1' belongs to organization 'acme'; an "
        "invoice never moves to another organization"]


async def test_schema_errors_name_the_field(client: TestClient[Any, Any]) -> None:
    """Invalid bodies get 400 with one line per offending field, and write nothing."""
    await client.post("/api/v1/orders", json=ORDER, headers=AUTH)
    bad = {"invoices": [dict(INVOICES["invoices"][0], amount="12,00", extra=1)]}
    del bad["invoices"][0]["currency"]
    response = await client.post("/api/v1/invoices", json=bad, headers=AUTH)
    assert response.status == 400
    body = await response.json()
    assert body["errors"] == [
        "invoices[0].amount: '12,00' does not match '^\\\\d{1,12}(\\\\.\\\\d{1,2})?$'",
        "invoices[0].currency: field required",
        "invoices[0].extra: unexpected field",
    ]
    response = await client.post("/api/v1/invoices", data=b"{not json",
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == 400
    two = {"invoices": [INVOICES["invoices"][0],
                        dict(INVOICES["invoices"][0], number="INV-2", organization="nope")]}
    response = await client.post("/api/v1/invoices", json=two, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"] == [
        "invoices[1].organization: no organization with key 'nope'"]
    response = await client.post("/api/v1/invoices", json={"payments": []}, headers=AUTH)
    assert (await response.json())["created"] == 0
    again = await client.post("/api/v1/invoices", json={"invoices": [INVOICES["invoices"][0]]},
                              headers=AUTH)
    assert (await again.json())["created"] == 1, "the rejected batch wrote nothing"
    bad_country = {"organizations": [dict(ORDER["organizations"][0], country="ESP")]}
    response = await client.post("/api/v1/orders", json=bad_country, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"][0].startswith("organizations[0].country:")
    bad_order = {"organizations": [dict(ORDER["organizations"][0], level="gold")]}
    response = await client.post("/api/v1/orders", json=bad_order, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"][0].startswith("organizations[0].level:")


async def test_run_starts_and_stops_server_scheduler_and_dispatcher(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """What `subdesk run` starts beside the console: HTTP on its port, the sweeps, delivery."""
    from aiohttp import ClientSession

    from adapters.http.app import HttpAdapter
    from bot.wiring.background import jobs_for, start_background
    from bot.wiring.runtime import build_app

    app = await build_app(settings.model_copy(update={"http_port": 0}), clock=clock, db=db)
    background = await start_background(app)
    try:
        assert [job.name for job in jobs_for(app.services)] == [
            "reminders", "sla", "autoclose", "sla_report"]
        assert {job.id for job in background.scheduler.get_jobs()} == {
            "reminders", "sla", "autoclose", "sla_report"}
        http = app.adapters["http"]
        assert isinstance(http, HttpAdapter) and http.port
        async with ClientSession() as client, client.get(
            f"http://127.0.0.1:{http.port}/healthz"
        ) as r:
            assert r.status == 200
        assert not background.tasks[0].done(), "the dispatcher loop is running"
    finally:
        await background.close()
    assert background.tasks[0].done()


async def test_body_that_is_not_utf8_is_a_400(client: TestClient[Any, Any]) -> None:
    """Undecodable bytes get a 400 naming the byte, never a server error."""
    response = await client.post("/api/v1/orders", data=b"\xff\xfe{}",
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert body["errors"] == ["body: not UTF-8 text (byte 0)"]

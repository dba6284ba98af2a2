"""The import API bounds the work of one request and keeps the event loop free meanwhile."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from adapters.http.server import build_http_app
from bot.clock import FixedClock
from bot.wiring.config import Settings
from storage.db import Database
from tests.harness import Harness

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def org(index: int, contacts: int = 1) -> dict[str, Any]:
    people = [{"role": "main", "name": "Ana Main", "email": f"ana{index}@org{index}.test"}]
    people += [{"role": "technical", "name": f"Tech {n}", "email": f"tech{n}@org{index}.test"}
               for n in range(contacts - 1)]
    return {"key": f"org{index}", "name": f"Org {index}", "program": "customer",
            "level": "premium", "region": "europe", "timezone": "Europe/Madrid",
            "subscription": {"starts_on": "2026-01-01", "ends_on": "2026-12-31"},
            "contacts": people}


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "api_token": SecretStr(TOKEN), "api_max_body_bytes": 256 * 1024,
        "api_max_organizations": 100, "api_max_contacts": 3, "api_max_invoices": 10})


@pytest.fixture
async def client(
    limited: Settings, clock: FixedClock, db: Database
) -> AsyncIterator[TestClient[Any, Any]]:
    harness = await Harness.create(limited, clock, db)
    async with TestClient(TestServer(build_http_app(harness.app))) as c:
        yield c


async def test_body_over_the_limit_is_413_before_it_is_read(
    client: TestClient[Any, Any],
) -> None:
    """A declared or streamed body over SUBDESK_API_MAX_BODY_BYTES gets a 413 problem
    document at once; the process does not grow with the body."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    body = b'{"organizations": [' + b"[]," * (3 * 1024 * 1024) + b"[]]}"
    started = time.monotonic()
    response = await client.post("/api/v1/orders", data=body, headers=AUTH)
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    problem = json.loads(await response.read())
    assert problem["status"] == 413 and problem["title"] == "Payload Too Large"
    assert "SUBDESK_API_MAX_BODY_BYTES" in problem["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 64 * 1024

    response = await client.post("/api/v1/invoices", data=chunks(), headers=AUTH)
    assert response.status == 413, "a chunked body is cut off at the limit too"
    assert time.monotonic() - started < 2.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 * 1024


async def test_counts_over_the_limits_are_400_naming_the_list(
    client: TestClient[Any, Any],
) -> None:
    """Too many organizations, contacts, invoices or payments: 400 naming the list and limit."""
    response = await client.post(
        "/api/v1/orders", json={"organizations": [org(i) for i in range(101)]}, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"] == [
        "organizations: 101 items, at most 100 per request (SUBDESK_API_MAX_ORGANIZATIONS)"]
    response = await client.post(
        "/api/v1/orders", json={"organizations": [org(0), org(1, contacts=4)]}, headers=AUTH)
    assert (await response.json())["errors"] == [
        "organizations[1].contacts: 4 items, at most 3 per request (SUBDESK_API_MAX_CONTACTS)"]
    payment = {"invoice": "INV-1", "paid_on": "2026-11-20", "amount": "1.00"}
    response = await client.post("/api/v1/invoices", json={"payments": [payment] * 11},
                                 headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"] == [
        "payments: 11 items, at most 10 per request (SUBDESK_API_MAX_INVOICES)"]


async def test_deep_nesting_and_huge_strings_are_400(client: TestClient[Any, Any]) -> None:
    """Deeply nested JSON is a 400, never a server error; an oversized value is named, and
    not echoed back whole."""
    deep = b'{"organizations": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    for path in ("/api/v1/orders", "/api/v1/invoices"):
        response = await client.post(path, data=deep, headers=AUTH)
        assert response.status == 400, await response.text()
        assert (await response.json())["errors"] == ["body: nested too deeply (at most 16 levels)"]
    big = org(0)
    big["name"] = "x" * 100_000
    big["contacts"][0]["email"] = "a" * 100_000 + "@x.test"
    response = await client.post("/api/v1/orders", json={"organizations": [big]}, headers=AUTH)
    assert response.status == 400
    errors = (await response.json())["errors"]
    assert [e.split(":")[0] for e in errors] == [
        "organizations[0].contacts[0].email", "organizations[0].name"]
    assert all(len(e) < 400 for e in errors)


async def test_absurd_numbers_repeated_keys_and_a_byte_order_mark(
    client: TestClient[Any, Any]
) -> None:
    """An integer of thousands of digits and a key named twice in one object are one 400
    each (the first was a 500 with a traceback, the second kept the last value silently);
    a byte order mark before the JSON is no error."""
    for path in ("/api/v1/orders", "/api/v1/invoices", "/hooks/alertmanager"):
        response = await client.post(path, data=b'{"organizations": ' + b"9" * 5000 + b"}",
                                     headers=AUTH)
        assert response.status == 400, (path, response.status)
        [error] = (await response.json())["errors"]
        assert error.endswith("a number is too long"), error
    twice = json.dumps({"organizations": [org(0)]})[:-1] + ', "organizations": []}'
    response = await client.post("/api/v1/orders", data=twice.encode(), headers=AUTH)
    assert response.status == 400
    assert (await response.json())["errors"] == [
        "body: the key 'organizations' appears twice in one object"]
    marked = b"\xef\xbb\xbf" + json.dumps({"organizations": [org(0)]}).encode()
    response = await client.post("/api/v1/orders", data=marked, headers=AUTH)
    assert response.status == 200, await response.text()


async def test_health_stays_fast_during_a_maximal_import(client: TestClient[Any, Any]) -> None:
    """While the largest allowed import is parsed, validated and applied, /healthz answers
    within a fraction of a second, or, on a machine slow enough that the import takes
    seconds, within a small part of the import's time (a blocked loop answers only at the
    end)."""
    body = json.dumps({"organizations": [org(i, contacts=3) for i in range(100)]}).encode()
    assert len(body) < 256 * 1024
    began = time.monotonic()
    importing = asyncio.create_task(client.post("/api/v1/orders", data=body, headers=AUTH))
    latencies: list[float] = []
    while not importing.done():
        started = time.monotonic()
        assert (await client.get("/healthz")).status == 200
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.01)
    took = time.monotonic() - began
    response = await importing
    assert response.status == 200, await response.text()
    assert (await response.json())["created"] == 100
    assert len(latencies) >= 3, "the import ran long enough to probe"
    assert max(latencies) < max(0.5, took / 4), (
        f"healthz took {max(latencies):.2f} s during an import of {took:.2f} s")

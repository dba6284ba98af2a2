"""Structured logs: one JSON object per line with request and command ids, and no
configured secret anywhere in them, through a whole scenario on the running server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import ClientSession
from pydantic import SecretStr

from adapters.http.app import HttpAdapter
from bot.clock import FixedClock
from bot.domain import Platform
from bot.wiring.background import start_background
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH, seed_demo
from bot.wiring.logs import configure, secret_values
from bot.wiring.runtime import build_app
from storage.db import Database
from tests.adapters.slack_fake import SECRET, TEAM, FakeSlack, SocketSlack

BOT_TOKEN = "xoxb-123-456-bottokenvalue"
APP_TOKEN = "xapp-1-A0APP-apptokenvalue"
API_TOKEN = "api-token-0f9e8d7c6b5a"
SMTP_PASSWORD = "p#ss/w0rd@smtp"
SMTP_URL = "smtp+plain://bot%40demo.test:p%23ss%2Fw0rd%40smtp@127.0.0.1:1"
MATRIX_PASSWORD = "matrix-password-4242"
ORDER = {"organizations": [{
    "key": "acme", "name": "ACME Corp", "program": "customer", "level": "standard",
    "region": "europe", "timezone": "Europe/Madrid",
    "subscription": {"starts_on": "2026-01-01", "ends_on": "2026-12-31"},
    "contacts": [{"role": "main", "name": "Ana Main", "email": "ana@acme.test"}]}]}
FIRING = {"version": "4", "status": "firing", "receiver": "subdesk", "groupLabels": {},
          "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
          "groupKey": "{}", "truncatedAlerts": 0,
          "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "org": "acme"},
                      "annotations": {"summary": "Disk full"}, "fingerprint": "abc123",
                      "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                      "generatorURL": "http://prom"}]}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def test_json_logs_carry_ids_and_never_a_secret(
    settings: Settings, clock: FixedClock, db: Database, restore_logging: None
) -> None:
    """With every secret configured and DEBUG logging as JSON, a Slack command over Socket
    Mode, API imports (good and with a wrong token), an Alertmanager notification and
    failing email deliveries leave JSON lines with request and command ids, and none of the
    secrets."""
    fake = FakeSlack()
    await fake.start()
    tuned = settings.model_copy(update={
        "http_port": 0, "slack_bot_token": SecretStr(BOT_TOKEN),
        "slack_signing_secret": SecretStr(SECRET), "slack_app_token": SecretStr(APP_TOKEN),
        "slack_api_url": fake.url, "api_token": SecretStr(API_TOKEN),
        "smtp_url": SecretStr(SMTP_URL), "matrix_password": SecretStr(MATRIX_PASSWORD),
        "triage_channels": ("slack:C0TRIAGE",), "outbox_poll_interval": 0.05,
        "log_format": "json", "log_level": "DEBUG",
    })
    captured = io.StringIO()
    configure(tuned, captured)
    app = await build_app(tuned, clock=clock, db=db)
    try:
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, "U0TOM")
        await app.services.identity.admin_link(DEMO_STAFF, Platform.SLACK, TEAM, "U0SAM")
        background = await start_background(app)
        try:
            http = app.adapters["http"]
            assert isinstance(http, HttpAdapter)
            base = f"http://127.0.0.1:{http.port}"
            async with ClientSession() as session:
                await fake.linked()
                slack = SocketSlack(fake)
                await fake.ack(await slack.command("U0TOM", "/ticket", "new sev1 Site is down"))
                auth = {"Authorization": f"Bearer {API_TOKEN}"}
                async with session.post(f"{base}/api/v1/orders", json=ORDER,
                                        headers=auth) as resp:
                    assert resp.status == 200
                async with session.post(f"{base}/api/v1/orders", json=ORDER,
                                        headers={"Authorization": "Bearer wrong"}) as resp:
                    assert resp.status == 401
                async with session.post(f"{base}/hooks/alertmanager", json=FIRING,
                                        headers={**auth, "X-Request-Id": "req-42"}) as resp:
                    assert resp.status == 200 and resp.headers["X-Request-Id"] == "req-42"
                for _ in range(250):
                    if fake.posted("C0TRIAGE"):
                        break
                    await asyncio.sleep(0.02)
                assert fake.posted("C0TRIAGE")
                await app.dispatcher.drain(max_wait=0)
        finally:
            await background.close()
    finally:
        await app.close()
        await fake.stop()
        await asyncio.sleep(0)

    text = captured.getvalue()
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e.get("request_id") == "req-42" for e in entries)
    assert any("command_id" in e and e["logger"] == "bot.core" for e in entries)
    secrets = [BOT_TOKEN, APP_TOKEN, SECRET, API_TOKEN, SMTP_PASSWORD, SMTP_URL,
               MATRIX_PASSWORD, "p%23ss%2Fw0rd%40smtp"]
    assert set(secrets) <= set(secret_values(tuned))
    leaked = [s for s in secrets if s in text]
    assert leaked == []


@pytest.mark.nodb
def test_a_secret_in_a_record_or_exception_is_masked(restore_logging: None) -> None:
    """Whatever a library writes (a URL with its password, an exception quoting a token, a
    Slack token no setting names, as in a debug dump of an OAuth answer) reaches the log
    masked, in text and in JSON."""
    for fmt in ("json", "text"):
        tuned = Settings(_env_file=None, smtp_url=SecretStr(SMTP_URL),  # type: ignore[call-arg]
                         api_token=SecretStr(API_TOKEN), log_format=fmt, log_level="DEBUG")
        captured = io.StringIO()
        configure(tuned, captured)
        log = logging.getLogger("some.library")
        log.warning("connecting to %s as %s", SMTP_URL, SMTP_PASSWORD)
        try:
            raise RuntimeError(f"bad header Bearer {API_TOKEN}")
        except RuntimeError:
            log.exception("request failed")
        installed = {"access_token": "xoxb-42-43-installedbottoken",
                     "refresh_token": "xoxe-1-My0xLTQyLXJlZnJlc2g", "text": "xoxo, the team"}
        log.debug("Received the following response - body: %s", installed)
        text = captured.getvalue()
        assert "**********" in text and "RuntimeError" in text
        assert SMTP_PASSWORD not in text and "p%23ss" not in text and API_TOKEN not in text
        assert "installedbottoken" not in text and "My0xLTQyLXJlZnJlc2g" not in text

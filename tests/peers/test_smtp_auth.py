"""SMTP authentication against a real aiosmtpd server: percent-encoded passwords work, and a
wrong password holds the mail (never dead-letters it) until the operator fixes it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from adapters.http.server import build_http_app
from bot.clock import FixedClock
from bot.domain import OutboxStatus
from bot.wiring.config import Settings
from bot.wiring.runtime import App, build_app
from storage.db import Database
from tests.peers.test_smtp import MAIL_FROM, Mailbox, email_rows, free_port, import_acme
from tests.scenarios.test_cli import SUBDESK, environment

pytestmark = [
    pytest.mark.peers,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

USER = "bot@vendor.test"
PASSWORD = "p#ss/w?rd%:@x"  # every character a URL gives a meaning to
ENCODED = "p%23ss%2Fw%3Frd%25%3A%40x"


@dataclass
class AuthServer:
    """aiosmtpd that requires AUTH (without TLS, as a local relay may) with one password."""

    port: int
    mailbox: Mailbox
    password: str = PASSWORD

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and data.login.decode() == USER
              and data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)

    def url(self, password: str = ENCODED) -> str:
        return f"smtp+plain://bot%40vendor.test:{password}@127.0.0.1:{self.port}"


@pytest.fixture
def server() -> Iterator[AuthServer]:
    auth = AuthServer(free_port(), Mailbox())
    controller = Controller(auth.mailbox, hostname="127.0.0.1", port=auth.port,
                            authenticator=auth.authenticate, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    yield auth
    controller.stop()


async def app_for(url: str, settings: Settings, clock: FixedClock, db: Database) -> App:
    # Holds last 0.5-1 s here: long enough that a slow database never outlasts one.
    configured = Settings.model_validate({**settings.model_dump(), "smtp_url": url,
                                          "mail_from": MAIL_FROM, "api_token": "t0ken",
                                          "outbox_base_delay": 1.0, "outbox_max_delay": 1.0})
    return await build_app(configured, clock=clock, db=db)


async def test_percent_encoded_password_authenticates(
    server: AuthServer, settings: Settings, clock: FixedClock, db: Database
) -> None:
    """A password with #, /, ?, %, : and @ works once percent-encoded in SUBDESK_SMTP_URL."""
    app = await app_for(server.url(), settings, clock, db)
    await import_acme(app)
    assert (await app.dispatcher.drain(max_wait=0)).sent == 2
    assert len(server.mailbox.received) == 2


async def test_wrong_password_holds_mail_until_fixed(
    server: AuthServer, settings: Settings, clock: FixedClock, db: Database, db_url: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """535 keeps every email queued without spending attempts, stops sending, says so once
    in the log, in `subdesk outbox status` and in /readyz (the email adapter is not ready);
    once the password is right again each email is delivered exactly once."""
    server.password = "rotated"
    app = await app_for(server.url(), settings, clock, db)
    await import_acme(app)
    with caplog.at_level(logging.WARNING, logger="bot.delivery.dispatcher"):
        first = await app.dispatcher.drain(max_wait=0)
        await asyncio.sleep(1.05)  # past the (test-sized) backoff: the dispatcher probes again
        clock.advance(dt.timedelta(minutes=1))
        second = await app.dispatcher.drain(max_wait=0)
    assert (first.sent, first.dead) == (0, 0) and first.held >= 1
    assert (second.sent, second.dead, second.held) == (0, 0, 1), "one probe, not each email"
    rows = await email_rows(app)
    assert all(r.status is OutboxStatus.PENDING and r.attempts == 0 for r in rows)
    stopped = [r for r in caplog.records if "delivery stopped" in r.getMessage()]
    assert len(stopped) == 1 and "SMTP 535" in stopped[0].getMessage()
    assert PASSWORD not in caplog.text and ENCODED not in caplog.text

    status = await asyncio.to_thread(
        subprocess.run, [SUBDESK, "outbox", "status"], capture_output=True, text=True,
        cwd=tmp_path, env=environment(db_url), timeout=60, check=False)
    assert status.returncode == 0, status.stderr
    assert "email delivery held, 2 message(s) waiting" in status.stdout
    assert "SMTP 535: authentication failed" in status.stdout
    async with TestClient(TestServer(build_http_app(app))) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["status"].startswith("email delivery held (2 waiting): SMTP 535")
        assert body["adapters"] == {"email": body["status"]}, "the email adapter says why, once"

        server.password = PASSWORD
        await asyncio.sleep(1.05)
        clock.advance(dt.timedelta(minutes=1))
        assert (await app.dispatcher.drain(max_wait=0)).sent == 2
        assert (await client.get("/readyz")).status == 200
    assert sorted(str(m["To"]) for m in server.mailbox.received) == [
        "Ana Main <ana@acme.test>", "Tom Tech <tom@acme.test>"]
    assert all(r.status is OutboxStatus.SENT for r in await email_rows(app))
    assert (await app.dispatcher.drain(max_wait=0)).sent == 0


@pytest.mark.nodb
@pytest.mark.parametrize("command", [("outbox", "status"), ("run",)])
@pytest.mark.parametrize("variable,value", [
    ("SUBDESK_SMTP_URL", f"smtp://{USER}:{PASSWORD}@127.0.0.1:2525"),
    ("SUBDESK_DATABASE_URL", f"postgresql://bot:{PASSWORD}@127.0.0.1:5432/subdesk"),
])
def test_a_bad_secret_url_names_the_setting_not_the_value(
    tmp_path: Path, command: tuple[str, ...], variable: str, value: str
) -> None:
    """A URL whose password is not percent-encoded: one line naming the setting and how to
    write it, exit 1, and nothing of the password anywhere in the output."""
    env = environment(f"sqlite:///{tmp_path}/x.db")
    env[variable] = value
    result = subprocess.run([SUBDESK, *command], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert f"{variable}: Value error, is not a valid URL; percent-encode" in result.stderr
    assert "Traceback" not in result.stderr
    for fragment in ("p#ss", "ss/w", "w?rd", "rd%"):
        assert fragment not in result.stderr + result.stdout


@pytest.mark.nodb
def test_secret_settings_errors_never_quote_the_value() -> None:
    """In-process too: the validation error of each secret URL names it without the value."""
    from pydantic import ValidationError

    for field in ("smtp_url", "database_url"):
        with pytest.raises(ValidationError) as caught:
            Settings(**{field: f"smtp://u:{PASSWORD}@h"})  # type: ignore[arg-type]
        assert "p#ss" not in str(caught.value)
    assert Settings(smtp_url=SecretStr(f"smtp://u:{ENCODED}@h:25")).smtp_url is not None

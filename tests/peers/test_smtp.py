"""Outbox emails through SmtpTransport to a real aiosmtpd server on localhost."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select

from adapters.email.smtp import SmtpTarget, SmtpTransport, build_email
from bot.clock import FixedClock
from bot.delivery.intents import Audience
from bot.domain import OutboxStatus
from bot.presentation.messages import Message
from bot.services.onboarding import OrderForm
from bot.wiring.config import Settings
from bot.wiring.runtime import App, build_app
from storage.db import Database
from storage.models import OutboxRow
from storage.outbox import OutboxItem, OutboxStore
from tests.scenarios.orders import contact, form, organization

pytestmark = pytest.mark.peers

MAIL_FROM = "Subdesk <subdesk@vendor.test>"


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it receives, or refuses as told."""

    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    controller: Controller | None = None
    utf8: bool = False  # announces SMTPUTF8 (international addresses)

    @property
    def url(self) -> str:
        return f"smtp+plain://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     enable_SMTPUTF8=self.utf8)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), Mailbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def app(
    smtp: SmtpServer, settings: Settings, clock: FixedClock, db: Database
) -> AsyncIterator[App]:
    configured = settings.model_copy(
        update={"smtp_url": SecretStr(smtp.url), "mail_from": MAIL_FROM})
    built = await build_app(configured, clock=clock, db=db)
    yield built


ORDER = form(organization("acme", [contact("main", "ana@acme.test", "Ana Main"),
                                   contact("technical", "tom@acme.test", "Tom Tech")],
                          name="ACME Corp"))


async def import_acme(app: App) -> None:
    await app.services.onboarding.import_orders(OrderForm.model_validate(ORDER))


async def email_rows(app: App) -> list[OutboxItem]:
    async with app.db.read() as session:
        store = OutboxStore(session, app.clock.now())
        ids = list(await session.scalars(
            select(OutboxRow.id).where(OutboxRow.platform == "email").order_by(OutboxRow.id)))
        items = [await store.get(i) for i in ids]
    return [i for i in items if i is not None]


async def test_welcome_emails_arrive_over_smtp(app: App, smtp: SmtpServer) -> None:
    """Onboarding emails reach the SMTP server with sender, recipient, subject and body."""
    assert isinstance(app.transports["email"], SmtpTransport)
    await import_acme(app)
    stats = await app.dispatcher.drain(max_wait=0)
    assert stats.sent == 2
    by_to = {str(m["To"]): m for m in smtp.mailbox.received}
    assert set(by_to) == {"Ana Main <ana@acme.test>", "Tom Tech <tom@acme.test>"}
    welcome = by_to["Ana Main <ana@acme.test>"]
    assert welcome["From"] == MAIL_FROM
    assert welcome["Subject"] == "Welcome to your standard subscription"
    body = welcome.get_body(preferencelist=("plain",))
    assert body is not None and "You are the Main Contact of ACME Corp" in body.get_content()
    html = welcome.get_body(preferencelist=("html",))
    assert html is not None and "<pre" in html.get_content()
    assert ("subdesk@vendor.test", ["ana@acme.test"]) in smtp.mailbox.envelopes

    rows = {r.target: r for r in await email_rows(app)}
    assert rows["ana@acme.test"].status is OutboxStatus.SENT
    assert rows["ana@acme.test"].platform_ref == welcome["Message-ID"]
    assert welcome["X-Subdesk-Outbox"] == str(rows["ana@acme.test"].id)


async def test_message_id_is_stable(app: App) -> None:
    """The Message-ID derives from the outbox row, so a resend is the same message."""
    await import_acme(app)
    item = (await email_rows(app))[0]
    message = await app.dispatcher.intents.render(app.db, app.clock, item.payload,
                                                  Audience("email"))
    assert isinstance(message, Message)
    first = build_email(item, message, MAIL_FROM)["Message-ID"]
    again = build_email(item, message, MAIL_FROM)["Message-ID"]
    assert first == again
    assert first.startswith("<") and first.endswith(f".{item.id}@vendor.test>")
    other = build_email(
        OutboxItem(**{**_fields(item), "id": item.id + 1, "key": item.key + "x"}),
        message, MAIL_FROM)["Message-ID"]
    assert other != first


def _fields(item: OutboxItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in OutboxItem.__dataclass_fields__}


async def test_smtp_down_keeps_the_message_and_resumes(
    app: App, smtp: SmtpServer, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With the relay down, however long (here: many more tries than the attempts a message
    has), email delivery is held without using up attempts, said once in the log; when
    the relay is back, the same messages (same Message-ID) are delivered once each."""
    smtp.stop()
    await import_acme(app)
    assert app.settings.outbox_max_attempts < 10
    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            stats = await app.dispatcher.drain(max_wait=0)
            assert stats.sent == 0 and stats.dead == 0
            await asyncio.sleep(0.06)  # past the probe's wait (test settings)
            clock.advance(dt.timedelta(minutes=1))
    waiting = await email_rows(app)
    assert all(r.status is OutboxStatus.PENDING and r.attempts == 0 for r in waiting)
    assert all((r.last_error or "").startswith("unreachable: SMTP unavailable")
               for r in waiting)
    said = [r for r in caplog.records if "email cannot be reached" in r.getMessage()]
    assert len(said) == 1, "said once, not per message or per try"

    smtp.start()
    await asyncio.sleep(0.06)
    clock.advance(dt.timedelta(minutes=1))
    stats = await app.dispatcher.drain(max_wait=0)
    assert stats.sent == 2
    delivered = await email_rows(app)
    assert all(r.status is OutboxStatus.SENT and r.attempts == 1 for r in delivered)
    ids = sorted(str(m["Message-ID"]) for m in smtp.mailbox.received)
    assert ids == sorted(str(r.platform_ref) for r in delivered)
    assert len(smtp.mailbox.received) == 2
    assert (await app.dispatcher.drain(max_wait=0)).sent == 0


@pytest.mark.parametrize("utf8", [True, False], ids=["relay-takes-utf8", "relay-does-not"])
async def test_an_international_address_is_sent_with_smtputf8(
    app: App, smtp: SmtpServer, utf8: bool
) -> None:
    """A contact at josé@bücher.test gets mail through a relay that takes SMTPUTF8 (it
    could not be written at all before, and was retried until dead); a relay that does
    not makes that one message a dead letter, and holds up nobody else's mail."""
    smtp.stop()
    smtp.utf8 = utf8
    smtp.start()
    order = form(organization("bucher", [contact("main", "josé@bücher.test", "José"),
                                         contact("technical", "tom@bucher.test", "Tom")]))
    await app.services.onboarding.import_orders(OrderForm.model_validate(order))
    stats = await app.dispatcher.drain(max_wait=0)
    rows = {r.target: r.status for r in await email_rows(app)}
    received = {str(m["To"]) for m in smtp.mailbox.received}
    if utf8:
        assert stats.sent == 2 and set(rows.values()) == {OutboxStatus.SENT}
        assert "josé@bücher.test" in received and "Tom <tom@bucher.test>" in received
    else:
        assert rows == {"josé@bücher.test": OutboxStatus.DEAD, "tom@bucher.test":
                        OutboxStatus.SENT}
        assert received == {"Tom <tom@bucher.test>"}


async def test_recipient_refused_is_dead(app: App, smtp: SmtpServer) -> None:
    """A 5xx refusal of the recipient dead-letters the message at once."""
    smtp.mailbox.rcpt_reply = "550 5.1.1 No such user"
    await import_acme(app)
    stats = await app.dispatcher.drain(max_wait=0)
    assert stats.dead == 2 and stats.sent == 0
    rows = await email_rows(app)
    assert all(r.status is OutboxStatus.DEAD and r.attempts == 1 for r in rows)
    assert all(r.last_error == "SMTP 550: recipient refused" for r in rows)


async def test_data_rejected_permanently_is_dead(app: App, smtp: SmtpServer) -> None:
    """A 5xx answer to the message itself is permanent too."""
    smtp.mailbox.data_reply = "554 5.6.0 Message rejected"
    await import_acme(app)
    stats = await app.dispatcher.drain(max_wait=0)
    assert stats.dead == 2
    assert {r.last_error for r in await email_rows(app)} == {"SMTP 554"}


async def test_temporary_refusal_is_retried(
    app: App, smtp: SmtpServer, clock: FixedClock
) -> None:
    """A 4xx answer means later: the message waits and is delivered once the server accepts."""
    smtp.mailbox.data_reply = "451 4.3.0 Try again later"
    await import_acme(app)
    stats = await app.dispatcher.drain(max_wait=0)
    assert stats.retried == 2
    assert {r.last_error for r in await email_rows(app)} == {"SMTP 451"}
    smtp.mailbox.data_reply = None
    clock.advance(dt.timedelta(minutes=5))
    assert (await app.dispatcher.drain(max_wait=0)).sent == 2
    assert len(smtp.mailbox.received) == 2


@pytest.mark.nodb
def test_smtp_url_forms() -> None:
    """The URL chooses TLS mode, port and credentials; its password never shows in repr."""
    plain = SmtpTarget.from_url("smtp+plain://relay.local:2525")
    assert (plain.host, plain.port, plain.starttls, plain.implicit_tls) == (
        "relay.local", 2525, False, False)
    tls = SmtpTarget.from_url("smtps://bot%40x.test:s3cr%2Ft@mail.x.test")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (
        465, True, "bot@x.test", "s3cr/t")
    assert SmtpTarget.from_url("smtp://mail.x.test").starttls is None
    assert "s3cr" not in repr(tls) and "s3cr" not in str(tls)
    transport = SmtpTransport("smtp://u:hunter2@mail.x.test", MAIL_FROM)
    assert "hunter2" not in repr(transport) and "hunter2" not in repr(vars(transport))
    with pytest.raises(ValueError, match="smtp://"):
        SmtpTarget.from_url("http://mail.x.test")


async def test_header_injection_is_flattened(app: App, smtp: SmtpServer) -> None:
    """Newlines in a recipient's name or a subject neither break delivery nor add headers."""
    async with app.db.transaction() as session:
        await OutboxStore(session, app.clock.now()).enqueue(
            "evil", platform="email", target="eve@acme.test", kind="email",
            payload=Message("body", subject="Hello\r\nBcc: spy@evil.test").to_json(),
            recipient="Eve\r\nBcc: spy@evil.test <eve@acme.test>",
        )
    assert (await app.dispatcher.drain(max_wait=0)).sent == 1
    [mail] = smtp.mailbox.received
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Hello Bcc: spy@evil.test"
    assert smtp.mailbox.envelopes == [("subdesk@vendor.test", ["eve@acme.test"])]

"""A mail relay (a real aiosmtpd) that refuses mail for a while, under a running `subdesk
run`: temporary refusals (421 to the sender, 451 to the recipients) delay the welcome
emails, which then arrive once each; a permanent 550 for one recipient makes that one a
dead letter whose alert reaches the triage channel; nothing vanishes silently."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.faults.world import FaultySlack, Subdesk, orders, slack_env, until
from tests.peers.synapse import free_port

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

TRIAGE = "C0TRIAGE"
CUSTOMERS = 8
REFUSING_SECONDS = 3.0  # each kind of temporary refusal lasts this long


@dataclass
class Relay:
    """An aiosmtpd handler: `mode` says how it answers now ("421": the sender is refused
    with 421, "451": every recipient with 451, "open": mail is taken); `gone@` addresses
    are always refused with 550."""

    mode: str = "421"
    received: list[tuple[str, str]] = field(default_factory=list)  # (recipient, Message-ID)
    refusals: list[str] = field(default_factory=list)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if self.mode == "421":
            self.refusals.append("421")
            return "421 4.3.2 Service not available, closing transmission channel"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if address.startswith("gone@"):
            self.refusals.append("550")
            return "550 5.1.1 No such user here"
        if self.mode == "451":
            self.refusals.append("451")
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        for to in envelope.rcpt_tos:
            self.received.append((to, str(parsed["Message-ID"])))
        return "250 Message accepted for delivery"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler, port = Relay(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def _outbox(path: Path) -> dict[tuple[str, str], int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT platform, status, count(*) FROM outbox GROUP BY 1, 2")
        return {(str(p), str(s)): int(n) for p, s, n in rows}


async def test_smtp_refusing_then_accepting_and_one_recipient_gone(
    relay: tuple[Relay, int], fake: FaultySlack, tmp_path: Path
) -> None:
    """Welcome emails meet 421 then 451 for a few seconds each, then an open relay: each
    arrives exactly once and none is a dead letter; the one to an address the relay
    refuses with 550 is a dead letter at once, and its alert is posted to triage."""
    handler, port = relay
    database = tmp_path / "subdesk.db"
    env = slack_env(fake, SUBDESK_DATABASE_URL=f"sqlite:///{database}",
                    SUBDESK_SMTP_URL=f"smtp+plain://127.0.0.1:{port}",
                    SUBDESK_MAIL_FROM="Subdesk <subdesk@vendor.test>",
                    SUBDESK_TRIAGE_CHANNELS=f"slack:{TRIAGE}",
                    SUBDESK_OUTBOX_BASE_DELAY="0.5", SUBDESK_OUTBOX_MAX_DELAY="2",
                    SUBDESK_OUTBOX_MAX_ATTEMPTS="10", SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0")
    subdesk = Subdesk(env, tmp_path)
    await subdesk.start()
    try:
        document = orders(CUSTOMERS)
        gone = orders(1, prefix="bounce")["organizations"][0]
        gone["contacts"][0]["email"] = "gone@bounce.customer.test"
        document["organizations"].append(gone)
        status, report = await subdesk.post("/api/v1/orders", document)
        assert status == 200 and report["messages_queued"] == CUSTOMERS + 1, report
        await until(lambda: "421" in handler.refusals, 30, "the relay to refuse a sender")
        await asyncio.sleep(REFUSING_SECONDS)
        handler.mode = "451"
        await until(lambda: "451" in handler.refusals, 30, "the relay to refuse recipients")
        await asyncio.sleep(REFUSING_SECONDS)
        handler.mode = "open"
        await until(lambda: len(handler.received) >= CUSTOMERS, 60, "every welcome email")
        await until(lambda: any("could not be delivered" in text
                                for text in fake.delivered().get(TRIAGE, [])),
                    30, "the dead-letter alert in triage")
        # Still running: a command is answered (by its response_url), not left in silence.
        await subdesk.slack(fake).command("U0NOBODY", "/subdesk", "help")
        await until(lambda: len(fake.answers()) == 1, 30, "an answer to /subdesk help")
        await asyncio.sleep(2.0)  # time for any stray resend to show
    finally:
        await subdesk.stop()
    recipients = sorted(to for to, _ in handler.received)
    assert recipients == sorted(f"main{n}@org{n}.customer.test"
                                for n in range(1, CUSTOMERS + 1)), "each email exactly once"
    assert len({mid for _, mid in handler.received}) == CUSTOMERS
    assert {"421", "451", "550"} <= set(handler.refusals)
    assert _outbox(database) == {("email", "sent"): CUSTOMERS, ("email", "dead"): 1,
                                 ("slack", "sent"): 1}
    alert = [t for t in fake.delivered()[TRIAGE] if "could not be delivered" in t]
    assert len(alert) == 1, fake.delivered()
    assert "Traceback" not in subdesk.log_text()

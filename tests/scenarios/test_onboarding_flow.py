"""The newcomer's path from the README, through the console adapter and the real core."""

from __future__ import annotations

import re

from bot.wiring.demo import DEMO_MAIN, DEMO_STAFF, DEMO_TECH
from tests.harness import Harness


async def test_link_request_approve_and_support_welcome(harness: Harness) -> None:
    """Link by emailed code, list contacts, request a Technical Contact, approve, welcome."""
    await harness.seed_demo()
    me = harness.as_(user_id="newcomer")

    reply = await me.send("/subdesk link ana@demo.test")
    assert "6-digit code" in reply.message.text
    code_mail = harness.emails_to(DEMO_MAIN)[-1]
    code = re.search(r"\b(\d{6})\b", code_mail.text)
    assert code is not None

    reply = await me.send(f"/subdesk link verify {code.group(1)}")
    assert reply.ok and "Ana Main" in reply.message.text

    reply = await me.send("/contacts")
    assert "Tom Tech <tom@demo.test> — Technical Contact" in reply.message.text

    reply = await me.send("/contacts request-technical nia@demo.test Nia New")
    assert reply.ok and "Request #1" in reply.message.text
    assert harness.emails_to(DEMO_STAFF), "the vendor admin is told about the request"

    staff = harness.as_(DEMO_STAFF)
    reply = await staff.send("/subdesk approve 1")
    assert reply.ok, reply.message.text

    welcome = harness.emails_to("nia@demo.test")
    assert [m.subject for m in welcome] == ["Support Welcome — Demo Corp"]
    decision = harness.delivered_to("newcomer")
    assert any("approved" in m.text for m in decision), "the linked requester hears back in chat"

    reply = await me.send("/contacts")
    assert "Nia New <nia@demo.test> — Technical Contact" in reply.message.text


async def test_technical_contact_cannot_manage_contacts(harness: Harness) -> None:
    """A Technical Contact sees contacts but may not request more."""
    await harness.seed_demo()
    tom = harness.as_(DEMO_TECH)
    reply = await tom.send("/contacts request-technical x@demo.test")
    assert not reply.ok
    assert "not available to you" in reply.message.text

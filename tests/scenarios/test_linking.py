"""Linking chat accounts to people (SPEC §4): emailed codes, verified emails, admins."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.commands.invocation import Invocation, Sender
from bot.domain import Platform, StaffRole
from bot.presentation.messages import Message, Reply
from bot.services.base import Invalid, NotFound
from bot.wiring.demo import DEMO_MAIN, DEMO_STAFF, DEMO_TECH
from storage.directory import Directory
from storage.models import AuditEventRow, LinkCodeRow
from tests.harness import Harness


def code_in(harness: Harness, address: str) -> str:
    """The six digits of the latest link code emailed to `address`."""
    mails = link_mails(harness, address)
    assert mails, f"no link code mailed to {address}"
    found = re.search(r"\b(\d{6})\b", mails[-1].text)
    assert found is not None
    return found.group(1)


def link_mails(harness: Harness, address: str) -> list[Message]:
    return [m for m in harness.emails_to(address) if m.subject == "Your Subdesk link code"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def chat(harness: Harness, sender: Sender, text: str) -> Reply:
    """Send as a chat account of any platform, then deliver what it queued; the reply's
    command references are written the way that platform writes them."""
    reply = await harness.app.core.handle(Invocation(sender, text))
    await harness.drain()
    prefix = "!" if sender.platform is Platform.MATRIX else "/"
    return dataclasses.replace(reply, message=reply.message.resolved(prefix))


async def link_codes(harness: Harness) -> list[LinkCodeRow]:
    async with harness.app.db.read() as session:
        return list(await session.scalars(select(LinkCodeRow)))


async def test_code_flow_links_the_account(harness: Harness) -> None:
    """A code goes to the contact's email; entering it links this chat account."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-ana")
    reply = await me.send(f"/subdesk link {DEMO_MAIN}")
    assert reply.ok and "within 15 minutes" in reply.message.text
    [mail] = link_mails(harness, DEMO_MAIN)
    assert "expires in 15 minutes" in mail.plain()
    code = code_in(harness, DEMO_MAIN)

    before = await me.send("/subdesk whoami")
    assert "not linked" in before.message.text
    reply = await me.send(f"/subdesk link verify {code}")
    assert reply.ok
    assert "Linked: you are Ana Main <ana@demo.test> of Demo Corp" in reply.message.text
    who = await me.send("/subdesk whoami")
    assert "Demo Corp (demo)" in who.message.text and "Main Contact" in who.message.text
    assert await link_codes(harness) == [], "a used code is gone"

    async with harness.app.db.read() as session:
        events = list(await session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "identity.linked")))
    assert [e.after for e in events] == [{"contact": DEMO_MAIN, "proof": "email-code"}]
    assert events[0].target == "console:local:U-ana"


async def test_linked_account_gets_notifications_in_chat(harness: Harness) -> None:
    """Once linked, messages for that person arrive as DMs instead of email."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-ana")
    await me.send(f"/subdesk link {DEMO_MAIN}")
    await me.send(f"/subdesk link verify {code_in(harness, DEMO_MAIN)}")
    emails_before = len(harness.emails_to(DEMO_MAIN))
    await me.send("/contacts request-technical nia@demo.test")
    await harness.as_(DEMO_STAFF).send("/subdesk deny 1")
    assert any("denied" in m.text for m in harness.delivered_to("U-ana"))
    assert len(harness.emails_to(DEMO_MAIN)) == emails_before


async def test_code_is_stored_hashed(harness: Harness) -> None:
    """The link_codes table holds a salted hash, never the six digits."""
    await harness.seed_demo()
    await harness.as_(user_id="U-x").send(f"/subdesk link {DEMO_TECH}")
    code = code_in(harness, DEMO_TECH)
    [row] = await link_codes(harness)
    stored = " ".join(str(v) for v in (row.code_hash, row.salt, row.user_id, row.workspace))
    assert code not in stored
    assert len(row.code_hash) == 64 and row.attempts_left == 5
    assert row.expires_at == harness.clock.now() + dt.timedelta(minutes=15)


async def test_wrong_codes_spend_attempts_until_none_are_left(harness: Harness) -> None:
    """Each wrong code spends one of five attempts; after the fifth even the right code
    is refused, and the account waits out a lockout."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-guess")
    await me.send(f"/subdesk link {DEMO_TECH}")
    code = code_in(harness, DEMO_TECH)
    for left in (4, 3, 2, 1):
        reply = await me.send(f"/subdesk link verify {wrong(code)}")
        assert not reply.ok
        assert f"{left} more attempt{'s' if left != 1 else ''}" in reply.message.text
        [row] = await link_codes(harness)
        assert row.attempts_left == left
    last = await me.send(f"/subdesk link verify {wrong(code)}")
    assert "must wait 15 minutes" in last.message.text
    assert await link_codes(harness) == []
    late = await me.send(f"/subdesk link verify {code}")
    assert not late.ok and "Too many wrong codes" in late.message.text
    assert "not linked" in (await me.send("/subdesk whoami")).message.text


async def test_code_expires_after_fifteen_minutes(harness: Harness, clock: FixedClock) -> None:
    """A code works until its fifteenth minute and not after."""
    await harness.seed_demo()
    early, late = harness.as_(user_id="U-early"), harness.as_(user_id="U-late")
    await early.send(f"/subdesk link {DEMO_TECH}")
    early_code = code_in(harness, DEMO_TECH)
    await late.send(f"/subdesk link {DEMO_MAIN}")
    late_code = code_in(harness, DEMO_MAIN)

    clock.advance(dt.timedelta(minutes=14, seconds=59))
    assert (await early.send(f"/subdesk link verify {early_code}")).ok
    clock.advance(dt.timedelta(seconds=1))
    reply = await late.send(f"/subdesk link verify {late_code}")
    assert not reply.ok and "not valid" in reply.message.text
    assert await link_codes(harness) == [], "the expired code is cleared"


async def test_code_is_bound_to_the_requesting_account(harness: Harness) -> None:
    """A code asked for by one chat account does not link another."""
    await harness.seed_demo()
    await harness.as_(user_id="U-asker").send(f"/subdesk link {DEMO_MAIN}")
    code = code_in(harness, DEMO_MAIN)
    thief = harness.as_(user_id="U-thief")
    reply = await thief.send(f"/subdesk link verify {code}")
    assert not reply.ok
    assert "not linked" in (await thief.send("/subdesk whoami")).message.text


async def test_unknown_email_gets_the_same_answer_and_no_mail(harness: Harness) -> None:
    """Asking for a code for an address nobody has reveals nothing and sends nothing."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-probe")
    known = await me.send(f"/subdesk link {DEMO_MAIN}")
    harness.clock.advance(dt.timedelta(minutes=2))
    unknown = await harness.as_(user_id="U-probe2").send("/subdesk link ghost@demo.test")
    assert unknown.message.text == known.message.text.replace(DEMO_MAIN, "ghost@demo.test")
    assert not harness.emails_to("ghost@demo.test")


async def test_new_code_needs_a_minute_and_replaces_the_old(harness: Harness) -> None:
    """Codes cannot be requested in a burst (the account is told the same whether the email
    is a contact's or not); a later request replaces the earlier code."""
    await harness.seed_demo()
    me = harness.as_(user_id="U-again")
    await me.send(f"/subdesk link {DEMO_TECH}")
    first = code_in(harness, DEMO_TECH)
    burst = await me.send(f"/subdesk link {DEMO_TECH}")
    ghost = harness.as_(user_id="U-ghost")
    await ghost.send("/subdesk link ghost@demo.test")
    ghost_burst = await ghost.send("/subdesk link ghost@demo.test")
    assert burst.message.text == ghost_burst.message.text
    assert "try again" in burst.message.text
    assert len(link_mails(harness, DEMO_TECH)) == 1
    harness.clock.advance(dt.timedelta(seconds=61))
    assert (await me.send(f"/subdesk link {DEMO_TECH}")).ok
    second = code_in(harness, DEMO_TECH)
    assert len(await link_codes(harness)) == 1
    if first != second:
        assert not (await me.send(f"/subdesk link verify {first}")).ok
    assert (await me.send(f"/subdesk link verify {second}")).ok


async def test_link_without_email_or_from_an_asserted_console(harness: Harness) -> None:
    """`/subdesk link` needs an email, and a console acting as someone has nothing to link."""
    await harness.seed_demo()
    reply = await harness.as_(user_id="U-bare").send("/subdesk link")
    assert not reply.ok and "/subdesk link EMAIL" in reply.message.text
    reply = await harness.as_(DEMO_MAIN).send(f"/subdesk link {DEMO_MAIN}")
    assert not reply.ok and "already acts as" in reply.message.text


async def test_platform_verified_email_links_at_once(harness: Harness) -> None:
    """A Slack account whose workspace-verified email is a contact's is linked without a code."""
    await harness.seed_demo()
    slack = Sender(Platform.SLACK, "T0DEMO", "U0TOM", verified_email="Tom@Demo.test")
    reply = await chat(harness, slack, "/subdesk link")
    assert reply.ok and "Linked: you are Tom Tech <tom@demo.test>" in reply.message.text
    assert not link_mails(harness, DEMO_TECH), "no code is mailed"
    who = await chat(harness, slack, "/subdesk whoami")
    assert "Technical Contact" in who.message.text
    assert "slack:T0DEMO:U0TOM" in who.message.text


async def test_verified_email_of_nobody_is_refused(harness: Harness) -> None:
    """A verified email that is not a designated contact does not link."""
    await harness.seed_demo()
    slack = Sender(Platform.SLACK, "T0DEMO", "U0EVE", verified_email="eve@demo.test")
    reply = await chat(harness, slack, "/subdesk link")
    assert not reply.ok and "not a designated contact" in reply.message.text
    who = await chat(harness, slack, "/subdesk whoami")
    assert "not linked" in who.message.text


async def test_different_email_than_the_verified_one_needs_a_code(harness: Harness) -> None:
    """Asking for another address than the verified one falls back to the emailed code."""
    await harness.seed_demo()
    slack = Sender(Platform.SLACK, "T0DEMO", "U0X", verified_email="someone@else.test")
    reply = await chat(harness, slack, f"/subdesk link {DEMO_MAIN}")
    assert "6-digit code" in reply.message.text
    assert link_mails(harness, DEMO_MAIN)
    assert "not linked" in (await chat(harness, slack, "/subdesk whoami")).message.text


async def test_unlink(harness: Harness) -> None:
    """Unlinking forgets the account (audited); unlinking again says it was not linked."""
    await harness.seed_demo()
    slack = Sender(Platform.SLACK, "T0DEMO", "U0TOM", verified_email=DEMO_TECH)
    await chat(harness, slack, "/subdesk link")
    reply = await chat(harness, slack, "/subdesk unlink")
    assert reply.ok and "no longer linked" in reply.message.text
    assert "not linked" in (await chat(harness, slack, "/subdesk whoami")).message.text
    async with harness.app.db.read() as session:
        row = await session.scalar(select(AuditEventRow).order_by(AuditEventRow.id.desc()))
    assert row is not None and row.action == "identity.unlinked", "unlinking is audited"
    assert row.before is not None and row.before["email"] == DEMO_TECH
    again = await chat(harness, slack, "/subdesk unlink")
    assert not again.ok and "/subdesk link EMAIL" in again.message.text


async def test_admin_link_from_the_cli(harness: Harness) -> None:
    """A vendor admin links a Matrix account to a contact, and to staff, by their word."""
    await harness.seed_demo()
    identity = harness.app.services.identity
    who = await identity.admin_link(DEMO_MAIN, Platform.MATRIX, "demo.test", "@ana:demo.test")
    assert who == "Ana Main"
    matrix = Sender(Platform.MATRIX, "demo.test", "@ana:demo.test")
    reply = await chat(harness, matrix, "!subdesk whoami")
    assert "Ana Main" in reply.message.text and "Main Contact" in reply.message.text
    await identity.admin_link(DEMO_STAFF, Platform.MATRIX, "vendor.test", "@sam:vendor.test")
    staff = await chat(harness, Sender(Platform.MATRIX, "vendor.test", "@sam:vendor.test"),
                       "!subdesk whoami")
    assert "Vendor roles" in staff.message.text
    try:
        await identity.admin_link("ghost@demo.test", Platform.SLACK, "T0", "U0")
    except NotFound as exc:
        assert "ghost@demo.test" in str(exc)
    else:
        raise AssertionError("linking an unknown email must fail")


async def test_relinking_moves_the_account(harness: Harness) -> None:
    """A chat account maps to one person: linking it again (with force) points it at the new
    person."""
    await harness.seed_demo()
    identity = harness.app.services.identity
    await identity.admin_link(DEMO_MAIN, Platform.SLACK, "T0", "U0")
    await identity.admin_link(DEMO_TECH, Platform.SLACK, "T0", "U0", force=True)
    reply = await chat(harness, Sender(Platform.SLACK, "T0", "U0"), "/subdesk whoami")
    assert "Tom Tech" in reply.message.text and "Ana" not in reply.message.text


async def test_staff_add_with_roles_and_chat_accounts(harness: Harness) -> None:
    """`subdesk staff add` creates staff with roles and linked accounts; adding again merges."""
    identity = harness.app.services.identity
    added = await identity.add_staff(
        "Eve@Vendor.test", [StaffRole.ENGINEER], "Eve Engineer",
        [(Platform.SLACK, "T0VENDOR", "U0EVE"), (Platform.MATRIX, "vendor.test",
                                                  "@eve:vendor.test")],
    )
    assert (added.name, added.email) == ("Eve Engineer", "eve@vendor.test")
    await identity.add_staff("eve@vendor.test", [StaffRole.ADMIN])
    async with harness.app.db.read() as session:
        member = await Directory(session, harness.clock.now()).staff_by_email("eve@vendor.test")
    assert member is not None
    assert member.roles == {StaffRole.ENGINEER, StaffRole.ADMIN}
    assert member.name == "Eve Engineer"
    slack = await chat(harness, Sender(Platform.SLACK, "T0VENDOR", "U0EVE"), "/subdesk whoami")
    assert "admin, engineer" in slack.message.text
    matrix = await chat(harness, Sender(Platform.MATRIX, "vendor.test", "@eve:vendor.test"),
                        "!subdesk help")
    assert "!subdesk approve REQUEST_ID" in matrix.message.text


async def test_staff_add_refuses_bad_or_customer_emails(harness: Harness) -> None:
    """Staff need a valid email of their own: not a typo, not a customer contact's."""
    await harness.seed_demo()
    identity = harness.app.services.identity
    with pytest.raises(Invalid, match="not a valid email"):
        await identity.add_staff("notanemail", [StaffRole.ENGINEER])
    with pytest.raises(Invalid, match="customer contact"):
        await identity.add_staff(DEMO_MAIN, [StaffRole.ENGINEER])
    member = await identity.add_staff(DEMO_STAFF, [StaffRole.ENGINEER])
    assert member.roles == frozenset(StaffRole), "adding a role keeps the earlier ones"


async def test_relinking_by_code_audits_the_previous_owner(harness: Harness) -> None:
    """An account that proves another email moves to that person, and the audit entry's
    `before` names who held it."""
    await harness.seed_demo()
    await harness.app.services.identity.admin_link(DEMO_MAIN, Platform.SLACK, "T0", "U9")
    slack = Sender(Platform.SLACK, "T0", "U9")
    await chat(harness, slack, f"/subdesk link {DEMO_TECH}")
    assert (await chat(harness, slack, f"/subdesk link verify {code_in(harness, DEMO_TECH)}")).ok
    async with harness.app.db.read() as session:
        row = await session.scalar(select(AuditEventRow).order_by(AuditEventRow.id.desc()))
    assert row is not None and row.action == "identity.linked"
    assert row.before is not None and row.before["email"] == DEMO_MAIN

"""Tickets for Technical Contacts through the console and the real core (SPEC §1, §4)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event, select

from bot.clock import FixedClock
from bot.commands.invocation import IncomingFile, Invocation, Sender
from bot.domain import Platform, StaffRole
from bot.presentation.messages import Outcome
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_STAFF, DEMO_TECH
from storage.db import Database
from storage.models import AttachmentRow, TicketCommentRow, TicketRow
from tests.harness import Harness
from tests.scenarios.tickets_world import (
    ADA,
    ANA,
    BEA,
    BOB,
    OLGA,
    SAM,
    SOL,
    TIA,
    TOM,
    build,
    count,
    customer_texts,
)


async def test_open_list_show_comment_close_reopen(harness: Harness) -> None:
    """A Technical Contact's whole ticket life, with the opener card and the triage card."""
    await build(harness)
    tom = harness.as_(TOM)

    reply = await tom.send("/ticket new sev2 VPN drops every hour")
    assert reply.ok, reply.message.text
    assert "#1" in reply.message.text and "sev2" in reply.message.text
    card = harness.emails_to(TOM)[-1]
    assert card.thread_key == "ticket:1:opener" and "VPN drops every hour" in card.plain()
    triage = harness.delivered_to("triage")
    assert len(triage) == 1 and triage[0].thread_key == "ticket:1:triage"
    assert "Acme Corp" in triage[0].plain()

    reply = await tom.send("/ticket new Printer on fire")
    assert "sev3" in reply.message.text, "sev3 is the default severity"

    listing = (await tom.send("/ticket list")).message.text
    assert "#1 · sev2 · new · VPN drops every hour" in listing
    assert "#2 · sev3 · new · Printer on fire" in listing
    assert listing.index("#2") < listing.index("#1"), "newest first"

    reply = await tom.send("/ticket comment #1 It happens at :00 sharp")
    assert reply.ok, reply.message.text
    shown = (await tom.send("/ticket show 1")).message.text
    assert "Tom Tech: It happens at :00 sharp" in shown and "Status: new" in shown

    reply = await tom.send("/ticket close 1 Fixed by a firmware update")
    assert reply.ok, reply.message.text
    assert "#1" not in (await tom.send("/ticket list")).message.text
    assert "#1 · sev2 · closed" in (await tom.send("/ticket list all")).message.text
    reply = await tom.send("/ticket comment 1 one more thing")
    assert not reply.ok and "reopen" in reply.message.text
    reply = await tom.send("/ticket reopen 1 It came back")
    assert reply.ok, reply.message.text
    assert "#1 · sev2 · open" in (await tom.send("/ticket list")).message.text
    assert not (await tom.send("/ticket reopen 1")).ok, "an open ticket is not reopened"
    shown = (await tom.send("/ticket show 1")).message.text
    assert "Fixed by a firmware update" in shown and "It came back" in shown


async def test_new_without_subject_asks_for_it(harness: Harness) -> None:
    """No subject: the command's form (a modal on Slack); the console asks for the missing
    fields line by line, validates each, and opens the ticket with what was given."""
    await build(harness)
    tom = harness.as_(TOM)
    reply = await tom.send("/ticket new sev1")
    assert reply.outcome is Outcome.NEEDS_INPUT and reply.form is not None
    assert reply.form.command == "ticket.new"
    assert [f.name for f in reply.form.to_ask] == ["SUBJECT", "DESCRIPTION"]
    assert "Usage: /ticket new [sev1|sev2|sev3|sev4] [SUBJECT]" in reply.message.text
    assert await count(harness, TicketRow) == 0
    assert tom.asking is not None and tom.asking.name == "SUBJECT"
    await tom.send("")  # the subject is needed: asked again
    assert tom.asking is not None and tom.asking.name == "SUBJECT"
    await tom.send("Cluster  down")
    assert tom.asking is not None and tom.asking.name == "DESCRIPTION"
    opened = await tom.send("All nodes stopped at 10:00.")
    assert opened.ok and tom.form is None
    ticket = (await harness.app.services.tickets.show(
        await harness.app.services.identity.actor(tom.sender), 1)).ticket
    assert (ticket.subject, ticket.severity.value) == ("Cluster down", "sev1")
    assert ticket.description == "All nodes stopped at 10:00."
    assert "  Subject?" in harness.lines and "  Description (optional)?" in harness.lines


async def test_a_command_typed_into_an_open_form_runs_instead(harness: Harness) -> None:
    """A piped session that leaves a form unanswered does not swallow its next command as
    the answer: the command closes the form and runs."""
    await build(harness)
    tom = harness.as_(TOM)
    await tom.send("/ticket new sev2 Printer on fire")
    asked = await tom.send("/ticket comment 1")
    assert asked.form is not None and tom.asking is not None
    listed = await tom.send("/ticket list")
    assert listed.ok and tom.form is None and "Printer on fire" in listed.message.text
    assert await count(harness, TicketCommentRow) == 0


async def test_form_field_is_validated_and_can_be_cancelled(harness: Harness) -> None:
    """A form answer that fails the grammar's check is refused with the reason and asked
    again; `cancel` closes the form without running anything."""
    await build(harness)
    tom = harness.as_(TOM)
    await tom.send("/ticket new")
    await tom.send("Printer on fire")
    await tom.send("cancel")
    assert tom.form is None and await count(harness, TicketRow) == 0
    engineer = harness.as_(SAM)
    await tom.send("/ticket new sev2 Printer on fire")
    reply = await engineer.send("/triage status 1")
    assert reply.form is not None and engineer.asking is not None
    assert engineer.asking.choices == ("new", "open", "pending", "on_hold", "solved", "closed")
    await engineer.send("melted")
    assert "STATUS must be one of" in harness.lines[-2]
    assert engineer.asking is not None and engineer.asking.name == "STATUS"
    done = await engineer.send("pending")
    assert done.ok and "#1 is now pending" in done.message.text


async def test_hidden_ticket_answers_like_a_missing_one(harness: Harness) -> None:
    """Another contact's ticket and a ticket that does not exist: same text, same queries."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new Secret project")
    statements: list[str] = []

    def record(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    engine = harness.app.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        outcomes = {}
        for who, number in ((TIA, 1), (BOB, 1), (TIA, 99), (BOB, 99)):
            for verb in ("show {n}", "comment {n} hi", "close {n}", "reopen {n}"):
                statements.clear()
                reply = await harness.as_(who).send("/ticket " + verb.format(n=number))
                assert not reply.ok
                outcomes[(who, number, verb)] = (
                    reply.message.text.replace(str(number), "N"), len(statements)
                )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    for verb in ("show {n}", "comment {n} hi", "close {n}", "reopen {n}"):
        answers = {outcomes[(who, n, verb)] for who in (TIA, BOB) for n in (1, 99)}
        assert len(answers) == 1, (verb, answers)
        ((text, _),) = answers
        assert text == "There is no ticket #N you can see."


async def test_sharing_grants_read_and_comment(harness: Harness) -> None:
    """With sharing on, colleagues list, read and comment, but only the opener closes."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new Shared trouble")
    tia = harness.as_(TIA)
    assert "none" in (await tia.send("/ticket list")).message.text
    assert (await harness.as_(ANA).send("/contacts sharing on")).ok
    listing = (await tia.send("/ticket list")).message.text
    assert "Acme Corp's open tickets" in listing and "#1" in listing
    assert "Shared trouble" in (await tia.send("/ticket show 1")).message.text
    assert (await tia.send("/ticket comment 1 Same here")).ok
    reply = await tia.send("/ticket close 1")
    assert not reply.ok and "Only the contact who opened #1" in reply.message.text
    assert any("Same here" in m.plain() for m in harness.emails_to(TOM)), "the opener hears"
    bob = harness.as_(BOB)
    assert "There is no ticket #1" in (await bob.send("/ticket show 1")).message.text


async def test_roles_and_subscription(harness: Harness) -> None:
    """Sole Main Contact may open tickets; other non-technical roles and staff may not;
    an expired subscription refuses tickets but keeps billing."""
    await build(harness)
    assert (await harness.as_(SOL).send("/ticket new Only me here")).ok
    for who in (ANA, ADA, BEA, SAM):
        reply = await harness.as_(who).send("/ticket new Not mine to open")
        assert not reply.ok and "not available to you" in reply.message.text, who
    listing = await harness.as_(ANA).send("/ticket list")
    assert listing.ok and "none" in listing.message.text, "she follows only what she opened"
    reply = await harness.as_("stranger@nowhere.test").send("/ticket list")
    assert not reply.ok and "don't know who you are" in reply.message.text

    olga = harness.as_(OLGA)
    for line in ("/ticket new Help", "/ticket list", "/ticket show 1"):
        reply = await olga.send(line)
        assert not reply.ok
        assert "subscription is not active (it ended on 2026-10-31)" in reply.message.text
    assert (await harness.as_("oz@old.test").send("/billing invoices")).ok
    assert await count(harness, TicketRow) == 1


async def test_internal_notes_never_reach_customers(harness: Harness) -> None:
    """Notes and internal files stay with staff: not in replies, lists, shows or deliveries."""
    await build(harness)
    await harness.as_(ANA).send("/contacts sharing on")
    await harness.as_(TOM).send("/ticket new Disk full")
    await harness.as_(TIA).send("/ticket comment 1 me too")
    sam = harness.as_(SAM)
    assert (await sam.send("/triage note 1 CUSTOMER-IS-ON-OLD-BUILD")).ok
    secret_file = IncomingFile("notes.txt", "text/plain", b"INTERNAL-FILE")
    sender = Sender(Platform.CONSOLE, "local", SAM, asserted_email=SAM)
    reply = await harness.app.core.handle(
        Invocation(sender, "/triage note 1 see file", files=(secret_file,))
    )
    assert reply.ok, reply.message.text
    await sam.send("/triage reply 1 We are on it")
    await harness.drain()

    staff_view = (await sam.send("/ticket show 1")).message.text
    assert "[internal note]: CUSTOMER-IS-ON-OLD-BUILD" in staff_view
    assert "notes.txt" in staff_view
    for who in (TOM, TIA):
        shown = (await harness.as_(who).send("/ticket show 1")).message.text
        listed = (await harness.as_(who).send("/ticket list all")).message.text
        assert "We are on it" in shown
        for text in (shown, listed):
            assert "CUSTOMER-IS-ON-OLD-BUILD" not in text and "notes.txt" not in text
    delivered = customer_texts(harness)
    assert "We are on it" in delivered
    assert "CUSTOMER-IS-ON-OLD-BUILD" not in delivered and "see file" not in delivered
    assert any("CUSTOMER-IS-ON-OLD-BUILD" in m.plain() for m in harness.delivered_to("triage"))


async def test_attachments_limits(harness: Harness) -> None:
    """Files are stored with name, size, type and content; oversize or disallowed ones are
    refused with nothing stored, not even the comment."""
    await build(harness)
    harness.app.settings.attachment_max_bytes = 1000
    await harness.as_(TOM).send("/ticket new Logs attached")
    sender = Sender(Platform.CONSOLE, "local", TOM, asserted_email=TOM)

    async def comment(*files: IncomingFile) -> str:
        reply = await harness.app.core.handle(Invocation(sender, "/ticket comment 1 logs",
                                                         files=files))
        return ("ok: " if reply.ok else "refused: ") + reply.message.text

    good = IncomingFile("../../etc/app.log", "text/plain; charset=utf-8", b"line\n" * 10)
    assert (await comment(good)).startswith("ok: ") and "1 attachment" in await comment(good)
    big = IncomingFile("dump.bin", "application/octet-stream", b"x" * 1001)
    answer = await comment(good, big)
    assert answer.startswith("refused: dump.bin is 1001 bytes; the limit is 1000 bytes")
    exe = IncomingFile("run.exe", "application/x-msdownload", b"MZ")
    answer = await comment(exe)
    assert answer.startswith("refused: run.exe is application/x-msdownload, which is not")
    assert await count(harness, AttachmentRow) == 2
    assert await count(harness, TicketCommentRow) == 2

    stored = await harness.app.services.tickets.attach(
        (await harness.app.services.identity.actor(sender)), 1, "shot.png", "image/png", b"PNG"
    )
    assert (stored.name, stored.size, stored.content_type) == ("shot.png", 3, "image/png")
    async with harness.app.db.read() as session:
        rows = (await session.execute(
            select(AttachmentRow.name, AttachmentRow.size, AttachmentRow.content_type,
                   AttachmentRow.content).order_by(AttachmentRow.id)
        )).all()
    assert rows[0] == ("app.log", 50, "text/plain", b"line\n" * 10)
    assert rows[-1] == ("shot.png", 3, "image/png", b"PNG")
    shown = (await harness.as_(TOM).send("/ticket show 1")).message.text
    assert "app.log (text/plain, 50 bytes)" in shown and "shot.png" in shown


async def test_customer_comment_on_pending_ticket_reopens_it(harness: Harness) -> None:
    """When the customer answers a ticket pending on them, it goes back to open."""
    await build(harness)
    await harness.as_(TOM).send("/ticket new Slow queries")
    await harness.as_(SAM).send("/triage status 1 pending")
    harness.clock.advance(dt.timedelta(minutes=5))
    await harness.as_(TOM).send("/ticket comment 1 Here are the plans")
    assert "Status: open" in (await harness.as_(TOM).send("/ticket show 1")).message.text


async def test_new_ticket_reaches_engineers_without_triage_channels(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """With no SUBDESK_TRIAGE_CHANNELS, every support engineer is told of a new ticket."""
    bare = settings.model_copy(update={"triage_channels": ()})
    harness = await Harness.create(bare, clock, db)
    await harness.seed_demo()
    await harness.add_staff("eve@vendor.test", StaffRole.ENGINEER, name="Eve Eng")
    reply = await harness.as_(DEMO_TECH).send("/ticket new sev1 Production down")
    assert reply.ok
    for engineer in (DEMO_STAFF, "eve@vendor.test"):
        assert any("Production down" in m.text for m in harness.emails_to(engineer)), engineer

"""Invoice reminders and renewal notices under a fixed clock: a whole invoice life, weekends,
DST, downtime, clock jumps, payment."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from adapters.console.transport import ConsoleTransport
from bot.clock import FixedClock
from bot.domain import OutboxStatus, Platform
from bot.services.billing import parse_invoices
from bot.wiring.config import Settings
from bot.wiring.demo import DEMO_ADMIN, DEMO_MAIN, DEMO_TECH
from storage.db import Database
from storage.models import ReminderClaimRow
from storage.outbox import OutboxStore
from tests.harness import Harness
from tests.scenarios.orders import contact, form, organization

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _invoice(h: Harness, number: str, due_on: str, org: str = "demo",
                   amount: str = "1200.00", currency: str = "EUR") -> None:
    doc = {"invoices": [{"number": number, "organization": org, "issued_on": "2026-01-01",
                         "due_on": due_on, "amount": amount, "currency": currency}]}
    await h.app.services.billing.import_invoices(
        parse_invoices("i.json", json.dumps(doc).encode()))


async def _pay(h: Harness, number: str, paid_on: str, amount: str) -> None:
    doc = {"payments": [{"invoice": number, "paid_on": paid_on, "amount": amount}]}
    await h.app.services.billing.import_invoices(
        parse_invoices("p.json", json.dumps(doc).encode()))


async def _reminder_keys(h: Harness) -> list[str]:
    async with h.app.db.read() as session:
        items = await OutboxStore(session, h.clock.now()).items(limit=1000)
    return sorted(i.key for i in items if i.key.startswith("reminder:"))


def _subjects(h: Harness, address: str) -> list[str]:
    return [m.email_subject for m in h.emails_to(address) if m.subject
            and m.subject.startswith(("Invoice", "Your"))]


async def _sweep_until(h: Harness, end: dt.datetime, step: dt.timedelta) -> None:
    while h.clock.now() < end:
        h.clock.advance(step)
        await h.app.services.reminders.sweep()
    await h.drain()


async def test_whole_invoice_life_sends_each_stage_once(harness: Harness) -> None:
    """Sweeping every 3 hours for two months sends stages -7, 0, 7, 14, 30 once each, at
    09:00 Madrid time, to the Main and Administrative contacts only."""
    await harness.seed_demo()
    # Friday 15 Jan 2027; the +30 stage falls on Sunday 14 Feb, so it waits for Monday.
    await _invoice(harness, "INV-LIFE", "2027-01-15")
    harness.clock.set(at("2027-01-01T00:00:00"))
    await _sweep_until(harness, at("2027-03-15T00:00:00"), dt.timedelta(hours=3))
    expected = [f"reminder:invoice:1:2027-01-15:due{o:+d}" for o in (-7, 0, 7, 14, 30)]
    keys = await _reminder_keys(harness)
    assert sorted({k.rsplit(":", 2)[0] for k in keys}) == sorted(expected)
    assert len(keys) == 10, "one per stage for each of Ana and Ada"
    ana = _subjects(harness, DEMO_MAIN)
    assert ana == _subjects(harness, DEMO_ADMIN)
    assert ana == [
        "Invoice INV-LIFE: €1,200.00 is due in 7 days, on 15 Jan 2027",
        "Invoice INV-LIFE: €1,200.00 is due today, 15 Jan 2027",
        "Invoice INV-LIFE: €1,200.00 is 7 days overdue",
        "Invoice INV-LIFE: €1,200.00 is 14 days overdue",
        "Invoice INV-LIFE: €1,200.00 is 31 days overdue",  # +30 is a Sunday: sent Monday
    ]
    assert not _subjects(harness, DEMO_TECH)
    async with harness.app.db.read() as session:
        claimed = sorted(await session.scalars(
            select(ReminderClaimRow.claimed_at).where(ReminderClaimRow.kind == "invoice")))
    assert claimed == [at("2027-01-08T09:00"), at("2027-01-15T09:00"), at("2027-01-22T09:00"),
                       at("2027-01-29T09:00"), at("2027-02-15T09:00")], (
        "first sweep at or after 09:00 CET (08:00 UTC) on a weekday, with 3-hour steps")


async def test_a_reminder_queued_for_a_replaced_contact_is_not_sent_to_them(
    harness: Harness
) -> None:
    """The due-today reminder is queued for Ana (Main) and Ada (Administrative); before it
    goes out, Ana makes Bob the Main Contact: Ana does not get the invoice's reminder (she
    is told she was replaced), her queued row ends dropped with the reason, Bob gets it
    instead, Ada's goes out; the next stage goes to Bob and Ada."""
    await harness.seed_demo()
    await _invoice(harness, "INV-MOVE", "2027-01-15")
    harness.clock.set(at("2027-01-15T09:30:00"))
    await harness.app.services.reminders.sweep()
    await harness.app.services.reminders.queue_claimed()
    assert len(await _reminder_keys(harness)) == 2
    moved = await harness.as_(DEMO_MAIN).send("/contacts set main bob@demo.test Bob New")
    assert moved.ok, moved.message.text
    await harness.drain()
    today = "Invoice INV-MOVE: €1,200.00 is due today, 15 Jan 2027"
    assert _subjects(harness, DEMO_MAIN) == [] and _subjects(harness, DEMO_ADMIN) == [today]
    async with harness.app.db.read() as session:
        items = await OutboxStore(session, harness.clock.now()).items(limit=100)
    [dropped] = [i for i in items if i.key.startswith("reminder:")
                 and i.status is OutboxStatus.DROPPED]
    assert dropped.target == DEMO_MAIN
    assert "no longer a Main or Administrative Contact" in (dropped.last_error or "")
    await _sweep_until(harness, at("2027-01-23T00:00:00"), dt.timedelta(hours=3))
    overdue = "Invoice INV-MOVE: €1,200.00 is 7 days overdue"
    assert _subjects(harness, "bob@demo.test") == [today, overdue]
    assert _subjects(harness, DEMO_ADMIN) == [today, overdue] and not _subjects(
        harness, DEMO_MAIN)


async def test_an_order_form_moving_the_main_contact_hands_over_queued_reminders(
    harness: Harness
) -> None:
    """The same, with the Main Contact moved by an order form: Bob, whom it names, gets
    the reminder queued for Ana; Ana does not."""
    await harness.seed_demo()
    await _invoice(harness, "INV-FORM", "2027-01-15")
    harness.clock.set(at("2027-01-15T09:30:00"))
    await harness.app.services.reminders.sweep()
    await harness.app.services.reminders.queue_claimed()
    await harness.import_orders(form(organization("demo", [
        contact("main", "bob@demo.test", "Bob New"),
        contact("administrative", DEMO_ADMIN, "Ada Admin"),
        contact("technical", DEMO_TECH, "Tom Tech")], name="Demo Corp", ends_on="2027-12-31")))
    await harness.drain()
    today = "Invoice INV-FORM: €1,200.00 is due today, 15 Jan 2027"
    assert _subjects(harness, "bob@demo.test") == [today]
    assert _subjects(harness, DEMO_MAIN) == [] and _subjects(harness, DEMO_ADMIN) == [today]


async def test_stage_is_reached_at_nine_local_and_weekends_wait(harness: Harness) -> None:
    """Nothing before 09:00 local; a stage on a Saturday waits for Monday 09:00."""
    await harness.seed_demo()
    await _invoice(harness, "INV-SAT", "2027-01-16")  # Saturday
    sweep = harness.app.services.reminders.sweep
    # -7 is Saturday 9 Jan → Monday 11 Jan 09:00 CET = 08:00 UTC.
    assert (await sweep(at("2027-01-09T08:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-01-10T20:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-01-11T07:59"))).invoice_reminders == 0
    assert (await sweep(at("2027-01-11T08:00"))).invoice_reminders == 1
    assert (await sweep(at("2027-01-11T08:00"))).invoice_reminders == 0


async def test_dst_in_madrid_moves_the_utc_hour(harness: Harness) -> None:
    """09:00 in Madrid is 07:00 UTC in summer and 08:00 UTC after the October change."""
    await harness.seed_demo()
    await _invoice(harness, "INV-DST", "2026-10-30")  # -7: Fri 23 Oct (CEST); 0: Fri 30 Oct
    sweep = harness.app.services.reminders.sweep
    assert (await sweep(at("2026-10-23T06:59"))).invoice_reminders == 0
    assert (await sweep(at("2026-10-23T07:00"))).invoice_reminders == 1
    assert (await sweep(at("2026-10-30T07:00"))).invoice_reminders == 0  # CET now
    assert (await sweep(at("2026-10-30T07:59"))).invoice_reminders == 0
    assert (await sweep(at("2026-10-30T08:00"))).invoice_reminders == 1


async def test_dst_in_new_york(harness: Harness) -> None:
    """09:00 in New York is 14:00 UTC before the March change and 13:00 UTC after it."""
    await harness.import_orders({"organizations": [{
        "key": "nyc", "name": "NYC Inc", "program": "customer", "level": "basic",
        "region": "us", "timezone": "America/New_York",
        "subscription": {"starts_on": "2026-01-01", "ends_on": "2028-12-31"},
        "contacts": [{"role": "main", "name": "Nora", "email": "nora@nyc.test"}]}]})
    await _invoice(harness, "NY-1", "2027-03-12", org="nyc", currency="USD", amount="50.00")
    sweep = harness.app.services.reminders.sweep
    # -7 is Fri 5 Mar (EST), 0 is Fri 12 Mar (EDT; the change is Sun 14 Mar 2027).
    assert (await sweep(at("2027-03-05T13:59"))).invoice_reminders == 0
    assert (await sweep(at("2027-03-05T14:00"))).invoice_reminders == 1
    assert (await sweep(at("2027-03-12T13:59"))).invoice_reminders == 0
    assert (await sweep(at("2027-03-12T14:00"))).invoice_reminders == 1
    # +7 is Fri 19 Mar, after the change: 09:00 EDT is 13:00 UTC.
    assert (await sweep(at("2027-03-19T12:59"))).invoice_reminders == 0
    assert (await sweep(at("2027-03-19T13:00"))).invoice_reminders == 1
    await harness.drain()
    assert _subjects(harness, "nora@nyc.test")[0] == (
        "Invoice NY-1: $50.00 is due in 7 days, on Mar 12, 2027")


async def test_downtime_sends_only_the_latest_missed_stage(harness: Harness) -> None:
    """Down from before the first stage until after +14: only +14 goes out, then +30."""
    await harness.seed_demo()
    await _invoice(harness, "INV-DOWN", "2027-01-15")
    sweep = harness.app.services.reminders.sweep
    assert (await sweep(at("2027-01-01T12:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-02-03T12:00"))).invoice_reminders == 1
    assert (await sweep(at("2027-02-04T12:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-02-16T12:00"))).invoice_reminders == 1
    await harness.drain()
    assert _subjects(harness, DEMO_MAIN) == [
        "Invoice INV-DOWN: €1,200.00 is 19 days overdue",  # the +14 stage, sent late
        "Invoice INV-DOWN: €1,200.00 is 32 days overdue",  # the +30 stage
    ]


async def test_clock_jumping_back_resends_nothing(harness: Harness) -> None:
    """After +7 went out, a clock set back to the due date sends nothing again."""
    await harness.seed_demo()
    await _invoice(harness, "INV-JUMP", "2027-01-15")
    sweep = harness.app.services.reminders.sweep
    assert (await sweep(at("2027-01-22T12:00"))).invoice_reminders == 1
    assert (await sweep(at("2027-01-15T12:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-01-08T12:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-01-22T12:00"))).invoice_reminders == 0
    await harness.drain()
    assert len(await _reminder_keys(harness)) == 2


async def test_payment_stops_reminders(harness: Harness) -> None:
    """Partial payments lower the amount reminded; full payment stops reminders."""
    await harness.seed_demo()
    await _invoice(harness, "INV-PAY", "2027-01-15")
    sweep = harness.app.services.reminders.sweep
    await sweep(at("2027-01-08T12:00"))
    await harness.drain()
    await _pay(harness, "INV-PAY", "2027-01-10", "200.00")
    await sweep(at("2027-01-15T12:00"))
    await harness.drain()
    await _pay(harness, "INV-PAY", "2027-01-16", "1000.00")
    for day in range(17, 28):
        report = await sweep(at(f"2027-01-{day}T12:00"))
        assert report.invoice_reminders == 0
    assert (await sweep(at("2027-03-01T12:00"))).invoice_reminders == 0
    await harness.drain()
    assert _subjects(harness, DEMO_MAIN) == [
        "Invoice INV-PAY: €1,200.00 is due in 7 days, on 15 Jan 2027",
        "Invoice INV-PAY: €1,000.00 is due today, 15 Jan 2027",
    ]


async def test_linked_contact_gets_the_reminder_in_chat(harness: Harness) -> None:
    """A linked Main Contact gets a DM instead of an email."""
    await harness.seed_demo()
    await harness.app.services.identity.admin_link(DEMO_MAIN, *_console("ana-chat"))
    await _invoice(harness, "INV-DM", "2027-01-15")
    await harness.app.services.reminders.sweep(at("2027-01-08T12:00"))
    await harness.drain()
    assert [m.text.split(" of ")[0] for m in harness.delivered_to("ana-chat")] == [
        "Invoice INV-DM"]
    assert not _subjects(harness, DEMO_MAIN)
    assert len(_subjects(harness, DEMO_ADMIN)) == 1


def _console(user: str) -> tuple[object, str, str]:
    from bot.domain import Platform

    return Platform.CONSOLE, "local", user


async def test_renewal_notices_go_to_the_main_contact_once_each(harness: Harness) -> None:
    """60, 30 and 7 days before the end, to the Main Contact only; none after downtime twice."""
    await harness.import_orders({"organizations": [{
        "key": "ren", "name": "Renew SL", "program": "partner", "level": "premium",
        "region": "europe", "timezone": "Europe/Madrid",
        "subscription": {"starts_on": "2026-01-01", "ends_on": "2027-06-30"},
        "contacts": [{"role": "main", "name": "Rita", "email": "rita@ren.test"},
                     {"role": "administrative", "name": "Adam", "email": "adam@ren.test"}]}]})
    harness.clock.set(at("2027-04-01T00:00"))
    await _sweep_until(harness, at("2027-07-10T00:00"), dt.timedelta(hours=6))
    assert _subjects(harness, "rita@ren.test") == [
        "Your premium subscription ends on 30 Jun 2027"] * 3
    texts = [m.text for m in harness.emails_to("rita@ren.test") if "ends on" in m.text]
    # The real distance is stated: 60 days before is a Saturday, so it goes out Monday.
    assert [t.split("in ")[1].split(" days")[0] for t in texts] == ["58", "30", "7"]
    assert not _subjects(harness, "adam@ren.test")


async def test_reminder_paid_before_delivery_is_dropped(harness: Harness) -> None:
    """A reminder queued while the invoice was open, paid before delivery: never sent, the
    row ends `dropped` with the reason."""
    await harness.seed_demo()
    await _invoice(harness, "INV-LATE", "2027-01-15")
    assert (await harness.app.services.reminders.sweep(at("2027-01-08T12:00"))
            ).invoice_reminders == 1
    await _pay(harness, "INV-LATE", "2027-01-08", "1200.00")
    await harness.drain()
    assert not _subjects(harness, DEMO_MAIN)
    assert not _subjects(harness, DEMO_ADMIN)
    async with harness.app.db.read() as session:
        store = OutboxStore(session, harness.clock.now())
        counts = await store.counts()
        dropped = await store.items(OutboxStatus.DROPPED)
    assert counts["dropped"] == 2
    assert {i.last_error for i in dropped} == {"invoice INV-LATE is paid"}


async def test_extending_the_due_date_sends_the_new_schedule(harness: Harness) -> None:
    """Stages of a later due date that are still ahead are sent, each once; stages of the
    old schedule are not sent again, and an old reminder still queued is dropped."""
    await harness.seed_demo()
    await _invoice(harness, "INV-EXT", "2027-01-15")  # Friday
    sweep = harness.app.services.reminders.sweep
    assert (await sweep(at("2027-01-08T12:00"))).invoice_reminders == 1  # -7
    await harness.drain()
    assert (await sweep(at("2027-01-15T12:00"))).invoice_reminders == 1  # 0, not delivered
    await _invoice(harness, "INV-EXT", "2027-02-12")  # extended by four weeks (a Friday)
    await harness.drain()
    for day in ("2027-01-22", "2027-01-29", "2027-02-04"):
        assert (await sweep(at(f"{day}T12:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-02-05T12:00"))).invoice_reminders == 1  # new -7
    assert (await sweep(at("2027-02-05T13:00"))).invoice_reminders == 0
    assert (await sweep(at("2027-02-12T12:00"))).invoice_reminders == 1  # new 0
    await harness.drain()
    assert _subjects(harness, DEMO_MAIN) == [
        "Invoice INV-EXT: €1,200.00 is due in 7 days, on 15 Jan 2027",
        "Invoice INV-EXT: €1,200.00 is due in 7 days, on 12 Feb 2027",
        "Invoice INV-EXT: €1,200.00 is due today, 12 Feb 2027",
    ]
    async with harness.app.db.read() as session:
        dropped = await OutboxStore(session, harness.clock.now()).items(OutboxStatus.DROPPED)
    assert {i.last_error for i in dropped} == {"invoice INV-EXT is now due on 2027-02-12"}


async def test_reminder_renders_for_the_recipients_platform(
    settings: Settings, clock: FixedClock, db: Database
) -> None:
    """The same queued reminder, rendered at delivery, carries a neutral command reference
    that the Matrix edge writes `!billing` and email `/billing`; nothing else differs."""
    lines: list[str] = []
    matrix = ConsoleTransport("matrix", lines.append)
    h = await Harness.create(settings, clock, db)
    h.app.dispatcher.transports["matrix"] = matrix
    await h.seed_demo()
    await h.app.services.identity.admin_link(DEMO_MAIN, Platform.MATRIX, "demo.test",
                                             "@ana:demo.test")
    await _invoice(h, "INV-MX", "2027-01-15")
    await h.app.services.reminders.sweep(at("2027-01-08T12:00"))
    await h.drain()
    [(_, in_matrix)] = matrix.delivered
    by_email = h.emails_to(DEMO_ADMIN)[-1]
    assert "Questions: !billing question TEXT" in in_matrix.resolved("!").plain()
    assert "Questions: /billing question TEXT" in by_email.resolved("/").plain()
    assert "/billing" not in in_matrix.resolved("!").plain()
    assert in_matrix.text == by_email.text

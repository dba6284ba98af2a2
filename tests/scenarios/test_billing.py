"""Billing through the console: imports, invoices, statement, and billing requests."""

from __future__ import annotations

import json

import pytest

from bot.commands.invocation import Invocation
from bot.domain import MessageRef
from bot.importing import ImportFailed
from bot.services.billing import InvoiceImportReport, parse_invoices
from bot.wiring.demo import DEMO_ADMIN, DEMO_MAIN, DEMO_STAFF, DEMO_TECH
from tests.harness import Harness

INVOICES = {
    "invoices": [
        {"number": "INV-1", "organization": "demo", "issued_on": "2026-10-01",
         "due_on": "2026-11-01", "amount": "1200.00", "currency": "EUR"},
        {"number": "INV-2", "organization": "demo", "issued_on": "2026-11-01",
         "due_on": "2026-12-01", "amount": "1234.50", "currency": "EUR"},
        {"number": "INV-3", "organization": "demo", "issued_on": "2026-09-01",
         "due_on": "2026-10-01", "amount": "99.99", "currency": "USD"},
    ],
    "payments": [
        {"invoice": "INV-1", "paid_on": "2026-10-20", "amount": "200.00"},
        {"invoice": "INV-3", "paid_on": "2026-09-20", "amount": "99.99"},
    ],
}


async def _import(
    h: Harness, doc: object, name: str = "invoices.json"
) -> InvoiceImportReport:
    batch = parse_invoices(name, json.dumps(doc).encode())
    return await h.app.services.billing.import_invoices(batch)


async def test_invoices_and_statement_for_main_and_admin(harness: Harness) -> None:
    """Main and Administrative contacts see invoices and a Babel-formatted statement."""
    await harness.seed_demo()
    await _import(harness, INVOICES)
    for who in (DEMO_MAIN, DEMO_ADMIN):
        reply = await harness.as_(who).send("/billing invoices")
        assert reply.ok, reply.message.text
        text = reply.message.text
        assert "INV-1 — €1,200.00, due 1 Nov 2026 (overdue, €1,000.00 outstanding)" in text
        assert "INV-2 — €1,234.50, due 1 Dec 2026 (open, €1,234.50 outstanding)" in text
        assert "INV-3" not in text
    reply = await harness.as_(DEMO_MAIN).send("/billing invoices all")
    assert "INV-3 — US$99.99, due 1 Oct 2026 (paid)" in reply.message.text
    reply = await harness.as_(DEMO_MAIN).send("/billing statement")
    text = reply.message.text
    assert "Invoiced: €2,434.50" in text
    assert "Paid: €200.00" in text
    assert "Outstanding: €2,234.50" in text
    assert "Overdue: €1,000.00" in text
    assert "Invoiced: US$99.99" in text


async def test_technical_contact_and_staff_get_no_billing(harness: Harness) -> None:
    """A Technical Contact is refused billing; the reply does not leak anything."""
    await harness.seed_demo()
    await _import(harness, INVOICES)
    reply = await harness.as_(DEMO_TECH).send("/billing invoices")
    assert not reply.ok
    assert "not available to you" in reply.message.text
    assert "INV" not in reply.message.text


async def test_billing_survives_subscription_expiry(harness: Harness) -> None:
    """Billing stays available after the subscription has ended."""
    await harness.import_orders({"organizations": [{
        "key": "old", "name": "Old Co", "program": "customer", "level": "basic",
        "region": "us", "timezone": "America/New_York",
        "subscription": {"starts_on": "2024-01-01", "ends_on": "2025-01-01"},
        "contacts": [{"role": "main", "name": "Olga", "email": "olga@old.test"}]}]})
    await _import(harness, {"invoices": [
        {"number": "OLD-1", "organization": "old", "issued_on": "2025-01-01",
         "due_on": "2025-02-01", "amount": "10.00", "currency": "USD"}]})
    reply = await harness.as_("olga@old.test").send("/billing statement")
    assert reply.ok, reply.message.text
    assert "Overdue: $10.00" in reply.message.text


async def test_import_is_idempotent_and_payments_settle(harness: Harness) -> None:
    """Re-importing changes nothing; payments covering the amount mark the invoice paid."""
    await harness.seed_demo()
    first = await _import(harness, INVOICES)
    assert first.model_dump() == {"created": 3, "updated": 0, "unchanged": 0,
                                  "payments_recorded": 2, "payments_known": 0, "paid": 1}
    again = await _import(harness, INVOICES)
    assert again.model_dump() == {"created": 0, "updated": 0, "unchanged": 3,
                                  "payments_recorded": 0, "payments_known": 2, "paid": 0}
    rest = await _import(harness, {"payments": [
        {"invoice": "INV-1", "paid_on": "2026-11-20", "amount": "1000.00"}]})
    assert rest.paid == 1
    reply = await harness.as_(DEMO_MAIN).send("/billing invoices")
    assert "INV-1" not in reply.message.text


async def test_json_errors_name_the_field_and_write_nothing(harness: Harness) -> None:
    """An unknown organization or a bad amount names where it is; nothing is imported."""
    await harness.seed_demo()
    bad = {"invoices": [dict(INVOICES["invoices"][0]),
                        dict(INVOICES["invoices"][1], organization="nope")]}
    with pytest.raises(ImportFailed) as info:
        await _import(harness, bad)
    assert info.value.errors == ["invoices[1].organization: no organization with key 'nope'"]
    with pytest.raises(ImportFailed) as info:
        parse_invoices("x.json", json.dumps({"invoices": [
            dict(INVOICES["invoices"][0], amount="-5")]}).encode())
    assert info.value.errors[0].startswith("invoices[0].amount:")
    with pytest.raises(ImportFailed) as info:
        await _import(harness, {"payments": [{"invoice": "INV-404", "paid_on": "2026-01-01",
                                              "amount": "1.00"}]})
    assert info.value.errors == ["payments[0].invoice: no invoice numbered 'INV-404'"]
    reply = await harness.as_(DEMO_MAIN).send("/billing invoices all")
    assert "No invoices yet." in reply.message.text


async def test_amounts_finer_than_their_currency_are_refused(harness: Harness) -> None:
    """Yen have no cents: an invoice of 120000.50 JPY is refused, and so is a payment of
    100.50 to a yen invoice (which left a half yen owing that no statement could show)."""
    await harness.seed_demo()
    yen = dict(INVOICES["invoices"][0], number="INV-JPY", amount="120000.50", currency="JPY")
    with pytest.raises(ImportFailed) as info:
        await _import(harness, {"invoices": [yen]})
    assert info.value.errors == [
        "invoices[0]: Value error, amount: 120000.50 is finer than JPY allows "
        "(0 decimal places)"]
    await _import(harness, {"invoices": [dict(yen, amount="120000.00")]})
    with pytest.raises(ImportFailed) as info:
        await _import(harness, {"payments": [{"invoice": "INV-JPY", "paid_on": "2026-10-20",
                                              "amount": "100.50"}]})
    assert info.value.errors == [
        "payments[0].amount: 100.50 is finer than JPY allows (0 decimal places)"]
    report = await _import(harness, {"payments": [{"invoice": "INV-JPY",
                                                   "paid_on": "2026-10-20",
                                                   "amount": "120000"}]})
    assert report.paid == 1


async def test_csv_errors_name_line_and_field(harness: Harness) -> None:
    """CSV rows are checked one by one; errors carry the file line and column."""
    await harness.seed_demo()
    csv = (b"number,organization,issued_on,due_on,amount,currency,paid_on,paid_amount\n"
           b"C-1,demo,2026-10-01,2026-11-01,100.00,EUR,,\n"
           b"C-2,demo,2026-10-01,2026-11-01,abc,EUR,,\n"
           b"C-3,demo,2026-10-01,2026-11-01,5.00,XXQ,,\n")
    with pytest.raises(ImportFailed) as info:
        parse_invoices("i.csv", csv)
    assert info.value.errors[0].startswith("line 3, amount:")
    assert info.value.errors[1].startswith("line 4, currency:")
    csv = (b"number,organization,issued_on,due_on,amount,currency,paid_on,paid_amount\n"
           b"C-1,demo,2026-10-01,2026-11-01,100.00,EUR,2026-10-05,40.00\n"
           b"C-1,demo,2026-10-01,2026-11-01,100.00,EUR,2026-10-06,60.00\n"
           b"C-2,ghost,2026-10-01,2026-11-01,100.00,EUR,,\n")
    with pytest.raises(ImportFailed) as info:
        await harness.app.services.billing.import_invoices(parse_invoices("i.csv", csv))
    assert info.value.errors == ["line 4, organization: no organization with key 'ghost'"]
    good = csv.rsplit(b"\n", 2)[0] + b"\n"
    report = await harness.app.services.billing.import_invoices(parse_invoices("i.csv", good))
    assert (report.created, report.payments_recorded, report.paid) == (1, 2, 1)
    payments = b"invoice,paid_on,amount\nC-1,2026-10-07,1.00\nC-9,2026-10-07,1.00\n"
    with pytest.raises(ImportFailed) as info:
        await harness.app.services.billing.import_invoices(parse_invoices("p.csv", payments))
    assert info.value.errors == ["line 3, invoice: no invoice numbered 'C-9'"]


async def test_question_reaches_channel_and_answer_reaches_requester(harness: Harness) -> None:
    """A question goes to the billing channel with an Answer button; the answer comes back."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    reply = await ana.send("/billing question Can we pay yearly?")
    assert reply.ok and "#1" in reply.message.text
    posted = harness.delivered_to("billing")
    assert len(posted) == 1
    assert posted[0].thread_key == "billing:1"
    assert "Can we pay yearly?" in posted[0].plain()
    assert "[Answer]" in posted[0].plain()

    reply = await harness.as_(DEMO_ADMIN).send("/billing servers 3 two in Madrid")
    assert reply.ok and "3 additional server(s)" in reply.message.text
    assert "Additional services #2: 3 server(s)" in harness.delivered_to("billing")[-1].text

    staff = harness.as_(DEMO_STAFF)
    reply = await staff.send("/billing answer 1 Yes, from January.")
    assert reply.ok, reply.message.text
    answers = harness.emails_to(DEMO_MAIN)
    assert answers[-1].subject == "Answer to your billing request #1"
    assert "Yes, from January." in answers[-1].text
    reply = await staff.send("/billing answer 1 Again")
    assert not reply.ok and "already answered" in reply.message.text
    reply = await staff.send("/billing answer 99 Hello")
    assert not reply.ok and "no billing request #99" in reply.message.text
    reply = await ana.send("/billing answer 2 I answer myself")
    assert not reply.ok


async def test_thread_reply_answers_the_request(harness: Harness) -> None:
    """A billing agent's reply under the request's post in the billing channel is the
    answer, once; a second reply there is refused like a second answer."""
    await harness.seed_demo()
    await harness.as_(DEMO_ADMIN).send("/billing servers 2")
    [(post, card)] = [(i, m) for i, m in harness.console.delivered if i.target == "billing"]
    assert card.thread_key == "billing:1"
    agent = harness.as_(DEMO_STAFF).sender
    root = MessageRef("billing", str(post.id))
    reply = await harness.app.core.handle(Invocation(agent, "Done.", thread=root))
    assert reply.ok, reply.message.text
    await harness.drain()
    assert harness.emails_to(DEMO_ADMIN)[-1].text == "Answer to your billing request #1: Done."
    again = await harness.app.core.handle(Invocation(agent, "Done twice.", thread=root))
    assert not again.ok and "already answered" in again.message.text


async def test_answer_to_a_requester_who_left_tells_the_agent(harness: Harness) -> None:
    """When the requester is no longer a contact, the agent's answer is recorded and the
    agent is told no one could be reached, instead of a claim that it was sent."""
    await harness.seed_demo()
    await harness.as_(DEMO_ADMIN).send("/billing question Can we pay yearly?")
    replaced = await harness.as_(DEMO_MAIN).send("/contacts set administrative bo@demo.test Bo")
    assert replaced.ok, replaced.message.text
    reply = await harness.as_(DEMO_STAFF).send("/billing answer 1 Yes.")
    assert reply.ok and "no one could be told" in reply.message.text


async def test_an_invoice_never_moves_to_another_organization(harness: Harness) -> None:
    """Re-importing an invoice under another organization is refused with the field (JSON)
    or line (CSV); the invoice and its payments stay with their organization."""
    await harness.seed_demo()
    await harness.import_orders({"organizations": [{
        "key": "other", "name": "Other Co", "program": "customer", "level": "basic",
        "region": "us", "timezone": "America/New_York",
        "subscription": {"starts_on": "2026-01-01", "ends_on": "2026-12-31"},
        "contacts": [{"role": "main", "name": "Otto", "email": "otto@other.test"}]}]})
    await _import(harness, INVOICES)
    moved = {"invoices": [dict(INVOICES["invoices"][1]),
                          dict(INVOICES["invoices"][0], organization="other")]}
    with pytest.raises(ImportFailed) as info:
        await _import(harness, moved)
    assert info.value.errors == [
        "invoices[1].organization: invoice 'INV-1' belongs to organization 'demo'; an "
        "invoice never moves to another organization"]
    csv = (b"number,organization,issued_on,due_on,amount,currency\n"
           b"INV-1,other,2026-10-01,2026-11-01,1200.00,EUR\n")
    with pytest.raises(ImportFailed) as info:
        await harness.app.services.billing.import_invoices(parse_invoices("i.csv", csv))
    assert info.value.errors[0].startswith("line 2, organization: invoice 'INV-1' belongs to")
    reply = await harness.as_("otto@other.test").send("/billing invoices all")
    assert "No invoices yet." in reply.message.text
    reply = await harness.as_(DEMO_MAIN).send("/billing invoices")
    assert "INV-1 — €1,200.00, due 1 Nov 2026 (overdue, €1,000.00 outstanding)" in (
        reply.message.text)


async def test_an_overpayment_shows_as_credit(harness: Harness) -> None:
    """Paying more than the amount leaves a credit on the invoice and the statement."""
    await harness.seed_demo()
    await _import(harness, {"invoices": [INVOICES["invoices"][1]], "payments": [
        {"invoice": "INV-2", "paid_on": "2026-11-20", "amount": "1300.00"}]})
    reply = await harness.as_(DEMO_MAIN).send("/billing invoices all")
    assert "INV-2 — €1,234.50, due 1 Dec 2026 (paid, €65.50 credit)" in reply.message.text
    text = (await harness.as_(DEMO_MAIN).send("/billing statement")).message.text
    assert "Outstanding: €0.00" in text
    assert "Credit: €65.50" in text


def test_currencies_are_iso_4217_currencies_in_use() -> None:
    """Fund, metal and test codes and withdrawn currencies are refused, naming the field."""
    invoice = INVOICES["invoices"][0]
    for code in ("XXX", "XAU", "XTS", "XDR", "HRK", "EU"):
        with pytest.raises(ImportFailed) as info:
            parse_invoices("i.json", json.dumps(
                {"invoices": [dict(invoice, currency=code)]}).encode())
        assert info.value.errors[0].startswith("invoices[0].currency:"), code
        assert "not an ISO 4217 currency in use" in info.value.errors[0]
    old_kuna = dict(invoice, issued_on="2022-05-01", due_on="2022-06-01", currency="hrk")
    parsed = parse_invoices("i.json", json.dumps({"invoices": [old_kuna]}).encode())
    assert parsed.file.invoices[0].currency == "HRK"


async def test_a_paid_against_invoice_keeps_its_currency(harness: Harness) -> None:
    """Payments recorded in one currency are never silently re-denominated by a re-import."""
    await harness.seed_demo()
    await _import(harness, INVOICES)
    with pytest.raises(ImportFailed) as info:
        await _import(harness, {"invoices": [dict(INVOICES["invoices"][0], currency="USD")]})
    assert info.value.errors == [
        "invoices[0].currency: invoice 'INV-1' has payments in EUR; its currency cannot change"]

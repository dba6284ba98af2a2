"""Billing (SPEC §4): invoice and payment imports, invoices, statements, billing requests.

Only Main and Administrative contacts (and a sole Main Contact) see their organization's
billing; it stays available after the subscription ends. Billing agents answer requests.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.domain import Actor, Organization, StaffRole
from bot.importing import ImportFailed, csv_rows_to_models, detect_format, load_json, read_csv
from bot.policy import may_view_billing, staff_roles
from bot.presentation import billing_notices
from bot.presentation.messages import command
from bot.presentation.money import currency_in_use, in_minor_units, minor_digits
from bot.reminder_stages import zone
from bot.services.base import Denied, Invalid, NotFound, Service, Tx
from storage.billing import (
    BillingRequest,
    BillingRequestKind,
    Invoice,
    InvoiceFields,
    InvoiceStatus,
)

Progress = Callable[[int, int], None]
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_AMOUNT = Field(gt=0, max_digits=14, decimal_places=2)
# The most an invoice's payments may add up to (what its `paid_amount` column holds).
PAID_MAX = Decimal("999999999999.99")
MAX_SERVERS = 100_000

log = logging.getLogger(__name__)


class InvoiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str
    organization: str = Field(min_length=1, max_length=64)
    issued_on: dt.date
    due_on: dt.date
    amount: Decimal = _AMOUNT
    currency: str

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        if not _NUMBER.fullmatch(value):
            raise ValueError("must be letters, digits, '.', '_', '/' or '-' (at most 64)")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str, info: ValidationInfo) -> str:
        code = value.strip().upper()
        issued = info.data.get("issued_on") or dt.date.today()
        if not currency_in_use(code, issued):
            raise ValueError(f"{value[:16]!r} is not an ISO 4217 currency in use on {issued}, "
                             "such as EUR or USD")
        return code

    @model_validator(mode="after")
    def _amount_in_its_currency(self) -> InvoiceIn:
        if not in_minor_units(self.amount, self.currency):
            raise ValueError(f"amount: {self.amount} is finer than {self.currency} allows "
                             f"({minor_digits(self.currency)} decimal places)")
        return self

    @field_validator("due_on")
    @classmethod
    def _after_issue(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        issued = info.data.get("issued_on")
        if issued is not None and value < issued:
            raise ValueError(f"is before issued_on ({issued})")
        return value


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice: str = Field(min_length=1, max_length=64)
    paid_on: dt.date
    amount: Decimal = _AMOUNT


class InvoiceFile(BaseModel):
    """The invoices document of SPEC §6 (both lists optional)."""

    model_config = ConfigDict(extra="forbid")
    invoices: list[InvoiceIn] = Field(default_factory=list)
    payments: list[PaymentIn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> InvoiceFile:
        dupes = sorted(n for n, seen in Counter(i.number for i in self.invoices).items()
                       if seen > 1)
        if dupes:
            raise ValueError(f"invoice number(s) repeated: {', '.join(dupes)}")
        return self


@dataclass(frozen=True, slots=True)
class InvoiceBatch:
    """A validated file and, for each record, the prefix its errors are reported under
    ("invoices[0]." in JSON, "line 3, " in CSV)."""

    file: InvoiceFile
    invoice_at: list[str]
    payment_at: list[str]


INVOICE_COLUMNS = ("number", "organization", "issued_on", "due_on", "amount", "currency")
PAYMENT_COLUMNS = ("invoice", "paid_on", "amount")


class _InvoiceCsvRow(BaseModel):
    invoice: InvoiceIn
    payment: PaymentIn | None


def _invoice_csv_build(row: dict[str, str]) -> dict[str, Any]:
    paid_on, paid_amount = row.get("paid_on", ""), row.get("paid_amount", "")
    payment = None
    if paid_on or paid_amount:
        payment = {"invoice": row["number"], "paid_on": paid_on or None,
                   "amount": paid_amount or None}
    return {"invoice": {k: row[k] for k in INVOICE_COLUMNS}, "payment": payment}


def parse_invoices(name: str, data: bytes) -> InvoiceBatch:
    """Invoices and payments from JSON or CSV; raises `ImportFailed` naming line and field.

    CSV comes in two shapes, told apart by the header: invoices (number, organization,
    issued_on, due_on, amount, currency, and optionally paid_on, paid_amount for a payment
    on the same line; repeat the line for more payments) or payments (invoice, paid_on,
    amount).
    """
    if detect_format(name, data) == "json":
        parsed = load_json(data, InvoiceFile)
        return InvoiceBatch(
            parsed,
            [f"invoices[{i}]." for i in range(len(parsed.invoices))],
            [f"payments[{i}]." for i in range(len(parsed.payments))],
        )
    header = data.decode("utf-8-sig", errors="replace").splitlines()[:1]
    columns = {c.strip().lower() for c in (header[0].split(",") if header else [])}
    if "number" not in columns and "invoice" in columns:
        rows = csv_rows_to_models(read_csv(data, PAYMENT_COLUMNS), PaymentIn,
                                  lambda r: {k: r[k] for k in PAYMENT_COLUMNS})
        return InvoiceBatch(InvoiceFile(payments=[p for _, p in rows]), [],
                            [f"line {line}, " for line, _ in rows])
    try:
        lines = csv_rows_to_models(read_csv(data, INVOICE_COLUMNS), _InvoiceCsvRow,
                                   _invoice_csv_build)
    except ImportFailed as exc:
        raise ImportFailed([_csv_column(e) for e in exc.errors]) from exc
    invoices: dict[str, tuple[int, InvoiceIn]] = {}
    payments: list[PaymentIn] = []
    payment_at: list[str] = []
    errors: list[str] = []
    for line, row in lines:
        seen = invoices.get(row.invoice.number)
        if seen is None:
            invoices[row.invoice.number] = (line, row.invoice)
        elif seen[1] != row.invoice:
            errors.append(f"line {line}: invoice columns differ from line {seen[0]} for "
                          f"invoice {row.invoice.number!r}")
        if row.payment is not None:
            payments.append(row.payment)
            payment_at.append(f"line {line}, ")
    if errors:
        raise ImportFailed(errors)
    return InvoiceBatch(
        InvoiceFile(invoices=[i for _, i in invoices.values()], payments=payments),
        [f"line {line}, " for line, _ in invoices.values()],
        payment_at,
    )


_CSV_COLUMN = {"invoice.": "", "payment.amount": "paid_amount", "payment.paid_on": "paid_on",
               "payment.invoice": "number"}


def _csv_column(error: str) -> str:
    """Name the CSV column instead of the nested model field ("line 3, invoice.amount")."""
    line, sep, rest = error.partition(", ")
    for nested, column in _CSV_COLUMN.items():
        if rest.startswith(nested):
            return f"{line}{sep}{column}{rest[len(nested):]}"
    return error


class InvoiceImportReport(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    payments_recorded: int = 0
    payments_known: int = 0
    paid: int = 0


@dataclass(frozen=True, slots=True)
class Totals:
    """One currency's figures in a statement."""

    currency: str
    invoiced: Decimal = Decimal("0")
    paid: Decimal = Decimal("0")
    outstanding: Decimal = Decimal("0")
    overdue: Decimal = Decimal("0")
    credit: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class InvoicesView:
    org: Organization
    today: dt.date
    invoices: list[Invoice]
    totals: list[Totals] = field(default_factory=list)


class BillingService(Service):
    """Invoice imports, invoices and statements, and billing requests with their answers."""

    # Imports ----------------------------------------------------------------------------

    async def import_invoices(
        self, batch: InvoiceBatch, progress: Progress | None = None
    ) -> InvoiceImportReport:
        """Apply invoices then payments in one transaction; idempotent by invoice number.

        Every reference is checked before anything is written; any error writes nothing.
        """
        report = InvoiceImportReport()
        form = batch.file
        total = len(form.invoices) + len(form.payments)
        async with self.tx() as tx:
            errors: list[str] = []
            orgs = await tx.directory.org_ids_by_key(i.organization for i in form.invoices)
            in_file = {i.number for i in form.invoices}
            known = await tx.billing.invoices_by_number(
                in_file | {p.invoice for p in form.payments}
            )
            for at, inv in zip(batch.invoice_at, form.invoices, strict=True):
                if inv.organization not in orgs:
                    errors.append(f"{at}organization: no organization with key "
                                  f"{inv.organization!r}")
                elif (old := known.get(inv.number)) and old.org_id != orgs[inv.organization]:
                    owner = await tx.directory.org(old.org_id)
                    errors.append(
                        f"{at}organization: invoice {inv.number!r} belongs to organization "
                        f"{owner.key if owner else old.org_id!r}; an invoice never moves to "
                        "another organization"
                    )
                elif old and old.paid_amount and old.currency != inv.currency:
                    errors.append(f"{at}currency: invoice {inv.number!r} has payments in "
                                  f"{old.currency}; its currency cannot change")
            currencies = {n: i.currency for n, i in known.items()}
            currencies.update((i.number, i.currency) for i in form.invoices)
            paid = {n: i.paid_amount for n, i in known.items()}
            for at, pay in zip(batch.payment_at, form.payments, strict=True):
                currency = currencies.get(pay.invoice)
                if currency is None:
                    errors.append(f"{at}invoice: no invoice numbered {pay.invoice!r}")
                elif not in_minor_units(pay.amount, currency):
                    errors.append(f"{at}amount: {pay.amount} is finer than {currency} allows "
                                  f"({minor_digits(currency)} decimal places)")
                else:
                    paid[pay.invoice] = paid.get(pay.invoice, Decimal(0)) + pay.amount
                    if paid[pay.invoice] > PAID_MAX:
                        errors.append(f"{at}amount: the payments of invoice {pay.invoice!r} "
                                      f"would add up to more than {PAID_MAX}")
            if errors:
                raise ImportFailed(errors)
            ids: dict[str, int] = {n: i.id for n, i in known.items()}
            touched: set[int] = set()
            done = 0
            for inv in form.invoices:
                after, before = await tx.billing.upsert_invoice(
                    InvoiceFields(inv.number, orgs[inv.organization], inv.issued_on, inv.due_on,
                                  inv.amount, inv.currency)
                )
                ids[inv.number] = after.id
                if before is None:
                    report.created += 1
                elif before != after:
                    report.updated += 1
                    touched.add(after.id)
                else:
                    report.unchanged += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            for pay in form.payments:
                invoice_id = ids[pay.invoice]
                if await tx.billing.add_payment(invoice_id, pay.paid_on, pay.amount):
                    report.payments_recorded += 1
                    touched.add(invoice_id)
                else:
                    report.payments_known += 1
                done += 1
                if progress is not None:
                    progress(done, total)
            for invoice_id in sorted(touched):
                settled = await tx.billing.settle(invoice_id)
                report.paid += settled.status is InvoiceStatus.PAID
        return report

    # Views --------------------------------------------------------------------------------

    def _billing_org(self, actor: Actor) -> Organization:
        if actor.org is None or not may_view_billing(actor, actor.org.id):
            raise Denied("Only your organization's Main and Administrative Contacts can see "
                         "billing.")
        return actor.org

    def _today(self, org: Organization) -> dt.date:
        return self.clock.now().astimezone(zone(org.timezone)).date()

    async def invoices(self, actor: Actor, *, open_only: bool) -> InvoicesView:
        """The organization's invoices (open ones, or all), newest due date first."""
        org = self._billing_org(actor)
        async with self.read() as tx:
            rows = await tx.billing.invoices(org.id, open_only=open_only)
        return InvoicesView(org, self._today(org), rows)

    async def statement(self, actor: Actor) -> InvoicesView:
        """Invoiced, paid, outstanding, overdue and credit (overpaid), per invoice currency."""
        org = self._billing_org(actor)
        today = self._today(org)
        async with self.read() as tx:
            rows = await tx.billing.invoices(org.id, open_only=False)
        sums: dict[str, list[Decimal]] = {}
        for inv in rows:
            if inv.status is InvoiceStatus.VOID:
                continue
            s = sums.setdefault(inv.currency, [Decimal("0")] * 5)
            s[0] += inv.amount
            s[1] += inv.paid_amount
            s[2] += inv.outstanding
            if inv.status is InvoiceStatus.OPEN and inv.due_on < today:
                s[3] += inv.outstanding
            s[4] += inv.credit
        totals = [Totals(c, *v) for c, v in sorted(sums.items())]
        return InvoicesView(org, today, rows, totals)

    # Requests -----------------------------------------------------------------------------

    async def ask(
        self, actor: Actor, kind: BillingRequestKind, text: str, servers: int | None,
        platform: str,
    ) -> tuple[BillingRequest, int]:
        """A billing question or additional-services notice, routed to the billing team;
        with the number of channels or agents it went to."""
        org = self._billing_org(actor)
        assert actor.contact is not None
        if kind is BillingRequestKind.SERVERS and not 1 <= (servers or 0) <= MAX_SERVERS:
            raise Invalid(f"N must be a number of servers from 1 to {MAX_SERVERS}.")
        text = text.strip()
        if kind is BillingRequestKind.QUESTION and not text:
            raise Invalid(f"Say what your question is: {command('billing question TEXT')}")
        async with self.tx() as tx:
            request = await tx.billing.add_request(org.id, actor.contact.id, kind, text[:4000],
                                                   servers, platform)
            card = billing_notices.request_card(
                request_id=request.id, kind=kind.value, org_name=org.name, org_key=org.key,
                requester=actor.label, text=request.text, servers=servers,
            )
            told = await self._to_billing_team(tx, f"billing-request:{request.id}", card)
        return request, told

    async def _to_billing_team(self, tx: Tx, key: str, message: Any) -> int:
        """The billing channels, else every billing agent; how many of them."""
        if self.settings.billing_channels:
            await self.notifier.to_channels(tx, self.settings.billing_channels, key, message)
            return len(self.settings.billing_channels)
        told = await self.notifier.to_role(tx, StaffRole.BILLING, key, message)
        if not told:
            log.warning("%s reached no one: no billing channel and no billing agent", key)
        return told

    async def answer(
        self, actor: Actor, request_id: int, text: str
    ) -> tuple[BillingRequest, bool]:
        """A billing agent answers a request once; the requester is told in chat or email.
        The flag says whether anyone could be told (the requester may no longer be a
        contact), so the agent is never left believing an answer arrived."""
        if actor.staff is None or StaffRole.BILLING not in staff_roles(actor):
            raise Denied("Only billing agents answer billing requests.")
        text = text.strip()
        if not text:
            raise Invalid(f"Write the answer: {command('billing answer', request_id, 'TEXT')}")
        async with self.tx() as tx:
            existing = await tx.billing.request(request_id)
            if existing is None:
                raise NotFound(f"There is no billing request #{request_id}.")
            answered = await tx.billing.answer_request(request_id, actor.staff.id, text[:4000])
            if answered is None:
                raise Invalid(f"Billing request #{request_id} was already answered; the "
                              "requester has that answer.")
            contact = (None if answered.contact_id is None
                       else await tx.directory.contact(answered.contact_id))
            if contact is not None:
                await self.notifier.to_contact(
                    tx, contact, f"billing-answer:{request_id}",
                    billing_notices.request_answer(
                        request_id=request_id, question=answered.text or "",
                        answer=answered.answer or "", agent=actor.staff.name,
                    ),
                )
            await self._to_billing_team(
                tx, f"billing-answered:{request_id}",
                billing_notices.request_answered(request_id=request_id, agent=actor.staff.name,
                                                 answer=answered.answer or ""),
            )
        return answered, contact is not None

"""Invoices, payments, billing requests, and the rows a reminder sweep looks at."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    any_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import chat_address
from storage.models import (
    BillingRequestRow,
    ChatIdentityRow,
    ContactRow,
    InvoiceRow,
    OrganizationRow,
    PaymentRow,
    ReminderClaimRow,
)
from storage.sql import chunks, insert_ignore


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


class BillingRequestKind(StrEnum):
    QUESTION = "question"
    SERVERS = "servers"


@dataclass(frozen=True, slots=True)
class Invoice:
    id: int
    number: str
    org_id: int
    issued_on: dt.date
    due_on: dt.date
    amount: Decimal
    currency: str
    status: InvoiceStatus
    paid_amount: Decimal

    @property
    def outstanding(self) -> Decimal:
        return max(Decimal("0"), self.amount - self.paid_amount)

    @property
    def credit(self) -> Decimal:
        """What was paid beyond the amount (an overpayment), owed back to the customer."""
        return max(Decimal("0"), self.paid_amount - self.amount)


@dataclass(frozen=True, slots=True)
class InvoiceFields:
    number: str
    org_id: int
    issued_on: dt.date
    due_on: dt.date
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class BillingRequest:
    id: int
    org_id: int
    contact_id: int | None
    kind: BillingRequestKind
    text: str
    servers: int | None
    status: str
    answer: str | None
    answered_by: int | None
    created_at: dt.datetime
    answered_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person billing notices go to, with their linked (platform, address) accounts."""

    contact_id: int
    org_id: int
    name: str
    email: str
    accounts: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RenewalCandidate:
    org_id: int
    org_name: str
    region: str
    timezone: str
    ends_on: dt.date
    level: str
    claimed: frozenset[str]


def _invoice(row: InvoiceRow) -> Invoice:
    return Invoice(
        id=row.id,
        number=row.number,
        org_id=row.org_id,
        issued_on=row.issued_on,
        due_on=row.due_on,
        amount=Decimal(row.amount),
        currency=row.currency,
        status=InvoiceStatus(row.status),
        paid_amount=Decimal(row.paid_amount),
    )


def _request(row: BillingRequestRow) -> BillingRequest:
    return BillingRequest(
        id=row.id,
        org_id=row.org_id,
        contact_id=row.contact_id,
        kind=BillingRequestKind(row.kind),
        text=row.text,
        servers=row.servers,
        status=row.status,
        answer=row.answer,
        answered_by=row.answered_by,
        created_at=row.created_at,
        answered_at=row.answered_at,
    )


class BillingStore:
    """Billing rows of one transaction; never commits and never decides policy."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    # Invoices and payments -------------------------------------------------------------

    async def invoice(self, invoice_id: int) -> Invoice | None:
        row = await self.s.get(InvoiceRow, invoice_id)
        return None if row is None else _invoice(row)

    async def invoices_by_number(self, numbers: Iterable[str]) -> dict[str, Invoice]:
        found: dict[str, Invoice] = {}
        for part in chunks(sorted(set(numbers))):
            rows = await self.s.scalars(select(InvoiceRow).where(InvoiceRow.number.in_(part)))
            found.update({r.number: _invoice(r) for r in rows})
        return found

    async def upsert_invoice(self, fields: InvoiceFields) -> tuple[Invoice, Invoice | None]:
        """Create or update the invoice with this number; returns (after, before)."""
        row = await self.s.scalar(
            select(InvoiceRow).where(InvoiceRow.number == fields.number).with_for_update()
        )
        before = None if row is None else _invoice(row)
        if row is None:
            row = InvoiceRow(
                number=fields.number,
                status=InvoiceStatus.OPEN.value,
                paid_amount=Decimal("0"),
                created_at=self.now,
                updated_at=self.now,
                org_id=fields.org_id,
                issued_on=fields.issued_on,
                due_on=fields.due_on,
                amount=fields.amount,
                currency=fields.currency,
            )
            self.s.add(row)
        else:
            changed = (
                row.org_id != fields.org_id
                or row.issued_on != fields.issued_on
                or row.due_on != fields.due_on
                or Decimal(row.amount) != fields.amount
                or row.currency != fields.currency
            )
            if changed:
                row.org_id = fields.org_id
                row.issued_on = fields.issued_on
                row.due_on = fields.due_on
                row.amount = fields.amount
                row.currency = fields.currency
                row.updated_at = self.now
        await self.s.flush()
        return _invoice(row), before

    async def add_payment(self, invoice_id: int, paid_on: dt.date, amount: Decimal) -> bool:
        """Record a payment once; False when the same (invoice, day, amount) is known."""
        new_id = await insert_ignore(
            self.s,
            PaymentRow,
            {"invoice_id": invoice_id, "paid_on": paid_on, "amount": amount,
             "created_at": self.now},
            ("invoice_id", "paid_on", "amount"),
        )
        return new_id is not None

    async def settle(self, invoice_id: int) -> Invoice:
        """Recompute the paid amount from payments; paid once payments cover the amount."""
        row = await self.s.get(InvoiceRow, invoice_id, with_for_update=True)
        assert row is not None
        total = await self.s.scalar(
            select(func.coalesce(func.sum(PaymentRow.amount), 0)).where(
                PaymentRow.invoice_id == invoice_id
            )
        )
        paid = Decimal(str(total or 0)).quantize(Decimal("0.01"))
        status = row.status
        if row.status != InvoiceStatus.VOID.value:
            covered = paid >= Decimal(row.amount)
            status = (InvoiceStatus.PAID if covered else InvoiceStatus.OPEN).value
        if Decimal(row.paid_amount) != paid or row.status != status:
            row.paid_amount = paid
            row.status = status
            row.updated_at = self.now
            await self.s.flush()
        return _invoice(row)

    async def invoices(self, org_id: int, *, open_only: bool) -> list[Invoice]:
        stmt = select(InvoiceRow).where(InvoiceRow.org_id == org_id)
        if open_only:
            stmt = stmt.where(InvoiceRow.status == InvoiceStatus.OPEN.value)
        rows = await self.s.scalars(stmt.order_by(InvoiceRow.due_on.desc(), InvoiceRow.id.desc()))
        return [_invoice(r) for r in rows]

    # Billing requests ------------------------------------------------------------------

    async def add_request(
        self,
        org_id: int,
        contact_id: int | None,
        kind: BillingRequestKind,
        text: str,
        servers: int | None,
        source_platform: str,
    ) -> BillingRequest:
        row = BillingRequestRow(
            org_id=org_id,
            contact_id=contact_id,
            kind=kind.value,
            text=text,
            servers=servers,
            status="open",
            source_platform=source_platform,
            created_at=self.now,
        )
        self.s.add(row)
        await self.s.flush()
        return _request(row)

    async def request(self, request_id: int) -> BillingRequest | None:
        row = await self.s.get(BillingRequestRow, request_id)
        return None if row is None else _request(row)

    async def answer_request(
        self, request_id: int, staff_id: int, answer: str
    ) -> BillingRequest | None:
        """Close an open request with its answer; None when it was answered already."""
        result = await self.s.execute(
            update(BillingRequestRow)
            .where(BillingRequestRow.id == request_id, BillingRequestRow.status == "open")
            .values(status="answered", answer=answer, answered_by=staff_id,
                    answered_at=self.now)
            .returning(BillingRequestRow.id)
        )
        if result.first() is None:
            return None
        row = await self.s.get(BillingRequestRow, request_id, populate_existing=True)
        return None if row is None else _request(row)

    # Reminder sweeps -------------------------------------------------------------------

    async def billing_recipients(
        self, org_ids: Sequence[int], *, main_only: bool
    ) -> dict[int, list[Recipient]]:
        """Main (and unless `main_only`, Administrative) contacts per organization with
        their linked chat accounts, in one query whatever the number of organizations."""
        if not org_ids:
            return {}
        role = ContactRow.is_main if main_only else or_(
            ContactRow.is_main, ContactRow.is_administrative
        )
        out: dict[int, list[Recipient]] = {}
        for part in chunks(org_ids, 30000 if self._pg else 500):
            rows = await self.s.execute(
                select(ContactRow.id, ContactRow.org_id, ContactRow.name, ContactRow.email,
                       ChatIdentityRow.platform, ChatIdentityRow.workspace,
                       ChatIdentityRow.user_id)
                .outerjoin(ChatIdentityRow, ChatIdentityRow.contact_id == ContactRow.id)
                .where(self._in(ContactRow.org_id, part), role)
                .order_by(ContactRow.org_id, ContactRow.id, ChatIdentityRow.id)
            )
            current: Recipient | None = None
            for contact_id, org_id, name, email, platform, workspace, user_id in rows:
                if current is None or current.contact_id != contact_id:
                    current = Recipient(contact_id, org_id, name, email, [])
                    out.setdefault(org_id, []).append(current)
                if platform is not None:
                    current.accounts.append((platform, chat_address(platform, workspace,
                                                                    user_id)))
        return out

    @property
    def _pg(self) -> bool:
        return self.s.get_bind().dialect.name == "postgresql"

    def _in(self, column: Any, ids: Sequence[int]) -> Any:
        """`column IN ids` as one array parameter on PostgreSQL (no per-id parameters)."""
        if self._pg:
            return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger())))
        return column.in_(list(ids))

    async def renewal_candidates(
        self, *, ends_from: dt.date, ends_until: dt.date
    ) -> list[RenewalCandidate]:
        """Organizations whose subscription ends in [ends_from, ends_until], with claims."""
        stmt = (
            select(
                OrganizationRow.id, OrganizationRow.name, OrganizationRow.region,
                OrganizationRow.timezone, OrganizationRow.ends_on, OrganizationRow.level,
                ReminderClaimRow.stage,
            )
            .outerjoin(
                ReminderClaimRow,
                and_(ReminderClaimRow.kind == "renewal",
                     ReminderClaimRow.subject_id == OrganizationRow.id),
            )
            .where(OrganizationRow.ends_on >= ends_from, OrganizationRow.ends_on <= ends_until)
            .order_by(OrganizationRow.id)
        )
        rows: dict[int, tuple[tuple[object, ...], set[str]]] = {}
        for row in await self.s.execute(stmt):
            entry = rows.setdefault(row[0], (tuple(row[:6]), set()))
            if row[6] is not None:
                entry[1].add(row[6])
        return [
            RenewalCandidate(
                org_id=int(v[0]),  # type: ignore[call-overload]
                org_name=str(v[1]),
                region=str(v[2]),
                timezone=str(v[3]),
                ends_on=_date(v[4]),
                level=str(v[5]),
                claimed=frozenset(stages),
            )
            for v, stages in rows.values()
        ]


def _date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


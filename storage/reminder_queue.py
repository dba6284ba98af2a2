"""Reminder claims as the reminders' queue: claimed set-based by a sweep, taken by the
dispatcher, which turns each into one outbox row per recipient.

A sweep writes claims only, in one INSERT … SELECT … ON CONFLICT DO NOTHING per window of
due dates and group of timezones: the stage each open invoice has reached is worked out in
SQL from the cut-off day its organization's timezone has reached
(`bot.reminder_stages.latest_reached_day`), so the zone, DST and weekend rules stay in
Python and the statement only compares dates; zones sharing a cut-off day (at any moment
there are one to three such days) share a statement. A claim is written with
`queue = 'pending'`; taking it (FOR UPDATE SKIP LOCKED on PostgreSQL) and queueing its
messages happen in one transaction with clearing that mark.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    TextClause,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ContactRow, InvoiceRow, OrganizationRow, ReminderClaimRow
from storage.sql import chunks
from storage.types import UTCDateTime

PENDING = "pending"  # claimed, its messages not queued yet
UNSENT = "unsent"  # there was nobody to send it to

INVOICE = "invoice"


@dataclass(frozen=True, slots=True)
class QueuedClaim:
    """A claimed reminder waiting to be turned into messages, with what that needs."""

    id: int
    kind: str  # invoice | renewal
    subject_id: int
    stage: str
    claimed_at: dt.datetime
    org_id: int | None  # None when the invoice or organization no longer exists
    timezone: str
    due_on: dt.date | None  # the invoice's due date now (invoices only)
    reachable: bool = True  # its organization has someone to send it to


_DISTINCT_TIMEZONES = text(
    """
    WITH RECURSIVE z(tz) AS (
        SELECT min(timezone) FROM organizations
        UNION ALL
        SELECT (SELECT min(o.timezone) FROM organizations o WHERE o.timezone > z.tz)
        FROM z WHERE z.tz IS NOT NULL
    )
    SELECT tz FROM z WHERE tz IS NOT NULL
    """
)


def _date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


@lru_cache(maxsize=64)
def _invoice_claims_sql(dialect: str, stages: int) -> TextClause:
    """INSERT the claim of each open invoice due in [:due_from, :due_until] of an
    organization in one of the :zones that has reached a stage whose claim (or a later
    one's, for the same due date) does not exist yet; one text per engine and number of
    stages.

    Stage j is named :s<j> (offsets ascending) and is reached when the due date is on or
    before :t<j> (the zones' cut-off day minus offset j). Claims without a date (written
    before claims carried one) count for any due date, as in
    `bot.reminder_stages.invoice_stage_due`.
    """
    pg = dialect == "postgresql"

    def param(name: str, sql_type: str) -> str:
        # SQLite compares dates as ISO text: a CAST there would make them numbers.
        return f"CAST(:{name} AS {sql_type})" if pg else f":{name}"

    # A set the engine builds once and probes by hash or index, row by row.
    zones = ("(SELECT unnest(CAST(:zones AS TEXT[])))" if pg
             else "(SELECT value FROM json_each(:zones))")
    step = "CASE " + " ".join(
        f"WHEN i.due_on <= {param(f't{j}', 'DATE')} THEN {j}" for j in range(stages - 1, 0, -1)
    ) + " ELSE 0 END" if stages > 1 else "0"
    name = "CASE c.step " + " ".join(
        f"WHEN {j} THEN {param(f's{j}', 'TEXT')}" for j in range(stages)) + " END"
    day = "CAST(c.due_on AS TEXT)"
    later = " OR ".join(
        ("" if j == stages - 1 else f"c.step <= {j} AND ")
        + f"(rc.stage = {day} || ':' || {param(f's{j}', 'TEXT')} "
        f"OR rc.stage = {param(f's{j}', 'TEXT')})"
        for j in range(stages)
    )
    sql = f"""
        INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at, queue)
        SELECT '{INVOICE}', c.id, {day} || ':' || {name},
               {param('now', 'TIMESTAMP WITH TIME ZONE')}, '{PENDING}'
        FROM (
            SELECT i.id AS id, i.due_on AS due_on, {step} AS step
            FROM invoices i JOIN organizations o ON o.id = i.org_id
            WHERE i.status = 'open' AND i.due_on >= {param('due_from', 'DATE')}
              AND i.due_on <= {param('due_until', 'DATE')}
              AND i.due_on <= {param('t0', 'DATE')} AND o.timezone IN {zones}
        ) AS c
        WHERE NOT EXISTS (
            SELECT 1 FROM reminder_claims rc
            WHERE rc.kind = '{INVOICE}' AND rc.subject_id = c.id AND ({later})
        )
        ON CONFLICT (kind, subject_id, stage) DO NOTHING
    """
    return text(sql).bindparams(
        bindparam("now", type_=UTCDateTime()),
        bindparam("due_from", type_=Date()),
        bindparam("due_until", type_=Date()),
        *(bindparam(f"t{j}", type_=Date()) for j in range(stages)),
    )


def _zone_groups(cutoffs: Mapping[str, dt.date]) -> list[tuple[dt.date, list[str]]]:
    """Timezones grouped by cut-off day: one to three groups at any moment, since the day
    differs across zones by a few days at most."""
    groups: dict[dt.date, list[str]] = {}
    for tz, day in sorted(cutoffs.items()):
        groups.setdefault(day, []).append(tz)
    return sorted(groups.items())


class ReminderQueue:
    """The sweep's set-based claims and the dispatcher's side of the reminder queue."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    # The sweep ----------------------------------------------------------------------------

    async def timezones(self) -> list[str]:
        """Every organization timezone (a few hundred at most: IANA names), skipping from
        one to the next through the timezone index rather than reading every organization."""
        rows = await self.s.scalars(_DISTINCT_TIMEZONES)
        return [str(r) for r in rows]

    async def open_due_dates(self, due_until: dt.date) -> list[tuple[dt.date, int]]:
        """(due date, open invoices) for each due date up to `due_until`, oldest first:
        the sweep's windows are cut from these (the (status, due_on) index)."""
        rows = await self.s.execute(
            select(InvoiceRow.due_on, func.count())
            .where(InvoiceRow.status == "open", InvoiceRow.due_on <= due_until)
            .group_by(InvoiceRow.due_on)
            .order_by(InvoiceRow.due_on)
        )
        return [(_date(d), int(n)) for d, n in rows]

    async def claim_invoices(
        self,
        stages: Sequence[tuple[int, str]],
        cutoffs: Mapping[str, dt.date],
        due_after: dt.date | None,
        due_until: dt.date,
        at: dt.datetime | None = None,
    ) -> int:
        """Claim, in one statement, the latest reached stage of every open invoice due in
        (due_after, due_until] unless it or a later stage is claimed for its due date,
        as claimed at `at` (default now); each claim is queued (pending). Returns how many
        claims this call won."""
        if not stages or not cutoffs:
            return 0
        dialect = self.s.get_bind().dialect.name
        statement = _invoice_claims_sql(dialect, len(stages))
        params: dict[str, Any] = {
            "now": at or self.now,
            "due_from": dt.date.min if due_after is None else due_after + dt.timedelta(days=1),
            "due_until": due_until,
        }
        for j, (_, name) in enumerate(stages):
            params[f"s{j}"] = name
        won = 0
        # One statement per group of zones sharing a cut-off day (one or two at a time).
        for day, zones in _zone_groups(cutoffs):
            params["zones"] = zones if dialect == "postgresql" else json.dumps(zones)
            for j, (offset, _) in enumerate(stages):
                params[f"t{j}"] = day - dt.timedelta(days=offset)
            result = await self.s.execute(statement, params)
            won += int(getattr(result, "rowcount", 0) or 0)
        return won

    # The dispatcher -----------------------------------------------------------------------

    async def has_pending(self) -> bool:
        found = await self.s.scalar(
            select(ReminderClaimRow.id).where(ReminderClaimRow.queue == PENDING).limit(1)
        )
        return found is not None

    async def take(
        self, limit: int, *, with_administrative: Sequence[str] = ()
    ) -> list[QueuedClaim]:
        """Up to `limit` pending claims, oldest first, locked for this transaction (on
        PostgreSQL concurrent dispatchers skip each other's), each saying whether its
        organization has anyone to send it to: a Main Contact, or for the kinds in
        `with_administrative` also an Administrative one."""
        rc = ReminderClaimRow.__table__.alias("rc")
        inv = InvoiceRow.__table__.alias("i")
        org = OrganizationRow.__table__.alias("o")
        contact = ContactRow.__table__.alias("c")
        org_id = case((rc.c.kind == INVOICE, inv.c.org_id), else_=rc.c.subject_id)
        role: Any = contact.c.is_main
        if with_administrative:
            role = or_(role, and_(contact.c.is_administrative,
                                  rc.c.kind.in_(list(with_administrative))))
        reachable = exists().where(contact.c.org_id == org.c.id, role)
        stmt = (
            select(rc.c.id, rc.c.kind, rc.c.subject_id, rc.c.stage, rc.c.claimed_at,
                   org.c.id, org.c.timezone, inv.c.due_on, reachable)
            .select_from(rc)
            .outerjoin(inv, and_(rc.c.kind == INVOICE, inv.c.id == rc.c.subject_id))
            .outerjoin(org, org.c.id == org_id)
            .where(rc.c.queue == PENDING)
            .order_by(rc.c.id)
            .limit(limit)
            .with_for_update(of=rc, skip_locked=True)
        )
        return [
            QueuedClaim(
                id=int(r[0]), kind=str(r[1]), subject_id=int(r[2]), stage=str(r[3]),
                claimed_at=r[4], org_id=None if r[5] is None else int(r[5]),
                timezone=str(r[6] or "UTC"), due_on=None if r[7] is None else _date(r[7]),
                reachable=bool(r[8]) and r[5] is not None,
            )
            for r in await self.s.execute(stmt)
        ]

    async def settle(self, queued: Sequence[int], unsent: Sequence[int]) -> None:
        """Claims whose messages are queued leave the queue; `unsent` ones stay visible."""
        for state, ids in ((None, queued), (UNSENT, unsent)):
            for part in self._parts(ids):
                await self.s.execute(
                    update(ReminderClaimRow)
                    .where(self._in(ReminderClaimRow.id, part))
                    .values(queue=state)
                )

    @property
    def _pg(self) -> bool:
        return self.s.get_bind().dialect.name == "postgresql"

    def _parts(self, ids: Sequence[int]) -> list[Sequence[int]]:
        """`ids` in as many statements as the engine needs (one array on PostgreSQL)."""
        return [ids] if self._pg and ids else list(chunks(ids))

    def _in(self, column: Any, ids: Sequence[int]) -> Any:
        """`column IN ids`, as one array parameter on PostgreSQL."""
        if self._pg:
            return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger())))
        return column.in_(list(ids))

    async def counts(self) -> dict[str, int]:
        """Claims waiting to be queued (pending) and claims with nobody to send to (unsent)."""
        rows = await self.s.execute(
            select(ReminderClaimRow.queue, func.count())
            .where(ReminderClaimRow.queue.is_not(None))
            .group_by(ReminderClaimRow.queue)
        )
        counts = {PENDING: 0, UNSENT: 0}
        counts.update({str(state): int(n) for state, n in rows})
        return counts

"""Tickets, comments, followers and attachments: plain values in and out, no policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    RowMapping,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import (
    Attachment,
    Level,
    Rating,
    Severity,
    Ticket,
    TicketComment,
    TicketStatus,
)
from storage.models import (
    TICKETS_ACTIVE,
    TICKETS_AWAITING,
    AttachmentRow,
    ContactRow,
    OrganizationRow,
    ReminderClaimRow,
    StaffRow,
    TicketCommentRow,
    TicketFollowerRow,
    TicketRatingRow,
    TicketRow,
)
from storage.sql import chunks, insert_for


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


T = _table(TicketRow)
C = _table(TicketCommentRow)
A = _table(AttachmentRow)
F = _table(TicketFollowerRow)
ORG = _table(OrganizationRow)
CONTACT = _table(ContactRow)
STAFF = _table(StaffRow)
CLAIM = _table(ReminderClaimRow)
R = _table(TicketRatingRow)

_AWAITING = text(TICKETS_AWAITING)
_ACTIVE = text(TICKETS_ACTIVE)
_ATTACHMENT_COLUMNS = [c for c in A.c if c.name != "content"]
_ORG_COLUMNS = (
    ORG.c.key.label("org_key"), ORG.c.name.label("org_name"), ORG.c.level.label("org_level"),
    ORG.c.timezone.label("org_timezone"), ORG.c.country.label("org_country"),
)


def ticket_value(row: RowMapping) -> Ticket:
    return Ticket(
        id=row["id"],
        org_id=row["org_id"],
        opener_id=row["opener_id"],
        subject=row["subject"],
        description=row["description"],
        severity=Severity(row["severity"]),
        status=TicketStatus(row["status"]),
        assignee_id=row["assignee_id"],
        source_platform=row["source_platform"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        first_response_due_at=row["first_response_due_at"],
        first_responded_at=row["first_responded_at"],
        sla_paused_at=row["sla_paused_at"],
        solved_at=row["solved_at"],
        closed_at=row["closed_at"],
        sla_warn_at=row["sla_warn_at"],
        next_response_due_at=row["next_response_due_at"],
        response_cycle=row["response_cycle"],
    )


def _queue_entry(r: RowMapping) -> QueueEntry:
    return QueueEntry(ticket_value(r), r["org_key"], r["org_name"], Level(r["org_level"]),
                      r["assignee_name"], r["org_timezone"], r["org_country"])


def _attachment_value(row: RowMapping) -> Attachment:
    return Attachment(
        id=row["id"],
        ticket_id=row["ticket_id"],
        comment_id=row["comment_id"],
        name=row["name"],
        size=row["size"],
        content_type=row["content_type"],
        storage_ref=row["storage_ref"],
        internal=row["internal"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A ticket as the triage queue shows it, with its organization and assignee."""

    ticket: Ticket
    org_key: str
    org_name: str
    level: Level
    assignee_name: str | None
    timezone: str = "UTC"
    country: str | None = None


@dataclass(frozen=True, slots=True)
class RunningClock:
    """A running response clock as the triage queue ranks it: when it is due, and the
    calendar it counts in (the organization's timezone, country and level, the severity)."""

    ticket_id: int
    due: dt.datetime
    severity: Severity
    timezone: str
    country: str | None
    level: Level


@dataclass(frozen=True, slots=True)
class SlaCandidate:
    ticket: Ticket
    org_key: str
    org_name: str
    level: Level


@dataclass(frozen=True, slots=True)
class OrgTicket:
    """A ticket with what its organization's calendar needs."""

    ticket: Ticket
    level: Level
    timezone: str
    country: str | None


class TicketStore:
    """Every method runs inside the caller's transaction and never commits."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    # Tickets --------------------------------------------------------------------------

    async def create(
        self,
        *,
        org_id: int,
        opener_id: int | None,
        subject: str,
        description: str,
        severity: Severity,
        source_platform: str,
        first_response_due_at: dt.datetime | None,
        sla_warn_at: dt.datetime | None = None,
        calendar: str | None = None,
    ) -> Ticket:
        """Insert a new ticket; its id comes from the primary key sequence. `calendar` is its
        organization's (`Organization.calendar`)."""
        result = await self.s.execute(
            insert(T)
            .values(
                org_id=org_id,
                opener_id=opener_id,
                subject=subject,
                description=description,
                severity=severity.value,
                status=TicketStatus.NEW.value,
                source_platform=source_platform,
                created_at=self.now,
                updated_at=self.now,
                first_response_due_at=first_response_due_at,
                sla_warn_at=sla_warn_at,
                sla_calendar=calendar,
            )
            .returning(*T.c)
        )
        return ticket_value(result.mappings().one())

    async def get(self, ticket_id: int, *, lock: bool = False) -> Ticket | None:
        stmt = select(T).where(T.c.id == ticket_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await self.s.execute(stmt)).mappings().first()
        return None if row is None else ticket_value(row)

    async def update(self, ticket_id: int, **changes: Any) -> Ticket:
        """Change columns of one ticket (enums by value) and touch `updated_at`."""
        values = {k: (v.value if isinstance(v, Severity | TicketStatus) else v)
                  for k, v in changes.items()}
        values.setdefault("updated_at", self.now)
        result = await self.s.execute(
            update(T).where(T.c.id == ticket_id).values(**values).returning(*T.c)
        )
        return ticket_value(result.mappings().one())

    async def for_contacts(
        self, org_id: int, opener_id: int | None, *, active_only: bool, limit: int
    ) -> list[Ticket]:
        """Newest first: one opener's tickets, or the whole organization's (`opener_id` None)."""
        stmt = select(T).where(T.c.org_id == org_id)
        if opener_id is not None:
            stmt = stmt.where(T.c.opener_id == opener_id)
        if active_only:
            stmt = stmt.where(_ACTIVE)
        stmt = stmt.order_by(T.c.id.desc()).limit(limit)
        return [ticket_value(r) for r in (await self.s.execute(stmt)).mappings()]

    async def set_calendar(self, org_id: int, calendar: str) -> None:
        """The organization's tickets count in `calendar` now (its timezone, country or
        level changed)."""
        await self.s.execute(
            update(T).where(T.c.org_id == org_id, T.c.sla_calendar.is_distinct_from(calendar))
            .values(sla_calendar=calendar)
        )

    async def running_soonest(self, limit: int) -> list[RunningClock]:
        """The `limit` running response clocks due soonest of each calendar and severity.

        Covered time left orders like the due time among the clocks of one calendar and
        severity, though not across them, so these include the `limit` with the least
        covered time left — whatever the queue's size, at most `limit` rows per calendar and
        severity in use. The calendars are found by one index seek each (a loose scan of
        `ix_tickets_queue`: few calendars, many clocks), then each pair's soonest by one
        index range.
        """
        calendars = list(await self.s.scalars(text(
            "WITH RECURSIVE calendars(c) AS ("
            f" SELECT min(sla_calendar) FROM tickets WHERE {TICKETS_AWAITING}"
            " UNION ALL"
            f" SELECT (SELECT min(sla_calendar) FROM tickets WHERE {TICKETS_AWAITING}"
            "   AND sla_calendar > calendars.c)"
            " FROM calendars WHERE calendars.c IS NOT NULL"
            ") SELECT c FROM calendars WHERE c IS NOT NULL"
        )))
        if not calendars:
            return []
        ranges = " UNION ALL ".join(
            f"SELECT id FROM (SELECT id FROM tickets WHERE {TICKETS_AWAITING}"
            f" AND sla_calendar = :c{i} AND severity = '{severity.value}'"
            f" ORDER BY sla_due_at, id LIMIT :limit) AS r{i}_{severity.value}"
            for i in range(len(calendars)) for severity in Severity
        )
        params: dict[str, Any] = {f"c{i}": c for i, c in enumerate(calendars)}
        soonest = text(ranges).bindparams(**params, limit=limit).columns(T.c.id).subquery()
        rows = await self.s.execute(
            select(T.c.id, T.c.sla_due_at, T.c.severity, ORG.c.timezone, ORG.c.country,
                   ORG.c.level)
            .select_from(T.join(ORG, ORG.c.id == T.c.org_id))
            .where(T.c.id.in_(select(soonest.c.id)))
        )
        return [RunningClock(int(r[0]), r[1], Severity(r[2]), r[3], r[4], Level(r[5]))
                for r in rows]

    async def queue_entries(self, ticket_ids: Sequence[int]) -> list[QueueEntry]:
        """These tickets as the triage queue shows them (in no particular order)."""
        entries: list[QueueEntry] = []
        for ids in chunks(ticket_ids):
            rows = await self.s.execute(self._queue_select().where(T.c.id.in_(ids)))
            entries.extend(_queue_entry(r) for r in rows.mappings())
        return entries

    async def queue_rest(self, limit: int) -> list[QueueEntry]:
        """Active tickets without a running response clock (answered, or paused while
        pending), oldest first."""
        if limit <= 0:
            return []
        rows = await self.s.execute(
            self._queue_select()
            .where(_ACTIVE, or_(T.c.sla_warn_at.is_(None),
                                T.c.status.not_in(("new", "open", "on_hold"))))
            .order_by(T.c.id).limit(limit)
        )
        return [_queue_entry(r) for r in rows.mappings()]

    def _queue_select(self) -> Select[Any]:
        return select(*T.c, *_ORG_COLUMNS, STAFF.c.name.label("assignee_name")).select_from(
            T.join(ORG, ORG.c.id == T.c.org_id).outerjoin(STAFF, STAFF.c.id == T.c.assignee_id))

    async def sla_candidates(
        self, limit: int, after: tuple[dt.datetime, int] | None = None
    ) -> list[SlaCandidate]:
        """Tickets whose response clock runs and has reached its "at risk" instant, by that
        instant then id (resuming after the `after` key), leaving out those with nothing left
        to claim: breached ones, and not-yet-due ones already claimed "at risk"."""

        # Claims of the running target: `at_risk` for the first response, `next2:at_risk`
        # for the second next response (as `bot.services.sla.stage_name` names them).
        cycle = case(
            (T.c.response_cycle == 0, literal("")),
            else_=literal("next") + cast(T.c.response_cycle, String) + literal(":"),
        )

        def claimed(stage: str) -> Any:
            return exists().where(
                CLAIM.c.kind == "sla", CLAIM.c.subject_id == T.c.id,
                CLAIM.c.stage == cycle + literal(stage),
            )

        due = case((T.c.first_responded_at.is_(None), T.c.first_response_due_at),
                   else_=T.c.next_response_due_at)
        breached = or_(claimed("breached"), and_(due > self.now, claimed("at_risk")))
        stmt = (
            select(*T.c, *_ORG_COLUMNS)
            .select_from(T.join(ORG, ORG.c.id == T.c.org_id))
            .where(_AWAITING, T.c.sla_warn_at <= self.now, not_(breached))
        )
        if after is not None:
            stmt = stmt.where(
                or_(T.c.sla_warn_at > after[0],
                    and_(T.c.sla_warn_at == after[0], T.c.id > after[1]))
            )
        stmt = stmt.order_by(T.c.sla_warn_at, T.c.id).limit(limit)
        return [
            SlaCandidate(ticket_value(r), r["org_key"], r["org_name"], Level(r["org_level"]))
            for r in (await self.s.execute(stmt)).mappings()
        ]

    async def idle(
        self, status: TicketStatus, since_before: dt.datetime, limit: int, after_id: int = 0
    ) -> list[OrgTicket]:
        """Tickets `pending` since (their clock paused) or `solved` since before
        `since_before`, by id after `after_id`."""
        since = T.c.sla_paused_at if status is TicketStatus.PENDING else T.c.solved_at
        stmt = (
            select(*T.c, *_ORG_COLUMNS)
            .select_from(T.join(ORG, ORG.c.id == T.c.org_id))
            .where(T.c.status == status.value, since <= since_before, T.c.id > after_id)
            .order_by(T.c.id).limit(limit)
        )
        return [
            OrgTicket(ticket_value(r), Level(r["org_level"]), r["org_timezone"],
                      r["org_country"])
            for r in (await self.s.execute(stmt)).mappings()
        ]

    # Reports --------------------------------------------------------------------------

    async def opened_or_solved(
        self, org_id: int, start: dt.datetime, end: dt.datetime
    ) -> list[Ticket]:
        """One organization's tickets opened, solved or closed in [start, end), by id."""
        def within(column: Any) -> Any:
            return and_(column >= start, column < end)

        stmt = (
            select(T).where(T.c.org_id == org_id,
                            or_(within(T.c.created_at), within(T.c.solved_at),
                                within(T.c.closed_at)))
            .order_by(T.c.id)
        )
        return [ticket_value(r) for r in (await self.s.execute(stmt)).mappings()]

    async def breaches(self, ticket_ids: list[int]) -> dict[int, set[str]]:
        """The "breached" SLA claims of these tickets (`breached`, `next1:breached`, …)."""
        found: dict[int, set[str]] = {}
        for start in range(0, len(ticket_ids), 500):
            rows = await self.s.execute(
                select(CLAIM.c.subject_id, CLAIM.c.stage).where(
                    CLAIM.c.kind == "sla", CLAIM.c.subject_id.in_(ticket_ids[start:start + 500]),
                    CLAIM.c.stage.like("%breached"))
            )
            for subject, stage in rows:
                found.setdefault(int(subject), set()).add(str(stage))
        return found

    async def ratings_between(
        self, org_id: int, start: dt.datetime, end: dt.datetime
    ) -> list[str]:
        """The ratings ("good"/"bad") of one organization's solves in [start, end)."""
        rows = await self.s.scalars(
            select(R.c.rating).select_from(R.join(T, T.c.id == R.c.ticket_id))
            .where(T.c.org_id == org_id, R.c.solved_at >= start, R.c.solved_at < end)
        )
        return list(rows)

    # Comments -------------------------------------------------------------------------

    async def add_comment(
        self,
        ticket_id: int,
        *,
        body: str,
        internal: bool,
        source_platform: str,
        author_contact_id: int | None = None,
        author_staff_id: int | None = None,
        author_name: str = "",
        platform_refs: dict[str, Any] | None = None,
    ) -> TicketComment:
        result = await self.s.execute(
            insert(C)
            .values(
                ticket_id=ticket_id,
                author_contact_id=author_contact_id,
                author_staff_id=author_staff_id,
                body=body,
                internal=internal,
                source_platform=source_platform,
                platform_refs=platform_refs or {},
                created_at=self.now,
            )
            .returning(C.c.id)
        )
        return TicketComment(
            id=int(result.scalar_one()),
            ticket_id=ticket_id,
            author_contact_id=author_contact_id,
            author_staff_id=author_staff_id,
            author_name=author_name,
            body=body,
            internal=internal,
            source_platform=source_platform,
            created_at=self.now,
        )

    async def comments(self, ticket_id: int, *, include_internal: bool) -> list[TicketComment]:
        """The ticket's thread, oldest first; internal notes only when asked for."""
        stmt = (
            select(C, CONTACT.c.name.label("contact_name"), STAFF.c.name.label("staff_name"))
            .select_from(
                C.outerjoin(CONTACT, CONTACT.c.id == C.c.author_contact_id).outerjoin(
                    STAFF, STAFF.c.id == C.c.author_staff_id
                )
            )
            .where(C.c.ticket_id == ticket_id)
            .order_by(C.c.id)
        )
        if not include_internal:
            stmt = stmt.where(C.c.internal.is_(False))
        return [
            TicketComment(
                id=r["id"],
                ticket_id=r["ticket_id"],
                author_contact_id=r["author_contact_id"],
                author_staff_id=r["author_staff_id"],
                author_name=r["staff_name"] or r["contact_name"] or "someone",
                body=r["body"],
                internal=r["internal"],
                source_platform=r["source_platform"],
                created_at=r["created_at"],
            )
            for r in (await self.s.execute(stmt)).mappings()
        ]

    # Attachments ----------------------------------------------------------------------

    async def add_attachment(
        self,
        ticket_id: int,
        *,
        name: str,
        content_type: str,
        content: bytes,
        storage_ref: str,
        internal: bool,
        comment_id: int | None = None,
        contact_id: int | None = None,
        staff_id: int | None = None,
    ) -> Attachment:
        result = await self.s.execute(
            insert(A)
            .values(
                ticket_id=ticket_id,
                comment_id=comment_id,
                name=name,
                size=len(content),
                content_type=content_type,
                storage_ref=storage_ref,
                content=content,
                internal=internal,
                uploaded_by_contact_id=contact_id,
                uploaded_by_staff_id=staff_id,
                created_at=self.now,
            )
            .returning(*_ATTACHMENT_COLUMNS)
        )
        return _attachment_value(result.mappings().one())

    async def attachments(self, ticket_id: int, *, include_internal: bool) -> list[Attachment]:
        stmt = select(*_ATTACHMENT_COLUMNS).where(A.c.ticket_id == ticket_id).order_by(A.c.id)
        if not include_internal:
            stmt = stmt.where(A.c.internal.is_(False))
        return [_attachment_value(r) for r in (await self.s.execute(stmt)).mappings()]

    async def attachment_content(self, attachment_id: int) -> bytes | None:
        value = await self.s.scalar(select(A.c.content).where(A.c.id == attachment_id))
        return None if value is None else bytes(value)

    # Ratings --------------------------------------------------------------------------

    async def rate(self, ticket_id: int, solved_at: dt.datetime, contact_id: int, rating: str,
                   comment: str) -> None:
        """Record (or change) the rating of one solve."""
        stmt = insert_for(self.s, TicketRatingRow).values(
            ticket_id=ticket_id, contact_id=contact_id, solved_at=solved_at, rating=rating,
            comment=comment, created_at=self.now, updated_at=self.now,
        )
        await self.s.execute(stmt.on_conflict_do_update(
            index_elements=["ticket_id", "solved_at"],
            set_={"rating": rating, "comment": comment, "contact_id": contact_id,
                  "updated_at": self.now},
        ))

    async def ratings(self, ticket_id: int) -> list[Rating]:
        """The ticket's ratings, one per solve, oldest first."""
        stmt = (
            select(R, CONTACT.c.name.label("contact_name"))
            .select_from(R.outerjoin(CONTACT, CONTACT.c.id == R.c.contact_id))
            .where(R.c.ticket_id == ticket_id).order_by(R.c.solved_at)
        )
        return [
            Rating(r["ticket_id"], r["solved_at"], r["rating"], r["comment"],
                   r["contact_name"] or "a former contact", r["updated_at"])
            for r in (await self.s.execute(stmt)).mappings()
        ]

    # Followers ------------------------------------------------------------------------

    async def follow(self, ticket_id: int, contact_id: int) -> None:
        stmt = (
            insert_for(self.s, TicketFollowerRow)
            .values(ticket_id=ticket_id, contact_id=contact_id, created_at=self.now)
            .on_conflict_do_nothing(index_elements=["ticket_id", "contact_id"])
        )
        await self.s.execute(stmt)

    async def followers(self, ticket_id: int) -> list[int]:
        rows = await self.s.scalars(
            select(F.c.contact_id).where(F.c.ticket_id == ticket_id).order_by(F.c.contact_id)
        )
        return list(rows)

"""The outbox table and idempotent claims: the storage half of exactly-once delivery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Row,
    Table,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import MessageRef, OutboxStatus
from storage.bulk import (
    OutboxDraft,
    claim_many,
    enqueue_many,
    fan_out_to_billing_contacts,
    fit_key,
)
from storage.models import OutboxRow, ProcessedEventRow, ReminderClaimRow
from storage.sql import insert_ignore
from storage.wakeup import announce

# A count of messages made due, or None where nothing could be counted (see `_announced`).
_Count = TypeVar("_Count", int, int | None)

# `last_error` of a message held for the operator, or until its peer can be reached again
# (see `mark_held`).
HELD_PREFIX = "configuration: "
UNREACHABLE_PREFIX = "unreachable: "


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    key: str
    platform: str
    target: str
    kind: str
    recipient: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    platform_ref: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    card: str | None = None  # the card this message is (or, with `edit`, replaces)
    edit: bool = False
    ref_channel: str | None = None
    attempted_at: dt.datetime | None = None
    # When an earlier attempt may have reached the peer unconfirmed: the transport looks for
    # the message from then on before sending it again (see `OutboxStore.claim_due`).
    in_doubt: dt.datetime | None = None
    # Set by the dispatcher for the transport: the thread root to reply under, and the
    # message an edit replaces.
    thread: MessageRef | None = field(default=None, compare=False)
    replaces: MessageRef | None = field(default=None, compare=False)

    @property
    def ref(self) -> MessageRef | None:
        """Where it landed, once sent."""
        if self.platform_ref is None:
            return None
        return MessageRef(self.ref_channel or self.target, self.platform_ref)


def _item(row: OutboxRow | Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        key=row.idempotency_key,
        platform=row.platform,
        target=row.target,
        kind=row.kind,
        recipient=row.recipient,
        payload=row.payload,
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        platform_ref=row.platform_ref,
        created_at=row.created_at,
        sent_at=row.sent_at,
        card=row.dedupe_key,
        edit=row.edit,
        ref_channel=row.ref_channel,
        attempted_at=row.attempted_at,
        in_doubt=row.in_doubt_since,
    )


_TABLE = cast(Table, OutboxRow.__table__)
# Written out, not bound: a prepared statement's generic plan can use the partial index
# `ix_outbox_lines` only when its predicate is in the statement itself.
_ACTIVE_ROWS = text("outbox.status IN ('pending', 'sending')")
_PENDING: Any = literal_column("'pending'")


def _heads(platforms: Sequence[str]) -> Any:
    """The first waiting or in-flight message of every line (platform, target)."""
    return (
        select(func.min(OutboxRow.id))
        .where(_ACTIVE_ROWS, OutboxRow.platform.in_(platforms))
        .group_by(OutboxRow.platform, OutboxRow.target)
    )


class OutboxStore:
    """Outbox rows of one transaction: queue, claim, mark sent or failed, inspect."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    async def enqueue_many(self, drafts: Sequence[OutboxDraft]) -> int:
        """Queue many rows at once; rows whose key exists are skipped. Returns the count."""
        return await self._announced(await enqueue_many(self.s, drafts, self.now))

    async def fan_out_to_billing_contacts(
        self, notices: Sequence[tuple[str, int, dict[str, Any]]], *, main_only: bool
    ) -> int | None:
        """Queue (key base, organization id, payload) notices to each organization's billing
        contacts in one statement; None where the engine cannot (see `storage.bulk`)."""
        return await self._announced(await fan_out_to_billing_contacts(
            self.s, notices, main_only=main_only, now=self.now))

    async def enqueue(
        self,
        key: str,
        *,
        platform: str,
        target: str,
        kind: str,
        payload: dict[str, Any],
        recipient: str = "",
        not_before: dt.datetime | None = None,
        card: str | None = None,
        edit: bool = False,
    ) -> int | None:
        """Queue one message; None when a message with this key already exists.

        A message that is a card carries the card's key; an `edit` of it replaces the card
        where it was delivered, and supersedes earlier edits of that card to the same target
        that have not gone out yet, so only the latest is delivered.
        """
        if edit:
            await self.s.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.dedupe_key == card,
                    OutboxRow.platform == platform,
                    OutboxRow.target == target,
                    OutboxRow.edit.is_(True),
                    OutboxRow.status == OutboxStatus.PENDING.value,
                )
                .values(status=OutboxStatus.SUPERSEDED.value, lease_until=None)
            )
        queued = await insert_ignore(
            self.s,
            OutboxRow,
            {
                "idempotency_key": fit_key(key),
                "platform": platform,
                "target": target,
                "kind": kind,
                "recipient": recipient,
                "payload": payload,
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": not_before or self.now,
                "created_at": self.now,
                "dedupe_key": card,
                "edit": edit,
            },
            ("idempotency_key",),
        )
        if queued is not None and (not_before is None or not_before <= self.now):
            await announce(self.s)
        return queued

    async def _announced(self, count: _Count) -> _Count:
        """`count`, after telling the other processes when messages became due (see
        `storage.wakeup`)."""
        if count:
            await announce(self.s)
        return count

    async def waiting_for(self, addresses: Sequence[tuple[str, str]]) -> list[OutboxItem]:
        """Messages not yet tried to any of (platform, target), in order."""
        if not addresses:
            return []
        rows = await self.s.scalars(
            select(OutboxRow)
            .where(_ACTIVE_ROWS, OutboxRow.status == OutboxStatus.PENDING.value,
                   or_(*((OutboxRow.platform == platform) & (OutboxRow.target == target)
                         for platform, target in addresses)))
            .order_by(OutboxRow.id)
        )
        return [_item(r) for r in rows]

    async def card_copies(self, card: str) -> list[OutboxItem]:
        """The messages that are card `card`, one per target (not its edits)."""
        rows = await self.s.scalars(
            select(OutboxRow)
            .where(OutboxRow.dedupe_key == card, OutboxRow.edit.is_(False))
            .order_by(OutboxRow.id)
        )
        return [_item(r) for r in rows]

    async def claim_due(
        self, *, limit: int, worker: str, lease: dt.timedelta, platforms: list[str],
        ahead: dt.timedelta = dt.timedelta(0),
    ) -> list[OutboxItem]:
        """Take the first message of up to `limit` lines (one per platform and target)
        whose first message is due, or was claimed by a holder whose lease ran out.

        A line whose first message is in flight, or waits for a retry, a peer's rate limit
        or its pacing, is skipped whole: its messages go out in order, one at a time.
        On PostgreSQL concurrent dispatchers skip each other's rows (`SKIP LOCKED`); on
        SQLite the write transaction itself serialises them. A message taken over from a
        holder that died may have been sent already: it comes back marked in doubt since
        its attempt started. With `ahead`, messages due that much later are taken too (the
        caller waits for their time: one claim serves the lines coming due meanwhile).
        """
        due = or_(
            (OutboxRow.status == OutboxStatus.PENDING.value)
            & (OutboxRow.next_attempt_at <= self.now + ahead),
            (OutboxRow.status == OutboxStatus.SENDING.value)
            & (OutboxRow.lease_until < self.now),
        )
        query = (
            select(OutboxRow.id)
            .where(OutboxRow.id.in_(_heads(platforms)), due)
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(await self.s.scalars(query))
        if not ids:
            return []
        taken_over = OutboxRow.status == OutboxStatus.SENDING.value
        # A table UPDATE returning plain rows: the ORM's bulk-update bookkeeping would cost
        # more than the claim itself for a few hundred rows, and nothing here needs it.
        rows = await self.s.execute(
            update(_TABLE)
            .where(_TABLE.c.id.in_(ids), due)
            .values(
                status=OutboxStatus.SENDING.value,
                lease_until=self.now + lease,
                claimed_by=worker,
                attempts=OutboxRow.attempts + 1,
                attempted_at=self.now,
                in_doubt_since=case(
                    (taken_over, func.coalesce(OutboxRow.in_doubt_since,
                                               OutboxRow.attempted_at, self.now)),
                    else_=OutboxRow.in_doubt_since,
                ),
            )
            .returning(*_TABLE.c)
        )
        return sorted((_item(r) for r in rows), key=lambda i: (i.next_attempt_at, i.id))

    async def renew(self, item_ids: Sequence[int], worker: str, lease: dt.timedelta) -> None:
        """Extend the lease of messages this worker is still delivering."""
        if item_ids:
            await self.s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(item_ids), OutboxRow.claimed_by == worker,
                       OutboxRow.status == OutboxStatus.SENDING.value)
                .values(lease_until=self.now + lease)
            )

    async def hand_back(self, item_ids: Sequence[int], worker: str) -> None:
        """Give back messages whose attempt started but whose outcome this worker will not
        learn (it is stopping): due again now, in doubt since their attempt started."""
        if item_ids:
            await self.s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(item_ids), OutboxRow.claimed_by == worker,
                       OutboxRow.status == OutboxStatus.SENDING.value)
                .values(status=OutboxStatus.PENDING.value, lease_until=None, claimed_by=None,
                        next_attempt_at=self.now,
                        in_doubt_since=func.coalesce(OutboxRow.in_doubt_since,
                                                     OutboxRow.attempted_at, self.now))
            )
            await announce(self.s)

    async def release(self, item_ids: list[int], worker: str) -> None:
        """Give back messages this worker claimed but did not try: due again, attempt undone."""
        if not item_ids:
            return
        await self.s.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(item_ids),
                OutboxRow.status == OutboxStatus.SENDING.value,
                OutboxRow.claimed_by == worker,
            )
            .values(
                status=OutboxStatus.PENDING.value,
                lease_until=None,
                claimed_by=None,
                attempts=OutboxRow.attempts - 1,
            )
        )
        await announce(self.s)

    async def mark_sent(self, item_id: int, ref: MessageRef | None) -> None:
        await self.mark_sent_many([(item_id, ref, self.now)])

    async def mark_sent_many(
        self, sent: Sequence[tuple[int, MessageRef | None, dt.datetime]]
    ) -> None:
        """Record many deliveries at once: (id, where it landed, when)."""
        if not sent:
            return
        table = _TABLE.c
        await self.s.execute(
            update(_TABLE)
            .where(table.id == bindparam("b_id"))
            .values(
                status=OutboxStatus.SENT.value,
                sent_at=bindparam("b_sent_at"),
                lease_until=None,
                platform_ref=bindparam("b_ref"),
                ref_channel=bindparam("b_channel"),
                last_error=None,
                in_doubt_since=None,
            ),
            [{"b_id": item_id, "b_sent_at": at,
              "b_ref": None if ref is None else ref.id[:255],
              "b_channel": None if ref is None else ref.channel[:255]}
             for item_id, ref, at in sent],
        )

    async def pace(self, lines: Sequence[tuple[str, str, dt.datetime]]) -> None:
        """Hold each line's next waiting message until at least the time given: (platform,
        target, not before). Kept in the table, so every dispatcher paces the line alike."""
        if not lines:
            return
        table = _TABLE.c
        following = (
            select(func.min(table.id))
            .where(table.platform == bindparam("b_platform"),
                   table.target == bindparam("b_target"),
                   table.status == _PENDING, _ACTIVE_ROWS)
            .scalar_subquery()
        )
        await self.s.execute(
            update(_TABLE)
            .where(table.id == following, table.next_attempt_at < bindparam("b_at"))
            .values(next_attempt_at=bindparam("b_at")),
            [{"b_platform": platform, "b_target": target, "b_at": at}
             for platform, target, at in lines],
        )

    async def postpone(self, item_id: int, at: dt.datetime, reason: str | None = None) -> None:
        """Due again at `at`, as if this attempt had not been made (`reason`: why, shown
        until it is delivered)."""
        await self._due_again(item_id, at, counted=False, error=reason)

    async def mark_retry(self, item_id: int, at: dt.datetime, error: str,
                         in_doubt: dt.datetime | None = None) -> None:
        """Due again at `at` after a failed attempt; `in_doubt` when the attempt may have
        reached the peer all the same (no answer came)."""
        await self._due_again(item_id, at, error=error, in_doubt=in_doubt)

    async def mark_held(self, item_id: int, at: dt.datetime, error: str, *,
                        prefix: str = HELD_PREFIX) -> None:
        """Wait for the operator (a configuration failure), or, with `UNREACHABLE_PREFIX`,
        for the peer to answer again: due again at `at`, and the attempt does not count
        towards dead-lettering."""
        await self._due_again(item_id, at, counted=False, error=prefix + error)

    async def _due_again(
        self, item_id: int, at: dt.datetime, *, counted: bool = True, error: str | None = None,
        in_doubt: dt.datetime | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": OutboxStatus.PENDING.value, "next_attempt_at": at, "lease_until": None,
        }
        if in_doubt is not None:  # once in doubt, only a delivery settles it
            values["in_doubt_since"] = func.coalesce(OutboxRow.in_doubt_since, in_doubt)
        if not counted:
            values["attempts"] = OutboxRow.attempts - 1
        if error is not None:
            values["last_error"] = error[:2000]
        await self.s.execute(update(OutboxRow).where(OutboxRow.id == item_id).values(**values))

    async def held(self) -> dict[str, tuple[str, int]]:
        """Platforms whose delivery waits for the operator: the reason and how many
        messages wait with it."""
        reasons = await self.s.execute(
            select(OutboxRow.platform, func.max(OutboxRow.last_error))
            .where(OutboxRow.status == OutboxStatus.PENDING.value,
                   OutboxRow.last_error.startswith(HELD_PREFIX))
            .group_by(OutboxRow.platform)
        )
        out: dict[str, tuple[str, int]] = {}
        for platform, reason in reasons.all():
            waiting = await self.s.scalar(
                select(func.count()).where(OutboxRow.platform == platform,
                                           OutboxRow.status == OutboxStatus.PENDING.value)
            )
            out[str(platform)] = (str(reason)[len(HELD_PREFIX):], int(waiting or 0))
        return out

    async def resume(self, platform: str) -> int:
        """`platform` delivers again (the operator fixed it, or its peer answers): held
        messages are due now. Returns how many."""
        result = await self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.platform == platform,
                   OutboxRow.status == OutboxStatus.PENDING.value,
                   or_(OutboxRow.last_error.startswith(HELD_PREFIX),
                       OutboxRow.last_error.startswith(UNREACHABLE_PREFIX)))
            .values(next_attempt_at=self.now, last_error=None)
        )
        return await self._announced(int(getattr(result, "rowcount", 0) or 0))

    async def retry_dead(self, since: dt.datetime | None = None) -> int:
        """Queue every dead letter (queued at or after `since`) again with fresh attempts."""
        stmt = (
            update(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.DEAD.value)
            .values(status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=self.now,
                    lease_until=None)
        )
        if since is not None:
            stmt = stmt.where(OutboxRow.created_at >= since)
        result = await self.s.execute(stmt)
        return await self._announced(int(getattr(result, "rowcount", 0) or 0))

    async def dead_platforms(self) -> set[str]:
        """The platforms that have dead letters."""
        rows = await self.s.scalars(
            select(OutboxRow.platform).where(OutboxRow.status == OutboxStatus.DEAD.value)
            .distinct()
        )
        return set(rows)

    async def mark_dead(self, item_id: int, error: str) -> None:
        await self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item_id)
            .values(status=OutboxStatus.DEAD.value, lease_until=None, last_error=error[:2000])
        )

    async def mark_dropped(self, item_id: int, reason: str) -> None:
        """Final: the message no longer applies (its intent rendered to nothing)."""
        await self.s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item_id)
            .values(status=OutboxStatus.DROPPED.value, lease_until=None,
                    last_error=reason[:2000])
        )

    async def retry(self, item_id: int) -> bool:
        """Put a dead (or waiting) message back in the queue with fresh attempts.

        A message being delivered right now (`sending`) is left alone: queueing it again
        would let a second dispatcher send it while the first one still is.
        """
        result = await self.s.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == item_id,
                OutboxRow.status.in_([OutboxStatus.DEAD.value, OutboxStatus.PENDING.value]),
            )
            .values(
                status=OutboxStatus.PENDING.value,
                attempts=0,
                next_attempt_at=self.now,
                lease_until=None,
            )
        )
        return bool(await self._announced(int(getattr(result, "rowcount", 0) or 0)))

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self.s.get(OutboxRow, item_id)
        return None if row is None else _item(row)

    async def counts(self) -> dict[str, int]:
        rows = await self.s.execute(
            select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
        )
        counts = {status.value: 0 for status in OutboxStatus}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    async def items(self, status: OutboxStatus | None = None, limit: int = 50) -> list[OutboxItem]:
        stmt = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(OutboxRow.status == status.value)
        return [_item(r) for r in await self.s.scalars(stmt)]

    async def next_due(self, platforms: list[str]) -> dt.datetime | None:
        """When the first message of a line next becomes due (None when nothing waits)."""
        value = await self.s.scalar(
            select(func.min(OutboxRow.next_attempt_at)).where(
                OutboxRow.status == OutboxStatus.PENDING.value,
                OutboxRow.id.in_(_heads(platforms)),
            )
        )
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns aggregates untyped
            value = dt.datetime.fromisoformat(value)
        assert isinstance(value, dt.datetime)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class ClaimStore:
    """(kind, subject, stage) claims: whoever inserts first acts, everyone else skips."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    async def claim_many(
        self,
        kind: str,
        claims: Sequence[tuple[int, str]],
        at: dt.datetime | None = None,
        *,
        queue: str | None = None,
    ) -> set[tuple[int, str]]:
        """Claim (subject, stage) pairs of `kind` at once, as claimed at `at` (default now),
        in queue state `queue` (a reminder's claim is its queue entry, "pending");
        returns the ones this call won."""
        return await claim_many(self.s, kind, claims, at or self.now, queue)

    async def claim_event(self, platform: str, event_id: str) -> bool:
        """Record an inbound platform event; False when it was already handled."""
        new_id = await insert_ignore(
            self.s,
            ProcessedEventRow,
            {"platform": platform, "event_id": fit_key(event_id), "created_at": self.now},
            ("platform", "event_id"),
        )
        return new_id is not None

    async def release_event(self, platform: str, event_id: str) -> None:
        """Forget an inbound event whose handling failed, so the platform's retry is served."""
        await self.s.execute(
            delete(ProcessedEventRow).where(
                ProcessedEventRow.platform == platform,
                ProcessedEventRow.event_id == fit_key(event_id),
            )
        )

    async def counts(self) -> dict[str, int]:
        """Claims taken by kind (each reminder, renewal notice and SLA alert is one)."""
        rows = await self.s.execute(
            select(ReminderClaimRow.kind, func.count()).group_by(ReminderClaimRow.kind))
        return {str(kind): int(n) for kind, n in rows}

    async def claimed(self, kind: str, subject_id: int) -> set[str]:
        rows = await self.s.scalars(
            select(ReminderClaimRow.stage).where(
                ReminderClaimRow.kind == kind, ReminderClaimRow.subject_id == subject_id
            )
        )
        return set(rows)

"""Set-based claims and outbox rows for sweeps that act on thousands of subjects at once.

On PostgreSQL each call is one statement over `unnest` arrays, so the statement text is
fixed and the cost is the rows; on SQLite claims are chunked multi-row VALUES (whose
RETURNING says which were won) and outbox rows one compiled INSERT run for every row. All
insert with ON CONFLICT DO NOTHING, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import OutboxStatus
from storage.models import OutboxRow, ReminderClaimRow
from storage.sql import insert_for

_SQLITE_CHUNK = 200
KEY_MAX = 255  # the width of outbox.idempotency_key and processed_events.event_id


def fit_key(key: str) -> str:
    """`key` as stored: unchanged when it fits its column, else a readable head followed by
    the SHA-256 of the whole key, so a long key (a 254-character email, a long room id)
    still maps to one stored key and two long keys never collide by truncation."""
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: KEY_MAX - len(digest) - 1]}#{digest}"


_PG_CLAIMS = text(
    """
    INSERT INTO reminder_claims (kind, subject_id, stage, claimed_at, queue)
    SELECT :kind, u.subject_id, u.stage, :now, :queue
    FROM unnest(CAST(:subjects AS BIGINT[]), CAST(:stages AS TEXT[])) AS u(subject_id, stage)
    ON CONFLICT (kind, subject_id, stage) DO NOTHING
    RETURNING subject_id, stage
    """
)

_PG_OUTBOX = text(
    """
    INSERT INTO outbox (idempotency_key, platform, target, kind, recipient, payload, status,
                        attempts, next_attempt_at, created_at)
    SELECT u.k, u.p, u.t, u.kd, u.r, CAST(u.pl AS JSON), :status, 0, :now, :now
    FROM unnest(CAST(:keys AS TEXT[]), CAST(:platforms AS TEXT[]), CAST(:targets AS TEXT[]),
                CAST(:kinds AS TEXT[]), CAST(:recipients AS TEXT[]), CAST(:payloads AS TEXT[]))
         AS u(k, p, t, kd, r, pl)
    ON CONFLICT (idempotency_key) DO NOTHING
    """
)


@dataclass(frozen=True, slots=True)
class OutboxDraft:
    """One outbox row to insert: the same columns `OutboxStore.enqueue` takes."""

    key: str
    platform: str
    target: str
    kind: str
    recipient: str
    payload: dict[str, Any]


async def claim_many(
    session: AsyncSession,
    kind: str,
    claims: Sequence[tuple[int, str]],
    now: dt.datetime,
    queue: str | None = None,
) -> set[tuple[int, str]]:
    """Insert (subject, stage) claims of `kind` (in queue state `queue`, see
    `storage.reminder_queue`); returns the ones this call won."""
    if not claims:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        result = await session.execute(
            _PG_CLAIMS,
            {
                "kind": kind,
                "now": now,
                "queue": queue,
                "subjects": [c[0] for c in claims],
                "stages": [c[1] for c in claims],
            },
        )
        return {(int(r[0]), str(r[1])) for r in result}
    won: set[tuple[int, str]] = set()
    table = ReminderClaimRow.__table__
    for start in range(0, len(claims), _SQLITE_CHUNK):
        chunk = claims[start : start + _SQLITE_CHUNK]
        stmt = (
            insert_for(session, ReminderClaimRow)
            .values(
                [{"kind": kind, "subject_id": s, "stage": st, "claimed_at": now,
                  "queue": queue} for s, st in chunk]
            )
            .on_conflict_do_nothing(index_elements=["kind", "subject_id", "stage"])
            .returning(table.c.subject_id, table.c.stage)
        )
        won |= {(int(r[0]), str(r[1])) for r in await session.execute(stmt)}
    return won


async def enqueue_many(
    session: AsyncSession, drafts: Sequence[OutboxDraft], now: dt.datetime
) -> int:
    """Queue outbox rows; rows whose idempotency key exists are skipped. Returns the count."""
    if not drafts:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        result = await session.execute(
            _PG_OUTBOX,
            {
                "status": OutboxStatus.PENDING.value,
                "now": now,
                "keys": [fit_key(d.key) for d in drafts],
                "platforms": [d.platform for d in drafts],
                "targets": [d.target for d in drafts],
                "kinds": [d.kind for d in drafts],
                "recipients": [d.recipient for d in drafts],
                "payloads": _payload_texts(drafts),
            },
        )
        return int(getattr(result, "rowcount", 0) or 0)
    # SQLite: one compiled single-row INSERT run for every draft (executemany), rather
    # than a multi-row VALUES statement compiled anew for each chunk.
    result = await session.execute(
        insert_for(session, OutboxRow).on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        ),
        [
            {
                "idempotency_key": fit_key(d.key),
                "platform": d.platform,
                "target": d.target,
                "kind": d.kind,
                "recipient": d.recipient,
                "payload": d.payload,
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for d in drafts
        ],
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _payload_texts(drafts: Sequence[OutboxDraft]) -> list[str]:
    """JSON text per draft, encoding a payload shared by several drafts only once."""
    seen: dict[int, str] = {}
    out = []
    for d in drafts:
        text = seen.get(id(d.payload))
        if text is None:
            text = seen[id(d.payload)] = json.dumps(d.payload, separators=(",", ":"))
        out.append(text)
    return out

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


# Rows queued at once after which the outbox's planner statistics are refreshed.
ANALYZE_AFTER = 1000


def fit_key(key: str) -> str:
    """`key` as stored: unchanged when it fits its column, else a readable head followed by
    the SHA-256 of the whole key, so a long key (a 254-character email, a long room id)
    still maps to one stored key and two long keys never collide by truncation."""
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: KEY_MAX - len(digest) - 1]}#{digest}"


# The key rule of `fit_key` and the recipient rule of `person_drafts`, restated in SQL for
# the set-based reminder fan-out below: a change to either changes both.
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


# One statement fans claimed notices out to the organizations' billing contacts: a DM per
# linked account, else an email (the rule of `bot.services.notify.person_drafts`), keys
# `<base>:<platform>:<target>`, hashed when longer than the column.
_PG_FAN_OUT = text(
    """
    INSERT INTO outbox (idempotency_key, platform, target, kind, recipient, payload, status,
                        attempts, next_attempt_at, created_at)
    SELECT CASE WHEN length(r.k) > 255
                THEN left(r.k, 190) || '#' || encode(sha256(convert_to(r.k, 'UTF8')), 'hex')
                ELSE r.k END,
           r.p, r.t, r.kd, r.label, CAST(r.pl AS JSON), :status, 0, :now, :now
    FROM (
        SELECT CASE WHEN ci.id IS NULL THEN u.base || ':email:' || c.email
                    ELSE u.base || ':' || ci.platform || ':' || a.address END AS k,
               coalesce(ci.platform, 'email') AS p,
               coalesce(a.address, c.email) AS t,
               CASE WHEN ci.id IS NULL THEN 'email' ELSE 'dm' END AS kd,
               c.name || ' <' || c.email || '>' AS label,
               u.pl, u.n, c.id AS contact_id, ci.id AS account_id
        FROM unnest(CAST(:bases AS TEXT[]), CAST(:orgs AS BIGINT[]), CAST(:payloads AS TEXT[]))
             WITH ORDINALITY AS u(base, org_id, pl, n)
        -- Each organization's contacts through the org_id index (OFFSET 0 keeps the
        -- planner from hashing the whole contacts table for a batch of a few hundred).
        JOIN LATERAL (
            SELECT c.id, c.name, c.email FROM contacts c
            WHERE c.org_id = u.org_id AND (c.is_main OR (:admins AND c.is_administrative))
            OFFSET 0
        ) AS c ON true
        LEFT JOIN chat_identities ci ON ci.contact_id = c.id
        -- the account as an outbox target: `bot.domain.chat_address`
        LEFT JOIN LATERAL (
            SELECT CASE WHEN ci.platform = 'slack' AND ci.workspace <> ''
                        THEN ci.workspace || ':' || ci.user_id ELSE ci.user_id END AS address
        ) AS a ON true
    ) AS r
    -- Queued (so delivered) in the notices' order, each person's accounts in turn.
    ORDER BY r.n, r.contact_id, r.account_id
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
        return await _fresh_statistics(session, int(getattr(result, "rowcount", 0) or 0))
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


async def fan_out_to_billing_contacts(
    session: AsyncSession,
    notices: Sequence[tuple[str, int, dict[str, Any]]],
    *,
    main_only: bool,
    now: dt.datetime,
) -> int | None:
    """Queue each (key base, organization id, payload) to the organization's Main (and
    unless `main_only`, Administrative) contacts in one statement, as `person_drafts`
    would; returns the rows queued, or None where the engine has no set-based path
    (SQLite), for the caller to queue row by row."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    if not notices:
        return 0
    result = await session.execute(
        _PG_FAN_OUT,
        {
            "bases": [n[0] for n in notices],
            "orgs": [n[1] for n in notices],
            "payloads": [json.dumps(n[2], separators=(",", ":")) for n in notices],
            "admins": not main_only,
            "status": OutboxStatus.PENDING.value,
            "now": now,
        },
    )
    return await _fresh_statistics(session, int(getattr(result, "rowcount", 0) or 0))


async def _fresh_statistics(session: AsyncSession, queued: int) -> int:
    """After a burst of `queued` rows on PostgreSQL, analyze the outbox at once rather than
    when autovacuum next looks (up to a minute): the claim query's plan rests on how many
    messages are waiting, and planned for a near-empty table it rescans every line per
    row, taking seconds per claim until the statistics catch up. Returns `queued`."""
    if queued >= ANALYZE_AFTER:
        await session.execute(text("ANALYZE outbox"))
    return queued

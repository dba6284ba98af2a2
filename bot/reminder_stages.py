"""When a reminder stage is due (SPEC §4 Reminders), as pure functions of dates and zones.

A stage falls on a date (the due date plus an offset, or the subscription end minus one).
It is *reached* at the reminder time (09:00 by default) in the organization's timezone on
that date, or on the next weekday when the date is a Saturday or Sunday. DST is handled by
the zone: 09:00 local is a different UTC instant in winter and summer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import lru_cache
from zoneinfo import ZoneInfo

INVOICE = "invoice"
RENEWAL = "renewal"


def invoice_stage(offset: int) -> str:
    """The stage name of an invoice reminder: "due-7", "due+0", "due+30"."""
    return f"due{offset:+d}"


def invoice_claim(due_on: dt.date, offset: int) -> str:
    """The claimed stage of an invoice reminder: "2027-01-15:due+7".

    A claim belongs to the (invoice, due date, stage), so when the due date moves, the
    stages of the new schedule that are still ahead are sent again.
    """
    return f"{due_on.isoformat()}:{invoice_stage(offset)}"


def invoice_offset(stage: str, due_on: dt.date | None = None) -> int | None:
    """The offset a claimed stage stands for, when it counts for the due date `due_on`.

    Claims without a date ("due+7", written before claims carried the due date) count
    for whatever the due date is.
    """
    date, sep, name = stage.rpartition(":")
    if sep and (due_on is None or date != due_on.isoformat()):
        return None
    if not name.startswith("due"):
        return None
    try:
        return int(name[3:])
    except ValueError:
        return None


def renewal_stage(ends_on: dt.date, days_before: int) -> str:
    """The stage name of a renewal notice: "2026-12-31:60" (60 days before the end)."""
    return f"{ends_on.isoformat()}:{days_before}"


def renewal_days(stage: str, ends_on: dt.date) -> int | None:
    prefix = f"{ends_on.isoformat()}:"
    if not stage.startswith(prefix):
        return None
    try:
        return int(stage[len(prefix) :])
    except ValueError:
        return None


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def next_weekday(day: dt.date) -> dt.date:
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


@lru_cache(maxsize=65536)
def reached_at(stage_date: dt.date, timezone: str, at: dt.time) -> dt.datetime:
    """The UTC instant a stage on `stage_date` is reached in `timezone`."""
    local = dt.datetime.combine(next_weekday(stage_date), at, tzinfo=zone(timezone))
    # Normalise a wall time that falls in a DST gap to the instant after the gap.
    return local.astimezone(dt.UTC).astimezone(zone(timezone)).astimezone(dt.UTC)


def latest_reached_day(timezone: str, at: dt.time, now: dt.datetime) -> dt.date:
    """The latest stage date reached at `now` in `timezone`: a stage on day D is reached
    exactly when D is this day or earlier.

    `reached_at` never decreases as the day advances (weekend days share the Monday, a
    DST gap moves the instant forward by less than a day), so "reached" is one cut-off
    per zone; the set-based sweep compares due dates with it instead of running the
    zone and weekend rules row by row.
    """
    day = now.astimezone(zone(timezone)).date() + dt.timedelta(days=2)
    while reached_at(day, timezone, at) > now:
        day -= dt.timedelta(days=1)
    return day


@lru_cache(maxsize=65536)
def latest_invoice_offset(
    due_on: dt.date, offsets: tuple[int, ...], timezone: str, at: dt.time, now: dt.datetime
) -> int | None:
    """The offset of the latest stage reached at `now`, or None before the first."""
    best: int | None = None
    for offset in sorted(offsets):
        if reached_at(due_on + dt.timedelta(days=offset), timezone, at) <= now:
            best = offset
    return best


def invoice_stage_due(
    due_on: dt.date,
    offsets: tuple[int, ...],
    timezone: str,
    at: dt.time,
    now: dt.datetime,
    claimed: Iterable[str],
) -> str | None:
    """The stage to claim now (see `invoice_claim`), if any: the latest reached, unless it
    or a later one was claimed for this due date.

    After downtime this is only the latest missed stage; after the clock moves back it is
    nothing, because a later stage is already claimed.
    """
    latest = latest_invoice_offset(due_on, offsets, timezone, at, now)
    if latest is None:
        return None
    done = [o for o in (invoice_offset(s, due_on) for s in claimed) if o is not None]
    if any(o >= latest for o in done):
        return None
    return invoice_claim(due_on, latest)


def renewal_stage_due(
    ends_on: dt.date,
    days_before: Sequence[int],
    timezone: str,
    at: dt.time,
    now: dt.datetime,
    claimed: Iterable[str],
) -> tuple[str, int] | None:
    """The renewal notice to send now (stage, days before the end), if any."""
    if now.astimezone(zone(timezone)).date() > ends_on:
        return None
    latest: int | None = None
    for days in sorted(days_before, reverse=True):
        if reached_at(ends_on - dt.timedelta(days=days), timezone, at) <= now:
            latest = days
    if latest is None:
        return None
    done = [d for d in (renewal_days(s, ends_on) for s in claimed) if d is not None]
    if any(d <= latest for d in done):
        return None
    return renewal_stage(ends_on, latest), latest

"""Business time: due times and elapsed time counted only in the hours a contract covers.

Pure functions over a `Schedule` (weekly hours in an IANA timezone, minus the public
holidays of an optional country, or round the clock). Windows are built per local day and
converted to UTC, so nights, weekends, holidays and DST changes all fall out of the same
walk. Holidays come from the `holidays` package, never from a list kept here.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"^\s*(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)
# Longest walk through the calendar: more than any run of closed days a real schedule has.
_MAX_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class Hours:
    """Weekly business hours: the open weekdays (0 = Monday) and one daily window."""

    days: frozenset[int]
    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> Hours:
        """`mon-fri 09:00-17:00` (or one day, `sat 10:00-14:00`); ValueError when malformed."""
        match = _HOURS.match(text.lower())
        if match is None:
            raise ValueError(f"{text!r} is not business hours like 'mon-fri 09:00-17:00'")
        first, last = match["first"], match["last"] or match["first"]
        if first not in _DAYS or last not in _DAYS:
            raise ValueError(f"{text!r}: days are mon, tue, wed, thu, fri, sat, sun")
        a, b = _DAYS.index(first), _DAYS.index(last)
        days = frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7), *range(b + 1)])
        try:
            start = dt.time.fromisoformat(match["start"].zfill(5))
            end = dt.time.fromisoformat(match["end"].zfill(5))
        except ValueError:
            raise ValueError(f"{text!r}: times are HH:MM between 00:00 and 23:59") from None
        if end <= start:
            raise ValueError(f"{text!r}: the day must end after it starts")
        return cls(days, start, end)

    @property
    def day_length(self) -> dt.timedelta:
        """One business day: the length of the daily window (8 h for 09:00-17:00)."""
        return dt.datetime.combine(dt.date.min, self.end) - dt.datetime.combine(
            dt.date.min, self.start
        )

    @property
    def label(self) -> str:
        """`9×5` for Monday to Friday 09:00-17:00, otherwise `Mon–Sat 08:00–18:00`."""
        if self.days == frozenset(range(5)) and (self.start, self.end) == (
            dt.time(9), dt.time(17)
        ):
            return "9×5"
        ordered = sorted(self.days)
        if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
            span = f"{_DAYS[ordered[0]].title()}–{_DAYS[ordered[-1]].title()}"
        else:
            span = ",".join(_DAYS[d].title() for d in ordered)
        return f"{span} {self.start:%H:%M}–{self.end:%H:%M}"


STANDARD_HOURS = Hours(frozenset(range(5)), dt.time(9), dt.time(17))


def supported_country(code: str) -> bool:
    """True when `code` (ISO 3166 alpha-2) has a public holiday calendar."""
    return code in holidays.list_supported_countries()


@functools.lru_cache(maxsize=256)
def _holidays(country: str) -> holidays.HolidayBase:
    return holidays.country_holidays(country)


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the clock runs: `hours` in `timezone` minus `country`'s public holidays, or
    always (`hours` None, 24×7)."""

    timezone: str = "UTC"
    hours: Hours | None = STANDARD_HOURS
    country: str | None = None

    @property
    def always(self) -> bool:
        return self.hours is None

    def is_business_day(self, day: dt.date) -> bool:
        if self.hours is None:
            return True
        if day.weekday() not in self.hours.days:
            return False
        return not (self.country and supported_country(self.country)
                    and day in _holidays(self.country))

    def windows(self, start: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Business windows in UTC, in order, from the local day of `start` on (the first
        may lie before `start`)."""
        hours = self.hours
        if hours is None:
            yield start, dt.datetime.max.replace(tzinfo=dt.UTC)
            return
        tz = _zone(self.timezone)
        day = start.astimezone(tz).date()
        for _ in range(_MAX_DAYS):
            if self.is_business_day(day):
                yield (
                    dt.datetime.combine(day, hours.start, tzinfo=tz).astimezone(dt.UTC),
                    dt.datetime.combine(day, hours.end, tzinfo=tz).astimezone(dt.UTC),
                )
            day += dt.timedelta(days=1)

    def add(self, start: dt.datetime, delta: dt.timedelta) -> dt.datetime:
        """The instant `delta` of business time after `start` (`start` itself for zero)."""
        if delta <= dt.timedelta(0):
            return start
        if self.hours is None:
            return start + delta
        left = delta
        for opens, closes in self.windows(start):
            opens = max(opens, start)
            if closes <= opens:
                continue
            if left <= closes - opens:
                return opens + left
            left -= closes - opens
        raise ValueError("no business time in the next three years")

    def between(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """Business time from `a` to `b`; negative when `b` is before `a`."""
        if b < a:
            return -self.between(b, a)
        if self.hours is None:
            return b - a
        total = dt.timedelta(0)
        for opens, closes in self.windows(a):
            if opens >= b:
                break
            opens, closes = max(opens, a), min(closes, b)
            if closes > opens:
                total += closes - opens
        return total


def describe(target: dt.timedelta, schedule: Schedule, level: str = "") -> str:
    """A target as the contract words it: `4 business hours`, `2 business days`,
    `2 hours, 24×7`; naming the level, `4 business hours, Standard 9×5` or
    `2 hours, Premium 24×7`."""
    hours = schedule.hours
    named = f"{level.title()} " if level else ""
    if hours is None:
        return f"{_amount(target, dt.timedelta(hours=1), 'hour')}, {named}24×7"
    if level:
        return f"{describe(target, schedule)}, {named}{hours.label}"
    day = hours.day_length
    if target >= day and target % day == dt.timedelta(0):
        return _amount(target, day, "business day")
    return _amount(target, dt.timedelta(hours=1), "business hour")


def hours_and_minutes(delta: dt.timedelta) -> str:
    """A stretch of business time in hours, never days of 24 h: `3h 20m`, `26h 0m`."""
    minutes = int(abs(delta).total_seconds() // 60)
    return f"{minutes // 60}h {minutes % 60}m"


def _amount(value: dt.timedelta, unit: dt.timedelta, word: str) -> str:
    count = value / unit
    shown = str(int(count)) if count == int(count) else f"{count:.2g}"
    return f"{shown} {word}{'' if count == 1 else 's'}"

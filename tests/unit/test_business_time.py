"""Business time: due times across nights, weekends, public holidays and DST (pure)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.business_time import STANDARD_HOURS, Hours, Schedule, describe
from bot.domain import Level, Organization, Program, Region, Severity
from bot.services.sla import response_target, schedule_for
from bot.wiring.config import Settings

MADRID = ZoneInfo("Europe/Madrid")
SPAIN = Schedule("Europe/Madrid", STANDARD_HOURS, "ES")
HOUR = dt.timedelta(hours=1)


def madrid(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=MADRID)


def local(at: dt.datetime) -> tuple[str, str]:
    shown = at.astimezone(MADRID)
    return f"{shown:%a %d %b %H:%M}", shown.tzname() or ""


def org(level: Level, country: str | None = "ES") -> Organization:
    return Organization(1, "acme", "ACME", Program.CUSTOMER, level, Region.EUROPE,
                        "Europe/Madrid", None, None, False, (), country)


def test_friday_afternoon_rolls_over_the_weekend() -> None:
    """Friday 16:00 + 4 business hours: one hour on Friday, three on Monday."""
    assert local(SPAIN.add(madrid(2026, 11, 27, 16, 0), 4 * HOUR)) == ("Mon 30 Nov 12:00", "CET")


def test_opened_at_night_starts_at_the_next_opening() -> None:
    """Tuesday 22:00 + 2 business hours is Wednesday 11:00; 8 hours is Wednesday 17:00."""
    night = madrid(2026, 11, 24, 22, 0)
    assert local(SPAIN.add(night, 2 * HOUR)) == ("Wed 25 Nov 11:00", "CET")
    assert local(SPAIN.add(night, 8 * HOUR)) == ("Wed 25 Nov 17:00", "CET")
    assert local(SPAIN.add(madrid(2026, 11, 25, 6, 0), 9 * HOUR)) == ("Thu 26 Nov 10:00", "CET")


def test_opened_on_a_public_holiday() -> None:
    """8 December is a public holiday in Spain: the clock starts on the 9th."""
    assert local(SPAIN.add(madrid(2026, 12, 8, 10, 0), 4 * HOUR)) == ("Wed 09 Dec 13:00", "CET")
    without = Schedule("Europe/Madrid", STANDARD_HOURS, None)
    assert local(without.add(madrid(2026, 12, 8, 10, 0), 4 * HOUR)) == ("Tue 08 Dec 14:00", "CET")


def test_opened_the_day_before_a_public_holiday() -> None:
    """Thursday 24 December 16:00 + 2 h: Christmas (Friday) and the weekend are skipped."""
    assert local(SPAIN.add(madrid(2026, 12, 24, 16, 0), 2 * HOUR)) == ("Mon 28 Dec 10:00", "CET")
    assert SPAIN.between(madrid(2026, 12, 24, 16, 0), madrid(2026, 12, 28, 10, 0)) == 2 * HOUR


def test_a_dst_change_in_between() -> None:
    """Summer time ends on Sunday 25 October: Friday 16:00 CEST + 4 h is Monday 12:00 CET,
    and each business day still holds 8 hours."""
    friday = madrid(2026, 10, 23, 16, 0)
    due = SPAIN.add(friday, 4 * HOUR)
    assert local(friday) == ("Fri 23 Oct 16:00", "CEST")
    assert local(due) == ("Mon 26 Oct 12:00", "CET")
    assert SPAIN.between(madrid(2026, 10, 23, 9, 0), madrid(2026, 10, 26, 17, 0)) == 16 * HOUR
    spring = SPAIN.add(madrid(2026, 3, 27, 13, 0), 8 * HOUR)  # into summer time
    assert local(spring) == ("Mon 30 Mar 13:00", "CEST")


def test_premium_sev1_at_three_on_sunday_runs_round_the_clock() -> None:
    """Premium sev1 is 2 hours, 24×7: due at 05:00 on the same Sunday; sev3 waits for
    Monday's business hours."""
    cfg = Settings()
    sunday = madrid(2026, 11, 29, 3, 0)
    sev1 = response_target(cfg, org(Level.PREMIUM), Severity.SEV1, sunday)
    assert local(sev1.due) == ("Sun 29 Nov 05:00", "CET")
    assert sev1.wording == "2 hours, 24×7"
    sev3 = response_target(cfg, org(Level.PREMIUM), Severity.SEV3, sunday)
    assert local(sev3.due) == ("Mon 30 Nov 17:00", "CET")
    assert sev3.wording == "1 business day"
    assert local(sev3.warn) == ("Mon 30 Nov 15:24", "CET")


def test_default_targets_follow_the_contract_table() -> None:
    """The defaults by level × severity, as the contract words them (8 business hours are
    one business day)."""
    cfg = Settings()
    table = {
        level: [describe(cfg.sla_target(level, sev),
                         schedule_for(cfg, org(level), sev)) for sev in Severity]
        for level in Level
    }
    assert table == {
        Level.BASIC: ["4 business hours", "1 business day", "2 business days",
                      "3 business days"],
        Level.STANDARD: ["2 business hours", "4 business hours", "1 business day",
                         "2 business days"],
        Level.PREMIUM: ["2 hours, 24×7", "4 hours, 24×7", "1 business day",
                        "2 business days"],
    }


def test_business_hours_are_configurable_per_level() -> None:
    """A level may keep other hours; the business day follows them."""
    cfg = Settings(sla_hours={"basic": "mon-sat 08:00-18:00"})
    hours = cfg.sla_coverage(Level.BASIC, Severity.SEV3)
    assert hours is not None and hours.day_length == 10 * HOUR
    assert hours.label == "Mon–Sat 08:00–18:00"
    assert cfg.sla_coverage(Level.STANDARD, Severity.SEV3) == STANDARD_HOURS
    saturday = Schedule("Europe/Madrid", hours, None)
    assert local(saturday.add(madrid(2026, 11, 28, 17, 0), 2 * HOUR)) == ("Mon 30 Nov 09:00",
                                                                          "CET")


@pytest.mark.parametrize("text", ["mon-fri", "mon-fri 17:00-09:00", "xyz 09:00-17:00",
                                  "mon-fri 25:00-26:00"])
def test_malformed_hours_are_one_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"business hours|days are|times are|end after"):
        Hours.parse(text)


def test_bad_business_hours_in_settings_name_the_setting() -> None:
    """A malformed SUBDESK_SLA_HOURS or unknown level is refused when settings load."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sla_hours"):
        Settings(sla_hours={"standard": "weekdays"})
    with pytest.raises(ValidationError, match="not a level"):
        Settings(sla_hours={"gold": "mon-fri 09:00-17:00"})


_starts = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2028, 12, 31),
                       timezones=st.just(dt.UTC))
_spans = st.integers(min_value=1, max_value=5 * 8 * 60).map(lambda m: dt.timedelta(minutes=m))


@settings(max_examples=150, deadline=None)
@given(start=_starts, delta=_spans)
def test_business_time_added_is_business_time_elapsed(
    start: dt.datetime, delta: dt.timedelta
) -> None:
    """Whatever the start and length, the due time is `delta` of business time later, on a
    business day within its hours, and never earlier than the calendar would put it."""
    due = SPAIN.add(start, delta)
    assert SPAIN.between(start, due) == delta
    assert SPAIN.between(due, start) == -delta
    assert due >= start + delta
    shown = due.astimezone(MADRID)
    assert SPAIN.is_business_day(shown.date())
    assert dt.time(9) < shown.time() <= dt.time(17)

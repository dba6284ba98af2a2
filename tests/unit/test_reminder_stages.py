"""When reminder stages are reached: weekdays, 09:00 local, DST, downtime and clock jumps."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.presentation.money import day, locale_for, money
from bot.reminder_stages import (
    invoice_claim,
    invoice_offset,
    invoice_stage,
    invoice_stage_due,
    latest_invoice_offset,
    latest_reached_day,
    reached_at,
    renewal_stage_due,
)

pytestmark = pytest.mark.nodb

NINE = dt.time(9, 0)
OFFSETS = (-7, 0, 7, 14, 30)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_stage_names_round_trip() -> None:
    assert [invoice_stage(o) for o in OFFSETS] == ["due-7", "due+0", "due+7", "due+14",
                                                   "due+30"]
    assert [invoice_offset(invoice_stage(o)) for o in OFFSETS] == list(OFFSETS)
    assert invoice_offset("2026-12-31:60") is None
    due = dt.date(2027, 1, 15)
    assert [invoice_offset(invoice_claim(due, o), due) for o in OFFSETS] == list(OFFSETS)
    assert invoice_offset(invoice_claim(due, 7), dt.date(2027, 2, 15)) is None, (
        "a claim belongs to its due date")
    assert invoice_offset("due+7", due) == 7, "undated claims count for any due date"


def test_weekend_stage_waits_for_monday_nine_local() -> None:
    """Saturday and Sunday stage dates are reached on Monday at 09:00 local."""
    assert reached_at(dt.date(2027, 1, 16), "Europe/Madrid", NINE) == utc("2027-01-18T08:00")
    assert reached_at(dt.date(2027, 1, 17), "Europe/Madrid", NINE) == utc("2027-01-18T08:00")
    assert reached_at(dt.date(2027, 1, 15), "Europe/Madrid", NINE) == utc("2027-01-15T08:00")


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # Madrid: CEST → CET on Sun 25 Oct 2026; CET → CEST on Sun 28 Mar 2027.
        ("Europe/Madrid", (dt.date(2026, 10, 23), "2026-10-23T07:00"),
         (dt.date(2026, 10, 26), "2026-10-26T08:00")),
        ("Europe/Madrid", (dt.date(2027, 3, 26), "2027-03-26T08:00"),
         (dt.date(2027, 3, 29), "2027-03-29T07:00")),
        # New York: EST → EDT on Sun 14 Mar 2027; EDT → EST on Sun 1 Nov 2026.
        ("America/New_York", (dt.date(2027, 3, 12), "2027-03-12T14:00"),
         (dt.date(2027, 3, 15), "2027-03-15T13:00")),
        ("America/New_York", (dt.date(2026, 10, 30), "2026-10-30T13:00"),
         (dt.date(2026, 11, 2), "2026-11-02T14:00")),
    ],
)
def test_nine_local_across_dst_changes(
    zone: str, before: tuple[dt.date, str], after: tuple[dt.date, str]
) -> None:
    """09:00 local maps to the UTC hour of the offset in force on that day."""
    assert reached_at(before[0], zone, NINE) == utc(before[1])
    assert reached_at(after[0], zone, NINE) == utc(after[1])


def test_latest_stage_only_and_never_backwards() -> None:
    """After downtime only the latest reached stage is due; a later claim blocks earlier ones."""
    due = dt.date(2027, 1, 15)
    zone = "Europe/Madrid"
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-01-08T07:59"), ()) is None
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-01-08T08:00"), ()) == (
        "2027-01-15:due-7")
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-02-01T12:00"), ()) == (
        "2027-01-15:due+14")
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-02-01T12:00"),
                             {"due+14"}) is None
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-01-16T12:00"),
                             {"due+14"}) is None
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-03-01T12:00"),
                             {"2027-01-15:due+14"}) == "2027-01-15:due+30"
    assert invoice_stage_due(due, OFFSETS, zone, NINE, utc("2027-02-01T12:00"),
                             {"2026-12-15:due+30"}) == "2027-01-15:due+14", (
        "claims of an earlier due date do not count")


# Zones whose rules make "09:00 local" awkward: DST both ways, a half-hour DST (Lord Howe),
# DST in the southern summer, negative DST (Dublin), a removed day (Apia skipped 30 Dec
# 2011), quarter-hour offsets, the extremes of the offset range, and a name no zone has
# (treated as UTC).
ZONES = ("Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Europe/Dublin", "Pacific/Apia", "Asia/Kathmandu", "Pacific/Kiritimati",
         "Pacific/Pago_Pago", "America/St_Johns", "Africa/Casablanca", "UTC", "Not/A_Zone")
# Reminder times, among them wall times that do not exist on a spring-forward day.
TIMES = (dt.time(9, 0), dt.time(2, 30), dt.time(0, 0), dt.time(23, 59), dt.time(3, 15))
_nows = st.datetimes(min_value=dt.datetime(2011, 1, 1), max_value=dt.datetime(2030, 12, 31),
                     timezones=st.just(dt.UTC))


@settings(max_examples=400, deadline=None)
@given(zone=st.sampled_from(ZONES), at=st.sampled_from(TIMES), now=_nows)
def test_one_cut_off_day_per_zone_decides_every_stage(
    zone: str, at: dt.time, now: dt.datetime
) -> None:
    """The set-based sweep's rule: a stage on day D is reached at `now` exactly when D is on
    or before the zone's cut-off day, for every day around now (weekends, DST gaps and a
    skipped day included), so comparing due dates with one day per zone in SQL gives the
    same stage as `invoice_stage_due` row by row."""
    cut = latest_reached_day(zone, at, now)
    today = now.date()
    for shift in range(-12, 5):
        stage_day = today + dt.timedelta(days=shift)
        assert (reached_at(stage_day, zone, at) <= now) == (stage_day <= cut), stage_day
    for shift in range(-40, 12):
        due = today + dt.timedelta(days=shift)
        reached = [o for o in OFFSETS if due + dt.timedelta(days=o) <= cut]
        assert latest_invoice_offset(due, OFFSETS, zone, at, now) == (
            max(reached) if reached else None), due


def test_cut_off_day_on_weekends_and_before_nine() -> None:
    """Before 09:00 on a Monday, and all weekend, the last reached stage day is Friday."""
    friday = dt.date(2027, 1, 15)
    for now in ("2027-01-15T08:00", "2027-01-16T12:00", "2027-01-17T23:00",
                "2027-01-18T07:59"):
        assert latest_reached_day("Europe/Madrid", NINE, utc(now)) == friday, now
    assert latest_reached_day("Europe/Madrid", NINE, utc("2027-01-18T08:00")) == (
        dt.date(2027, 1, 18))
    assert latest_reached_day("Europe/Madrid", NINE, utc("2027-01-15T07:59")) == (
        dt.date(2027, 1, 14))


def test_renewal_stages_before_the_end() -> None:
    """60, 30 and 7 days before the end; nothing once the subscription has ended."""
    ends = dt.date(2027, 6, 30)
    zone = "Europe/Madrid"
    days = (60, 30, 7)
    assert renewal_stage_due(ends, days, zone, NINE, utc("2027-04-30T12:00"), ()) is None
    assert renewal_stage_due(ends, days, zone, NINE, utc("2027-05-03T12:00"), ()) == (
        "2027-06-30:60", 60)  # 1 May is a Saturday
    assert renewal_stage_due(ends, days, zone, NINE, utc("2027-06-25T12:00"),
                             {"2027-06-30:60"}) == ("2027-06-30:7", 7)
    assert renewal_stage_due(ends, days, zone, NINE, utc("2027-06-25T12:00"),
                             {"2027-06-30:7"}) is None
    assert renewal_stage_due(ends, days, zone, NINE, utc("2027-07-02T12:00"), ()) is None


def test_money_and_dates_follow_the_region_locale() -> None:
    """Babel formats the invoice currency for the organization's region."""
    from decimal import Decimal

    assert locale_for("europe") == "en_IE"
    assert money(Decimal("1234.5"), "EUR", "europe") == "€1,234.50"
    assert money(Decimal("1234.5"), "USD", "us") == "$1,234.50"
    assert money(Decimal("1234.5"), "USD", "europe") == "US$1,234.50"
    assert money(Decimal("1000"), "JPY", "worldwide") == "¥1,000"
    assert day(dt.date(2026, 12, 1), "europe") == "1 Dec 2026"
    assert day(dt.date(2026, 12, 1), "us") == "Dec 1, 2026"

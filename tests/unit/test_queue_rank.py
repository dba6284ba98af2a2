"""The triage queue's ranking: merging each calendar's clocks by due time picks exactly the
clocks a full sort by covered time left would."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from bot.business_time import Schedule
from bot.domain import Level, Severity
from bot.services.triage import most_urgent
from bot.wiring.config import Settings
from storage.tickets import RunningClock

pytestmark = pytest.mark.nodb

ZONES = (("Europe/Madrid", "ES"), ("Europe/Madrid", None), ("America/New_York", "US"),
         ("Asia/Tokyo", None))


@pytest.mark.parametrize("seed", range(20))
def test_merged_runs_match_a_full_sort(seed: int) -> None:
    """Random clocks over four timezones and countries, every level and severity, due from
    a week overdue to a month ahead, at a random instant (weekends and nights included):
    the 25 picked, in order, are the first 25 of all clocks sorted by (covered time left,
    due, id), with the same time left."""
    rng = random.Random(seed)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randint(0, 10080))
    clocks = []
    for ticket_id in range(1, rng.randint(30, 400)):
        zone, country = rng.choice(ZONES)
        due = now + dt.timedelta(minutes=rng.randint(-10080, 43200))
        clocks.append(RunningClock(ticket_id, due, rng.choice(list(Severity)), zone, country,
                                   rng.choice(list(Level))))

    def left(c: RunningClock) -> dt.timedelta:
        schedule = Schedule(c.timezone, settings.sla_coverage(c.level, c.severity), c.country)
        return schedule.between(now, c.due)

    expected = sorted(clocks, key=lambda c: (left(c), c.due, c.ticket_id))[:25]
    got = most_urgent(clocks, 25, now, settings.sla_coverage)
    assert [c.ticket_id for c, _ in got] == [c.ticket_id for c in expected]
    assert [t for _, t in got] == [left(c) for c in expected]


def test_fewer_clocks_than_the_limit_are_all_ranked() -> None:
    """Three clocks, limit 25: all three, the 24×7 one with less time left first."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    friday = dt.datetime(2026, 11, 27, 15, 10, tzinfo=dt.UTC)  # 16:10 in Madrid
    clocks = [
        RunningClock(1, friday + dt.timedelta(days=3), Severity.SEV2, "Europe/Madrid", None,
                     Level.STANDARD),  # Monday 16:10: 50 min on Friday, 7 h 10 min Monday
        RunningClock(2, friday + dt.timedelta(hours=2), Severity.SEV1, "Europe/Madrid", None,
                     Level.PREMIUM),  # 2 hours, 24×7
        RunningClock(3, friday + dt.timedelta(hours=1), Severity.SEV1, "Europe/Madrid", None,
                     Level.PREMIUM),
    ]
    got = most_urgent(clocks, 25, friday, settings.sla_coverage)
    assert [(c.ticket_id, t) for c, t in got] == [
        (3, dt.timedelta(hours=1)), (2, dt.timedelta(hours=2)),
        (1, dt.timedelta(hours=8))]

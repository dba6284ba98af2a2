"""The monthly SLA report: per organization and calendar month (in its timezone), tickets
opened and solved by severity, first and next responses met and breached, the median
business time to first response, and satisfaction.

Responses are counted for the tickets opened in the month; a target is breached when its
"breached" alert was claimed or the reply came after the due time. The Main Contact gets
the previous month's report once, from the first business day of the month on (claim kind
"sla_report"); `subdesk report sla` prints the same for the vendor.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from bot.business_time import Schedule, hours_and_minutes
from bot.domain import Organization, Severity, Ticket
from bot.presentation.messages import Fields, Heading, Message, Paragraph
from bot.presentation.ticket_cards import zone
from bot.services.base import Invalid, NotFound, Service, Tx
from bot.services.sla import schedule_for
from bot.wiring.scheduler import Job

log = logging.getLogger(__name__)

CLAIM_KIND = "sla_report"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> tuple[int, int]:
    """`2026-11` → (2026, 11); Invalid naming the expected form otherwise."""
    match = _MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match[2]) <= 12 or not 1970 <= int(match[1]) <= 9000:
        raise Invalid(f"--month takes a month like 2026-11, not {text[:20]!r}")
    return int(match[1]), int(match[2])


def _bounds(year: int, month: int, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The month's first instant and the next month's, in the organization's timezone."""
    local = zone(tz)
    nxt = (year + 1, 1) if month == 12 else (year, month + 1)
    return (dt.datetime(year, month, 1, tzinfo=local).astimezone(dt.UTC),
            dt.datetime(*nxt, 1, tzinfo=local).astimezone(dt.UTC))


@dataclass(frozen=True, slots=True)
class SlaReport:
    org: Organization
    month: str
    opened: dict[Severity, int]
    solved: dict[Severity, int]
    first_met: int
    first_breached: int
    next_met: int
    next_breached: int
    median_first_response: dt.timedelta | None
    good: int
    bad: int

    def rows(self) -> list[tuple[str, str]]:
        """The report as (measure, value) rows, for tables, CSV and messages."""
        rows = [(f"opened {s.value}", str(self.opened[s])) for s in Severity]
        rows += [(f"solved {s.value}", str(self.solved[s])) for s in Severity]
        median = self.median_first_response
        rows += [
            ("first responses met", str(self.first_met)),
            ("first responses breached", str(self.first_breached)),
            ("next responses met", str(self.next_met)),
            ("next responses breached", str(self.next_breached)),
            ("median first response (business time)",
             "—" if median is None else hours_and_minutes(median)),
            ("satisfaction good", str(self.good)),
            ("satisfaction bad", str(self.bad)),
        ]
        return rows

    def message(self) -> Message:
        head = f"SLA report for {self.org.name}, {self.month}"
        rows = tuple(self.rows())
        return Message(
            text="\n".join([head, *(f"{k}: {v}" for k, v in rows)]),
            subject=head,
            blocks=(Heading(head), Fields(rows),
                    Paragraph("Counted in your support hours; responses for the tickets "
                              "opened in the month.")),
        )


def _median(values: list[dt.timedelta]) -> dt.timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _breached(ticket: Ticket, claims: set[str]) -> bool:
    late = (ticket.first_responded_at is not None and ticket.first_response_due_at is not None
            and ticket.first_responded_at > ticket.first_response_due_at)
    return "breached" in claims or late


class SlaReportService(Service):
    """Builds SLA reports and sends each month's to the Main Contacts."""

    async def report(self, org_key: str, month: str) -> SlaReport:
        year, number = parse_month(month)
        async with self.read() as tx:
            org = await tx.directory.org_by_key(org_key)
            if org is None:
                raise NotFound(f"no organization with key {org_key[:80]!r}")
            return await self._build(tx, org, year, number)

    async def _build(self, tx: Tx, org: Organization, year: int, month: int) -> SlaReport:
        start, end = _bounds(year, month, org.timezone)
        tickets = await tx.tickets.opened_or_solved(org.id, start, end)
        opened = [t for t in tickets if start <= t.created_at < end]
        claims = await tx.tickets.breaches([t.id for t in opened])
        solved_counts = dict.fromkeys(Severity, 0)
        for t in tickets:
            done = t.solved_at or t.closed_at
            if done is not None and start <= done < end:
                solved_counts[t.severity] += 1
        first_met = first_breached = next_met = next_breached = 0
        times = []
        for t in opened:
            stages = claims.get(t.id, set())
            if _breached(t, stages):
                first_breached += 1
            elif t.first_responded_at is not None:
                first_met += 1
            if t.first_responded_at is not None:
                times.append(schedule_for(self.settings, org, t.severity).between(
                    t.created_at, t.first_responded_at))
            late = sum(1 for s in stages if s.startswith("next"))
            still_open = int(t.clock_set and t.first_responded_at is not None
                             and f"next{t.response_cycle}:breached" not in stages)
            next_breached += late
            next_met += max(0, t.response_cycle - late - still_open)
        ratings = await tx.tickets.ratings_between(org.id, start, end)
        return SlaReport(
            org, f"{year:04d}-{month:02d}",
            {s: sum(1 for t in opened if t.severity is s) for s in Severity},
            solved_counts, first_met, first_breached, next_met, next_breached,
            _median(times),
            ratings.count("good"), ratings.count("bad"),
        )

    async def send_monthly(self) -> int:
        """From the first business day of a month on (09:00 local), send each organization's
        Main Contact the previous month's report, once; the number sent."""
        now = self.clock.now()
        async with self.read() as tx:
            orgs = await tx.directory.orgs()
        sent = 0
        for org in orgs:
            hours = self.settings.business_hours(org.level)
            calendar = Schedule(org.timezone, hours, org.country)
            local = now.astimezone(zone(org.timezone))
            first = local.date().replace(day=1)
            while not calendar.is_business_day(first):
                first += dt.timedelta(days=1)
            if (local.date(), local.time()) < (first, hours.start):
                continue
            year, month = (local.year - 1, 12) if local.month == 1 else (local.year,
                                                                          local.month - 1)
            # Only organizations whose subscription covered part of that month.
            if (org.starts_on and org.starts_on > first.replace(day=1) - dt.timedelta(days=1)) or (
                    org.ends_on and org.ends_on < dt.date(year, month, 1)):
                continue
            label = f"{year:04d}-{month:02d}"
            async with self.tx() as tx:
                if not await tx.claims.claim_many(CLAIM_KIND, [(org.id, label)]):
                    continue
                main = next((c for c in await tx.directory.contacts(org.id) if c.is_main),
                            None)
                if main is None:
                    continue
                report = await self._build(tx, org, year, month)
                await self.notifier.to_contact(
                    tx, main, f"org:{org.id}:sla-report:{label}", report.message())
                sent += 1
        if sent:
            log.info("Monthly SLA reports sent: %s", sent)
        return sent


def sla_report_job(service: SlaReportService, every_seconds: float = 3600.0) -> Job:
    """The scheduler job that sends the monthly SLA reports."""
    return Job("sla_report", service.send_monthly, every_seconds)

"""The monthly SLA report: to the Main Contact on the first business day, and from
`subdesk report sla` for the vendor."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.harness import Harness
from tests.scenarios.test_cli import SUBDESK, environment
from tests.scenarios.tickets_world import ANA, SAM, TOM, build

MADRID = ZoneInfo("Europe/Madrid")


def madrid(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=MADRID)


async def november(h: Harness) -> None:
    """#1 sev2 answered after one business hour, then a customer comment whose next
    response breaches, solved and rated good; #2 sev1 never answered (breached)."""
    await build(h)
    tom, sam, sla = h.as_(TOM), h.as_(SAM), h.app.services.sla
    await tom.send("/ticket new sev2 Reports slow")  # Wed 25 Nov 11:00
    await tom.send("/ticket new sev1 Login broken")
    h.clock.set(madrid(2026, 11, 25, 12, 0))
    await sam.send("/triage reply 1 Looking")
    h.clock.set(madrid(2026, 11, 25, 14, 0))
    await tom.send("/ticket comment 1 Any news?")
    await sla.sweep()
    h.clock.set(madrid(2026, 11, 26, 10, 0))
    await sla.sweep()
    await sam.send("/triage status 1 solved")
    await tom.send("/ticket rate 1 good Quick fix")


async def test_main_contact_gets_last_months_report_once(harness: Harness) -> None:
    """Tuesday 1 December 09:00 (Madrid) is the first business day: each Main Contact gets
    November's report once (not the organization whose subscription ended in October);
    nothing goes out before then."""
    await november(harness)
    send = harness.app.services.sla_report.send_monthly
    harness.clock.set(madrid(2026, 11, 30, 23, 0))
    assert await send() == 4  # October's, due since 2 November, for all four organizations
    harness.clock.set(madrid(2026, 12, 1, 8, 59))
    assert await send() == 0
    harness.clock.set(madrid(2026, 12, 1, 9, 0))
    assert await send() == 3
    assert await send() == 0
    await harness.drain()
    (report,) = [m.plain() for m in harness.delivered_to(ANA) if "2026-11" in m.text]
    for line in ("SLA report for Acme Corp, 2026-11", "opened sev1: 1", "opened sev2: 1",
                 "solved sev2: 1", "first responses met: 1", "first responses breached: 1",
                 "next responses met: 0", "next responses breached: 1",
                 "median first response (business time): 1h 0m", "satisfaction good: 1",
                 "satisfaction bad: 0"):
        assert line in report, line


async def test_report_sla_command_prints_a_table_or_csv(
    harness: Harness, db_url: str, tmp_path: Path
) -> None:
    """`subdesk report sla --org acme --month 2026-11` prints the same figures; a bad month
    or organization is one error line."""
    await november(harness)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SUBDESK, "report", "sla", *args], capture_output=True,
                              text=True, cwd=tmp_path, env=environment(db_url), timeout=60,
                              check=False)

    cases = (
        ("--org", "acme", "--month", "2026-11"),
        ("--org", "acme", "--month", "2026-11", "--format", "csv"),
        ("--org", "acme", "--month", "November"),
        ("--org", "nope", "--month", "2026-11"),
    )
    table, csv, bad_month, bad_org = await asyncio.gather(
        *(asyncio.to_thread(run, *args) for args in cases))
    assert table.returncode == 0, table.stderr
    assert "SLA report: Acme Corp, 2026-11" in table.stdout
    assert "first responses breached" in table.stdout
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.splitlines()
    assert lines[0] == "organization,month,measure,value"
    assert "acme,2026-11,opened sev1,1" in lines
    assert "acme,2026-11,median first response (business time),1h 0m" in lines
    for failed, needle in ((bad_month, "--month takes a month like 2026-11"),
                           (bad_org, "no organization with key 'nope'")):
        assert failed.returncode == 1 and needle in failed.stderr
        assert "Traceback" not in failed.stderr

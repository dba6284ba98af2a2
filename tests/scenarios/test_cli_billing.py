"""The `subdesk` CLI for billing: invoice imports, one reminder sweep, and `run` serving HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.slow

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
ORDERS = {"organizations": [{
    "key": "acme", "name": "ACME Corp", "program": "customer", "level": "standard",
    "region": "europe", "timezone": "Europe/Madrid",
    "subscription": {"starts_on": "2026-01-01", "ends_on": "2027-12-31"},
    "contacts": [{"role": "main", "name": "Ana Main", "email": "ana@acme.test"}]}]}


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
    env.update(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING", **extra)
    return env


async def _cli(db_url: str, *args: str, stdin: bytes = b"", cwd: Path | None = None,
               **extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SUBDESK, *args, env=_env(db_url, **extra), cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_import_invoices_and_run_one_sweep(db_url: str, tmp_path: Path) -> None:
    """Import (twice: idempotent), a bad CSV naming line and column, then one sweep."""
    orders = tmp_path / "orders.json"
    orders.write_text(json.dumps(ORDERS))
    invoices = tmp_path / "invoices.json"
    invoices.write_text(json.dumps({"invoices": [
        {"number": "INV-1", "organization": "acme", "issued_on": "2026-11-01",
         "due_on": "2026-12-01", "amount": "1200.00", "currency": "EUR"}]}))
    bad = tmp_path / "bad.csv"
    bad.write_text("number,organization,issued_on,due_on,amount,currency\n"
                   "X-1,acme,2026-01-01,2026-01-05,12.00,EUR\n"
                   "X-2,acme,2026-01-01,2025-01-05,12.00,EUR\n")
    assert (await _cli(db_url, "import", "orders", str(orders)))[0] == 0
    code, out, _ = await _cli(db_url, "import", "invoices", str(invoices))
    assert code == 0 and "1 invoices created" in out
    code, out, _ = await _cli(db_url, "import", "invoices", str(invoices))
    assert code == 0 and "0 invoices created, 0 updated, 1 unchanged" in out
    code, _, err = await _cli(db_url, "import", "invoices", str(bad))
    assert code == 1
    assert "line 3, due_on: Value error, is before issued_on (2026-01-01)" in err
    code, out, _ = await _cli(db_url, "reminders", "run-once", "--now", "2026-12-01T09:00:00Z")
    assert code == 0 and "1 invoice reminder(s)" in out
    code, out, _ = await _cli(db_url, "reminders", "run-once", "--now", "2026-12-01T10:00:00Z")
    assert code == 0 and "0 invoice reminder(s)" in out
    code, _, err = await _cli(db_url, "reminders", "run-once", "--now", "yesterday")
    assert code != 0 and "--now takes an ISO time" in err


async def test_outbox_status_counts_claimed_reminders_until_they_are_queued(
    db_url: str, tmp_path: Path
) -> None:
    """The scheduled sweep only claims: `subdesk outbox status` counts the claims waiting
    for the dispatcher, then, once queued, the messages; a claim whose organization has no
    Main or Administrative contact is counted as not sent rather than silently kept."""
    import datetime as dt

    from sqlalchemy import delete, select

    from bot.clock import FixedClock
    from bot.wiring.config import Settings
    from bot.wiring.services import Services
    from storage.db import Database
    from storage.models import ContactRow, OrganizationRow

    orders = tmp_path / "orders.json"
    ghost = {**ORDERS["organizations"][0], "key": "ghost", "name": "Ghost Ltd",
             "contacts": [{"role": "main", "name": "Gus", "email": "gus@ghost.test"}]}
    orders.write_text(json.dumps({"organizations": [*ORDERS["organizations"], ghost]}))
    invoices = tmp_path / "invoices.json"
    invoices.write_text(json.dumps({"invoices": [
        {"number": f"INV-{key}", "organization": key, "issued_on": "2026-11-01",
         "due_on": "2026-12-01", "amount": "1200.00", "currency": "EUR"}
        for key in ("acme", "ghost")]}))
    assert (await _cli(db_url, "import", "orders", str(orders)))[0] == 0
    assert (await _cli(db_url, "import", "invoices", str(invoices)))[0] == 0
    db = Database(db_url)
    try:
        # No command leaves an organization without its Main Contact; a manual data fix can.
        async with db.transaction() as session:
            ghost_id = await session.scalar(
                select(OrganizationRow.id).where(OrganizationRow.key == "ghost"))
            await session.execute(delete(ContactRow).where(ContactRow.org_id == ghost_id))
        now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
        services = Services.build(db, Settings(_env_file=None, database_url=db_url),
                                  FixedClock(now))
        report = await services.reminders.sweep(now)
    finally:
        await db.dispose()
    assert (report.invoice_reminders, report.messages) == (2, 0)
    code, out, _ = await _cli(db_url, "outbox", "status")
    assert code == 0 and "pending: 2" in out, "the two welcome messages, no reminder yet"
    assert "2 claimed reminder(s) waiting to be queued by the dispatcher" in out
    code, out, _ = await _cli(db_url, "reminders", "run-once", "--now", "2026-12-01T10:00:00Z")
    assert code == 0 and "0 invoice reminder(s)" in out and "1 message(s) queued" in out
    code, out, _ = await _cli(db_url, "outbox", "status")
    assert code == 0 and "pending: 3" in out and "waiting to be queued" not in out
    assert ("1 claimed reminder(s) not sent: the organization had no Main or Administrative "
            "contact to send to") in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_run_serves_health_while_the_console_reads_stdin(
    db_url: str, tmp_path: Path
) -> None:
    """`subdesk run` answers /healthz and /readyz while its console runs; EOF ends it."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        SUBDESK, "run", env=_env(db_url, SUBDESK_HTTP_PORT=str(port)), cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        status = None
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120  # start-up on a loaded machine
            while time.monotonic() < deadline and proc.returncode is None:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        status = response.status
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        assert status == 200
        proc.stdin.write(b"/subdesk whoami\n")
        proc.stdin.close()
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert "Tom Tech" in out.decode() or "whoami" in out.decode()

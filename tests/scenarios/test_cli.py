"""The real `subdesk` command line (SPEC §6), run as a subprocess."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.domain import OutboxStatus
from storage.db import Database
from storage.directory import Directory
from storage.outbox import OutboxStore
from tests.conftest import NOW, PG_URL
from tests.scenarios.orders import contact, form, organization

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
Run = Callable[..., subprocess.CompletedProcess[str]]

ORDER = form(organization("acme", [contact("main", "ana@acme.test", "Ana Main"),
                                   contact("technical", "tom@acme.test", "Tom Tech")],
                          name="ACME Corp"))


def environment(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
    env.update(SUBDESK_DATABASE_URL=db_url, SUBDESK_LOG_LEVEL="WARNING", COLUMNS="200",
               NO_COLOR="1", TERM="dumb")
    return env


@pytest.fixture
def subdesk(db_url: str, tmp_path: Path) -> Run:
    """Run `subdesk ARGS…` against the test database, in an empty working directory."""
    env = environment(db_url)

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([SUBDESK, *args], input=stdin, capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60, check=False)

    return run


def orders_file(tmp_path: Path, data: object = ORDER) -> Path:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(data))
    return path


def org_keys(db_url: str) -> list[str]:
    async def go() -> list[str]:
        db = Database(db_url)
        try:
            async with db.read() as session:
                return [o.key for o in await Directory(session, NOW).orgs()]
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_db_upgrade_creates_the_embedded_database(tmp_path: Path) -> None:
    """`subdesk db upgrade` creates and migrates a fresh SQLite file, and can run again."""
    target = tmp_path / "fresh" / "subdesk.db"
    target.parent.mkdir()
    env = environment(f"sqlite:///{target}")
    for _ in range(2):
        done = subprocess.run([SUBDESK, "db", "upgrade"], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "is up to date" in done.stdout
    assert target.exists()


def test_import_orders_good_then_again_then_bad(
    subdesk: Run, tmp_path: Path, db_url: str
) -> None:
    """A good file imports with a progress bar; importing again changes nothing; a bad
    file exits 1, names the line and writes nothing."""
    good = subdesk("import", "orders", str(orders_file(tmp_path)))
    assert good.returncode == 0, good.stderr
    assert "1 created" in good.stdout and "2 messages queued" in good.stdout
    assert "organizations" in good.stderr and "1/1" in good.stderr, "the progress bar"
    again = subdesk("import", "orders", str(orders_file(tmp_path)))
    assert "1 unchanged" in again.stdout and "0 messages queued" in again.stdout

    bad = tmp_path / "more.csv"
    bad.write_text(
        "key,name,program,level,region,timezone,starts_on,ends_on,role,contact_name,email\n"
        "beta,Beta,customer,basic,us,America/New_York,2026-01-01,2026-12-31,main,Bo,bo@beta.test\n"
        "beta,Beta,customer,basic,us,America/New_York,2026-01-01,2026-12-31,technical,Ty,ty@\n"
    )
    failed = subdesk("import", "orders", str(bad))
    assert failed.returncode == 1
    assert "nothing was imported" in failed.stderr
    assert "line 3" in failed.stderr and "email" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert org_keys(db_url) == ["acme"]
    missing = subdesk("import", "orders", str(tmp_path / "nope.json"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


def test_hostile_values_and_unusable_databases_are_one_clean_line(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out-of-range times and ids, and a database that cannot be used (missing directory,
    a directory instead of a file, a refused port, an unknown PostgreSQL database or role):
    one line naming the problem, a non-zero exit, no traceback, no directory created."""
    from typer.testing import CliRunner

    from bot.wiring.cli import cli

    monkeypatch.chdir(tmp_path)
    cases: list[tuple[str, tuple[str, ...], str]] = [
        (db_url, ("reminders", "run-once", "--now", "0001-01-01T00:00:00"), "--now must be"),
        (db_url, ("reminders", "run-once", "--now", "9999-12-31T23:59:59"), "--now must be"),
        (db_url, ("outbox", "retry", "99999999999999999999"), "no unsent outbox message"),
        (db_url, ("outbox", "retry", "--since", "9999-12-31T23:59:59-23:59"),
         "--since must be a time between"),
        (db_url, ("report", "sla", "--org", "demo", "--month", "9999-12"),
         "--month takes a month like 2026-11"),
        (f"sqlite:///{tmp_path}/missing/dir/s.db", ("outbox", "status"),
         "does not exist; create it first"),
        (f"sqlite:///{tmp_path}", ("outbox", "status"), "is not a file this user can write"),
        ("postgresql://postgres@127.0.0.1:1/postgres", ("outbox", "status"),
         "refused the connection"),
    ]
    if PG_URL:
        base = make_url(PG_URL)
        cases += [
            (base.set(database="subdesk_no_such_db").render_as_string(hide_password=False),
             ("db", "upgrade"), 'database "subdesk_no_such_db" does not exist'),
            (base.set(username="subdesk_no_such_role").render_as_string(hide_password=False),
             ("outbox", "status"), 'role "subdesk_no_such_role" does not exist'),
        ]
    for url, args, needle in cases:
        result = CliRunner().invoke(cli, list(args), env=environment(url))
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()


def test_staff_add_link_and_piped_console(subdesk: Run, tmp_path: Path) -> None:
    """Staff and links are made from the CLI; a piped console answers line by line and shows
    the emails the outbox delivers to other people."""
    assert subdesk("import", "orders", str(orders_file(tmp_path))).returncode == 0
    staff = subdesk("staff", "add", "Sam@Vendor.test", "--role", "admin", "--role", "engineer",
                    "--name", "Sam Support")
    assert staff.returncode == 0, staff.stderr
    assert "Staff member Sam Support <sam@vendor.test>: admin, engineer." in staff.stdout
    eve = subdesk("staff", "add", "eve@vendor.test", "--role", "engineer", "--slack", "T0V:U0EVE",
                  "--matrix", "@eve:vendor.test")
    assert eve.returncode == 0, eve.stderr
    bad_role = subdesk("staff", "add", "x@vendor.test", "--role", "overlord")
    assert bad_role.returncode == 2 and "overlord" in bad_role.stderr
    linked = subdesk("link", "ana@acme.test", "--matrix", "@ana:acme.test")
    assert linked.returncode == 0, linked.stderr
    assert "Linked matrix @ana:acme.test to Ana Main <ana@acme.test>" in linked.stdout
    unknown = subdesk("link", "ghost@acme.test", "--slack", "T0:U0")
    assert unknown.returncode == 1 and "No contact or staff member" in unknown.stderr
    both = subdesk("link", "ana@acme.test", "--slack", "T0:U0", "--matrix", "@a:b")
    assert both.returncode != 0 and "exactly one" in both.stderr
    early = subdesk("console", "--as", "who@nowhere.test", stdin="/contacts\n")
    assert early.returncode == 1 and early.stdout == "", "nothing delivered for a stranger"
    assert "neither a contact nor a staff member" in early.stderr

    session = subdesk("console", "--as", "ana@acme.test", stdin=(
        "/subdesk whoami\n"
        "# a comment line is skipped\n"
        "\n"
        "/contacts request-technical nia@acme.test Nia New\n"
        "/ticket\n"
    ))
    assert session.returncode == 0, session.stderr
    out = session.stdout
    assert "Console as Ana Main <ana@acme.test>" in out
    assert "subdesk> /subdesk whoami" in out and "ACME Corp (acme)" in out
    assert "Request #1 for Nia New <nia@acme.test>" in out
    assert "── email to Sam Support <sam@vendor.test> · subject: Technical Contact request #1" in (
        out)
    assert "a comment line" not in out
    assert out.index("subdesk> /subdesk whoami") < out.index("Request #1")

    sam = subdesk("console", "--as", "sam@vendor.test", stdin="/subdesk approve 1\n")
    assert "Approved request #1" in sam.stdout
    assert "Support Welcome" in sam.stdout and "nia@acme.test" in sam.stdout

    stranger = subdesk("console", "--as", "who@nowhere.test", stdin="/contacts\n")
    assert stranger.returncode == 1
    assert "neither a contact nor a staff member" in stranger.stderr


def test_demo_and_run_open_the_console(subdesk: Run) -> None:
    """`subdesk demo` seeds and acts as the Technical Contact; `subdesk run` without a chat
    platform runs the console and says so."""
    demo = subdesk("demo", stdin="/subdesk whoami\n/contacts\n")
    assert demo.returncode == 0, demo.stderr
    assert "Seeded the demo organization" in demo.stdout
    assert "Tom Tech" in demo.stdout and "Technical Contact" in demo.stdout
    assert "Ana Main <ana@demo.test> — Main Contact" in demo.stdout

    run = subdesk("run", stdin="/subdesk whoami\n")
    assert run.returncode == 0, run.stderr
    assert "Console adapter on" in run.stdout
    assert "no chat platform configured" in run.stdout
    assert "Seeded" not in run.stdout, "an existing database is not seeded again"
    assert "Tom Tech" in run.stdout


def test_run_with_half_a_slack_setup_says_what_is_missing(db_url: str, tmp_path: Path
                                                          ) -> None:
    """A Slack bot token without the signing secret (or an app token for Socket Mode) is
    one line naming what is missing, never the token, instead of the console."""
    env = environment(db_url) | {"SLACK_BOT_TOKEN": "xoxb-SeCrEt"}
    done = subprocess.run([SUBDESK, "run"], input="/subdesk whoami\n", capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: SLACK_SIGNING_SECRET is needed to check Slack's requests (or SLACK_APP_TOKEN, "
        "for Socket Mode)"]
    assert "Console adapter on" not in done.stdout and "SeCrEt" not in done.stdout


def test_demo_again_keeps_changes_and_sends_nothing_twice(subdesk: Run) -> None:
    """A second `subdesk demo` reuses the organization: role changes stay, no welcome again."""
    first = subdesk("demo", stdin="/subdesk whoami\n")
    assert "Seeded the demo organization" in first.stdout
    change = subdesk("console", "--as", "ana@demo.test",
                     stdin="/contacts set administrative tom@demo.test\n")
    assert change.returncode == 0, change.stderr
    again = subdesk("demo", stdin="/contacts\n")
    assert again.returncode == 0, again.stderr
    assert "Using the existing demo organization" in again.stdout
    assert "── email" not in again.stdout
    assert "Tom Tech <tom@demo.test> — Administrative Contact, Technical Contact" in again.stdout


def dead_letter(db_url: str, key: str, *, recipient: str = "", error: str = "SMTP 550",
                queued: dt.datetime = NOW) -> int:
    """An email to ops@acme.test queued at `queued` and dead with `error`; its id."""
    async def add() -> int:
        db = Database(db_url)
        try:
            async with db.transaction() as session:
                store = OutboxStore(session, queued)
                item_id = await store.enqueue(key, platform="email", target="ops@acme.test",
                                              kind="email", payload={"text": "dead letter"},
                                              recipient=recipient)
                assert item_id is not None
                await store.mark_dead(item_id, error)
                return item_id
        finally:
            await db.dispose()

    return asyncio.run(add())


def test_outbox_status_drain_and_retry(subdesk: Run, tmp_path: Path, db_url: str) -> None:
    """`outbox status` counts, `drain` delivers what is due, `retry` requeues a dead letter."""
    assert subdesk("import", "orders", str(orders_file(tmp_path))).returncode == 0

    dead_id = dead_letter(db_url, "cli-dead", recipient="Ops <ops@acme.test>")
    status = subdesk("outbox", "status")
    assert status.returncode == 0, status.stderr
    assert "pending: 2" in status.stdout and "dead: 1" in status.stdout
    assert "Ops <ops@acme.test>" in status.stdout and "SMTP 550" in status.stdout
    assert "pending: 2" in subdesk("outbox").stdout, "status is the default"

    drained = subdesk("outbox", "drain", "--max-wait", "0")
    assert drained.returncode == 0, drained.stderr
    assert "Delivered 2, retrying 0, dead 0." in drained.stdout
    assert "── email to Ana Main <ana@acme.test>" in drained.stdout

    retried = subdesk("outbox", "retry", str(dead_id))
    assert retried.returncode == 0 and f"#{dead_id} queued again" in retried.stdout
    shown = subdesk("outbox", "status", "--show", OutboxStatus.PENDING.value)
    assert "pending: 1" in shown.stdout and "ops@acme.test" in shown.stdout
    refused = subdesk("outbox", "retry", "1")
    assert refused.returncode == 1 and "no unsent outbox message #1" in refused.stderr


def test_piped_console_survives_hostile_bytes(db_url: str, tmp_path: Path) -> None:
    """Undecodable bytes, terminal escapes and a 10 kB line on stdin get answers, not a
    traceback, and no escape sequence is echoed back to the terminal."""
    env = environment(db_url) | {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    stdin = (b"\xff\xfe/subdesk whoami\n"
             b"\x1b[2J/contacts\n"
             b"/contacts set administrative bea@demo.test Bea \xff\xfe\x1b]0;x\x07\n"
             + b"/ticket comment 1 " + b"x" * 10_240 + b"\n"
             b"/subdesk whoami\n")
    seed = subprocess.run([SUBDESK, "demo"], input=b"", capture_output=True, cwd=tmp_path,
                          env=env, timeout=60, check=False)
    assert seed.returncode == 0, seed.stderr
    done = subprocess.run([SUBDESK, "console", "--as", "ana@demo.test"], input=stdin,
                          capture_output=True, cwd=tmp_path, env=env, timeout=60, check=False)
    out = done.stdout.decode("utf-8", errors="replace")
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"\x1b" not in done.stdout and b"\x07" not in done.stdout
    assert "is now the Administrative Contact" in out
    assert "Something went wrong" not in out
    assert "limit is 4000" in out
    assert out.rstrip().endswith("Account       console:local:ana@demo.test")


def test_bad_configuration_is_a_clean_error(tmp_path: Path) -> None:
    """An invalid setting stops the CLI with its name and reason, no traceback, no value."""
    env = environment("mysql://subdesk:DbSeCrEt@db/subdesk") | {
        "SUBDESK_BILLING_CHANNELS": "irc:#billing"}
    done = subprocess.run([SUBDESK, "outbox", "status"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert "invalid configuration" in done.stderr
    assert "SUBDESK_DATABASE_URL" in done.stderr and "SUBDESK_BILLING_CHANNELS" in done.stderr
    assert "Traceback" not in done.stderr and "DbSeCrEt" not in done.stderr


@pytest.mark.parametrize(
    ("file", "content", "env", "needle"),
    [
        ("subdesk.toml", b"[[[\n", {}, "subdesk.toml: Invalid"),
        (".env", b"\xff\xfe=1\n", {}, ".env: not UTF-8"),
        (None, b"", {"SUBDESK_TECHNICAL_LIMITS": "notjson"}, '"technical_limits"'),
    ],
)
def test_unreadable_configuration_files_are_clean_errors(
    tmp_path: Path, db_url: str, file: str | None, content: bytes, env: dict[str, str],
    needle: str,
) -> None:
    """A broken subdesk.toml, .env or JSON setting is named, with no traceback."""
    if file is not None:
        (tmp_path / file).write_bytes(content)
    done = subprocess.run([SUBDESK, "outbox", "status"], capture_output=True, text=True,
                          cwd=tmp_path, env=environment(db_url) | env, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert "invalid configuration" in done.stderr and needle in done.stderr
    assert "Traceback" not in done.stderr


def _read_until(fd: int, needle: bytes, timeout: float = 20.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} never came; got {seen[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_interactive_console_prompts_on_a_terminal(db_url: str, tmp_path: Path) -> None:
    """On a terminal the console shows a prompt, answers each command and leaves on exit."""
    env = environment(db_url)
    seed = subprocess.run([SUBDESK, "demo"], input="", capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60, check=False)
    assert seed.returncode == 0, seed.stderr
    primary, secondary = pty.openpty()
    process = subprocess.Popen([SUBDESK, "console", "--as", "ana@demo.test"], stdin=secondary,
                               stdout=secondary, stderr=secondary, cwd=tmp_path, env=env)
    os.close(secondary)
    try:
        # the first prompt waits for start-up (imports, migrations): generous on a loaded machine
        _read_until(primary, b"subdesk> ", timeout=120.0)
        os.write(primary, b"/subdesk whoami\n")
        answer = _read_until(primary, b"Main Contact", timeout=60.0)
        assert b"Ana Main" in answer
        _read_until(primary, b"subdesk> ")
        os.write(primary, b"exit\n")
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)


def audit_events(db_url: str) -> list[tuple[str, str, dict[str, object] | None]]:
    async def go() -> list[tuple[str, str, dict[str, object] | None]]:
        db = Database(db_url)
        try:
            async with db.read() as session:
                events = await Directory(session, NOW).audit_events(limit=1000)
                return [(e.action, e.target, e.before) for e in reversed(events)]
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_link_refuses_to_move_a_linked_account_without_force(
    subdesk: Run, tmp_path: Path, db_url: str
) -> None:
    """`subdesk link` never silently moves an account someone else holds; with --force it
    does, and the audit entry names the previous owner. `staff add --matrix` neither."""
    assert subdesk("import", "orders", str(orders_file(tmp_path))).returncode == 0
    assert subdesk("link", "ana@acme.test", "--matrix", "@ana:acme.test").returncode == 0
    again = subdesk("link", "ana@acme.test", "--matrix", "@ana:acme.test")
    assert again.returncode == 0, "relinking to the same person is harmless"

    moved = subdesk("link", "tom@acme.test", "--matrix", "@ana:acme.test")
    assert moved.returncode == 1 and "Traceback" not in moved.stderr
    assert "already linked to ana@acme.test" in moved.stderr and "--force" in moved.stderr
    forced = subdesk("link", "tom@acme.test", "--matrix", "@ana:acme.test", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "Linked matrix @ana:acme.test to Tom Tech" in forced.stdout
    last = [e for e in audit_events(db_url) if e[0] == "identity.linked"][-1]
    assert last[1].endswith(":@ana:acme.test"), last
    assert last[2] is not None and last[2]["email"] == "ana@acme.test", last
    staff = subdesk("staff", "add", "eve@vendor.test", "--role", "engineer",
                    "--matrix", "@ana:acme.test")
    assert staff.returncode == 1 and "already linked to tom@acme.test" in staff.stderr, (
        "staff add does not take a customer's chat account either")

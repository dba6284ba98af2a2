"""The `subdesk` command line (SPEC §6)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from bot.domain import OutboxStatus, Platform, StaffRole

# Each command imports what it uses, inside its function: `subdesk --help` and the commands
# that need no database never load SQLAlchemy, Alembic, pydantic or a platform library.
if TYPE_CHECKING:
    import asyncio

    from bot.wiring.config import Settings
    from bot.wiring.runtime import App

T = TypeVar("T")

cli = typer.Typer(
    name="subdesk",
    help="Subdesk: support tickets, billing and alerts for your customers, in chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
import_cli = typer.Typer(
    help="Import order forms and invoices (JSON or CSV).", no_args_is_help=True
)
staff_cli = typer.Typer(help="Vendor staff.", no_args_is_help=True)
outbox_cli = typer.Typer(
    help="Outbound messages: status, retry, drain.", invoke_without_command=True
)
reminders_cli = typer.Typer(help="Billing reminders.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(import_cli, name="import")
cli.add_typer(staff_cli, name="staff")
cli.add_typer(outbox_cli, name="outbox")
cli.add_typer(reminders_cli, name="reminders")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    """One red line; `message` is printed as written (what a user typed or a database
    holds may look like markup: `[/b]` is text here, not a style)."""
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False)
    return typer.Exit(code)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    from bot.importing import ImportFailed
    from bot.services.base import ServiceError
    from bot.wiring.runtime import SchemaOutdated

    try:
        return asyncio.run(coro)
    except SchemaOutdated as exc:
        raise _fail(str(exc)) from None
    except ImportFailed as exc:
        if len(exc.errors) == 1:
            raise _fail(f"nothing was imported: {exc.errors[0]}") from None
        err.print("[red]error:[/red] nothing was imported:")
        for line in exc.errors:
            err.print(f"  {line}", markup=False)
        raise typer.Exit(1) from None
    except ServiceError as exc:
        raise _fail(str(exc)) from None
    except OverflowError:
        raise _fail("a date or number is out of the range this command handles") from None
    except Exception as exc:
        from bot.wiring.config import Settings
        from storage.db import failure_reason

        if isinstance(exc, OSError) and exc.filename is not None:
            raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
        reason = failure_reason(exc)
        if reason is None:
            raise
        where = Settings().database_path_hint()
        raise _fail(f"cannot use the database {where}: {reason}") from None


async def _with_app(
    fn: Callable[[App], Awaitable[T]],
    *,
    console: bool = False,
    upgrade: bool = False,
) -> T:
    from bot.delivery.ports import Terminal
    from bot.wiring.config import Settings
    from bot.wiring.runtime import build_app

    settings = Settings()
    app = await build_app(
        settings, terminal=Terminal(_print_plain) if console else None, upgrade=upgrade
    )
    try:
        return await fn(app)
    finally:
        await app.close()


def _print_plain(text: str) -> None:
    out.print(text, markup=False, highlight=False)


def _setup_logging() -> None:
    from bot.wiring.config import Settings
    from bot.wiring.logs import configure

    configure(Settings())


# run / demo / console ------------------------------------------------------------------


@cli.command()
def run() -> None:
    """Run everything configured; with no chat platform, the console on the embedded database."""
    from bot.wiring.config import Settings

    _setup_logging()
    _run(_console_main(Settings(), as_email=None, seed_if_empty=True, serve=True))


@cli.command()
def demo() -> None:
    """Seed a demo organization and open the console as its Technical Contact."""
    from bot.wiring.config import Settings

    _setup_logging()
    _run(_console_main(Settings(), as_email=None, seed=True))


@cli.command()
def console(
    as_: Annotated[str, typer.Option("--as", help="Email of the contact or staff member.")],
) -> None:
    """The console as any contact or staff member; reads commands line by line from stdin."""
    from bot.wiring.config import Settings

    _setup_logging()
    _run(_console_main(Settings(), as_email=as_))


async def _console_main(
    settings: Settings,
    *,
    as_email: str | None,
    seed: bool = False,
    seed_if_empty: bool = False,
    serve: bool = False,
) -> None:
    """The console (and, with `serve`, every configured adapter, the sweeps and delivery)."""
    from bot.delivery.ports import Terminal
    from bot.services.base import ServiceError
    from bot.wiring.demo import seed_demo
    from bot.wiring.runtime import build_app

    interactive = sys.stdin.isatty()
    terminal = Terminal(_print_plain, user=as_email, interactive=interactive, fallback=serve)
    app = await build_app(settings, terminal=terminal, upgrade=False)
    try:
        if not any(adapter.chat for adapter in app.adapters.values()):
            raise ServiceError(
                "no installed adapter serves the configured chat platform (reinstall "
                "Subdesk); unset the SLACK_* and MATRIX_* settings to use the console."
            )
        console = app.adapters.get("console")
        if console is not None and (
            seed or (seed_if_empty and not await app.services.onboarding.has_organization())
        ):
            if await seed_demo(app.services, link_console=True):
                out.print(
                    "Seeded the demo organization 'demo' (Ana Main ana@demo.test, Ada Admin "
                    "ada@demo.test, Tom Tech tom@demo.test) and staff member sam@vendor.test.",
                    markup=False,
                )
            else:
                out.print("Using the existing demo organization 'demo'.", markup=False)
        if console is not None and as_email is None:
            out.print(
                f"Console adapter on {settings.database_path_hint()} (no chat platform "
                "configured). Type /subdesk help; Ctrl-D to leave.",
                markup=False,
            )
        if serve:
            from bot.wiring.background import start_background

            # A piped console drains after each command, which keeps its output in order.
            delivers = interactive or console is None
            if not delivers:
                await app.dispatcher.drain(max_wait=0)
            async with _terminable() as terminated:
                background = await start_background(app, dispatcher=delivers)
                import gc

                # What start-up built lives as long as the process: the collector stops
                # walking it over and over while requests come and go.
                gc.freeze()
                try:
                    await _first(background.wait(), terminated.wait())
                finally:
                    await background.close()
        elif console is not None:
            await console.start()  # an unknown --as stops here, before anything is delivered
            await app.dispatcher.drain(max_wait=0)
            try:
                await console.run()
            finally:
                await console.stop()
    finally:
        await app.close()


@contextlib.asynccontextmanager
async def _terminable() -> AsyncIterator[asyncio.Event]:
    """An event set on SIGTERM (a replica being stopped) while the block runs, so the
    process closes down in order: the dispatcher hands back what it holds."""
    import asyncio
    import signal

    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
    try:
        yield terminated
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        if terminated.is_set():
            logging.getLogger(__name__).info("SIGTERM: stopped")


async def _first(work: Awaitable[None], stop: Awaitable[object]) -> None:
    """Await `work` until `stop` completes first (then `work` is cancelled)."""
    import asyncio

    task, stopper = asyncio.ensure_future(work), asyncio.ensure_future(stop)
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# db / import / staff / link ------------------------------------------------------------


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest."""

    async def go(app: App) -> None:
        out.print(f"Database {app.settings.database_path_hint()} is up to date.", markup=False)

    _run(_with_app(go, upgrade=True))


async def _with_progress(
    label: str, total: int, run: Callable[[Callable[[int, int], None]], Awaitable[T]]
) -> T:
    """Run an import with a Rich progress bar (on stderr) fed by its progress callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)
        return await run(lambda done, _total: bar.update(task, completed=done))


# Bytes an import file may hold: far beyond any real order form or invoice batch, and a
# bound on what one command reads into memory (a device or a runaway export).
IMPORT_MAX_BYTES = 64 * 1024 * 1024


def _read(file: Path) -> bytes:
    """The import file's bytes; one larger than `IMPORT_MAX_BYTES` is refused unread."""
    with file.open("rb") as stream:
        data = stream.read(IMPORT_MAX_BYTES + 1)
    if len(data) > IMPORT_MAX_BYTES:
        raise _fail(f"{file.name} is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB; "
                    "split it")
    return data


@import_cli.command("orders")
def import_orders(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Create or update organizations and contacts from an order form (idempotent by key)."""
    from bot.services.onboarding import parse_orders

    async def go(app: App) -> None:
        form = parse_orders(file.name, _read(file))
        report = await _with_progress(
            "organizations", len(form.organizations),
            lambda progress: app.services.onboarding.import_orders(form, progress=progress),
        )
        out.print(
            f"Imported {file.name}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {report.contacts_added} contacts added, "
            f"{report.messages_queued} messages queued.",
            markup=False,
        )

    _run(_with_app(go))


@import_cli.command("invoices")
def import_invoices(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Create or update invoices and record payments (idempotent by invoice number)."""
    from bot.services.billing import parse_invoices

    async def go(app: App) -> None:
        batch = parse_invoices(file.name, _read(file))
        report = await _with_progress(
            "invoices and payments", len(batch.file.invoices) + len(batch.file.payments),
            lambda progress: app.services.billing.import_invoices(batch, progress=progress),
        )
        out.print(
            f"Imported {file.name}: {report.created} invoices created, {report.updated} "
            f"updated, {report.unchanged} unchanged; {report.payments_recorded} payments "
            f"recorded, {report.payments_known} already known; {report.paid} invoices paid.",
            markup=False,
        )

    _run(_with_app(go))


@reminders_cli.command("run-once")
def reminders_run_once(
    now: Annotated[
        str | None, typer.Option(help="Sweep as of this ISO time (default: now; UTC if naive).")
    ] = None,
) -> None:
    """One reminder sweep: claim every due stage and queue its messages, then exit."""
    at = None if now is None else _iso_time("--now", now)

    async def go(app: App) -> None:
        report = await app.services.reminders.run_once(at)
        out.print(f"Reminder sweep: {report}.", markup=False)

    _run(_with_app(go))


def _iso_time(flag: str, text: str) -> dt.datetime:
    """An option's ISO time (UTC when it names no offset), within the years the sweeps and
    the database handle; one clear line otherwise."""
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{flag} takes an ISO time like 2026-12-01T09:00:00Z, not "
                    f"{text[:40]!r}") from None
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    if not 1970 <= at.year <= 9000:
        raise _fail(f"{flag} must be a time between the years 1970 and 9000, not "
                    f"{text[:40]!r}")
    return at


def _parse_slack(value: str) -> tuple[Platform, str, str]:
    from bot.services.onboarding import slack_account_problem

    if problem := slack_account_problem(value):
        raise _fail(f"--slack {problem}")
    team, _, user = value.partition(":")
    return Platform.SLACK, team, user


def _parse_matrix(value: str) -> tuple[Platform, str, str]:
    from bot.services.onboarding import matrix_account_problem

    if problem := matrix_account_problem(value):
        raise _fail(f"--matrix {problem}")
    return Platform.MATRIX, value.split(":", 1)[1], value


@staff_cli.command("add")
def staff_add(
    email: str,
    role: Annotated[list[StaffRole], typer.Option("--role", help="engineer, billing or admin.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    slack: Annotated[str | None, typer.Option(help="TEAM:USER")] = None,
    matrix: Annotated[str | None, typer.Option(help="@user:server")] = None,
) -> None:
    """Add (or give more roles to) a vendor staff member."""
    links = []
    if slack:
        links.append(_parse_slack(slack))
    if matrix:
        links.append(_parse_matrix(matrix))

    async def go(app: App) -> None:
        member = await app.services.identity.add_staff(email, role, name, links)
        roles = ", ".join(sorted(r.value for r in member.roles))
        out.print(f"Staff member {member.name} <{member.email}>: {roles}.",
                  markup=False)

    _run(_with_app(go))


@cli.command("link")
def link(
    email: str,
    slack: Annotated[str | None, typer.Option(help="TEAM:USER")] = None,
    matrix: Annotated[str | None, typer.Option(help="@user:server")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move an account already linked to someone else.")
    ] = False,
) -> None:
    """Link a chat account to a contact or staff member without email proof."""
    if (slack is None) == (matrix is None):
        raise _fail("give exactly one of --slack TEAM:USER or --matrix MXID")
    platform, workspace, user = _parse_slack(slack) if slack else _parse_matrix(str(matrix))

    async def go(app: App) -> None:
        who = await app.services.identity.admin_link(email, platform, workspace, user,
                                                     force=force)
        out.print(f"Linked {platform.value} {user} to {who} <{email.lower()}>.", markup=False)

    _run(_with_app(go))


# outbox ------------------------------------------------------------------------------


@outbox_cli.callback()
def outbox_default(ctx: typer.Context) -> None:
    """With no subcommand: the status."""
    if ctx.invoked_subcommand is None:
        outbox_status()


@outbox_cli.command("status")
def outbox_status(
    show: Annotated[
        OutboxStatus | None, typer.Option(help="List messages in this state.")
    ] = None,
) -> None:
    """Counts by state, and the messages that need attention (dead letters)."""
    from rich.table import Table


    async def go(app: App) -> None:
        report = await app.services.outbox.report(show or OutboxStatus.DEAD)
        out.print("  ".join(f"{k}: {v}" for k, v in report.counts.items()), markup=False)
        for line in report.reminder_lines:
            out.print(line, markup=False)
        for platform, (reason, waiting) in sorted(report.held.items()):
            out.print(f"{platform} delivery held, {waiting} message(s) waiting until the "
                      f"configuration is fixed: {reason}", markup=False)
        if report.items:
            table = Table("id", "platform", "recipient", "attempts", "status", "last error")
            for item in report.items:
                table.add_row(str(item.id), Text(item.platform),
                              Text(item.recipient or item.target), str(item.attempts),
                              item.status.value, Text((item.last_error or "")[:80]))
            out.print(table)

    _run(_with_app(go))


@outbox_cli.command("retry")
def outbox_retry(
    item_id: Annotated[int | None, typer.Argument(help="The message's id.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    since: Annotated[
        str | None, typer.Option(help="Dead letters queued at or after this ISO time.")
    ] = None,
) -> None:
    """Queue a dead (or waiting) message again with fresh attempts; or, with --all or
    --since, every dead letter (queued since then)."""
    if (item_id is None) == (not all_ and since is None):
        raise _fail("give a message id, or --all / --since ISO for dead letters in bulk")
    if item_id is not None and not 0 < item_id < 2**63:  # ids are positive 64-bit integers
        raise _fail(f"no unsent outbox message #{item_id}")
    after = None if since is None else _iso_time("--since", since)

    async def go(app: App) -> None:
        if item_id is None:
            count = await app.services.outbox.retry_dead(after)
            out.print(f"{count} dead letter(s) queued again.", markup=False)
            return
        await app.services.outbox.retry(item_id)
        out.print(f"Outbox message #{item_id} queued again.", markup=False)

    _run(_with_app(go))


@outbox_cli.command("drain")
def outbox_drain(
    max_wait: Annotated[float, typer.Option(
        min=0, max=3600, help="Longest wait for retries, in seconds (0 to 3600).")] = 30.0,
) -> None:
    """Deliver everything due (with the transports configured here), then exit."""

    async def go(app: App) -> None:
        stats = await app.dispatcher.drain(max_wait=max_wait)
        out.print(f"Delivered {stats.sent}, retrying {stats.retried}, dead {stats.dead}.",
                  markup=False)

    _run(_with_app(go, console=True))


# manifest ----------------------------------------------------------------------------


@cli.command("manifest")
def manifest_cmd(
    url: Annotated[str, typer.Option(help="Public base URL of this deployment's HTTP server.")],
    socket_mode: Annotated[bool, typer.Option("--socket-mode", help="Use Socket Mode.")] = False,
) -> None:
    """Print the Slack app manifest (YAML) for this deployment."""
    from urllib.parse import urlsplit

    from bot.wiring.manifest import manifest_yaml

    if not url.startswith(("https://", "http://")) or not urlsplit(url).hostname:
        raise _fail("--url must be https://HOST… (or http:// for testing)")
    sys.stdout.write(manifest_yaml(url, socket_mode=socket_mode))


report_cli = typer.Typer(help="Reports.", no_args_is_help=True)
cli.add_typer(report_cli, name="report")


@report_cli.command("sla")
def report_sla(
    org: Annotated[str, typer.Option(help="Organization key.")],
    month: Annotated[str, typer.Option(help="Calendar month, YYYY-MM (organization-local).")],
    format: Annotated[str, typer.Option(help="table or csv.")] = "table",
) -> None:
    """One organization's SLA report for a month: tickets, responses met and breached,
    median first-response business time, satisfaction."""
    import csv
    import io

    from rich.table import Table

    if format not in ("table", "csv"):
        raise _fail(f"--format takes table or csv, not {format[:20]!r}")

    async def go(app: App) -> None:
        report = await app.services.sla_report.report(org, month)
        if format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["organization", "month", "measure", "value"])
            for measure, value in report.rows():
                writer.writerow([report.org.key, report.month, measure, value])
            sys.stdout.write(buffer.getvalue())
            return
        table = Table("measure", "value",
                      title=Text(f"SLA report: {report.org.name}, {report.month}"))
        for measure, value in report.rows():
            table.add_row(Text(measure), Text(value))
        out.print(table)

    _run(_with_app(go))


def main() -> None:
    try:
        cli()
    except Exception as exc:
        _exit_if_configuration_error(exc)
        # Last resort: one line, never a value (it may hold a secret); details on request.
        import os
        import traceback

        if os.environ.get("SUBDESK_LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exc()
        err.print(f"[red]error:[/red] unexpected failure ({type(exc).__name__}); run again "
                  "with SUBDESK_LOG_LEVEL=DEBUG for the details")
        sys.exit(1)


def _exit_if_configuration_error(exc: Exception) -> None:
    """One line per configuration problem, then exit 1; other errors pass through.

    pydantic is imported here, on the way out, not for every command."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, ValidationError):
        # Configuration errors name the setting, never its value (it may be a secret).
        err.print("[red]error:[/red] invalid configuration:")
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"])
            err.print(f"  {where}: {error['msg']}", markup=False)
        sys.exit(1)
    if isinstance(exc, (SettingsError, tomllib.TOMLDecodeError, UnicodeDecodeError)):
        # These name the file, line or field, never the value itself.
        where = "subdesk.toml" if isinstance(exc, tomllib.TOMLDecodeError) else "settings"
        if isinstance(exc, UnicodeDecodeError):
            where, detail = ".env", f"not UTF-8 text (byte {exc.start})"
        else:
            detail = str(exc).splitlines()[0]
        err.print(f"[red]error:[/red] invalid configuration: {where}: ", end="")
        err.print(detail, markup=False)
        sys.exit(1)

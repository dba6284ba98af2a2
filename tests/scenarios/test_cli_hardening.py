"""Absurd files and secret settings on the real `subdesk` command line: one line, no value."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from tests.conftest import NOW
from tests.scenarios.test_cli import SUBDESK, dead_letter, environment


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SUBDESK, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=60, check=False, stdin=subprocess.DEVNULL)


def test_deeply_nested_files_are_refused_in_one_line(db_url: str, tmp_path: Path) -> None:
    """A JSON file nested absurdly deep is one clear line and exit 1, for both imports."""
    path = tmp_path / "deep.json"
    path.write_text('{"organizations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for kind in ("orders", "invoices"):
        result = run(tmp_path, environment(db_url), "import", kind, str(path))
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "error: nothing was imported: nested too deeply (at most 16 levels)"]


def test_outbox_retry_all_and_since(db_url: str, tmp_path: Path) -> None:
    """`outbox retry --all` requeues every dead letter, `--since` those queued since then;
    bad ids and dates are one line and exit 1."""
    for n, at in enumerate((NOW - dt.timedelta(days=3), NOW, NOW)):
        dead_letter(db_url, f"dead-{n}", queued=at)
    env = environment(db_url)
    since = (NOW - dt.timedelta(hours=1)).isoformat()
    recent = run(tmp_path, env, "outbox", "retry", "--since", since)
    assert recent.returncode == 0, recent.stderr
    assert "2 dead letter(s) queued again." in recent.stdout
    rest = run(tmp_path, env, "outbox", "retry", "--all")
    assert "1 dead letter(s) queued again." in rest.stdout
    for args, message in [
        (("--since", "yesterday"), "error: --since takes an ISO time"),
        (("99999999999999999999",), "error: no unsent outbox message #99999999999999999999"),
        ((), "error: give a message id, or --all / --since ISO"),
    ]:
        bad = run(tmp_path, env, "outbox", "retry", *args)
        assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
            bad.stderr.strip()], bad.stderr
        assert bad.stderr.startswith(message), bad.stderr


def test_text_that_looks_like_markup_is_printed_as_written(db_url: str, tmp_path: Path) -> None:
    """What a person typed or the database holds may look like Rich markup (`[/b]`): an
    error line shows it as typed, and `outbox status` shows a recipient and an error so
    named, where they used to end in "unexpected failure (MarkupError)"."""
    env = environment(db_url)
    typed = run(tmp_path, env, "link", "[/b]@acme.test", "--slack", "T9:U9")
    assert typed.returncode == 1 and "unexpected failure" not in typed.stderr
    assert "[/b]@acme.test" in typed.stderr and typed.stderr.startswith("error: ")
    dead_letter(db_url, "dead-markup", recipient="Ana [/b] Main <ops@acme.test>",
                error="SMTP 550 [/red] refused")
    status = run(tmp_path, env, "outbox", "status", "--show", "dead")
    assert status.returncode == 0, status.stderr
    assert "Ana [/b] Main" in status.stdout and "[/red] refused" in status.stdout


def test_an_endless_import_file_is_refused_unread(db_url: str, tmp_path: Path) -> None:
    """`/dev/zero` as an order form is one line and exit 1, not memory running out."""
    result = run(tmp_path, environment(db_url), "import", "orders", "/dev/zero")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: zero is larger than 64 MB; split it"]


def test_chat_accounts_from_the_command_line_follow_the_order_form_rule(
    db_url: str, tmp_path: Path
) -> None:
    """`staff add --slack` and `--matrix` take what an order form takes (a space or lower
    case in a Slack id was accepted here and refused there)."""
    env = environment(db_url)
    for flag, value in (("--slack", "T 1:U 1"), ("--slack", "t1:u1"), ("--matrix", "tom")):
        result = run(tmp_path, env, "staff", "add", "x@vendor.test", "--role", "engineer",
                     flag, value)
        assert result.returncode == 1, (value, result.stderr)
        assert result.stderr.startswith(f"error: {flag} must "), result.stderr

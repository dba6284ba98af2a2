"""Absurd files and secret settings on the real `subdesk` command line: one line, no value."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.scenarios.test_cli import SUBDESK, environment


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

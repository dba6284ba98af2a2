"""The command line starts fast: commands import what they use, nothing more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.nodb

ROOT = Path(__file__).resolve().parents[2]
# pydantic itself is not listed: Typer uses it to convert parameters.
HEAVY = ("sqlalchemy", "alembic", "aiosqlite", "asyncpg", "aiohttp", "slack_sdk", "slack_bolt",
         "nio", "pydantic_settings")

PROBE = """
import json, sys
from bot.wiring.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def loaded_by(*args: str) -> set[str]:
    """The top-level packages `subdesk ARGS…` has imported by the time it exits."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )
    modules: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return set(modules)


@pytest.mark.parametrize(
    "args",
    [("--help",), ("outbox", "--help"), ("staff", "add", "--help"),
     ("manifest", "--url", "https://desk.example.com")],
)
def test_help_and_manifest_import_no_database_or_platform_library(args: tuple[str, ...]) -> None:
    """`subdesk --help`, a sub-command's help and `subdesk manifest` load no database,
    settings or chat platform library."""
    loaded = loaded_by(*args)
    assert "typer" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))

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


def loaded_by(*args: str, settings: dict[str, str] | None = None, stdin: str = "",
              cwd: Path = ROOT) -> set[str]:
    """The top-level packages `subdesk ARGS…` has imported by the time it exits."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
    env.update(settings or {})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=60, check=False, input=stdin,
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


def test_a_console_run_imports_matrix_nio_only_when_matrix_is_configured(
    tmp_path: Path,
) -> None:
    """Every app build loads the Matrix plug-in's entry point; matrix-nio (and its crypto)
    is imported only when Matrix is configured, so a console run does without it."""
    settings = {"SUBDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'subdesk.db'}",
                "SUBDESK_DATA_DIR": str(tmp_path / "data"), "SUBDESK_LOG_LEVEL": "WARNING"}
    console = loaded_by("demo", settings=settings, stdin="/subdesk whoami\n", cwd=tmp_path)
    assert {"sqlalchemy", "adapters"} <= console  # the app was built
    assert "nio" not in console and "vodozemac" not in console
    matrix = {"MATRIX_HOMESERVER": "http://127.0.0.1:9", "MATRIX_USER_ID": "@bot:acme.test",
              "MATRIX_PASSWORD": "not-used"}
    served = loaded_by("demo", settings={**settings, **matrix}, stdin="", cwd=tmp_path)
    assert "nio" in served

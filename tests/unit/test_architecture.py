"""The core never imports a platform library (SPEC §5)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bot

pytestmark = pytest.mark.nodb

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_LIBRARIES = ("slack_sdk", "slack_bolt", "nio", "aiohttp")
WIRING = {"bot.cli", "bot.runtime"}


def core_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(bot.__path__, "bot.") if m.name not in WIRING
    )


PROBE = """
import importlib, json, sys
modules = json.loads(sys.argv[1])
libraries = json.loads(sys.argv[2])
found = {}
for name in modules:
    before = set(sys.modules)
    importlib.import_module(name)
    for lib in libraries:
        if lib in sys.modules and lib not in before:
            found.setdefault(lib, name)
print(json.dumps(found))
"""


def test_core_modules_are_found() -> None:
    """The probe sees the core packages, so an empty result means something."""
    modules = core_modules()
    for expected in ("bot.core", "bot.commands.parser", "bot.policy", "bot.outbox",
                     "bot.services.contacts", "bot.handlers.directory"):
        assert expected in modules
    assert not WIRING & set(modules)


def test_core_does_not_import_platform_libraries() -> None:
    """Importing every module of bot/ except the CLI and runtime wiring loads no Slack,
    Matrix or aiohttp code."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(core_modules()),
         json.dumps(PLATFORM_LIBRARIES)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {}, f"platform libraries imported by the core: {found}"


def test_probe_detects_a_platform_import() -> None:
    """The probe itself works: importing aiohttp directly is reported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(["aiohttp"]), json.dumps(["aiohttp"])],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"aiohttp": "aiohttp"}

"""The core never imports a platform library (SPEC §5), nor names an adapter."""

from __future__ import annotations

import ast
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bot

pytestmark = pytest.mark.nodb

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_LIBRARIES = ("slack_sdk", "slack_bolt", "nio", "aiohttp")


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(bot.__path__, "bot."))


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
    for expected in ("bot.core", "bot.commands.parser", "bot.policy", "bot.delivery.dispatcher",
                     "bot.services.contacts", "bot.handlers.directory"):
        assert expected in modules
    assert {"bot.wiring.cli", "bot.wiring.runtime", "bot.wiring.background"} <= set(modules)


def test_core_does_not_import_platform_libraries() -> None:
    """Importing every module of bot/, the CLI and the runtime wiring included, loads no
    Slack, Matrix or aiohttp code."""
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


_ADAPTER_MODULE = re.compile(r"(?<![\w.])adapters\.\w")


def adapter_references(source: str) -> list[str]:
    """Imports of an `adapters` module, and strings naming one (`importlib` targets,
    entry-point values such as "adapters.console.app:plugin"), in Python source."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "adapters"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] if node.module.split(".")[0] == "adapters" else []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            found += [value] if value.strip() == "adapters" or _ADAPTER_MODULE.search(value) else []
    return found


def test_core_names_no_adapter() -> None:
    """No module of bot/ imports an `adapters` module or names one in a string: adapters
    are plug-ins the runtime finds by entry point, so adding one touches nothing in bot/."""
    named = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        if refs := adapter_references(path.read_text(encoding="utf-8")):
            named[str(path.relative_to(ROOT))] = refs
    assert named == {}, f"bot/ names adapters: {named}"


@pytest.mark.parametrize("source", [
    "import adapters.console.app",
    "from adapters.http.server import serve",
    "from adapters import console",
    "import importlib\nimportlib.import_module('adapters.email.smtp')",
    "PLUGIN = 'adapters.console.app:plugin'",
])
def test_adapter_references_are_detected(source: str) -> None:
    """The check sees every way of reaching an adapter module."""
    assert adapter_references(source)


def test_adapter_words_in_prose_are_not_references() -> None:
    """Prose about adapters and the entry-point group name are not references."""
    assert adapter_references('"""Adapters are plug-ins."""\nGROUP = "subdesk.adapters"') == []

"""The Slack app manifest validates against Slack's published schema and matches the grammar."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.commands.grammar import GRAMMAR
from bot.wiring.manifest import MESSAGE_SHORTCUT, manifest, manifest_yaml

pytestmark = pytest.mark.nodb

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "slack-manifest-schema" / "manifest.schema.1.0.0.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    if not SCHEMA.exists():
        # A plain clone has no ../shared beside it; CI always has the schema there.
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA} (../shared is absent)")
    loaded: dict[str, object] = json.loads(SCHEMA.read_text())
    return loaded


def test_checked_in_manifest_validates(schema: dict[str, object]) -> None:
    """manifest.yml in the repository is valid for Slack."""
    jsonschema.validate(yaml.safe_load((ROOT / "manifest.yml").read_text()), schema)


def test_checked_in_manifest_is_generated() -> None:
    """manifest.yml is what `subdesk manifest --url https://subdesk.example.com` prints."""
    assert (ROOT / "manifest.yml").read_text() == manifest_yaml("https://subdesk.example.com")


@pytest.mark.parametrize("socket_mode", [False, True])
def test_generated_manifest_validates(schema: dict[str, object], socket_mode: bool) -> None:
    """Both HTTP and Socket Mode manifests validate, with every command root present."""
    data = manifest("https://bot.example.org/", socket_mode=socket_mode)
    jsonschema.validate(data, schema)
    commands = {c["command"] for c in data["features"]["slash_commands"]}
    assert commands == {f"/{spec.root}" for spec in GRAMMAR}
    urls = [c.get("url") for c in data["features"]["slash_commands"]]
    if socket_mode:
        assert urls == [None] * len(urls)
        assert data["settings"]["socket_mode_enabled"] is True
    else:
        assert set(urls) == {"https://bot.example.org/slack/events"}


def test_invalid_manifest_is_rejected(schema: dict[str, object]) -> None:
    """The schema check can fail: a command without its slash is refused."""
    data = manifest("https://bot.example.org")
    data["features"]["slash_commands"][0]["command"] = "ticket"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_manifest_declares_tickets_from_conversations() -> None:
    """The message shortcut, the :ticket: reaction's event and the scope to read it."""
    data = manifest("https://bot.example.org")
    [shortcut] = data["features"]["shortcuts"]
    assert (shortcut["type"], shortcut["callback_id"]) == ("message", MESSAGE_SHORTCUT)
    assert "reaction_added" in data["settings"]["event_subscriptions"]["bot_events"]
    assert "reactions:read" in data["oauth_config"]["scopes"]["bot"]
    assert "app_home_opened" in data["settings"]["event_subscriptions"]["bot_events"]
    assert data["features"]["app_home"]["home_tab_enabled"] is True

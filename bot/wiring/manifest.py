"""The Slack app manifest, generated from the command grammar so the two never drift."""

from __future__ import annotations

from typing import Any

import yaml

from bot.commands.grammar import GRAMMAR

_DESCRIPTIONS = {
    "subdesk": "Help, who you are, and linking your account",
    "ticket": "Open and follow support tickets",
    "billing": "Invoices, statement and billing questions",
    "contacts": "Your organization's designated contacts",
    "triage": "Support engineers: the ticket queue and triage",
    "alert": "Support engineers: alert organizations",
}

BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "app_mentions:read",
    "users:read",
    "users:read.email",
    "files:read",
    "reactions:read",
)
BOT_EVENTS = (
    "app_mention",
    "message.im",
    "message.channels",
    "message.groups",
    "reaction_added",
    "app_home_opened",
    "app_uninstalled",  # OAuth installs: the workspace's installation is removed
    "tokens_revoked",
)
INSTALL_REDIRECT = "/slack/oauth_redirect"  # where Slack sends an OAuth installer back
MESSAGE_SHORTCUT = "subdesk_ticket_from_message"
SHORTCUTS = (
    {"name": "Open a ticket", "type": "message", "callback_id": MESSAGE_SHORTCUT,
     "description": "Open a support ticket from this message: its text, link and files"},
)


def _usage_hint(root: str) -> str:
    words = sorted({spec.words[0] for spec in GRAMMAR if spec.root == root and spec.words})
    if root == "alert":
        return "info|warning|critical all|ORG_KEY TEXT"
    return ("|".join(words))[:1000] or "help"


def manifest(url: str, *, socket_mode: bool = False, name: str = "Subdesk") -> dict[str, Any]:
    """A manifest for a deployment whose HTTP server is reachable at `url`."""
    base = url.rstrip("/")
    events_url = f"{base}/slack/events"
    roots = list(dict.fromkeys(spec.root for spec in GRAMMAR))
    commands = []
    for root in roots:
        command: dict[str, Any] = {
            "command": f"/{root}",
            "description": _DESCRIPTIONS[root],
            "usage_hint": _usage_hint(root),
            "should_escape": False,
        }
        if not socket_mode:
            command["url"] = events_url
        commands.append(command)
    settings: dict[str, Any] = {
        "event_subscriptions": {"bot_events": list(BOT_EVENTS)},
        "interactivity": {"is_enabled": True},
        "org_deploy_enabled": False,
        "socket_mode_enabled": socket_mode,
        "token_rotation_enabled": False,
    }
    if not socket_mode:
        settings["event_subscriptions"]["request_url"] = events_url
        settings["interactivity"]["request_url"] = events_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Support tickets, billing and alerts for your subscription, in chat.",
            "background_color": "#1d3557",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": commands,
            "shortcuts": [dict(s) for s in SHORTCUTS],
        },
        "oauth_config": {"redirect_urls": [f"{base}{INSTALL_REDIRECT}"],
                         "scopes": {"bot": list(BOT_SCOPES)}},
        "settings": settings,
    }


def manifest_yaml(url: str, *, socket_mode: bool = False) -> str:
    return yaml.safe_dump(manifest(url, socket_mode=socket_mode), sort_keys=False)

"""Outbox delivery to Slack through the Web API (`chat.postMessage`, `chat.update`,
`conversations.open`), with Slack's failures mapped to the outbox's failure kinds."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from adapters.slack.installs import SealedInstallationStore
from adapters.slack.render import render
from bot.delivery.ports import DeliveryError, FailureKind
from bot.domain import MessageRef
from bot.presentation.messages import Message
from storage.outbox import OutboxItem

# `ok: false` errors that no retry can fix: the address is wrong or the bot is kept out.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "user_not_found", "user_disabled",
    "cannot_dm_bot", "user_not_visible", "restricted_action", "msg_too_long", "no_text",
    "invalid_blocks", "message_not_found", "cant_update_message", "edit_window_closed",
})
# Errors the operator must fix (token, scopes, app install): hold every Slack message.
CONFIGURATION_ERRORS = frozenset({
    "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
    "missing_scope", "no_permission", "not_allowed_token_type", "team_access_not_granted",
    "ekm_access_denied", "org_login_required",
})
RATE_LIMITED_DEFAULT = 30.0  # seconds, when Slack says ratelimited without a Retry-After


def delivery_error(exc: SlackApiError) -> DeliveryError:
    """The outbox's reading of a failed Web API call."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data: Any = getattr(response, "data", None)
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    if status == 429 or error == "ratelimited":
        return DeliveryError(f"Slack rate limit (HTTP {status or 200})",
                             retry_after=_retry_after(headers), kind=FailureKind.RATE_LIMITED)
    if error in CONFIGURATION_ERRORS:
        return DeliveryError(f"Slack refused the bot token or its scopes: {error}",
                             kind=FailureKind.CONFIGURATION)
    if error in PERMANENT_ERRORS:
        return DeliveryError(f"Slack cannot deliver this message: {error}", permanent=True)
    return DeliveryError(f"Slack error: {error or f'HTTP {status}'}")


def _retry_after(headers: Any) -> float:
    try:
        return max(float(headers.get("Retry-After") or headers.get("retry-after")), 0.0)
    except (TypeError, ValueError):
        return RATE_LIMITED_DEFAULT


class OneWorkspace:
    """The workspace of `SLACK_BOT_TOKEN` (`team_id` once `auth.test` said it)."""

    def __init__(self, client: AsyncWebClient, team_id: str | None = None) -> None:
        self.client = client
        self.team_id = team_id

    async def client_for(self, team: str) -> AsyncWebClient:
        if team and self.team_id and team != self.team_id:
            raise DeliveryError(f"no Slack installation for workspace {team[:32]}",
                                permanent=True)
        return self.client

    def refused(self, team: str, error: DeliveryError) -> DeliveryError:
        """The bot token refused: the operator must fix it, every message waits."""
        return error


class InstalledWorkspaces:
    """Workspaces installed through OAuth: each address's workspace brings its own bot
    token, from the installation store."""

    def __init__(self, store: SealedInstallationStore, base_url: str) -> None:
        self.store = store
        self.base_url = base_url

    async def client_for(self, team: str) -> AsyncWebClient:
        if not team:
            raise DeliveryError("a Slack address names no workspace (write TEAM:CHANNEL "
                                "when workspaces install through OAuth)", permanent=True)
        try:
            token = await self.store.bot_token(team)
        except (SQLAlchemyError, OSError) as exc:
            raise DeliveryError(f"Slack installations not readable: {type(exc).__name__}"
                                ) from None
        if token is None:
            raise DeliveryError(f"no Slack installation for workspace {team[:32]}",
                                permanent=True)
        return AsyncWebClient(token=token, base_url=self.base_url)

    def refused(self, team: str, error: DeliveryError) -> DeliveryError:
        """One workspace's token refused (revoked, scopes withdrawn): only its messages
        wait, with backoff, for a reinstall; the other workspaces' go on."""
        self.store.forget()
        return DeliveryError(f"{error} (workspace {team[:32]})")


class SlackTransport:
    """Posts outbox items with the bot token of the workspace each address names.

    Addresses carry their workspace: `TEAM:USER` for a DM (the IM channel is opened with
    `conversations.open` and remembered), `TEAM:CHANNEL` or a bare `CHANNEL` (the bot's
    own workspace, with one bot token) for a channel. A thread root is posted under with
    `thread_ts`; a card edit replaces its message with `chat.update`."""

    platform = "slack"

    def __init__(self, workspaces: OneWorkspace | InstalledWorkspaces) -> None:
        self.workspaces = workspaces
        self._ims: dict[tuple[str, str], str] = {}
        # Why Slack last refused the one bot token or its scopes on a delivery; None once one
        # works. With OAuth installs a refusal holds up one workspace only, not readiness.
        self.refused: str | None = None

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        try:
            ref = await self._deliver(item, message)
        except DeliveryError as exc:
            if exc.kind is FailureKind.CONFIGURATION and isinstance(self.workspaces,
                                                                      OneWorkspace):
                self.refused = str(exc)
            raise
        self.refused = None
        return ref

    async def _deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        body = render(message).payload()
        team, _, address = item.target.rpartition(":")
        client = await self.workspaces.client_for(team)
        try:
            if item.replaces is not None:
                ref = item.replaces
                await client.chat_update(channel=ref.channel, ts=ref.id, **body)
                return ref
            if item.thread is not None:
                channel = item.thread.channel
                body["thread_ts"] = item.thread.id
            else:
                channel = await self._channel(client, item.kind, team, address)
            response = await client.chat_postMessage(channel=channel, **body)
        except SlackApiError as exc:
            error = delivery_error(exc)
            if error.kind is FailureKind.CONFIGURATION:
                raise self.workspaces.refused(team, error) from None
            raise error from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"Slack unreachable: {type(exc).__name__}") from None
        return MessageRef(str(response["channel"]), str(response["ts"]))

    async def _channel(self, client: AsyncWebClient, kind: str, team: str, address: str
                       ) -> str:
        if kind != "dm":
            return address
        if (team, address) not in self._ims:
            opened = await client.conversations_open(users=address)
            self._ims[team, address] = str(opened["channel"]["id"])
        return self._ims[team, address]

"""Outbox delivery to Slack through the Web API (`chat.postMessage`, `chat.update`,
`conversations.open`), with Slack's failures mapped to the outbox's failure kinds.

Every post carries message `metadata` naming its outbox key. A message in doubt (its
earlier attempt may have been posted just before its sender died, or no answer came) is
looked up first — `conversations.history` of the channel, or `conversations.replies` of its
thread, from shortly before that attempt — and when found, that message is the delivery:
Slack, like Matrix, gets no second copy."""

from __future__ import annotations

import datetime as dt
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
METADATA_EVENT = "subdesk_outbox"  # the metadata event type of every post
# A message in doubt is looked for from this long before its attempt started (clock skew),
# through at most this many pages of history.
LOOKUP_MARGIN = dt.timedelta(seconds=60)
LOOKUP_PAGES = 5


def delivery_client(token: str | None, base_url: str) -> AsyncWebClient:
    """A Web API client for the outbox. slack_sdk's own retry is off: it would send a post
    again blindly after a reset connection, when Slack may have stored it already; the
    outbox retries instead, looking for the post first (see `SlackTransport`)."""
    return AsyncWebClient(token=token, base_url=base_url, retry_handlers=[])


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
    # A server error may come after the call was carried out (a gateway timing out behind
    # Slack, say): a post answered so is looked for before it is sent again.
    return DeliveryError(f"Slack error: {error or f'HTTP {status}'}", in_doubt=status >= 500)


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
        return delivery_client(token, self.base_url)

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
        self.found = 0  # messages in doubt found already posted (not posted again)
        # One connection pool for every Web API call of the outbox (slack_sdk opens and
        # closes a session per call otherwise: a TCP handshake and a pool per message).
        self._http: aiohttp.ClientSession | None = None
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
        if client.session is None:
            client.session = self._session()
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
            if item.in_doubt is not None:
                found = await self._find(client, channel, item.thread, item.key, item.in_doubt)
                if found is not None:
                    self.found += 1
                    return found
            body["metadata"] = {"event_type": METADATA_EVENT,
                                "event_payload": {"key": item.key}}
            response = await client.chat_postMessage(channel=channel, **body)
        except SlackApiError as exc:
            error = delivery_error(exc)
            if error.kind is FailureKind.CONFIGURATION:
                raise self.workspaces.refused(team, error) from None
            raise error from None
        except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
            raise DeliveryError(f"Slack unreachable: {type(exc).__name__}",
                                kind=FailureKind.UNREACHABLE) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # Connected, but no whole answer came back (a timeout, a reset, a body cut
            # short): the post may have arrived, so the next attempt looks for it first.
            raise DeliveryError(f"Slack did not answer: {type(exc).__name__}",
                                in_doubt=True) from None
        landed, ts = response.get("channel"), response.get("ts")
        if not landed or not ts:  # `ok`, but naming no message: it may be there all the same
            raise DeliveryError("Slack's answer named no message", in_doubt=True)
        return MessageRef(str(landed), str(ts))

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # No cap of its own: the dispatcher caps deliveries under way.
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                               connector=aiohttp.TCPConnector(limit=0))
        return self._http

    async def close(self) -> None:
        """Close the connection pool (the adapter is stopping)."""
        if self._http is not None:
            await self._http.close()

    async def _find(self, client: AsyncWebClient, channel: str, thread: MessageRef | None,
                    key: str, since: dt.datetime) -> MessageRef | None:
        """The message posted with outbox key `key` in `channel` (under `thread`) since
        shortly before `since`, if there is one."""
        oldest = f"{(since - LOOKUP_MARGIN).timestamp():.6f}"
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            if thread is None:
                page = await client.conversations_history(
                    channel=channel, oldest=oldest, limit=200, include_all_metadata=True,
                    cursor=cursor)
            else:
                page = await client.conversations_replies(
                    channel=channel, ts=thread.id, oldest=oldest, limit=200,
                    include_all_metadata=True, cursor=cursor)
            for posted in page.get("messages") or ():
                metadata = posted.get("metadata") or {}
                if (metadata.get("event_type") == METADATA_EVENT
                        and (metadata.get("event_payload") or {}).get("key") == key):
                    return MessageRef(channel, str(posted["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or cursor is None:
                return None
        return None

    async def _channel(self, client: AsyncWebClient, kind: str, team: str, address: str
                       ) -> str:
        if kind != "dm":
            return address
        if (team, address) not in self._ims:
            opened = await client.conversations_open(users=address)
            self._ims[team, address] = str(opened["channel"]["id"])
        return self._ims[team, address]

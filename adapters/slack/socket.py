"""Socket Mode: Slack's requests over a websocket the app opens (`SLACK_APP_TOKEN`), for
deployments that Slack cannot reach over HTTP.

slack-bolt's aiohttp Socket Mode handler feeds each envelope to the same bolt app as
`POST /slack/events` and sends its acknowledgement (`envelope_id`, with a payload when the
listener answered one, say a modal's errors); slack_sdk's client pings the link, and opens a
new one when Slack asks (`disconnect`), the socket closes or the pings stop coming back.
Envelopes Slack sends again (not acknowledged before a reconnect) count once: the core keys
commands, replies and reactions by Slack's own ids.
"""

from __future__ import annotations

import logging

from aiohttp import ClientError
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.services.base import ServiceError
from bot.wiring import logs

log = logging.getLogger(__name__)

PING_SECONDS = 10.0


class SocketMode:
    """One Socket Mode link for `bolt`: checked on `start`, opened by `connect` (and
    reopened by slack_sdk for as long as it runs), closed on `stop`."""

    def __init__(self, bolt: AsyncApp, app_token: str, api_url: str,
                 ping_seconds: float = PING_SECONDS) -> None:
        self.bolt = bolt
        self.app_token = app_token
        self.web = AsyncWebClient(base_url=api_url)
        self.ping_seconds = ping_seconds
        self.handler: AsyncSocketModeHandler | None = None

    async def start(self) -> None:
        """Ask Slack for the link's URL once (`apps.connections.open`): an app token Slack
        refuses stops the process; Slack out of reach does not (the link is asked again
        when it connects)."""
        # bolt times each answer for a debug line unless the level set on this logger says
        # otherwise (see `logs.pinned`)
        self.handler = AsyncSocketModeHandler(self.bolt, self.app_token,
                                              logger=logs.pinned(f"{__name__}.client", log),
                                              web_client=self.web,
                                              ping_interval=self.ping_seconds)
        try:
            opened = await self.web.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            await self.stop()
            raise ServiceError(f"Slack refused SLACK_APP_TOKEN: "
                               f"{exc.response.get('error', 'error')}") from None
        except (TimeoutError, ClientError, OSError) as exc:
            log.warning("Slack not reachable for Socket Mode: %s", type(exc).__name__)
            return
        self.handler.client.wss_uri = str(opened["url"])

    async def connect(self) -> None:
        """Open the link; slack_sdk keeps it open from then on."""
        assert self.handler is not None, "start() first"
        await self.handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack Socket Mode connected")

    async def stop(self) -> None:
        if self.handler is not None:
            handler, self.handler = self.handler, None
            await handler.close_async()  # type: ignore[no-untyped-call]

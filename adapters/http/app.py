"""The HTTP plug-in: the one server on `SUBDESK_HTTP_HOST:PORT`, serving its own endpoints
and every route the other adapters supply. aiohttp is imported only when it starts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from bot.delivery.ports import Route, Transport
from bot.wiring.config import Settings
from bot.wiring.runtime import App

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


class HttpAdapter:
    """Starts the server on `start` and stops it on `stop`. A port already in use is logged,
    not fatal: the chat adapters and the sweeps still run."""

    chat = False
    routes: Sequence[Route] = ()

    def __init__(self, app: App) -> None:
        self.app = app
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.failed: str | None = None  # why `start` could not listen

    @property
    def transports(self) -> Mapping[str, Transport]:
        return {}

    async def start(self) -> None:
        from adapters.http.server import serve

        host, port = self.app.settings.http_host, self.app.settings.http_port
        try:
            self.runner = await serve(self.app, host, port, self.app.routes())
        except OSError as exc:
            self.failed = f"HTTP server not started on {host}:{port}: {exc.strerror or exc}"
            log.warning("%s", self.failed)
            return
        self.port = int(self.runner.addresses[0][1])
        log.info("HTTP server on http://%s:%s", host, self.port)

    async def run(self) -> None:
        return None

    async def readiness(self) -> str | None:
        """Ready unless `start` could not listen on the configured address."""
        return self.failed

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def plugin(settings: Settings, app: App) -> HttpAdapter:
    """Always configured: the server has health checks and the import API."""
    return HttpAdapter(app)

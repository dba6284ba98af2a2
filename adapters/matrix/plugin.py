"""The Matrix plug-in's entry point (`subdesk.adapters`). It is loaded by every app build,
Matrix configured or not, so it imports matrix-nio (and its crypto) only when Matrix is
configured: the CLI, the console and Slack-only deployments never pay for it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.wiring.config import Settings
from bot.wiring.runtime import App

if TYPE_CHECKING:
    from adapters.matrix.app import MatrixAdapter

log = logging.getLogger(__name__)


def plugin(settings: Settings, app: App) -> MatrixAdapter | None:
    """Matrix, when `MATRIX_HOMESERVER`, `MATRIX_USER_ID` and `MATRIX_PASSWORD` or
    `MATRIX_ACCESS_TOKEN` are set."""
    if not settings.matrix_enabled:
        if settings.matrix_homeserver is not None or settings.matrix_user_id is not None:
            log.warning("Matrix not started: MATRIX_HOMESERVER, MATRIX_USER_ID and "
                        "MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN are all needed")
        return None
    from adapters.matrix.app import MatrixAdapter, link_for

    return MatrixAdapter(app, link_for(settings))

"""Request bodies read within a limit: the one HTTP server's imports and hooks, and the chat
platforms' webhooks mounted on it."""

from __future__ import annotations

from aiohttp import web


async def read_within(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit` bytes (its declared
    length, the application's own `client_max_size`, or what arrived)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None

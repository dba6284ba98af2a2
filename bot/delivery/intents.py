"""Outbox payloads that hold intent, rendered when they are delivered.

An outbox payload is either a whole message (kind "message", `Message.to_json()`; payloads
without a kind are messages too) or a small reference such as
`{"kind": "invoice_reminder", "invoice": 7, "due_on": "2027-01-15", "days": 7}`. A renderer
registered for the kind reads what it needs at delivery time, in a read transaction, and
returns the message for that recipient's platform (and later locale), or `Dropped` when the
intent no longer applies (the invoice was paid after the reminder was queued).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.presentation.messages import Message
from bot.services.base import Tx
from storage.db import Database

MESSAGE = "message"


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a queued intent is rendered for: the delivering platform, the address it goes
    to (a renderer may check that it still belongs to someone it is meant for), and a
    locale hook."""

    platform: str
    locale: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """What to queue instead of a whole message: the payload reference, and the card it is
    (so later edits can replace it where it lands) when it is one."""

    payload: dict[str, Any]
    card_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.payload


@dataclass(frozen=True, slots=True)
class Dropped:
    """The intent no longer applies; `reason` is kept on the outbox row."""

    reason: str


Rendered = Message | Dropped
Renderer = Callable[[Tx, Mapping[str, Any], Audience], Awaitable[Rendered]]


class UnknownIntent(Exception):
    """A payload names a kind no renderer is registered for."""


class Intents:
    """The renderer registry: one async renderer per intent kind."""

    def __init__(self) -> None:
        self._renderers: dict[str, Renderer] = {}

    def register(self, kind: str, renderer: Renderer) -> None:
        if kind == MESSAGE or kind in self._renderers:
            raise ValueError(f"intent kind {kind!r} is already registered")
        self._renderers[kind] = renderer

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset((MESSAGE, *self._renderers))

    async def render(
        self, db: Database, clock: Clock, payload: Mapping[str, Any], audience: Audience
    ) -> Rendered:
        """The message `payload` stands for, for `audience`, as of now."""
        kind = payload.get("kind", MESSAGE)
        if kind == MESSAGE:
            return Message.from_json(dict(payload))
        renderer = self._renderers.get(kind)
        if renderer is None:
            raise UnknownIntent(f"no renderer for outbox intent {kind!r}")
        async with db.read() as session:
            return await renderer(Tx(session, clock.now()), payload, audience)


"""What the core needs from the outside world: the small adapter contract."""

from __future__ import annotations

from typing import Protocol

from bot.domain import MessageRef
from bot.messages import Message
from storage.outbox import OutboxItem


class DeliveryError(Exception):
    """A send failed. `retry_after` (seconds) when the peer said when to come back;
    `permanent` when retrying cannot help (unknown channel, invalid address)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.permanent = permanent


class Transport(Protocol):
    """Delivers outbox items for one platform (`slack`, `matrix`, `console`, `email`)."""

    platform: str

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        """Send once; return where the message landed (Slack channel + ts, Matrix room +
        event id, email address + Message-ID), or None when the platform gives no handle.

        `item.thread` is the root of the message's thread on this target (post under it);
        `item.replaces` is the message an edit replaces (`chat.update`, `m.replace`).
        Raise `DeliveryError` on failure. `item.id` is stable across retries: transports
        whose peer supports it (Matrix transaction ids) use it to make a resend a no-op.
        """
        ...


class Adapter(Protocol):
    """A chat platform connection: inbound commands in, outbound deliveries out."""

    platform: str

    async def connect(self) -> None: ...

    async def listen(self) -> None:
        """Run until cancelled, handing invocations to the core."""
        ...

    async def disconnect(self) -> None: ...

    def transport(self) -> Transport: ...

"""What the core needs from the outside world: the small adapter contract."""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from bot.messages import Message
from storage.outbox import OutboxItem


class FailureKind(Enum):
    """Whose move a failed send waits for."""

    TRANSIENT = "transient"  # the peer's: retry with backoff, dead-letter after N attempts
    PERMANENT = "permanent"  # nobody's: this message cannot be delivered (unknown address)
    CONFIGURATION = "configuration"  # the operator's: hold every message until it is fixed


class DeliveryError(Exception):
    """A send failed. `retry_after` (seconds) when the peer said when to come back;
    `kind` says whether retrying can help and who must act (`permanent=True` is
    shorthand for `FailureKind.PERMANENT`)."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
        kind: FailureKind | None = None,
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.kind = kind or (FailureKind.PERMANENT if permanent else FailureKind.TRANSIENT)

    @property
    def permanent(self) -> bool:
        return self.kind is FailureKind.PERMANENT


class Transport(Protocol):
    """Delivers outbox items for one platform (`slack`, `matrix`, `console`, `email`)."""

    platform: str

    async def deliver(self, item: OutboxItem, message: Message) -> str | None:
        """Send once; return the platform's reference (message ts, event id, Message-ID).

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

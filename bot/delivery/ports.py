"""What the core needs from the outside world: transports, and the small adapter contract
through which a plug-in supplies them, its HTTP routes and its long-running task."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from bot.domain import MessageRef
from bot.presentation.messages import Message
from storage.outbox import OutboxItem


class FailureKind(Enum):
    """Whose move a failed send waits for."""

    TRANSIENT = "transient"  # the peer's: retry with backoff, dead-letter after N attempts
    PERMANENT = "permanent"  # nobody's: this message cannot be delivered (unknown address)
    CONFIGURATION = "configuration"  # the operator's: hold every message until it is fixed
    RATE_LIMITED = "rate_limited"  # the peer asked to wait `retry_after`: no attempt used
    # The peer's service is down or out of reach (no connection at all): hold every
    # message of the platform and probe with one, no attempt used, until it answers.
    UNREACHABLE = "unreachable"


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
        in_doubt: bool = False,
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        # The request may have reached the peer although no answer came back (a timeout):
        # the next attempt looks for the message first where the transport can.
        self.in_doubt = in_doubt
        self.kind = kind or (FailureKind.PERMANENT if permanent else FailureKind.TRANSIENT)

    @property
    def permanent(self) -> bool:
        return self.kind is FailureKind.PERMANENT


class Transport(Protocol):
    """Delivers outbox items for one platform (`slack`, `matrix`, `console`, `email`)."""

    platform: str
    # Optional: a transport may say `active = False` while this process must not deliver
    # for its platform (a Matrix replica standing by while another holds the sync); its
    # messages then stay queued for the process that can. Absent means always active.

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        """Send once; return where the message landed (Slack channel + ts, Matrix room +
        event id, email address + Message-ID), or None when the platform gives no handle.

        `item.thread` is the root of the message's thread on this target (post under it);
        `item.replaces` is the message an edit replaces (`chat.update`, `m.replace`).
        Raise `DeliveryError` on failure. `item.id` is stable across retries: transports
        whose peer supports it (Matrix transaction ids) use it to make a resend a no-op;
        `item.in_doubt` says an earlier attempt may have reached the peer unconfirmed (its
        sender died), and since when, so a transport that can look (Slack message metadata)
        finds that message instead of posting a second one.
        """
        ...


@dataclass(frozen=True)
class Route:
    """An HTTP route an adapter serves on the one HTTP server (Slack events, webhooks).

    `handler` is whatever the server's library takes as a request handler; the core never
    calls or inspects it.
    """

    method: str
    path: str
    handler: Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Terminal:
    """The terminal a command runs in, for the adapters that use one (the console).

    `user` is the email typed as (`subdesk console --as`); `fallback` says the terminal is
    wanted only when no chat platform is configured (`subdesk run`).
    """

    out: Callable[[str], None]
    user: str | None = None
    interactive: bool = False
    fallback: bool = False


class Adapter(Protocol):
    """One plug-in: a chat platform, the HTTP server, an email relay.

    Built by a factory `(settings, app) -> Adapter | None` registered under the
    `subdesk.adapters` entry-point group (None when its settings are absent). The runtime
    hands its transports to the outbox dispatcher and its routes to the HTTP server; when
    the process serves, it calls `start`, runs `run` as a task, and calls `stop` at the end.

    Optionally an adapter says whether it is connected, for `GET /readyz`:
    `async def readiness(self) -> str | None` (see `Ready`); one without it counts as ready.
    """

    @property
    def chat(self) -> bool:
        """Whether people send commands through it; `subdesk run` needs one."""
        ...

    @property
    def transports(self) -> Mapping[str, Transport]:
        """Outbox delivery, keyed by platform name (`console`, `email`, `slack`, …)."""
        ...

    @property
    def routes(self) -> Sequence[Route]:
        """Routes to mount on the one HTTP server."""
        ...

    async def start(self) -> None:
        """Connect; a failure here stops the process before it serves."""
        ...

    async def run(self) -> None:
        """The long-running task (a REPL, a socket, a sync loop); returns at once if none.
        A chat adapter's task ending (the console at the end of its input) ends the process."""
        ...

    async def stop(self) -> None:
        """Disconnect and release what `start` took."""
        ...


@runtime_checkable
class Ready(Protocol):
    """The optional part of the adapter contract: whether the adapter is connected."""

    async def readiness(self) -> str | None:
        """None when connected and working, else a short reason for `GET /readyz` (no
        secret in it). Called on every probe, so it answers from what the adapter already
        knows (a cached check, a connection's state) instead of asking its peer each time."""
        ...


async def readiness_of(adapter: object) -> str | None:
    """An adapter's readiness: its reason for not being ready, or None (also when it has no
    `readiness`)."""
    if isinstance(adapter, Ready):
        return await adapter.readiness()
    return None

"""The core's one entry point: `Core.handle(Invocation) -> Reply`.

Adapters turn platform payloads into an `Invocation`, call `handle`, and render the `Reply`.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.commands import ParseError, parse
from bot.domain import Actor
from bot.invocation import Invocation
from bot.messages import Message, Reply
from bot.policy import allows
from bot.registry import CommandContext, Registry
from bot.services.base import ServiceError
from bot.services.wiring import Services
from storage.outbox import ClaimStore

log = logging.getLogger(__name__)

UNAVAILABLE = "Subdesk is temporarily unavailable. Please try again in a minute."
FAILED = "Something went wrong; the error was logged."
_RETRYABLE = frozenset({UNAVAILABLE, FAILED})


class Core:
    """The one entry point for adapters: a neutral invocation in, a neutral reply out."""

    def __init__(self, services: Services, registry: Registry) -> None:
        self.services = services
        self.registry = registry

    async def handle(self, invocation: Invocation) -> Reply:
        """Parse, resolve the actor, check permission, run the handler; never raises.

        An invocation with an `event_id` the platform already delivered (a retry) is
        answered without running again; one whose handling failed may be retried.
        """
        if invocation.event_id is None:
            return await self._handle(invocation)
        platform = invocation.sender.platform.value
        try:
            async with self.services.db.transaction() as session:
                fresh = await ClaimStore(session, self.services.clock.now()).claim_event(
                    platform, invocation.event_id
                )
        except (OperationalError, PoolTimeout, ConnectionError, OSError):
            return Reply.error(UNAVAILABLE)
        if not fresh:
            return Reply(Message("Already handled."), ok=True, duplicate=True)
        reply = await self._handle(invocation)
        if not reply.ok and reply.message.text in _RETRYABLE:
            async with self.services.db.transaction() as session:
                await ClaimStore(session, self.services.clock.now()).release_event(
                    platform, invocation.event_id
                )
        return reply

    async def _handle(self, invocation: Invocation) -> Reply:
        parsed = parse(invocation.text)
        try:
            actor = await self.services.identity.actor(invocation.sender)
            if isinstance(parsed, ParseError):
                return self._usage(parsed, actor, invocation.prefix)
            spec = parsed.spec
            if not allows(actor, spec.permission):
                if not actor.known:
                    return Reply.error(
                        "I don't know who you are yet. Link this account first: "
                        f"{invocation.prefix}subdesk link EMAIL"
                    )
                return Reply.error(
                    f"{spec.usage(invocation.prefix)} is not available to you. "
                    f"Try {invocation.prefix}subdesk help."
                )
            handler = self.registry.handler(spec.key)
            if handler is None:
                return Reply.error(
                    f"{invocation.prefix}{spec.root} {' '.join(spec.words)} is not enabled on "
                    "this deployment yet.".replace("  ", " ")
                )
            return await handler(CommandContext(invocation, actor, parsed))
        except ServiceError as exc:
            return Reply.error(str(exc))
        except (OperationalError, PoolTimeout, ConnectionError, OSError) as exc:
            log.warning("database unavailable while handling a command: %s", type(exc).__name__)
            return Reply.error(UNAVAILABLE)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                return Reply.error(UNAVAILABLE)
            log.exception("database error while handling %s", _safe(invocation))
            return Reply.error(FAILED)
        except Exception:
            log.exception("error while handling %s", _safe(invocation))
            return Reply.error(FAILED)

    def _usage(self, error: ParseError, actor: Actor, prefix: str) -> Reply:
        usages = error.usages(prefix)
        if error.spec is None and error.root is not None:
            usages = [
                s.usage(prefix)
                for s in self.registry.specs()
                if s.root == error.root and allows(actor, s.permission)
            ] or usages[:0]
        lines = [error.message]
        if usages:
            lines.append("Usage: " + "\n       ".join(usages))
        elif error.root is not None:
            lines.append(f"Try {prefix}subdesk help.")
        return Reply.error("\n".join(lines))


def _safe(invocation: Invocation) -> str:
    """A log label that carries no user text (it may hold secrets or personal data)."""
    s = invocation.sender
    return f"{s.platform.value} command from {s.user_id[:64]}"

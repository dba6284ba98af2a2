"""The core's one entry point: `Core.handle(Invocation) -> Reply`.

Adapters turn platform payloads into an `Invocation`, call `handle`, and render the `Reply`.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.commands import ParseError, form_for, is_command, parse, parse_values
from bot.commands.grammar import BY_KEY
from bot.commands.invocation import Invocation
from bot.commands.registry import CommandContext, Registry
from bot.domain import Actor
from bot.policy import allows
from bot.presentation.messages import Message, Outcome, Reply, command
from bot.services.base import ServiceError
from bot.wiring import logs
from bot.wiring.services import Services

log = logging.getLogger(__name__)

UNAVAILABLE = "Subdesk is temporarily unavailable. Please try again in a minute."
FAILED = "Something went wrong; the error was logged."
_HELP = command("subdesk help")
_LINK = command("subdesk link EMAIL")


def unavailable() -> Reply:
    return Reply.error(UNAVAILABLE, Outcome.UNAVAILABLE)


def failed() -> Reply:
    return Reply.error(FAILED, Outcome.FAILED)


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
        started = time.perf_counter()
        name = _command_name(invocation)
        with logs.scope(logs.command_id, logs.new_id()):
            reply = await self._handle_once(invocation)
            took = time.perf_counter() - started
            self.services.metrics.command(name, reply.outcome.value, took)
            log.debug("%s: %s in %.3fs (%s)", name, reply.outcome.value, took, _safe(invocation))
        return reply

    async def _handle_once(self, invocation: Invocation) -> Reply:
        if invocation.event_id is None:
            return await self._handle(invocation)
        platform = invocation.sender.platform.value
        try:
            fresh = await self.services.events.first_time(platform, invocation.event_id)
        except (OperationalError, PoolTimeout, ConnectionError, OSError):
            return unavailable()
        if not fresh:
            return Reply(Message("Already handled."), Outcome.DUPLICATE)
        reply = await self._handle(invocation)
        if reply.outcome.retryable:
            await self.services.events.forget(platform, invocation.event_id)
        return reply

    async def _handle(self, invocation: Invocation) -> Reply:
        action = invocation.action
        try:
            if action is None and invocation.thread is not None and not is_command(
                    invocation.text):
                found = await self.services.threads.meaning_of(
                    invocation.sender.platform.value, invocation.thread
                )
                if found is None:
                    return Reply.error(f"That thread is not one of mine. Try {_HELP}.")
                action = found.action(invocation.text)
            parsed = (
                parse(invocation.text)
                if action is None
                else parse_values(action.command, dict(action.values))
            )
            actor = await self.services.identity.actor(invocation.sender)
            spec = parsed.spec
            if spec is not None and not allows(actor, spec.permission):
                if not actor.known:
                    return Reply.error(
                        f"I don't know who you are yet. Link this account first: {_LINK}"
                    )
                return Reply.error(f"{spec.usage()} is not available to you. Try {_HELP}.")
            if isinstance(parsed, ParseError):
                return self._usage(parsed, actor)
            handler = self.registry.handler(parsed.spec.key)
            if handler is None:
                return Reply.error(
                    f"{command(parsed.spec.root, *parsed.spec.words)} is not enabled on this "
                    "deployment yet."
                )
            return await handler(CommandContext(invocation, actor, parsed))
        except ServiceError as exc:
            return Reply.error(str(exc))
        except (OperationalError, PoolTimeout, ConnectionError, OSError) as exc:
            log.warning("database unavailable while handling a command: %s", type(exc).__name__)
            return unavailable()
        except DBAPIError as exc:
            if exc.connection_invalidated:
                return unavailable()
            log.exception("database error while handling %s", _safe(invocation))
            return failed()
        except Exception:
            log.exception("error while handling %s", _safe(invocation))
            return failed()

    def _usage(self, error: ParseError, actor: Actor) -> Reply:
        """The usage reply, or the command's form when only its input is missing."""
        if error.missing and error.spec is not None and error.spec.form:
            return Reply.needs(form_for(error.spec, error.partial),
                               f"{error.message}\nUsage: {error.spec.usage()}")
        usages = error.usages()
        if error.spec is None and error.root is not None:
            usages = [
                s.usage()
                for s in self.registry.specs()
                if s.root == error.root and allows(actor, s.permission)
            ]
        lines = [error.message]
        if usages:
            lines.append("Usage: " + "\n       ".join(usages))
        elif error.root is not None:
            lines.append(f"Try {_HELP}.")
        return Reply.error("\n".join(lines))


def _command_name(invocation: Invocation) -> str:
    """The command key an invocation asks for (a metrics label from a bounded set)."""
    if invocation.action is not None:
        return invocation.action.command if invocation.action.command in BY_KEY else "unknown"
    if invocation.thread is not None and not is_command(invocation.text):
        return "thread.reply"
    parsed = parse(invocation.text)
    return parsed.spec.key if parsed.spec is not None else "unknown"


def _safe(invocation: Invocation) -> str:
    """A log label that carries no user text (it may hold secrets or personal data)."""
    s = invocation.sender
    return f"{s.platform.value} command from {s.user_id[:64]}"

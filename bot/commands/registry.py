"""The typed command registry: one handler per `CommandSpec` key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.commands import GRAMMAR, CommandSpec, Parsed
from bot.commands.invocation import Invocation
from bot.domain import Actor
from bot.presentation.messages import Reply


@dataclass(frozen=True, slots=True)
class CommandContext:
    invocation: Invocation
    actor: Actor
    parsed: Parsed

    @property
    def platform(self) -> str:
        """The sender's platform name, as stored with what the command writes."""
        return self.invocation.sender.platform.value


Handler = Callable[[CommandContext], Awaitable[Reply]]


class Registry:
    """Maps command keys to handlers; `registry.command("ticket.new")(fn)` or as a decorator."""

    def __init__(self) -> None:
        self._specs = {spec.key: spec for spec in GRAMMAR}
        self._handlers: dict[str, Handler] = {}

    def command(self, key: str) -> Callable[[Handler], Handler]:
        if key not in self._specs:
            raise KeyError(f"no command {key!r} in the grammar")

        def register(handler: Handler) -> Handler:
            if key in self._handlers:
                raise ValueError(f"command {key!r} already has a handler")
            self._handlers[key] = handler
            return handler

        return register

    def handler(self, key: str) -> Handler | None:
        return self._handlers.get(key)

    def enabled(self, spec: CommandSpec) -> bool:
        return spec.key in self._handlers

    def specs(self) -> list[CommandSpec]:
        return list(self._specs.values())

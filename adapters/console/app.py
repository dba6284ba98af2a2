"""Console sessions: one person typing commands, deliveries shown as they go out."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from adapters.console.render import printable, render
from bot.core import Core
from bot.domain import Platform
from bot.invocation import Invocation, Sender
from bot.messages import Reply
from bot.outbox import Dispatcher

PROMPT = "subdesk> "


def read_line() -> str:
    """One line of stdin; bytes that are not valid text become U+FFFD instead of an error."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.readline()
    raw: bytes = buffer.readline()
    return raw.decode(sys.stdin.encoding or "utf-8", errors="replace")


class ConsoleSession:
    """Types as one person: `await session.send("/contacts")` returns the reply and prints it.

    After each command the outbox is drained, so what the command caused to be sent shows
    right after its reply, in order; that is what makes piped sessions and tests readable.
    """

    def __init__(
        self,
        core: Core,
        dispatcher: Dispatcher | None,
        *,
        email: str | None = None,
        user_id: str = "local",
        out: Callable[[str], None] = print,
    ) -> None:
        self.core = core
        self.dispatcher = dispatcher
        self.out = out
        self.sender = Sender(
            platform=Platform.CONSOLE,
            workspace="local",
            user_id=email or user_id,
            asserted_email=email,
        )
        self.replies: list[Reply] = []

    async def send(self, line: str) -> Reply:
        reply = await self.core.handle(Invocation(self.sender, line))
        self.replies.append(reply)
        self.out(render(reply.message))
        if self.dispatcher is not None:
            await self.dispatcher.drain(max_wait=0)
        return reply

    async def repl(self, *, interactive: bool) -> None:
        """Read commands line by line from stdin until EOF (or `exit`)."""
        loop = asyncio.get_running_loop()
        while True:
            if interactive:
                self.out_prompt()
            line = await loop.run_in_executor(None, read_line)
            if not line:
                return
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("exit", "quit", "/exit", "/quit"):
                return
            if not interactive:
                self.out(f"{PROMPT}{printable(line)}")
            await self.send(line)

    def out_prompt(self) -> None:
        sys.stdout.write(PROMPT)
        sys.stdout.flush()

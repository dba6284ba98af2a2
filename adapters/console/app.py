"""Console sessions: one person typing commands, deliveries shown as they go out; and the
console plug-in (`plugin`), which runs a session on the terminal of the command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence

from adapters.console.render import printable, render
from adapters.console.transport import ConsoleTransport
from bot.config import Settings
from bot.core import Core
from bot.domain import Platform
from bot.invocation import Invocation, Sender
from bot.messages import Reply
from bot.outbox import Dispatcher
from bot.ports import Route, Terminal, Transport
from bot.runtime import App
from bot.services.base import ServiceError

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


class ConsoleAdapter:
    """The terminal as a chat platform: its REPL is the task, and it shows the deliveries to
    console accounts (and, with `emails`, the emails, when no SMTP relay is configured)."""

    chat = True
    routes: Sequence[Route] = ()

    def __init__(self, app: App, terminal: Terminal, *, emails: bool) -> None:
        self.app = app
        self.terminal = terminal
        self.session = ConsoleSession(
            app.core, app.dispatcher, email=terminal.user, out=terminal.out
        )
        self.console = ConsoleTransport("console", terminal.out)
        self.email = ConsoleTransport("email", terminal.out) if emails else None

    @property
    def transports(self) -> Mapping[str, Transport]:
        shown = {"console": self.console}
        if self.email is not None:
            shown["email"] = self.email
        return shown

    async def start(self) -> None:
        """With `--as EMAIL`, check that the email is someone's, and say who that is."""
        if self.terminal.user is None:
            return
        actor = await self.app.services.identity.actor(self.session.sender)
        if not actor.known:
            raise ServiceError(f"{self.terminal.user} is neither a contact nor a staff member.")
        self.terminal.out(f"Console as {actor.label}. Type /subdesk help; Ctrl-D to leave.")

    async def run(self) -> None:
        await self.session.repl(interactive=self.terminal.interactive)

    async def stop(self) -> None:
        return None


def plugin(settings: Settings, app: App) -> ConsoleAdapter | None:
    """The console, when the command has a terminal (and, for `subdesk run`, when no chat
    platform is configured). It shows emails only when no SMTP relay is configured."""
    terminal = app.terminal
    if terminal is None or (terminal.fallback and settings.chat_platform_configured):
        return None
    return ConsoleAdapter(app, terminal, emails=settings.smtp_url is None)

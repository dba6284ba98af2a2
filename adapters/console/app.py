"""Console sessions: one person typing commands, deliveries shown as they go out; and the
console plug-in (`plugin`), which runs a session on the terminal of the command."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence

from adapters.console.render import PREFIX, printable, render
from adapters.console.transport import ConsoleTransport
from bot.commands import Form, FormField, form_named, is_command, prompts
from bot.commands.invocation import Action, Invocation, Sender
from bot.core import Core
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.ports import Route, Terminal, Transport
from bot.domain import Platform
from bot.presentation.messages import Button, Message, Outcome, Reply, Tone
from bot.services.base import ServiceError
from bot.wiring.config import Settings
from bot.wiring.runtime import App

PROMPT = "subdesk> "
CANCEL = frozenset({"cancel", "/cancel"})


def read_line() -> str:
    """One line of stdin; bytes that are not valid text become U+FFFD instead of an error."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.readline()
    raw: bytes = buffer.readline()
    return raw.decode(sys.stdin.encoding or "utf-8", errors="replace")


class ConsoleSession:
    """Types as one person: `await session.send("/contacts")` returns the reply and prints it.

    A command that needs more input answers with a form; the session then asks for the
    missing fields line by line (an empty line skips an optional one, `cancel` stops) and
    submits them as a typed action, like a Slack modal would. After each command the outbox
    is drained, so what the command caused to be sent shows right after its reply, in order;
    that is what makes piped sessions and tests readable.
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
        self.form: Form | None = None

    @property
    def asking(self) -> FormField | None:
        """The form field the next line answers, if a form is open."""
        return None if self.form is None else prompts.asking(self.form)

    async def send(self, line: str) -> Reply:
        """Type one line: a command, or the answer to the open form's current field. A
        command typed while a form is open closes the form unanswered and runs."""
        if self.form is not None and not is_command(line):
            return await self._answer(line)
        self.form = None
        return await self._invoke(Invocation(self.sender, line))

    async def press(self, button: Button) -> Reply:
        """Press a button of a delivered message: its action, or its form."""
        if button.form:
            form = form_named(button.command, button.values)
            if form is not None:
                return self._open(form, Message(form.title))
        return await self._invoke(
            Invocation(self.sender, action=Action(button.command, button.args))
        )

    async def _invoke(self, invocation: Invocation) -> Reply:
        reply = await self.core.handle(invocation)
        shown = dataclasses.replace(reply, message=reply.message.resolved(PREFIX))
        if reply.outcome is Outcome.NEEDS_INPUT and reply.form is not None:
            return self._open(reply.form, shown.message)
        self.replies.append(shown)
        self.out(render(shown.message))
        if self.dispatcher is not None:
            await self.dispatcher.drain(max_wait=0)
        return shown

    def _open(self, form: Form, message: Message) -> Reply:
        """Start asking for `form`'s missing fields."""
        self.form = form
        reply = Reply(message, Outcome.NEEDS_INPUT, form)
        self.replies.append(reply)
        self.out(render(Message(f"{form.title}: a few questions (empty line skips an "
                                "optional one, cancel stops).", tone=Tone.WARNING)))
        self._ask()
        return reply

    def _ask(self) -> None:
        field = self.asking
        if field is not None:
            self.out(f"  {printable(field.prompt)}?")

    async def _answer(self, line: str) -> Reply:
        form, field = self.form, self.asking
        assert form is not None and field is not None
        value = line.strip()
        if value.lower() in CANCEL:
            self.form = None
            reply = Reply.text("Cancelled.")
            self.out(render(reply.message))
            return reply
        step = prompts.answer(form, value)
        if step.problem is not None:
            self.out(render(Message(step.problem, tone=Tone.WARNING)))
            self._ask()
            return Reply(Message(step.problem), Outcome.NEEDS_INPUT, form)
        self.form = step.form
        if self.asking is not None:
            self._ask()
            return Reply(Message(self.asking.prompt), Outcome.NEEDS_INPUT, self.form)
        values = prompts.submitted(step.form)
        self.form = None
        return await self._invoke(Invocation(self.sender, action=Action.of(form.command, values)))

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
            if self.form is None:
                if not line or line.startswith("#"):
                    continue
                if line in ("exit", "quit", "/exit", "/quit"):
                    return
            if not interactive:
                self.out(f"{PROMPT}{printable(line)}")
            await self.send(line)

    def out_prompt(self) -> None:
        sys.stdout.write(PROMPT if self.form is None else "  > ")
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

    async def readiness(self) -> str | None:
        """The terminal is always there."""
        return None

    async def stop(self) -> None:
        return None


def plugin(settings: Settings, app: App) -> ConsoleAdapter | None:
    """The console, when the command has a terminal (and, for `subdesk run`, when no chat
    platform is configured). It shows emails only when no SMTP relay is configured."""
    terminal = app.terminal
    if terminal is None or (terminal.fallback and settings.chat_platform_configured):
        return None
    return ConsoleAdapter(app, terminal, emails=settings.smtp_url is None)

"""A chat platform in memory, with Slack's shape: workspaces, channels, threads, edits.

It is a real transport for the dispatcher (it hands back where each message landed) and
the inbound half of a platform adapter (replies under a message, button presses), so
tests drive references, threads, card edits and typed actions through the real core and
database, the way the Slack and Matrix adapters will.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from bot.commands.invocation import Action, Invocation, Sender
from bot.core import Core
from bot.domain import MessageRef, Platform
from bot.presentation.messages import Actions, Button, Message, Reply
from storage.outbox import OutboxItem


@dataclass
class Post:
    """One message as the platform holds it: where, under which root, and its edits."""

    ref: MessageRef
    target: str
    thread: MessageRef | None
    message: Message
    edits: list[Message] = field(default_factory=list)

    @property
    def current(self) -> Message:
        return self.edits[-1] if self.edits else self.message

    def button(self, label: str) -> Button:
        for block in self.current.blocks:
            if isinstance(block, Actions):
                for button in block.buttons:
                    if button.label == label:
                        return button
        raise LookupError(f"no button {label!r} on {self.current.text!r}")


@dataclass
class FakeChat:
    """The transport half: posts, thread replies and edits, each with a reference."""

    platform: str = Platform.SLACK.value
    posts: list[Post] = field(default_factory=list)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        shown = message.resolved("/")
        if item.replaces is not None:
            self.at(item.replaces).edits.append(shown)
            return item.replaces
        # A DM lands in the IM channel the platform opens for that user.
        channel = f"D-{item.target}" if item.kind == "dm" else item.target
        ref = MessageRef(channel, f"{next(self._ts)}.000100")
        self.posts.append(Post(ref, item.target, item.thread, shown))
        return ref

    def at(self, ref: MessageRef) -> Post:
        return next(p for p in self.posts if p.ref == ref)

    def to(self, target: str) -> list[Post]:
        return [p for p in self.posts if p.target == target]

    def roots(self, target: str) -> list[Post]:
        return [p for p in self.to(target) if p.thread is None]

    def replies(self, root: Post) -> list[Post]:
        return [p for p in self.posts if p.thread == root.ref]


@dataclass
class ChatUser:
    """The inbound half: one account typing, replying under messages, pressing buttons."""

    core: Core
    sender: Sender

    async def say(self, text: str, *, under: Post | None = None, event: str | None = None
                  ) -> Reply:
        return await self.core.handle(Invocation(
            self.sender, text, thread=None if under is None else under.ref, event_id=event
        ))

    async def press(self, button: Button, **values: str) -> Reply:
        """A button press, or (with `values`) the button's form submitted."""
        return await self.core.handle(Invocation(
            self.sender, action=Action(button.command, (*button.args, *values.items()))
        ))

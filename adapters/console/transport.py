"""Deliveries shown on the console: DMs to console accounts, and email when no SMTP is set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.console.render import printable, render, thread_label
from bot.domain import MessageRef
from bot.presentation.messages import Message
from storage.outbox import OutboxItem


@dataclass
class ConsoleTransport:
    """Prints each delivery under a header saying whom it is for, and keeps a record.

    A message in a thread says which ("in reply to #12"); a card edit is printed again,
    marked "card updated"."""

    platform: str = "console"
    out: Callable[[str], None] = print
    delivered: list[tuple[OutboxItem, Message]] = field(default_factory=list)

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        self.delivered.append((item, message))
        how = {"dm": "message", "channel": "post", "email": "email"}.get(item.kind, item.kind)
        who = item.recipient or item.target
        header = f"── {how} to {who}"
        if item.kind == "email":
            header += f" · subject: {message.resolved('/').email_subject}"
        if item.replaces is not None:
            header += " · card updated"
        elif item.thread is not None and message.thread_key is not None:
            header += f" · in reply to {thread_label(message.thread_key)}"
        self.out(f"{printable(header)} ──\n{render(message)}")
        if item.replaces is not None:
            return item.replaces
        return MessageRef(item.target, str(item.id))

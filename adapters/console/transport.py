"""Deliveries shown on the console: DMs to console accounts, and email when no SMTP is set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.console.render import printable, render
from bot.messages import Message
from storage.outbox import OutboxItem


@dataclass
class ConsoleTransport:
    """Prints each delivery under a header saying whom it is for, and keeps a record."""

    platform: str = "console"
    out: Callable[[str], None] = print
    delivered: list[tuple[OutboxItem, Message]] = field(default_factory=list)

    async def deliver(self, item: OutboxItem, message: Message) -> str | None:
        self.delivered.append((item, message))
        how = {"dm": "message", "channel": "post", "email": "email"}.get(item.kind, item.kind)
        who = item.recipient or item.target
        header = f"── {how} to {who}"
        if item.kind == "email":
            header += f" · subject: {message.email_subject}"
        self.out(f"{printable(header)} ──\n{render(message)}")
        return f"console:{item.id}"

"""The neutral invocation an adapter hands to the core, whatever the platform."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain import Platform


@dataclass(frozen=True, slots=True)
class Sender:
    """Who typed the command, as the platform says.

    `asserted_email` is set only by trusted local adapters (`subdesk console --as`);
    `verified_email` only by an adapter that read it from the platform (Slack `users.info`).
    """

    platform: Platform
    workspace: str
    user_id: str
    display_name: str = ""
    asserted_email: str | None = None
    verified_email: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingFile:
    name: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Invocation:
    """A command (`text` as typed, with or without its / or ! prefix) and where it came from."""

    sender: Sender
    text: str
    channel: str | None = None
    thread_ref: str | None = None
    event_id: str | None = None  # platform delivery id, for retry deduplication
    files: tuple[IncomingFile, ...] = field(default=())

    @property
    def prefix(self) -> str:
        return "!" if self.sender.platform is Platform.MATRIX else "/"

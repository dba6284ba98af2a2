"""The neutral invocation an adapter hands to the core, whatever the platform."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain import MessageRef, Platform


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
class Action:
    """A button press or a submitted form: a command key and its arguments by name.

    It reaches the core typed, never turned back into a command line, and goes through the
    same validation and permission check as typed text."""

    command: str
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, command: str, values: dict[str, str] | None = None) -> Action:
        return cls(command, tuple((values or {}).items()))


@dataclass(frozen=True, slots=True)
class Invocation:
    """What a person did, and where: a command typed as `text` (with or without its / or !
    prefix), or a typed `action` (button, form)."""

    sender: Sender
    text: str = ""
    thread: MessageRef | None = None  # the message this was posted under (a thread reply)
    event_id: str | None = None  # platform delivery id, for retry deduplication
    files: tuple[IncomingFile, ...] = field(default=())
    action: Action | None = None

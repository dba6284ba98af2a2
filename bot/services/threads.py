"""The way back in through threads: a reply under a message Subdesk sent resolves to what
that message was about, and to the command the reply means.

In a ticket's opener thread a reply is a public comment; in its triage thread, an internal
note; under a billing request, the answer. The resulting action goes through the same
parsing and permission check as typed text.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.commands.invocation import Action
from bot.domain import MessageRef
from bot.services.base import Service


@dataclass(frozen=True, slots=True)
class ThreadMeaning:
    """A thread key, read: which command a plain reply in it runs, with which arguments."""

    command: str
    values: tuple[tuple[str, str], ...]
    text_arg: str = "TEXT"

    def action(self, text: str) -> Action:
        return Action(self.command, (*self.values, (self.text_arg, text)))


def meaning(key: str) -> ThreadMeaning | None:
    """`ticket:12:opener` → comment on #12; `ticket:12:triage` → internal note on #12;
    `billing:7` → answer billing request 7. Card keys (`card:…`) read as their thread."""
    key = key.removeprefix("card:")
    parts = key.split(":")
    match parts:
        case ["ticket", ticket, "opener"] if ticket.isdigit():
            return ThreadMeaning("ticket.comment", (("ID", ticket),))
        case ["ticket", ticket, "triage"] if ticket.isdigit():
            return ThreadMeaning("triage.note", (("ID", ticket),))
        case ["billing", request] if request.isdigit():
            return ThreadMeaning("billing.answer", (("ID", request),))
    return None


class ThreadService(Service):
    """Resolves platform messages back to Subdesk's threads."""

    async def meaning_of(self, platform: str, root: MessageRef) -> ThreadMeaning | None:
        """What a reply under `root` means, or None when the root is not one of ours."""
        async with self.read() as tx:
            keys = await tx.links.keys_at(platform, root)
        for key in sorted(keys, key=lambda k: k.startswith("card:")):
            if (found := meaning(key)) is not None:
                return found
        return None

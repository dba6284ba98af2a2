"""Answers to commands that go out through the outbox: on a platform without private
replies (Matrix), the answer to a command is a message in the room it was typed in,
delivered, retried and deduplicated like every other message."""

from __future__ import annotations

from bot.domain import MessageRef
from bot.presentation.messages import Message
from bot.services.base import Service

ANSWERS = "answers"  # the payload key a transport reads: what the message answers


class AnswerService(Service):
    async def queue(self, platform: str, command: MessageRef, message: Message, *,
                    thread: MessageRef | None = None, recipient: str = "") -> bool:
        """Queue `message` as the answer to the command `command` (room + event), in
        `thread` when the command was typed in one. One answer per command, however often
        it is queued; False when it was queued before."""
        payload = {**message.to_json(),
                   ANSWERS: {"channel": command.channel, "id": command.id,
                             "thread": None if thread is None else thread.id}}
        async with self.tx() as tx:
            queued = await tx.outbox.enqueue(
                f"answer:{platform}:{command.channel}:{command.id}", platform=platform,
                target=command.channel, kind="answer", payload=payload,
                recipient=recipient[:200])
        return queued is not None

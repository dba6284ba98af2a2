"""Outbox delivery to Matrix: DMs in each person's `m.direct` room (made when missing),
posts in rooms, replies in threads (`m.thread`), card edits (`m.replace`) and answers to a
command (`m.in_reply_to`), each sent with the outbox id as its transaction id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from adapters.matrix.client import Failed, Limited, MatrixLink, Refused, Unreachable
from adapters.matrix.render import CONTENT_BYTES, edit, in_thread, render, replying
from bot.delivery.ports import DeliveryError, FailureKind
from bot.domain import MessageRef
from bot.presentation.messages import Message
from bot.services.answers import ANSWERS
from storage.outbox import OutboxItem


def txn_id(item: OutboxItem) -> str:
    """One transaction id per outbox message, the same on every attempt."""
    return f"subdesk.outbox.{item.id}"


def answer_txn_id(event_id: str) -> str:
    """The transaction id of an answer sent straight to the room (not through the outbox),
    one per command event: reading the event again cannot post a second answer."""
    return "subdesk.answer." + hashlib.sha256(event_id.encode()).hexdigest()[:32]


def answer_content(message: Message, event_id: str, thread: str | None) -> dict[str, Any]:
    """`message` as the answer to the command `event_id`, in its thread when it has one."""
    content = render(message)
    return in_thread(content, thread, event_id) if thread else replying(content, event_id)


def answered(payload: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(room, event, thread root) an answer replies to; None for other messages."""
    found = payload.get(ANSWERS)
    if not isinstance(found, Mapping):
        return None
    room, event, thread = found.get("channel"), found.get("id"), found.get("thread")
    if not isinstance(room, str) or not isinstance(event, str):
        return None
    return room, event, thread if isinstance(thread, str) else None


class MatrixTransport:
    """Delivers while this process holds the sync (`active`): the device that syncs is the
    one that encrypts, and a replica standing by leaves Matrix messages to it."""

    platform = "matrix"

    def __init__(self, link: MatrixLink, active: Callable[[], bool]) -> None:
        self.link = link
        self._active = active

    @property
    def active(self) -> bool:
        return self._active()

    async def deliver(self, item: OutboxItem, message: Message) -> MessageRef | None:
        try:
            if item.replaces is not None:
                room = item.replaces.channel
                content = edit(render(message, budget=CONTENT_BYTES // 2), item.replaces.id)
            elif (answer := answered(item.payload)) is not None:
                room, event, thread = answer
                content = answer_content(message, event, thread)
            elif item.thread is not None:
                room = item.thread.channel
                content = in_thread(render(message), item.thread.id)
            else:
                room = (await self.link.dm_room(item.target) if item.kind == "dm"
                        else item.target)
                content = render(message)
            event_id = await self.link.send(room, content, txn_id(item))
        except Limited as exc:
            raise DeliveryError(str(exc), retry_after=exc.retry_after,
                                kind=FailureKind.RATE_LIMITED) from None
        except Refused as exc:
            raise DeliveryError(str(exc), kind=FailureKind.CONFIGURATION) from None
        except Failed as exc:
            raise DeliveryError(str(exc), permanent=True) from None
        except Unreachable as exc:
            raise DeliveryError(f"Matrix: {exc}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"Matrix homeserver unreachable: {type(exc).__name__}"
                                ) from None
        if item.replaces is not None:
            return item.replaces  # the card stays where it was
        return MessageRef(room, event_id)

    async def answer_now(self, room_id: str, event_id: str, thread: str | None,
                         message: Message) -> None:
        """Answer a command straight in its room, bypassing the outbox (which needs the
        database); a failure is raised as the client's `MatrixError`."""
        await self.link.send(room_id, answer_content(message, event_id, thread),
                             answer_txn_id(event_id))

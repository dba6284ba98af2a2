"""Matrix events → neutral invocations: commands typed with `!`, replies in a ticket's
thread (`m.thread`), and the files shared there. Pure functions of the event; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.commands import is_command
from bot.commands.invocation import IncomingFile, Invocation, Sender
from bot.domain import MessageRef, Platform

TEXT_TYPES = frozenset({"m.text"})  # notices and emotes are not commands
FILE_TYPES = frozenset({"m.file", "m.image", "m.video", "m.audio"})
TEXT_MAX = 20_000  # characters kept of a message (the parser refuses long commands itself)
NAME_MAX = 200  # characters of a file name


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file as an `m.file`/`m.image` event describes it: where it is (`mxc://`), and the
    key to decrypt it with when it was sent in an encrypted room (`encryption`)."""

    name: str
    content_type: str
    size: int
    url: str
    encryption: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Said:
    """A person's message in a room, read: its text, the thread it was posted in, the event
    it answers, and its file."""

    room_id: str
    event_id: str
    sender: str
    text: str
    thread_root: str | None = None
    reply_to: str | None = None
    file: SharedFile | None = None

    @property
    def command(self) -> bool:
        return is_command(self.text)


def server_of(user_id: str) -> str:
    """`@tom:acme.test` → `acme.test` (the homeserver that vouches for the account)."""
    return user_id.partition(":")[2]


def sender(user_id: str) -> Sender:
    return Sender(Platform.MATRIX, server_of(user_id), user_id)


def _strip_fallback(body: str) -> str:
    """A reply's body without the quoted fallback (`> <@a:b> …` lines and a blank one);
    lines a person quoted themselves (a log pasted as a quote) are kept."""
    lines = body.split("\n")
    if not lines[0].startswith(("> <@", "> * <@")):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    return "\n".join(lines[index:]).lstrip("\n")


def shared_file(content: Mapping[str, Any]) -> SharedFile | None:
    """The file of an `m.file`/`m.image`/… content, plain (`url`) or encrypted (`file`)."""
    info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    encrypted = content.get("file")
    if isinstance(encrypted, Mapping):
        url, encryption = encrypted.get("url"), encrypted
    else:
        url, encryption = content.get("url"), None
    if not isinstance(url, str) or not url.startswith("mxc://"):
        return None
    name = content.get("filename") or content.get("body") or "file"
    kind = info.get("mimetype")
    size = info.get("size")
    return SharedFile(
        name=str(name).replace("/", "_").replace("\n", " ")[:NAME_MAX] or "file",
        content_type=kind if isinstance(kind, str) and kind else "application/octet-stream",
        size=size if isinstance(size, int) and size >= 0 else 0,
        url=url,
        encryption=encryption,
    )


def read(source: Mapping[str, Any], room_id: str) -> Said | None:
    """A person's text or file message, read from the event as the client sees it
    (decrypted); None for anything else: edits, notices, state, redactions, bots' notices."""
    if source.get("type") != "m.room.message":
        return None
    content = source.get("content")
    event_id, who = source.get("event_id"), source.get("sender")
    if not isinstance(content, Mapping) or not isinstance(event_id, str) or not isinstance(
            who, str):
        return None
    msgtype = content.get("msgtype")
    relation = content.get("m.relates_to")
    relation = relation if isinstance(relation, Mapping) else {}
    if relation.get("rel_type") == "m.replace":
        return None  # an edit: the original was the command
    thread_root = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
    in_reply = relation.get("m.in_reply_to")
    reply_to = in_reply.get("event_id") if isinstance(in_reply, Mapping) else None
    if relation.get("is_falling_back") and reply_to == thread_root:
        reply_to = None
    body = content.get("body")
    text = body if isinstance(body, str) else ""
    file = None
    if msgtype in FILE_TYPES:
        file = shared_file(content)
        if file is None:
            return None
        caption = content.get("filename") and text != content.get("filename")
        text = text if caption else ""
    elif msgtype not in TEXT_TYPES:
        return None
    if reply_to is not None:
        text = _strip_fallback(text)
    return Said(
        room_id=room_id,
        event_id=event_id,
        sender=who,
        text=text.strip()[:TEXT_MAX],
        thread_root=thread_root if isinstance(thread_root, str) else None,
        reply_to=reply_to if isinstance(reply_to, str) else None,
        file=file,
    )


def event_key(event_id: str) -> str:
    """The dedup id of an event: a redelivered event (restart, resync) runs once."""
    return f"event:{event_id}"


def command_invocation(said: Said) -> Invocation:
    """A command typed with `!` (in a thread too: it runs as typed)."""
    thread = MessageRef(said.room_id, said.thread_root) if said.thread_root else None
    return Invocation(sender(said.sender), text=said.text, thread=thread,
                      event_id=event_key(said.event_id))


def thread_invocation(said: Said, root: str, files: tuple[IncomingFile, ...] = ()
                      ) -> Invocation:
    """A reply under `root` (a ticket card, a triage card, a billing request): what it
    means is the core's to decide from the thread. A file alone says it was shared."""
    text = said.text
    if not text and files:
        text = "Shared " + ", ".join(f.name for f in files)
    return Invocation(sender(said.sender), text=text, thread=MessageRef(said.room_id, root),
                      event_id=event_key(said.event_id), files=files)

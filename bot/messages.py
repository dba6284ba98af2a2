"""A neutral rich message model that every adapter renders in its own way.

Text in blocks is always plain user-visible text: renderers escape it for their medium
(Slack mrkdwn, Matrix HTML, terminal). Messages serialise to JSON for the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Tone(StrEnum):
    NORMAL = "normal"
    GOOD = "good"
    WARNING = "warning"
    DANGER = "danger"


@dataclass(frozen=True, slots=True)
class Heading:
    text: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    text: str


@dataclass(frozen=True, slots=True)
class Fields:
    """Label/value pairs, shown as a compact grid or a definition list."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class BulletList:
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    action: str  # e.g. "triage.claim"
    value: str  # e.g. a ticket id
    style: str = ""  # "" | "primary" | "danger"


@dataclass(frozen=True, slots=True)
class Actions:
    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class Context:
    """Small print: ids, timestamps, hints."""

    text: str


Block = Heading | Paragraph | Fields | BulletList | Actions | Context

_BLOCK_TYPES: dict[str, type[Any]] = {
    "heading": Heading,
    "paragraph": Paragraph,
    "fields": Fields,
    "list": BulletList,
    "actions": Actions,
    "context": Context,
}
_BLOCK_NAMES = {cls: name for name, cls in _BLOCK_TYPES.items()}


@dataclass(frozen=True, slots=True)
class Message:
    """One logical message. `text` is the plain fallback (notifications, email body head)."""

    text: str
    blocks: tuple[Block, ...] = ()
    subject: str | None = None  # email subject; defaults to the first line of `text`
    tone: Tone = Tone.NORMAL
    thread_key: str | None = None  # e.g. "ticket:1042:opener": adapters keep a thread per key

    @property
    def email_subject(self) -> str:
        if self.subject:
            return self.subject
        return self.text.splitlines()[0][:120] if self.text.strip() else "Subdesk"

    def plain(self) -> str:
        """The whole message as plain text, block by block."""
        lines: list[str] = []
        for block in self.blocks or (Paragraph(self.text),):
            lines.extend(_plain_block(block))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "subject": self.subject,
            "tone": self.tone.value,
            "thread_key": self.thread_key,
            "blocks": [_block_to_json(b) for b in self.blocks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            text=data["text"],
            subject=data.get("subject"),
            tone=Tone(data.get("tone", "normal")),
            thread_key=data.get("thread_key"),
            blocks=tuple(_block_from_json(b) for b in data.get("blocks", ())),
        )


def _plain_block(block: Block) -> list[str]:
    match block:
        case Heading(text):
            return [text]
        case Paragraph(text) | Context(text):
            return [text]
        case Fields(items):
            return [f"{label}: {value}" for label, value in items]
        case BulletList(items):
            return [f"  • {item}" for item in items]
        case Actions(buttons):
            return ["[" + "] [".join(b.label for b in buttons) + "]"] if buttons else []
    return []


def _block_to_json(block: Block) -> dict[str, Any]:
    name = _BLOCK_NAMES[type(block)]
    match block:
        case Fields(items):
            return {"type": name, "items": [list(pair) for pair in items]}
        case BulletList(items):
            return {"type": name, "items": list(items)}
        case Actions(buttons):
            return {
                "type": name,
                "buttons": [
                    {"label": b.label, "action": b.action, "value": b.value, "style": b.style}
                    for b in buttons
                ],
            }
        case _:
            return {"type": name, "text": block.text}


def _block_from_json(data: dict[str, Any]) -> Block:
    kind = data["type"]
    if kind == "fields":
        return Fields(tuple((str(a), str(b)) for a, b in data["items"]))
    if kind == "list":
        return BulletList(tuple(data["items"]))
    if kind == "actions":
        return Actions(tuple(Button(**b) for b in data["buttons"]))
    block: Block = _BLOCK_TYPES[kind](data["text"])
    return block


@dataclass(frozen=True, slots=True)
class Reply:
    """What a command answers to the person who sent it (ephemeral where the platform can)."""

    message: Message
    ok: bool = True
    modal: str | None = None  # adapters that have modals open this form instead (e.g. "ticket.new")
    public: bool = False
    duplicate: bool = False  # a platform retry of something already handled

    @classmethod
    def text(cls, text: str, *, ok: bool = True) -> Reply:
        return cls(Message(text), ok=ok)

    @classmethod
    def error(cls, text: str) -> Reply:
        return cls(Message(text, tone=Tone.WARNING), ok=False)

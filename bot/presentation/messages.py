"""A neutral rich message model that every adapter renders in its own way.

Text in blocks is always plain user-visible text: renderers escape it for their medium
(Slack mrkdwn, Matrix HTML, terminal). Messages serialise to JSON for the outbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.commands.forms import Form

# A command reference inside message text: what a person should type, without the
# platform's prefix. Renderers turn it into `/ticket …` (Slack, console, email), `!ticket …`
# (Matrix) or a button. The markers are private-use characters that user input never keeps
# (the parser drops them), so text a person wrote cannot pose as a reference.
CMD_OPEN = "\ue000"
CMD_CLOSE = "\ue001"
_COMMAND_REF = re.compile(f"{CMD_OPEN}([^{CMD_OPEN}{CMD_CLOSE}]*){CMD_CLOSE}")
_STRAY = re.compile(f"[{CMD_OPEN}{CMD_CLOSE}]")


# How people type commands on each chat platform (SPEC §3); `/` elsewhere.
COMMAND_PREFIXES: dict[str, str] = {"matrix": "!"}


def prefix_for(platform: str | None) -> str:
    """The command prefix of `platform` (`!` on Matrix, `/` on Slack and the console)."""
    return COMMAND_PREFIXES.get(platform or "", "/")


def command(*parts: object) -> str:
    """A neutral reference to a command line: `command("ticket comment", 12, "TEXT")`."""
    return CMD_OPEN + " ".join(str(p) for p in parts if p != "") + CMD_CLOSE


def resolve_commands(text: str, prefix: str) -> str:
    """`text` with each command reference written out with `prefix` (`/` or `!`)."""
    if CMD_OPEN not in text and CMD_CLOSE not in text:
        return text
    return _STRAY.sub("", _COMMAND_REF.sub(lambda m: prefix + m.group(1), text))


def strip_markers(text: str) -> str:
    """User text with any reference markers removed."""
    return _STRAY.sub("", text)


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
    """A typed action: pressing it runs the command `command` with `args`, through the same
    permission check as typed text. With `form`, it opens the command's form instead, with
    `args` filled in (status, severity, reply need more input)."""

    label: str
    command: str  # a command key, e.g. "triage.claim"
    args: tuple[tuple[str, str], ...] = ()  # e.g. (("ID", "1042"),)
    style: str = ""  # "" | "primary" | "danger"
    form: bool = False

    @property
    def values(self) -> dict[str, str]:
        return dict(self.args)


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
    card_key: str | None = None  # e.g. "card:ticket:1042:triage": later edits replace it
    # The chat platform whose commands this message names, when it is delivered elsewhere
    # (the email with a link code asked for on Matrix says `!subdesk link verify`).
    commands_for: str | None = None

    @property
    def email_subject(self) -> str:
        if self.subject:
            return self.subject
        return self.text.splitlines()[0][:120] if self.text.strip() else "Subdesk"

    def plain(self) -> str:
        """The whole message as plain text, block by block (command references neutral)."""
        lines: list[str] = []
        for block in self.blocks or (Paragraph(self.text),):
            lines.extend(_plain_block(block))
        return "\n".join(lines)

    def resolved(self, prefix: str) -> Message:
        """This message with its command references written out with `prefix`."""
        return replace(
            self,
            text=resolve_commands(self.text, prefix),
            subject=None if self.subject is None else resolve_commands(self.subject, prefix),
            blocks=tuple(_resolve_block(b, prefix) for b in self.blocks),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "subject": self.subject,
            "tone": self.tone.value,
            "thread_key": self.thread_key,
            "card_key": self.card_key,
            "blocks": [_block_to_json(b) for b in self.blocks],
            **({"commands_for": self.commands_for} if self.commands_for else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(
            text=data["text"],
            subject=data.get("subject"),
            tone=Tone(data.get("tone", "normal")),
            thread_key=data.get("thread_key"),
            card_key=data.get("card_key"),
            blocks=tuple(_block_from_json(b) for b in data.get("blocks", ())),
            commands_for=data.get("commands_for"),
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


def _resolve_block(block: Block, prefix: str) -> Block:
    match block:
        case Fields(items):
            return Fields(tuple((resolve_commands(a, prefix), resolve_commands(b, prefix))
                                for a, b in items))
        case BulletList(items):
            return BulletList(tuple(resolve_commands(i, prefix) for i in items))
        case Actions():
            return block
        case _:
            return type(block)(resolve_commands(block.text, prefix))


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
                    {"label": b.label, "command": b.command, "args": dict(b.args),
                     "style": b.style, "form": b.form}
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
        return Actions(tuple(
            Button(b["label"], b["command"], tuple(b.get("args", {}).items()),
                   b.get("style", ""), bool(b.get("form", False)))
            for b in data["buttons"]
        ))
    block: Block = _BLOCK_TYPES[kind](data["text"])
    return block


class Outcome(StrEnum):
    """How a command ended, for adapters and for the core's retry rule (not for people)."""

    DONE = "done"
    REFUSED = "refused"  # a clear refusal or bad input: retrying the same thing will not help
    NEEDS_INPUT = "needs_input"  # a form answers: the command needs more input
    UNAVAILABLE = "unavailable"  # the database or a peer is down: try again later
    FAILED = "failed"  # an unexpected error, logged: may be retried
    DUPLICATE = "duplicate"  # a platform retry of something already handled

    @property
    def retryable(self) -> bool:
        return self in (Outcome.UNAVAILABLE, Outcome.FAILED)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a command answers to the person who sent it (ephemeral where the platform can).

    With `form` (outcome NEEDS_INPUT) the adapter asks for the missing input its own way:
    a Slack modal, a Matrix prompt, line by line on the console.
    """

    message: Message
    outcome: Outcome = Outcome.DONE
    form: Form | None = None
    public: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.DUPLICATE)

    @property
    def duplicate(self) -> bool:
        return self.outcome is Outcome.DUPLICATE

    @classmethod
    def text(cls, text: str) -> Reply:
        return cls(Message(text))

    @classmethod
    def error(cls, text: str, outcome: Outcome = Outcome.REFUSED) -> Reply:
        return cls(Message(text, tone=Tone.WARNING), outcome)

    @classmethod
    def needs(cls, form: Form, text: str) -> Reply:
        return cls(Message(text, tone=Tone.WARNING), Outcome.NEEDS_INPUT, form)

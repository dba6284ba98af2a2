"""Neutral messages → terminal text."""

from __future__ import annotations

import re

from bot.presentation.buttons import button_command
from bot.presentation.messages import (
    Actions,
    BulletList,
    Context,
    Fields,
    Heading,
    Message,
    Paragraph,
    Tone,
)

PREFIX = "/"  # how the console writes command references

# C0 and C1 control characters other than newline and tab: a terminal would act on them
# (clear the screen, move the cursor, retitle the window) instead of showing them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_MARK = {Tone.NORMAL: "", Tone.GOOD: "✓ ", Tone.WARNING: "! ", Tone.DANGER: "‼ "}


def thread_label(key: str) -> str:
    """A thread key as people read it: `ticket:12:opener` → `#12`."""
    kind, _, rest = key.partition(":")
    subject = rest.partition(":")[0]
    if kind == "ticket" and subject.isdigit():
        return f"#{subject}"
    return f"{kind} {subject}".strip()


def printable(text: str) -> str:
    """`text` without the control characters a terminal would interpret."""
    return _CONTROL.sub("", text)


def render(message: Message) -> str:
    """Plain text for a terminal or a pipe; user text is shown, never interpreted."""
    return printable(_render(message.resolved(PREFIX)))


def _render(message: Message) -> str:
    if not message.blocks:
        return _MARK[message.tone] + message.text
    lines: list[str] = []
    for block in message.blocks:
        match block:
            case Heading(text):
                lines.append(_MARK[message.tone] + text)
            case Paragraph(text):
                lines.append(text)
            case Context(text):
                lines.append(f"  ({text})")
            case Fields(items):
                width = max((len(label) for label, _ in items), default=0)
                lines.extend(f"  {label.ljust(width)}  {value}" for label, value in items)
            case BulletList(items):
                lines.extend(f"  • {item}" for item in items)
            case Actions(buttons):
                # No buttons in a terminal or a mail: each is shown with what to type.
                lines.extend(f"  [{b.label}] {button_command(b, PREFIX) or ''}".rstrip()
                             for b in buttons)
    return "\n".join(lines)

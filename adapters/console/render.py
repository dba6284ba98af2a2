"""Neutral messages → terminal text."""

from __future__ import annotations

from bot.messages import Actions, BulletList, Context, Fields, Heading, Message, Paragraph, Tone

_MARK = {Tone.NORMAL: "", Tone.GOOD: "✓ ", Tone.WARNING: "! ", Tone.DANGER: "‼ "}


def render(message: Message) -> str:
    """Plain text for a terminal or a pipe; user text is printed as-is, never interpreted."""
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
                if buttons:
                    lines.append("  " + "  ".join(f"[{b.label}]" for b in buttons))
    return "\n".join(lines)

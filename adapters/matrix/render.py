"""Neutral messages → Matrix event content: a plain `body` and an `org.matrix.custom.html`
`formatted_body`.

Every piece of text in a neutral message is plain text a person reads: it is HTML-escaped
here, so markup, links and mentions typed by a user are shown, never acted on. Command
references are written with `!`. Matrix has no buttons: each button is shown as the
command that does the same (`!triage claim 12`), with the arguments it still needs
(`!triage status 12 STATUS`).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from bot.presentation.buttons import button_command
from bot.presentation.messages import (
    Actions,
    BulletList,
    Button,
    Context,
    Fields,
    Heading,
    Message,
    Paragraph,
    Tone,
)

PREFIX = "!"
MSGTYPE = "m.notice"  # what bots send: clients and other bots do not answer notices
HTML = "org.matrix.custom.html"
BODY_MAX = 16_000  # characters of the plain body (an event holds at most 64 KiB)
HTML_MAX = 32_000  # a longer formatted body is left out; the plain body stands alone
# Bytes the content may take as JSON with everything beyond ASCII escaped (six bytes a
# letter, twelve an emoji), which is how an encrypted room's payload is written before it
# is encrypted and grows by a third in base64: well within the 64 KiB of an event, in any
# room, whatever the script. An edit carries its content twice (see `edit`): half each.
CONTENT_BYTES = 40_000

_MARK = {Tone.NORMAL: "", Tone.GOOD: "✅ ", Tone.WARNING: "⚠️ ", Tone.DANGER: "🚨 "}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _buttons(buttons: tuple[Button, ...]) -> list[tuple[str, str]]:
    return [(b.label, line) for b in buttons
            if (line := button_command(b, PREFIX)) is not None]


def plain(message: Message) -> str:
    """The message as plain text, command references with `!`."""
    shown = message.resolved(PREFIX)
    mark = _MARK[shown.tone]
    if not shown.blocks:
        return _cut(mark + shown.text, BODY_MAX)
    lines: list[str] = []
    for block in shown.blocks:
        match block:
            case Heading(text):
                lines.append(mark + text)
            case Paragraph(text) | Context(text):
                lines.append(text)
            case Fields(items):
                lines.extend(f"{label}: {value}" for label, value in items)
            case BulletList(items):
                lines.extend(f"• {item}" for item in items)
            case Actions(buttons):
                lines.extend(f"{label}: {line}" for label, line in _buttons(buttons))
    return _cut("\n".join(lines), BODY_MAX)


def html(message: Message) -> str:
    """The message as Matrix HTML; every text is escaped."""
    shown = message.resolved(PREFIX)
    mark = escape(_MARK[shown.tone])
    if not shown.blocks:
        return mark + _lines(shown.text)
    parts: list[str] = []
    for block in shown.blocks:
        match block:
            case Heading(text):
                parts.append(f"<h4>{mark}{escape(text)}</h4>")
            case Paragraph(text):
                parts.append(f"<p>{_lines(text)}</p>")
            case Context(text):
                parts.append(f"<p><em>{_lines(text)}</em></p>")
            case Fields(items):
                parts.append("<p>" + "<br>".join(
                    f"<b>{escape(label)}</b>: {escape(value)}" for label, value in items)
                    + "</p>")
            case BulletList(items):
                if items:
                    parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items)
                                 + "</ul>")
            case Actions(buttons):
                if shown_buttons := _buttons(buttons):
                    parts.append("<p>" + "<br>".join(
                        f"{escape(label)}: <code>{escape(line)}</code>"
                        for label, line in shown_buttons) + "</p>")
    return "".join(parts)


def _lines(text: str) -> str:
    return "<br>".join(escape(line) for line in text.split("\n"))


def render(message: Message, *, budget: int = CONTENT_BYTES) -> dict[str, Any]:
    """The `m.room.message` content of `message`, within `budget` bytes (see
    `CONTENT_BYTES`): a formatted body that does not fit is left out, and then a plain body
    that does not fit is shortened."""
    content: dict[str, Any] = {"msgtype": MSGTYPE, "body": plain(message)}
    formatted = html(message)
    if formatted and len(formatted) <= HTML_MAX:
        content["format"] = HTML
        content["formatted_body"] = formatted
        if _size(content) > budget:
            del content["format"], content["formatted_body"]
    while (size := _size(content)) > budget:
        body = content["body"]
        content["body"] = _cut(body, max(1, len(body) * budget // size - 16))
    return content


def _size(content: dict[str, Any]) -> int:
    return len(json.dumps(content))  # ensure_ascii, as an encrypted payload is written


def edit(content: dict[str, Any], original: str) -> dict[str, Any]:
    """`content` as an edit (`m.replace`) of the event `original`."""
    return {
        "msgtype": content["msgtype"],
        "body": "* " + content["body"],
        **({"format": HTML, "formatted_body": "* " + content["formatted_body"]}
           if "formatted_body" in content else {}),
        "m.new_content": content,
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    }


def in_thread(content: dict[str, Any], root: str, reply_to: str | None = None
              ) -> dict[str, Any]:
    """`content` posted in the thread of `root` (as an answer to `reply_to` when given)."""
    relation: dict[str, Any] = {"rel_type": "m.thread", "event_id": root,
                                "is_falling_back": reply_to is None,
                                "m.in_reply_to": {"event_id": reply_to or root}}
    return {**content, "m.relates_to": relation}


def replying(content: dict[str, Any], event_id: str) -> dict[str, Any]:
    """`content` as a reply to `event_id` (outside threads)."""
    return {**content, "m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}

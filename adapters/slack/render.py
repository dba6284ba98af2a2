"""Neutral messages and forms → Block Kit, built with `slack_sdk.models`.

Every piece of text in a neutral message is plain text a person reads: it is escaped for
mrkdwn here, so `<!channel>`, `<@U…>` and `<https://…|links>` typed by a user are shown,
never acted on. Command references are written with `/`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from adapters.slack.files import Shared
from bot.commands import Form, FormField
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

PREFIX = "/"
ACTION_PREFIX = "subdesk:"  # every button's action_id starts with it
FORM_CALLBACK = "subdesk:form"  # the callback_id of every form modal
VALUE_ACTION = "value"  # the action_id of the one input in each modal input block

_TEXT_MAX = 3000  # a section's text
_HEADER_MAX = 150
_FIELD_MAX = 2000
_FIELDS_PER_SECTION = 10
_FALLBACK_MAX = 4000
_TITLE_MAX = 24  # a modal's title
_LABEL_MAX = 2000
_OPTION_MAX = 75

_MARK = {Tone.NORMAL: "", Tone.GOOD: ":white_check_mark: ", Tone.WARNING: ":warning: ",
         Tone.DANGER: ":rotating_light: "}


def escape(text: str) -> str:
    """User-visible text made safe for mrkdwn: the three characters Slack wants escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Rendered:
    """What `chat.postMessage`, `chat.update` and `response_url` take: fallback and blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text}
        if self.blocks:
            body["blocks"] = self.blocks
        return body


def render(message: Message) -> Rendered:
    """The Block Kit form of `message`, command references written with `/`."""
    shown = message.resolved(PREFIX)
    mark = _MARK[shown.tone]
    text = _cut(mark + escape(shown.text), _FALLBACK_MAX)
    if not shown.blocks:
        return Rendered(text, [SectionBlock(text=MarkdownTextObject(
            text=_cut(mark + escape(shown.text), _TEXT_MAX) or " ")).to_dict()])
    blocks: list[Block] = []
    for block in shown.blocks:
        blocks.extend(_blocks(block, mark))
    return Rendered(text, [b.to_dict() for b in blocks])


def _blocks(block: object, mark: str) -> list[Block]:
    match block:
        case Heading(text):
            heading = (mark + text) if mark else text
            return [HeaderBlock(text=PlainTextObject(text=_cut(heading, _HEADER_MAX)))]
        case Paragraph(text):
            return [_section(escape(text))]
        case Context(text):
            return [ContextBlock(elements=[MarkdownTextObject(text=_cut(escape(text),
                                                                        _TEXT_MAX))])]
        case Fields(items):
            cells = [MarkdownTextObject(text=_cut(f"*{escape(label)}*\n{escape(value)}",
                                                  _FIELD_MAX))
                     for label, value in items]
            return [SectionBlock(fields=cells[i: i + _FIELDS_PER_SECTION])
                    for i in range(0, len(cells), _FIELDS_PER_SECTION)]
        case BulletList(items):
            return [_section("\n".join(f"• {escape(item)}" for item in items))]
        case Actions(buttons):
            if not buttons:
                return []
            return [ActionsBlock(elements=[_button(i, b) for i, b in enumerate(buttons)])]
    return []


def _section(mrkdwn: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=_cut(mrkdwn, _TEXT_MAX) or " "))


def _button(index: int, button: Button) -> ButtonElement:
    """A button whose action_id names the command (unique within the message) and whose
    value carries the command, its arguments and whether it opens the form."""
    value = json.dumps({"command": button.command, "args": dict(button.args),
                        "form": button.form}, separators=(",", ":"))
    return ButtonElement(
        text=PlainTextObject(text=_cut(button.label, _OPTION_MAX)),
        action_id=f"{ACTION_PREFIX}{button.command}:{index}",
        value=value,
        style=button.style or None,
    )


def form_view(form: Form, *, channel: str | None, files: Sequence[Shared] = ()
              ) -> dict[str, Any]:
    """The modal that asks for `form`'s missing fields. The values already known, the
    command, the conversation to answer in and the Slack files to attach ride in
    `private_metadata`."""
    fields: dict[str, Any] = {"command": form.command, "values": form.values(),
                              "channel": channel}
    if files:
        fields["files"] = [[f.name, f.content_type, f.size, f.url] for f in files]
    metadata = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    blocks: list[Block] = [_input(field) for field in form.to_ask]
    known = [f"*{escape(f.label)}*: {escape(f.value or '')}" for f in form.fields
             if f.value is not None]
    if known:
        blocks.insert(0, ContextBlock(elements=[MarkdownTextObject(text=_cut(
            "   ".join(known), _TEXT_MAX))]))
    view = View(
        type="modal",
        callback_id=FORM_CALLBACK,
        title=PlainTextObject(text=_cut(form.title, _TITLE_MAX)),
        submit=PlainTextObject(text="Submit"),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
        private_metadata=metadata,
    )
    return dict(view.to_dict())


def _input(field: FormField) -> InputBlock:
    element: StaticSelectElement | PlainTextInputElement
    if field.choices:
        element = StaticSelectElement(
            action_id=VALUE_ACTION,
            options=[Option(value=c, text=PlainTextObject(text=_cut(c, _OPTION_MAX)))
                     for c in field.choices],
        )
    else:
        element = PlainTextInputElement(action_id=VALUE_ACTION, multiline=field.multiline)
    return InputBlock(
        block_id=field.name,
        label=PlainTextObject(text=_cut(field.label, _LABEL_MAX)),
        element=element,
        optional=field.optional,
    )


def home_view(message: Message) -> dict[str, Any]:
    """The App Home tab showing `message` (the viewer's open tickets, or why not)."""
    blocks = render(message).blocks[:100]
    return {"type": "home", "blocks": blocks}

"""Slack payloads → neutral invocations: slash commands, button presses, submitted forms and
thread replies. Pure functions of the payload; no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.slack.files import Shared, shared
from adapters.slack.render import VALUE_ACTION
from bot.commands import parse
from bot.commands.invocation import Action, Invocation, Sender
from bot.domain import MessageRef, Platform


def unescape(text: str) -> str:
    """Text as Slack sends it (`&amp;`, `&lt;`, `&gt;` escaped) → what the person typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def sender(team_id: str, user_id: str, name: str = "",
           verified_email: str | None = None) -> Sender:
    return Sender(Platform.SLACK, team_id, user_id, display_name=name,
                  verified_email=verified_email)


def command_invocation(body: Mapping[str, Any], *, verified_email: str | None = None
                       ) -> Invocation:
    """A slash command: `/ticket` with `text` `new sev2 VPN down` is `/ticket new sev2 …`.

    The trigger id is unique per invocation, so a redelivery runs once."""
    text = f"{body['command']} {unescape(body.get('text') or '')}".strip()
    trigger = body.get("trigger_id")
    return Invocation(
        sender(body["team_id"], body["user_id"], body.get("user_name", ""), verified_email),
        text=text,
        event_id=f"command:{trigger}" if trigger else None,
    )


def wants_verified_email(text: str) -> bool:
    """Whether the command links the account by email (`/subdesk link [EMAIL]`), so the
    workspace's verified email should come with it."""
    parsed = parse(text)
    return parsed.spec is not None and parsed.spec.key == "subdesk.link"


@dataclass(frozen=True, slots=True)
class Pressed:
    """A button press: the command it runs, its arguments, and whether it opens a form."""

    command: str
    args: dict[str, str]
    form: bool


def pressed(action: Mapping[str, Any]) -> Pressed | None:
    """The typed action a Subdesk button carries in its value; None when it is not ours."""
    try:
        value = json.loads(action.get("value") or "")
        command, args = value["command"], value.get("args", {})
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(command, str) or not isinstance(args, dict):
        return None
    return Pressed(command, {str(k): str(v) for k, v in args.items()}, bool(value.get("form")))


def action_invocation(body: Mapping[str, Any], press: Pressed) -> Invocation:
    user = body["user"]
    team = user.get("team_id") or (body.get("team") or {}).get("id", "")
    return Invocation(sender(team, user["id"], user.get("username", "")),
                      action=Action.of(press.command, press.args))


@dataclass(frozen=True, slots=True)
class Submitted:
    """A submitted form: its command, every value (known and typed), and where to answer."""

    command: str
    values: dict[str, str]
    channel: str | None
    files: tuple[Shared, ...] = ()


def submitted(view: Mapping[str, Any]) -> Submitted | None:
    """The form a `view_submission` carries; None when the modal is not ours."""
    try:
        metadata = json.loads(view.get("private_metadata") or "")
        command = str(metadata["command"])
    except (ValueError, TypeError, KeyError):
        return None
    values = {str(k): str(v) for k, v in (metadata.get("values") or {}).items()}
    for name, inputs in ((view.get("state") or {}).get("values") or {}).items():
        element = inputs.get(VALUE_ACTION) or {}
        if element.get("type") == "static_select":
            value = (element.get("selected_option") or {}).get("value")
        else:
            value = element.get("value")
        if value:
            values[name] = str(value)
    channel = metadata.get("channel")
    attached = shared([{"name": f[0], "mimetype": f[1], "size": f[2], "url_private": f[3]}
                       for f in metadata.get("files") or ()
                       if isinstance(f, list) and len(f) == 4])
    return Submitted(command, values, channel if isinstance(channel, str) else None,
                     attached)


def submission_invocation(body: Mapping[str, Any], form: Submitted) -> Invocation:
    user = body["user"]
    team = user.get("team_id") or (body.get("team") or {}).get("id", "")
    return Invocation(sender(team, user["id"], user.get("username", "")),
                      action=Action.of(form.command, form.values))


def author_team(event: Mapping[str, Any], team_id: str) -> str:
    """The workspace of a message's author. In a Slack Connect channel the event comes
    through the vendor's workspace (`team_id` of the envelope) while the author belongs to
    the customer's: `user_team` (or the message's `team`) names theirs."""
    return str(event.get("user_team") or event.get("team") or team_id)


def thread_reply(event: Mapping[str, Any], team_id: str) -> Invocation | None:
    """A person's message posted under a root (`thread_ts` set and not its own ts), as a
    reply in that thread. Other messages (roots, edits, joins, bots) are not invocations.

    The dedup id is the message itself (channel + ts): a retried event and the same message
    delivered again as an `app_mention` run once."""
    if (event.get("type") != "message" or event.get("bot_id")
            or event.get("subtype") not in (None, "file_share", "thread_broadcast")):
        return None
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    channel, user = event.get("channel"), event.get("user")
    if not (thread_ts and ts and channel and user) or thread_ts == ts:
        return None
    text = unescape(event.get("text") or "").strip()
    if not text and (names := [f.name for f in shared(event.get("files"))]):
        text = "Shared " + ", ".join(names)
    return Invocation(
        sender(author_team(event, team_id), user),
        text=text,
        thread=MessageRef(channel, thread_ts),
        event_id=f"message:{channel}:{ts}",
    )


SHORTCUT_FILES = 4  # files a shortcut's ticket takes along; more are left in Slack
SHORTCUT_TEXT = 1200  # characters of the message quoted in the description


def shortcut_invocation(body: Mapping[str, Any], permalink: str | None) -> Invocation:
    """"Open a ticket from this message": `/ticket new` as the person using the shortcut,
    with the message's text and link as the description (the subject is asked)."""
    user = body["user"]
    team = user.get("team_id") or (body.get("team") or {}).get("id", "")
    text = unescape((body.get("message") or {}).get("text") or "").strip()
    if len(text) > SHORTCUT_TEXT:
        text = text[: SHORTCUT_TEXT - 1] + "…"
    description = "\n\n".join(p for p in (text, f"From Slack: {permalink}" if permalink
                                           else "") if p)
    values = {"DESCRIPTION": description} if description else {}
    return Invocation(sender(team, user["id"], user.get("username", "")),
                      action=Action.of("ticket.new", values))


def message_files(message: Mapping[str, Any], *, limit: int, accepted: Sequence[str]
                  ) -> tuple[Shared, ...]:
    """The files of a message a ticket is opened from, when that is simple: at most a
    few, each announced within the size limit and of a type accepted. Others stay in Slack
    (the message's permalink leads to them) rather than keep the ticket from opening."""
    allowed = {t.lower() for t in accepted}
    found = [f for f in shared(message.get("files"))
             if 0 < f.size <= limit and f.content_type.split(";", 1)[0].lower() in allowed]
    return tuple(found[:SHORTCUT_FILES])


TICKET_REACTION = "ticket"
SUBJECT_WORDS = 80  # characters of a message's first line taken as a ticket's subject


def reacted(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (channel, ts) of the message a `:ticket:` reaction was added to; None for any
    other reaction or item."""
    item = event.get("item") or {}
    if event.get("reaction") != TICKET_REACTION or item.get("type") != "message":
        return None
    channel, ts = item.get("channel"), item.get("ts")
    return (channel, ts) if isinstance(channel, str) and isinstance(ts, str) else None


def reaction_invocation(message: Mapping[str, Any], author_team: str, channel: str,
                        permalink: str | None) -> Invocation:
    """`/ticket new` as the author of a message someone reacted to with `:ticket:`: its
    first line the subject, its text and link the description. One ticket per message,
    however many reactions and redeliveries (`reaction:CHANNEL:TS`)."""
    text = unescape(message.get("text") or "").strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    subject = first if len(first) <= SUBJECT_WORDS else first[: SUBJECT_WORDS - 1] + "…"
    description = "\n\n".join(p for p in (text, f"From Slack: {permalink}" if permalink
                                           else "") if p)
    values = {"SUBJECT": subject or "Message from Slack"}
    if description:
        values["DESCRIPTION"] = description
    return Invocation(sender(author_team, str(message.get("user", ""))),
                      action=Action.of("ticket.new", values),
                      event_id=f"reaction:{channel}:{message.get('ts')}")

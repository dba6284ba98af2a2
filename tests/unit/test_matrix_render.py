"""Matrix translations, both ways, as pure functions: neutral messages to event content
(escaped HTML and a plain body, commands with `!`, edits and threads), and events to what
a person said (commands, thread replies, files; edits and notices are not commands)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.matrix import inbound
from adapters.matrix.files import media_path
from adapters.matrix.render import CONTENT_BYTES, PREFIX, edit, in_thread, render, replying
from bot.commands.invocation import IncomingFile
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
    command,
)

pytestmark = pytest.mark.nodb

HOSTILE = '<a href="https://evil.test">x</a> & <img src=x onerror=alert(1)> @room'


def test_every_user_string_is_escaped_in_the_html_and_kept_in_the_body() -> None:
    """Headings, paragraphs, fields, lists and context all escape what a user typed;
    the plain body shows it as typed."""
    message = Message(HOSTILE, blocks=(
        Heading(HOSTILE), Paragraph(HOSTILE), Fields((("Subject", HOSTILE),)),
        BulletList((HOSTILE,)), Context(HOSTILE)), tone=Tone.WARNING)
    content = render(message)
    html = content["formatted_body"]
    assert content["format"] == "org.matrix.custom.html" and content["msgtype"] == "m.notice"
    assert "<a " not in html and "<img" not in html
    assert html.count("&lt;a href=&quot;https://evil.test&quot;&gt;x&lt;/a&gt; &amp; "
                      "&lt;img src=x onerror=alert(1)&gt;") == 5
    assert content["body"].count(HOSTILE) == 5


def test_command_references_and_buttons_are_written_with_the_bang() -> None:
    """What to type is written `!ticket …`, never `/`; a button becomes the command it
    runs, with the arguments it still needs named."""
    message = Message(f"Try {command('subdesk help')}.", blocks=(
        Paragraph(f"Reply with {command('ticket comment', 12, 'TEXT')}"),
        Actions((Button("Claim", "triage.claim", (("ID", "12"),)),
                 Button("Status", "triage.status", (("ID", "12"),), form=True),
                 Button("Unknown", "no.such.command")))))
    content = render(message)
    for text in (content["body"], content["formatted_body"]):
        assert "/" not in text.replace("</", "")
        assert "!ticket comment 12 TEXT" in text
        assert "!triage claim 12" in text and "Unknown" not in text
    assert button_command(Button("Status", "triage.status", (("ID", "12"),)), PREFIX) == \
        "!triage status 12 new|open|pending|on_hold|solved|closed"
    assert render(Message(f"Try {command('subdesk help')}."))["body"] == "Try !subdesk help."


def test_a_huge_message_keeps_its_plain_body_within_an_event() -> None:
    content = render(Message("x" * 100_000, blocks=(Paragraph("<" * 40_000),)))
    assert len(content["body"]) <= 16_000 and "formatted_body" not in content


@pytest.mark.parametrize("letter", ["ж", "漢", "🚨", "x"])
def test_any_script_fits_an_event_even_encrypted_and_edited(letter: str) -> None:
    """Measured as an encrypted payload is written (non-ASCII escaped), the content stays
    within its budget: the formatted body goes first, then the plain body is shortened;
    an edit, which carries its content twice, gets half each."""
    message = Message("Ticket", blocks=(Heading("#1 Printer"), Paragraph(letter * 3900),
                                        Paragraph(letter * 3900)))
    content = render(message)
    assert len(json.dumps(content)) <= CONTENT_BYTES
    assert content["body"].startswith("#1 Printer") and letter * 100 in content["body"]
    edited = edit(render(message, budget=CONTENT_BYTES // 2), "$card")
    assert len(json.dumps(edited)) <= CONTENT_BYTES + 200
    small = render(Message("Ticket", blocks=(Paragraph(letter * 100),)))
    assert "formatted_body" in small and not small["body"].endswith("…"), "room to spare"


def test_edits_threads_and_answers_carry_their_relations() -> None:
    content = render(Message("Card"))
    edited = edit(content, "$card")
    assert edited["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$card"}
    assert edited["m.new_content"] == content and edited["body"] == "* Card"
    threaded = in_thread(content, "$root")
    assert threaded["m.relates_to"]["rel_type"] == "m.thread"
    assert threaded["m.relates_to"]["is_falling_back"] is True
    answer = in_thread(content, "$root", "$asked")["m.relates_to"]
    assert answer["m.in_reply_to"] == {"event_id": "$asked"}
    assert answer["is_falling_back"] is False
    assert replying(content, "$asked")["m.relates_to"] == {
        "m.in_reply_to": {"event_id": "$asked"}}


def event(content: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": "$e1", "sender": "@tom:acme.test",
            "content": content, **more}


def test_a_command_a_thread_reply_and_a_reply_with_its_fallback() -> None:
    said = inbound.read(event({"msgtype": "m.text", "body": "!ticket list"}), "!r:acme.test")
    assert said is not None and said.command and said.thread_root is None
    invocation = inbound.command_invocation(said)
    assert invocation.sender.workspace == "acme.test"
    assert invocation.sender.user_id == "@tom:acme.test"
    assert invocation.event_id == "event:$e1"
    reply = inbound.read(event({
        "msgtype": "m.text", "body": "It works now",
        "m.relates_to": {"rel_type": "m.thread", "event_id": "$card", "is_falling_back": True,
                         "m.in_reply_to": {"event_id": "$card"}}}), "!r:acme.test")
    assert reply is not None and reply.thread_root == "$card" and reply.reply_to is None
    quoted = inbound.read(event({
        "msgtype": "m.text", "body": "> <@bot:vendor.test> Ticket #1\n> more\n\nThanks!",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$card"}}}), "!r:acme.test")
    assert quoted is not None and quoted.text == "Thanks!" and quoted.reply_to == "$card"
    pasted = inbound.read(event({
        "msgtype": "m.text", "body": "> kernel: eth0 link down\n> kernel: eth0 link up\n"
                                     "This repeats hourly",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$card"}}}), "!r:acme.test")
    assert pasted is not None and pasted.text.startswith("> kernel: eth0 link down"), \
        "a quote of the person's own is no reply fallback"


@pytest.mark.parametrize("source", [
    event({"msgtype": "m.notice", "body": "!ticket list"}),  # a bot's notice
    event({"msgtype": "m.text", "body": "!ticket list",
           "m.relates_to": {"rel_type": "m.replace", "event_id": "$old"}}),  # an edit
    {"type": "m.room.member", "event_id": "$m", "sender": "@a:b", "content": {}},
    event("not a dict"),
    event({"msgtype": "m.file", "body": "x", "url": "https://evil.test/x"}),  # not mxc
    {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "!x"}},  # no ids
])
def test_what_is_not_a_person_speaking_is_ignored(source: dict[str, Any]) -> None:
    assert inbound.read(source, "!r:acme.test") is None


def test_files_plain_and_encrypted() -> None:
    plain = inbound.read(event({"msgtype": "m.image", "body": "../../shot.png",
                                "url": "mxc://acme.test/abc",
                                "info": {"mimetype": "image/png", "size": 42}}), "!r:a")
    assert plain is not None and plain.file is not None and plain.text == ""
    assert plain.file.name == ".._.._shot.png" and plain.file.size == 42
    assert plain.file.encryption is None
    secret = inbound.read(event({"msgtype": "m.file", "body": "a.log", "file": {
        "url": "mxc://acme.test/def", "key": {"k": "K"}, "iv": "I", "hashes": {"sha256": "H"},
        "v": "v2"}}), "!r:a")
    assert secret is not None and secret.file is not None
    assert secret.file.url == "mxc://acme.test/def" and secret.file.encryption is not None
    assert secret.file.content_type == "application/octet-stream"
    shared = inbound.thread_invocation(secret, "$card", (IncomingFile("a.log", "text/plain",
                                                                      b"x"),))
    assert shared.text == "Shared a.log" and shared.thread is not None
    assert shared.thread.id == "$card"
    assert media_path("mxc://acme.test/def") == "/_matrix/client/v1/media/download/acme.test/def"
    assert media_path("mxc://acme.test/../../admin") is None

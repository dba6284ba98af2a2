"""Console rendering: neutral messages to terminal text that a terminal cannot misread."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters.console.render import printable, render
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

pytestmark = pytest.mark.nodb


def test_blocks_render_as_plain_lines() -> None:
    """Headings, paragraphs, fields, lists, buttons (with the command each stands for, or
    alone when the command is unknown) and small print each get their line."""
    message = Message(
        "fallback",
        tone=Tone.GOOD,
        blocks=(
            Heading("Ticket #12"),
            Paragraph("Database down"),
            Fields((("Severity", "sev2"), ("Status", "open"))),
            BulletList(("one", "two")),
            Actions((Button("Claim", "triage.claim", (("ID", "12"),)),
                     Button("Status", "triage.status", (("ID", "12"),), form=True),
                     Button("Unknown", "no.such.command"))),
            Context("opened 5 minutes ago"),
        ),
    )
    assert render(message).splitlines() == [
        "✓ Ticket #12",
        "Database down",
        "  Severity  sev2",
        "  Status    open",
        "  • one",
        "  • two",
        "  [Claim] /triage claim 12",
        "  [Status] /triage status 12 new|open|pending|on_hold|solved|closed",
        "  [Unknown]",
        "  (opened 5 minutes ago)",
    ]
    assert render(Message("plain", tone=Tone.WARNING)) == "! plain"


@pytest.mark.parametrize("hostile", ["\x1b[2J", "\x1b]0;pwned\x07", "\r", "\x9b31m", "\x00"])
def test_terminal_control_sequences_are_not_passed_through(hostile: str) -> None:
    """Escape sequences in stored text (names from an import, say) never reach the
    terminal as control characters."""
    message = Message("x", blocks=(Heading(f"Hello {hostile}Eve"), Fields((("Name", hostile),))))
    shown = render(message) + render(Message(f"a{hostile}b"))
    assert not any(ch in shown for ch in "\x1b\x07\r\x9b\x00")
    assert "Hello" in shown and "Eve" in shown


def test_printable_keeps_text_newlines_tabs_and_unicode() -> None:
    """Only control characters go; newlines, tabs, emoji and RTL text stay."""
    assert printable("a\tb\nc 😀 مرحبا <!channel>") == "a\tb\nc 😀 مرحبا <!channel>"


def test_an_alert_card_names_each_action_once_where_there_are_no_buttons() -> None:
    """The console (and email) and Matrix show each action with its command, and the card's
    small print does not repeat them; Slack shows the actions as buttons."""
    from adapters.matrix.render import render as matrix_render
    from adapters.slack.render import render as slack_render
    from bot.presentation.alerts import alert_card
    from storage.alerts import Alert

    now = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
    card = alert_card(Alert(3, "alertmanager", "f1", 1, "warning", "firing", "Disk full",
                            "", 1, now, now), "Acme")
    shown = render(card)
    assert "  [Acknowledge] /alert ack 3" in shown.splitlines()
    for text, prefix in ((shown, "/"), (str(matrix_render(card)["body"]), "!")):
        assert text.count(f"{prefix}alert ack 3") == 1, text
        assert text.count(f"{prefix}alert resolve 3") == 1, text
    slack = slack_render(card)
    assert "alert ack" not in str(slack), slack

"""Console rendering: neutral messages to terminal text that a terminal cannot misread."""

from __future__ import annotations

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
    """Headings, paragraphs, fields, lists, buttons and small print each get their line."""
    message = Message(
        "fallback",
        tone=Tone.GOOD,
        blocks=(
            Heading("Ticket #12"),
            Paragraph("Database down"),
            Fields((("Severity", "sev2"), ("Status", "open"))),
            BulletList(("one", "two")),
            Actions((Button("Claim", "triage.claim", "12"),)),
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
        "  [Claim]",
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

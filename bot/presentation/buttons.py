"""A button as the command line it stands for, for the places that show buttons as text
(Matrix, the console and email): `!triage status 12 STATUS`, `/alert ack 3`."""

from __future__ import annotations

from bot.commands.grammar import BY_KEY
from bot.presentation.messages import Button


def button_command(button: Button, prefix: str) -> str | None:
    """The command a button stands for, with its known arguments filled in and the others
    named (`!triage status 12 STATUS`); None for a command this build does not know."""
    spec = BY_KEY.get(button.command)
    if spec is None:
        return None
    known = button.values
    words = [spec.root, *spec.words]
    for arg in spec.line_args:
        value = known.get(arg.name)
        if value is not None:
            words.append(value)
        elif not arg.optional:
            words.append(arg.usage)
    return prefix + " ".join(words)

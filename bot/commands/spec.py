"""Typed command specifications: what a command is called, what it takes, who may use it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.policy import Permission
from bot.presentation.messages import command


class ArgKind(StrEnum):
    WORD = "word"  # one token
    CHOICE = "choice"  # one of `choices`
    TICKET = "ticket"  # 1042 or #1042
    NUMBER = "number"  # a positive integer (request ids, server counts)
    EMAIL = "email"
    CODE = "code"  # six digits
    TEXT = "text"  # the rest of the line, verbatim


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: ArgKind
    optional: bool = False
    choices: tuple[str, ...] = ()
    label: str = ""  # how a form asks for it; defaults to the name, capitalised
    form_only: bool = False  # asked by the command's form, not part of the typed line
    form_required: bool = False  # optional on the line (its absence opens the form), not in it

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    @property
    def usage(self) -> str:
        shown = "|".join(self.choices) if self.kind is ArgKind.CHOICE else self.name
        return f"[{shown}]" if self.optional else shown


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: `key` names its handler, `words` are what follows the command word.

    `feature` groups commands that a deployment enables together (core, tickets, triage,
    billing, alerts); `permission` decides who sees it in help and may run it. A command with
    `form` asks for its missing arguments (a modal, a prompt, line by line on the console)
    instead of answering with its usage line.
    """

    key: str
    root: str
    words: tuple[str, ...]
    args: tuple[Arg, ...]
    summary: str
    permission: Permission
    feature: str = "core"
    form: bool = False

    @property
    def line_args(self) -> tuple[Arg, ...]:
        """The arguments typed on the command line (form-only ones left out)."""
        return tuple(a for a in self.args if not a.form_only)

    def usage(self) -> str:
        """The usage line as a neutral command reference (rendered with `/` or `!`)."""
        return command(self.root, *self.words, *(a.usage for a in self.line_args))

    @property
    def title(self) -> str:
        """A form's title: the summary, capitalised."""
        return self.summary[:1].upper() + self.summary[1:]

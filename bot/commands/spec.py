"""Typed command specifications: what a command is called, what it takes, who may use it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.policy import Permission


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

    @property
    def usage(self) -> str:
        shown = "|".join(self.choices) if self.kind is ArgKind.CHOICE else self.name
        return f"[{shown}]" if self.optional else shown


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: `key` names its handler, `words` are what follows the command word.

    `feature` groups commands that a deployment enables together (core, tickets, triage,
    billing, alerts); `permission` decides who sees it in help and may run it.
    """

    key: str
    root: str
    words: tuple[str, ...]
    args: tuple[Arg, ...]
    summary: str
    permission: Permission
    feature: str = "core"

    def usage(self, prefix: str = "/") -> str:
        parts = [f"{prefix}{self.root}", *self.words, *(a.usage for a in self.args)]
        return " ".join(parts)

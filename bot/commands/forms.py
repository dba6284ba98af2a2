"""Forms derived from command specs: what a Slack modal, a Matrix prompt and the console ask.

A button that needs more input (status, severity, reply) names a command key and the
arguments it already knows; the form asks for the rest, with the grammar's choices and the
parser's validation, and is submitted as the same typed action a button press is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.commands.grammar import BY_KEY
from bot.commands.spec import Arg, ArgKind, CommandSpec


@dataclass(frozen=True, slots=True)
class FormField:
    """One input: a free text (`multiline` for TEXT arguments), a choice, or a short value."""

    name: str
    label: str
    kind: ArgKind
    optional: bool
    choices: tuple[str, ...] = ()
    value: str | None = None  # known already (prefilled by a button or the typed line)

    @property
    def multiline(self) -> bool:
        return self.kind is ArgKind.TEXT

    @property
    def prompt(self) -> str:
        """The question, as a line: `Severity (sev1|sev2|sev3|sev4, optional)`."""
        hints = []
        if self.choices:
            hints.append("|".join(self.choices))
        if self.optional:
            hints.append("optional")
        return self.label + (f" ({', '.join(hints)})" if hints else "")


@dataclass(frozen=True, slots=True)
class Form:
    """The input a command needs: its key, a title, and its fields in order."""

    command: str
    title: str
    fields: tuple[FormField, ...]

    @property
    def to_ask(self) -> tuple[FormField, ...]:
        """The fields still without a value, in order."""
        return tuple(f for f in self.fields if f.value is None)

    def values(self) -> dict[str, str]:
        return {f.name: f.value for f in self.fields if f.value is not None}

    def to_json(self) -> dict[str, object]:
        return {"command": self.command, "values": self.values()}


def _field(arg: Arg, value: object) -> FormField:
    return FormField(
        name=arg.name,
        label=arg.title,
        kind=arg.kind,
        optional=arg.optional and not arg.form_required,
        choices=arg.choices,
        value=None if value is None else str(value),
    )


def form_for(spec: CommandSpec, values: Mapping[str, object] | None = None) -> Form:
    """The form of `spec`, with the values already known filled in."""
    known = values or {}
    return Form(spec.key, spec.title, tuple(_field(a, known.get(a.name)) for a in spec.args))


def form_named(key: str, values: Mapping[str, object] | None = None) -> Form | None:
    """The form of the command `key` (None when there is no such command or it has no form)."""
    spec = BY_KEY.get(key)
    return form_for(spec, values) if spec is not None and spec.form else None

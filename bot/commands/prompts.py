"""A form asked one field at a time, as the console and Matrix do: each answer is checked
with the parser's rules as it comes, a refused one is asked again, and the filled form is
submitted as the same typed action a Slack modal submits. Pure; the adapters hold the open
form and choose the words that skip a field or stop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bot.commands.forms import Form, FormField
from bot.commands.parser import ParseError, parse_values


@dataclass(frozen=True, slots=True)
class Step:
    """The form after one answer, and why the answer was refused (`problem`: the same
    field is asked again)."""

    form: Form
    problem: str | None = None

    @property
    def asking(self) -> FormField | None:
        return asking(self.form)


def asking(form: Form) -> FormField | None:
    """The field the next answer fills: the first without a value."""
    fields = form.to_ask
    return fields[0] if fields else None


def answer(form: Form, value: str) -> Step:
    """`form` with its current field answered by `value` (empty leaves an optional field
    out)."""
    field = asking(form)
    if field is None:
        return Step(form)
    value = value.strip()
    if not value and not field.optional:
        return Step(form, f"{field.label} is needed.")
    answered = {**form.values(), field.name: value}
    checked = parse_values(form.command, {k: v or None for k, v in answered.items()})
    if isinstance(checked, ParseError) and checked.field == field.name and not checked.missing:
        return Step(form, checked.message)
    filled = tuple(dataclasses.replace(f, value=value) if f.name == field.name else f
                   for f in form.fields)
    return Step(dataclasses.replace(form, fields=filled))


def submitted(form: Form) -> dict[str, str]:
    """The values a filled form submits (fields left out are not sent)."""
    return {name: value for name, value in form.values().items() if value}

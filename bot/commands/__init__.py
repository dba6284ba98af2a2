"""The one command grammar of SPEC §3: specs, a pure parser, and a typed registry."""

from bot.commands.forms import Form, FormField, form_for, form_named
from bot.commands.grammar import GRAMMAR
from bot.commands.parser import Parsed, ParseError, is_command, parse, parse_values
from bot.commands.spec import Arg, ArgKind, CommandSpec

__all__ = [
    "GRAMMAR",
    "Arg",
    "ArgKind",
    "CommandSpec",
    "Form",
    "FormField",
    "ParseError",
    "Parsed",
    "form_for",
    "form_named",
    "is_command",
    "parse",
    "parse_values",
]

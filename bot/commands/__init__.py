"""The one command grammar of SPEC §3: specs, a pure parser, and a typed registry."""

from bot.commands.grammar import GRAMMAR
from bot.commands.parser import Parsed, ParseError, parse
from bot.commands.spec import Arg, ArgKind, CommandSpec

__all__ = ["GRAMMAR", "Arg", "ArgKind", "CommandSpec", "ParseError", "Parsed", "parse"]

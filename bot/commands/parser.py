"""A pure parser for the command grammar: text in, a `Parsed` or a `ParseError` out.

It never raises on user input and does no I/O. `/word` (Slack, console), `!word` (Matrix)
and a bare `word` are the same command.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from bot.commands.grammar import BY_KEY, DEFAULTS, GRAMMAR, ROOTS
from bot.commands.spec import Arg, ArgKind, CommandSpec
from bot.presentation.messages import command

MAX_LENGTH: Final = 4000
_TOKEN = re.compile(r"\S+")
_EMAIL = re.compile(r"^[^@\s<>\"'`|]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})\.[A-Za-z]{2,63}$")
_TICKET = re.compile(r"^#?([0-9]{1,12})$")
_NUMBER = re.compile(r"^#?([0-9]{1,9})$")
_CODE = re.compile(r"^[0-9]{6}$")
# Invisible characters that can hide or disguise a command: byte-order marks, zero-width
# spaces and bidi controls. Joiners (U+200C, U+200D) stay: emoji and scripts need them.
# The private-use markers of command references (bot.presentation.messages) go too.
_INVISIBLE = re.compile(
    "[\ufeff\u200b\u2060\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ue000\ue001]"
)
# Lone surrogates (undecodable bytes, "\ud800" in JSON) cannot be stored or sent anywhere.
_SURROGATE = re.compile("[\ud800-\udfff]")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ArgValue = str | int | None


@dataclass(frozen=True, slots=True)
class Parsed:
    spec: CommandSpec
    args: dict[str, ArgValue]

    def text(self, name: str) -> str | None:
        value = self.args.get(name)
        return None if value is None else str(value)

    def number(self, name: str) -> int:
        value = self.args[name]
        assert isinstance(value, int)
        return value


@dataclass(frozen=True, slots=True)
class ParseError:
    """Why the input is not a command, and the usage lines that would help.

    `missing` is set when the only trouble is required arguments not given; `partial` then
    holds the arguments that were, so a form can ask for the rest. `field` names the
    argument a message is about.
    """

    message: str
    root: str | None = None
    spec: CommandSpec | None = None
    missing: bool = False
    partial: dict[str, ArgValue] = field(default_factory=dict)
    field: str | None = None

    def usages(self) -> list[str]:
        """Usage lines as neutral command references."""
        if self.spec is not None:
            return [self.spec.usage()]
        if self.root is not None:
            return [s.usage() for s in GRAMMAR if s.root == self.root]
        return []


_HELP = command("subdesk help")


def _clean(text: str) -> str | None:
    """Drop control and invisible characters (keeping newlines and tabs) and replace lone
    surrogates with U+FFFD; None when nothing is left."""
    text = _INVISIBLE.sub("", _SURROGATE.sub("\ufffd", text))
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in "\n\t")
    text = text.strip()
    return text or None


def is_command(text: str) -> bool:
    """Whether a line is a command (`/ticket …`, `!ticket …`) rather than free text: a reply
    in a thread, or the answer to a form's question."""
    stripped = text.lstrip()
    words = stripped[1:].split(None, 1)
    return stripped[:1] in ("/", "!") and bool(words) and words[0].lower() in ROOTS


def parse(text: str) -> Parsed | ParseError:
    """Parse one command line such as `/ticket comment #12 works now`."""
    if not isinstance(text, str):
        return ParseError(f"Empty command. Try {_HELP}.")
    if len(text) > MAX_LENGTH:
        head = _TOKEN.match(text.lstrip())
        root = head.group(0).lstrip("/!").lower() if head else None
        return ParseError(
            f"That is too long ({len(text)} characters; the limit is {MAX_LENGTH}).",
            root if root in ROOTS else None,
        )
    cleaned = _clean(text)
    if cleaned is None:
        return ParseError(f"Empty command. Try {_HELP}.")
    tokens = list(_TOKEN.finditer(cleaned))
    root = tokens[0].group(0).lstrip("/!").lower()
    if root not in ROOTS:
        shown = tokens[0].group(0)[:40]
        return ParseError(f"Unknown command {shown!r}. Try {_HELP}.")

    words = [t.group(0).lower() for t in tokens[1:]]
    candidates = sorted(
        (s for s in GRAMMAR if s.root == root), key=lambda s: len(s.words), reverse=True
    )
    spec = next(
        (s for s in candidates if tuple(words[: len(s.words)]) == s.words and s.words), None
    )
    if spec is None:
        bare = next((s for s in candidates if not s.words), None)
        if not words and root in DEFAULTS:
            return Parsed(next(s for s in GRAMMAR if s.key == DEFAULTS[root]), {})
        if bare is not None and (bare.args or not words):
            spec = bare
        elif not words:
            return ParseError(f"{command(root)} needs a subcommand.", root)
        else:
            return ParseError(f"Unknown subcommand {words[0][:40]!r} for {command(root)}.", root)

    rest = tokens[1 + len(spec.words) :]
    return _parse_args(spec, cleaned, rest)


def _parse_args(spec: CommandSpec, raw: str, tokens: list[re.Match[str]]) -> Parsed | ParseError:
    args: dict[str, ArgValue] = {}
    line_args = spec.line_args
    missing: list[str] = []
    i = 0
    for index, arg in enumerate(line_args):
        token = tokens[i].group(0) if i < len(tokens) else None
        if arg.kind is ArgKind.TEXT:
            value = raw[tokens[i].start() :].strip() if token is not None else None
            if value is None and not arg.optional:
                missing.append(arg.name)
            args[arg.name] = value
            i = len(tokens)
            continue
        if token is None:
            args[arg.name] = None
            if not arg.optional:
                missing.append(arg.name)
            continue
        converted = _convert(arg, token)
        if isinstance(converted, ParseError):
            if arg.optional and not _looks_like(arg, token, index + 1 < len(line_args)):
                args[arg.name] = None
                continue
            return ParseError(converted.message, spec.root, spec, field=arg.name)
        args[arg.name] = converted
        i += 1
    if i < len(tokens):
        extra = tokens[i].group(0)[:40]
        return ParseError(f"Unexpected {extra!r}.", spec.root, spec)
    if missing:
        return ParseError(f"{missing[0]} is missing.", spec.root, spec, missing=True,
                          partial={k: v for k, v in args.items() if v is not None},
                          field=missing[0])
    return Parsed(spec, args)


def parse_values(key: str, values: Mapping[str, str | None]) -> Parsed | ParseError:
    """Parse a button press or a submitted form: a command key and its arguments by name.

    Every value goes through the same checks as typed text; unknown names are refused.
    """
    spec = BY_KEY.get(key)
    if spec is None:
        return ParseError(f"Unknown action {key[:40]!r}.")
    known = {a.name for a in spec.args}
    for name in values:
        if name not in known:
            return ParseError(f"Unexpected {name[:40]!r}.", spec.root, spec)
    args: dict[str, ArgValue] = {}
    missing: list[str] = []
    for arg in spec.args:
        raw = values.get(arg.name)
        if raw is not None and (not isinstance(raw, str) or len(raw) > MAX_LENGTH):
            return ParseError(f"{arg.title} is too long (the limit is {MAX_LENGTH} characters).",
                              spec.root, spec, field=arg.name)
        cleaned = _clean(raw) if raw is not None else None
        if cleaned is None:
            args[arg.name] = None
            if not arg.optional:
                missing.append(arg.name)
            continue
        if arg.kind is ArgKind.TEXT:
            args[arg.name] = cleaned
            continue
        converted = _convert(arg, cleaned)
        if isinstance(converted, ParseError):
            return ParseError(converted.message, spec.root, spec, field=arg.name)
        args[arg.name] = converted
    if missing:
        return ParseError(f"{missing[0]} is missing.", spec.root, spec, missing=True,
                          partial={k: v for k, v in args.items() if v is not None},
                          field=missing[0])
    return Parsed(spec, args)


def _looks_like(arg: Arg, token: str, more_args: bool) -> bool:
    """Whether a token that failed to convert was meant for this optional argument.

    An optional choice followed by free text (`/ticket new [SEV] [SUBJECT]`) lets the token
    pass on to the text, unless it is shaped like a choice (`sev9`, `sev`); anywhere else a
    bad token is a mistake worth naming.
    """
    if arg.kind is not ArgKind.CHOICE or not more_args:
        return True
    stem = token.lower().rstrip("0123456789")
    return any(stem == choice.rstrip("0123456789") != choice for choice in arg.choices)


def _convert(arg: Arg, token: str) -> ArgValue | ParseError:
    match arg.kind:
        case ArgKind.CHOICE:
            if token.lower() in arg.choices:
                return token.lower()
            return ParseError(f"{arg.name} must be one of {', '.join(arg.choices)}.")
        case ArgKind.TICKET:
            if m := _TICKET.fullmatch(token):
                return int(m.group(1))
            return ParseError(f"{arg.name} must be a ticket number like #1042.")
        case ArgKind.NUMBER:
            if (m := _NUMBER.fullmatch(token)) and int(m.group(1)) > 0:
                return int(m.group(1))
            return ParseError(f"{arg.name} must be a positive whole number.")
        case ArgKind.EMAIL:
            if len(token) <= 254 and _EMAIL.fullmatch(token):
                return token.lower()
            return ParseError(f"{arg.name} must be an email address like ana@example.com.")
        case ArgKind.CODE:
            if _CODE.fullmatch(token):
                return token
            return ParseError(f"{arg.name} must be the 6-digit code from the email.")
        case ArgKind.WORD:
            if _WORD.fullmatch(token):
                return token
            return ParseError(f"{arg.name} must be a single word (letters, digits, - _ .).")
        case ArgKind.TEXT:  # pragma: no cover - handled by the caller
            return token
    return ParseError(f"{arg.name} is not understood.")  # pragma: no cover

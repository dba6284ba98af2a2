"""The command parser: every command of SPEC §3, both prefixes, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import GRAMMAR, ArgKind, CommandSpec, Parsed, ParseError, parse
from bot.commands.grammar import BY_KEY, DEFAULTS, ROOTS
from bot.commands.parser import MAX_LENGTH
from bot.presentation.messages import resolve_commands

pytestmark = pytest.mark.nodb

SAMPLE_VALUES: dict[ArgKind, str] = {
    ArgKind.WORD: "acme",
    ArgKind.TICKET: "#1042",
    ArgKind.NUMBER: "7",
    ArgKind.EMAIL: "Ana@Example.com",
    ArgKind.CODE: "012345",
    ArgKind.TEXT: "it works now, thanks!",
}



def slash(lines: list[str]) -> list[str]:
    """Usage lines as the console and Slack show them."""
    return [resolve_commands(line, "/") for line in lines]


def filled(spec: CommandSpec, prefix: str = "/", *, optional: bool = True) -> str:
    """The spec's usage line with a sample value for each argument."""
    parts = [f"{prefix}{spec.root}", *spec.words]
    for arg in spec.line_args:
        if arg.optional and not optional:
            continue
        parts.append(arg.choices[-1] if arg.kind is ArgKind.CHOICE else SAMPLE_VALUES[arg.kind])
    return " ".join(parts)


def ok(text: str) -> Parsed:
    result = parse(text)
    assert isinstance(result, Parsed), f"{text!r}: {result}"
    return result


def err(text: str) -> ParseError:
    result = parse(text)
    assert isinstance(result, ParseError), f"{text!r} parsed as {result}"
    return result


@pytest.mark.parametrize("spec", GRAMMAR, ids=lambda s: s.key)
@pytest.mark.parametrize("prefix", ["/", "!", ""])
def test_every_command_parses_from_its_usage(spec: CommandSpec, prefix: str) -> None:
    """Each grammar entry, filled in from its usage line, parses back to itself."""
    full = ok(filled(spec, prefix))
    assert full.spec.key == spec.key
    for arg in spec.line_args:
        assert full.args[arg.name] is not None, arg.name
    minimal = ok(filled(spec, prefix, optional=False))
    assert minimal.spec.key == spec.key
    for arg in spec.line_args:
        if arg.optional:
            assert minimal.args[arg.name] is None


@pytest.mark.parametrize("spec", GRAMMAR, ids=lambda s: s.key)
def test_usage_line_names_root_words_and_arguments(spec: CommandSpec) -> None:
    """Usage lines start with the prefix and root and bracket optional arguments."""
    usage = resolve_commands(spec.usage(), "!")
    assert usage.startswith(f"!{spec.root}")
    for arg in spec.line_args:
        assert (f"[{arg.usage.strip('[]')}]" in usage) == arg.optional


@pytest.mark.parametrize("spec", [s for s in GRAMMAR if any(not a.optional for a in s.args)],
                         ids=lambda s: s.key)
def test_missing_required_argument_answers_with_the_usage(spec: CommandSpec) -> None:
    """Leaving out a required argument names it and carries that command's usage."""
    error = err(" ".join([f"/{spec.root}", *spec.words]))
    assert error.spec == spec
    assert error.usages() == [spec.usage()]
    assert "missing" in error.message


def test_values_are_converted() -> None:
    """Ticket ids lose their #, numbers become ints, emails are lower-cased, text is verbatim."""
    assert ok("/ticket show #1042").args == {"ID": 1042}
    assert ok("/ticket show 1042").args == {"ID": 1042}
    assert ok("/ticket comment #7   works  now ").args == {"ID": 7, "TEXT": "works  now"}
    assert ok("/subdesk approve 12").args == {"REQUEST_ID": 12}
    assert ok("/subdesk deny #12 not a customer").args == {
        "REQUEST_ID": 12, "REASON": "not a customer"}
    assert ok("/contacts set MAIN Ana@Example.COM Ana Maria").args == {
        "ROLE": "main", "EMAIL": "ana@example.com", "NAME": "Ana Maria"}
    assert ok("/billing servers 3 two more VMs").args == {"N": 3, "NOTE": "two more VMs"}
    assert ok("/alert critical acme db is down").args == {
        "LEVEL": "critical", "SCOPE": "acme", "TEXT": "db is down"}
    assert ok("/subdesk link verify 004211").args == {"CODE": "004211"}


def test_optional_choice_falls_through_to_text() -> None:
    """`/ticket new` takes an optional severity and the subject after it, or only a subject."""
    assert ok("/ticket new sev2 Database down").args == {"SEVERITY": "sev2",
                                                        "SUBJECT": "Database down"}
    assert ok("/ticket new Database down").args == {"SEVERITY": None, "SUBJECT": "Database down"}
    assert ok("/ticket new").args == {"SEVERITY": None, "SUBJECT": None}
    assert ok("/ticket new SEV1").args == {"SEVERITY": "sev1", "SUBJECT": None}


def test_bare_roots_mean_their_default_subcommand() -> None:
    """`/subdesk`, `/contacts` and `/triage` alone are help, the contact list and the queue."""
    assert ok("/subdesk").spec.key == "subdesk.help"
    assert ok("!contacts").spec.key == "contacts.list"
    assert ok("/triage").spec.key == "triage.queue"
    assert ok("/TRIAGE queue").spec.key == "triage.queue"


def test_longest_subcommand_wins() -> None:
    """`link verify CODE` is not `link EMAIL`."""
    assert ok("/subdesk link verify 123456").spec.key == "subdesk.link.verify"
    assert ok("/subdesk link ana@demo.test").spec.key == "subdesk.link"
    assert ok("/subdesk link").args == {"EMAIL": None}


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("/ticket show #", "ticket.show", "ticket number"),
        ("/ticket show abc", "ticket.show", "ticket number"),
        ("/ticket show -1", "ticket.show", "ticket number"),
        ("/ticket show 1; DROP TABLE tickets;--", "ticket.show", "ticket number"),
        ("/ticket list open extra", "ticket.list", "Unexpected"),
        ("/ticket list everything", "ticket.list", "open, all"),
        ("/contacts sharing maybe", "contacts.sharing", "on, off"),
        ("/contacts set owner ana@demo.test", "contacts.set", "main, administrative"),
        ("/contacts set main not-an-email", "contacts.set", "email address"),
        ('/contacts request-technical "x@demo.test"', "contacts.request_technical", "email"),
        ("/contacts request-technical x@demo.test';--", "contacts.request_technical", "email"),
        ("/contacts remove-technical <!channel>", "contacts.remove_technical", "email"),
        ("/subdesk link verify 12345", "subdesk.link.verify", "6-digit"),
        ("/subdesk link verify 1234567", "subdesk.link.verify", "6-digit"),
        ("/subdesk approve 0", "subdesk.approve", "positive"),
        ("/subdesk approve 99999999999", "subdesk.approve", "positive"),
        ("/billing servers many", "billing.servers", "positive"),
        ("/triage status 5 done", "triage.status", "one of"),
        ("/triage severity 5 sev9", "triage.severity", "one of"),
        ("/alert panic all fire", "alert.send", "one of"),
        ("/alert info $(reboot) fire", "alert.send", "single word"),
    ],
)
def test_bad_arguments_name_the_problem_and_the_usage(text: str, key: str, needle: str) -> None:
    """A wrong value is refused with a short reason and that command's usage line."""
    error = err(text)
    assert error.spec is BY_KEY[key]
    assert needle in error.message
    assert error.usages() == [BY_KEY[key].usage()]


_NEEDS_SUBCOMMAND = sorted(
    ROOTS - DEFAULTS.keys() - {s.root for s in GRAMMAR if not s.words}
)


@pytest.mark.parametrize("root", _NEEDS_SUBCOMMAND)
def test_root_without_subcommand_lists_its_usages(root: str) -> None:
    """A known root with nothing after it answers with every usage of that root."""
    error = err(f"/{root}")
    assert error.root == root
    usages = [resolve_commands(u, "/") for u in error.usages()]
    assert usages and all(u.startswith(f"/{root}") for u in usages)


def test_unknown_subcommand_keeps_the_root() -> None:
    """An unknown subcommand of a known root still gets that root's usage lines."""
    error = err("/ticket explode now")
    assert error.root == "ticket"
    assert "explode" in error.message
    assert "/ticket show ID" in slash(error.usages())


HOSTILE = [
    "",
    " ",
    "\t\n\r ",
    "\x00",
    "\x00\x01\x02\x1b[31m",
    "/",
    "!",
    "#",
    "/ ",
    "!!",
    "//subdesk",
    "/ 😀",
    "😀😀😀",
    "‮/subdesk help",
    "\u200f/ticket list",
    "مرحبا",
    "/ticket ١٢٣",
    "/ticket show ١٢٣",
    "<!channel>",
    "<!here> /subdesk help",
    "<@U123|admin>",
    "'; DROP TABLE contacts; --",
    "/contacts set main ana@demo.test'); DELETE FROM contacts; --",
    "$(rm -rf /)",
    "`reboot`",
    "/subdesk help && rm -rf /",
    '"/subdesk help"',
    "'",
    '"',
    "\\",
    "%s%s%s%n",
    "{0.__class__}",
    "/ticket comment 1 " + "x" * 10_000,
    "x" * 10_240,
    "/subdesk link " + "a" * 300 + "@example.com",
    "/ticket show " + "9" * 400,
    "/billing servers 1" + "0" * 5000,
    "\ud800",
    "/subdesk \udfff",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_never_raises(text: str) -> None:
    """Hostile lines come back as a Parsed or a ParseError, never an exception."""
    result = parse(text)
    assert isinstance(result, Parsed | ParseError)
    if isinstance(result, ParseError):
        assert result.message
        assert len(result.message) < 300, "error messages stay short, whatever the input"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\x00\x00", "/", "!", "😀", "<!channel>", "'; DROP TABLE x; --", "$(rm -rf /)"],
)
def test_garbage_is_an_error_without_a_root(text: str) -> None:
    """Input that names no command is an error that points at help."""
    error = err(text)
    assert error.root is None
    assert "/subdesk help" in resolve_commands(error.message, "/")


def test_ten_kilobyte_line_is_refused_with_the_roots_usage() -> None:
    """A line over the limit is refused by length and still names its command's usage."""
    error = err("/ticket comment 1 " + "x" * 10_000)
    assert str(MAX_LENGTH) in error.message
    assert error.root == "ticket"
    assert "/ticket comment ID TEXT" in slash(error.usages())
    assert err("x" * 10_240).root is None


def test_control_characters_are_dropped() -> None:
    """NUL and escape sequences vanish; the command underneath is still understood."""
    assert ok("\x00/subdesk\x00 help\x1b").spec.key == "subdesk.help"
    comment = ok("/ticket comment 3 fine\x07 now")
    assert comment.args["TEXT"] == "fine now"


def test_invisible_format_characters_do_not_hide_a_command() -> None:
    """A byte-order mark, zero-width space or bidi override before the command is ignored,
    and bidi overrides never survive into echoed text."""
    assert ok("\ufeff/subdesk help").spec.key == "subdesk.help"
    assert ok("\u200b/contacts").spec.key == "contacts.list"
    assert ok("\u202e/subdesk whoami").spec.key == "subdesk.whoami"
    comment = ok("/ticket comment 3 abc\u202edef\u2066")
    assert comment.args["TEXT"] == "abcdef"
    emoji = ok("/ticket comment 3 👩\u200d💻 works")
    assert emoji.args["TEXT"] == "👩\u200d💻 works", "emoji joiners stay"


def test_text_is_kept_verbatim_including_markup_and_quotes() -> None:
    """Free text is data: mentions, quotes and SQL are carried as typed, not interpreted."""
    text = "<!channel> \"quoted\" 'single' ; DROP TABLE tickets; -- $(id) 😀 مرحبا"
    assert ok(f"/ticket comment 9 {text}").args["TEXT"] == text


def test_non_ascii_digits_are_not_ticket_numbers() -> None:
    """Only ASCII digits make ticket ids and request numbers."""
    assert isinstance(parse("/ticket show ١٢٣"), ParseError)
    assert isinstance(parse("/subdesk approve ٣"), ParseError)
    assert isinstance(parse("/subdesk link verify ١٢٣٤٥٦"), ParseError)


def test_prefixes_are_interchangeable() -> None:
    """Slack `/`, Matrix `!` and a bare word are the same command."""
    keys = {ok(f"{p}ticket list all").spec.key for p in ("/", "!", "")}
    assert keys == {"ticket.list"}


def test_non_string_input_is_an_error() -> None:
    """Whatever an adapter hands over, the parser answers with a value."""
    assert isinstance(parse(None), ParseError)  # type: ignore[arg-type]
    assert isinstance(parse(b"/subdesk help"), ParseError)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parse_any_text_never_raises(text: str) -> None:
    """Any text at all parses to a Parsed or a ParseError."""
    assert isinstance(parse(text), Parsed | ParseError)


_word = st.sampled_from(sorted({w for s in GRAMMAR for w in (s.root, *s.words)}
                               | {"sev1", "on", "#12", "main", "ana@x.io", "123456"}))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["/", "!", "", " /", "\x00"]),
    st.lists(st.one_of(_word, st.text(min_size=1, max_size=12)), max_size=8),
)
def test_near_miss_commands_never_raise(prefix: str, words: list[str]) -> None:
    """Sequences of real command words and noise parse to a value, with usages when rooted."""
    result = parse(prefix + " ".join(words))
    assert isinstance(result, Parsed | ParseError)
    if isinstance(result, ParseError) and result.root is not None:
        assert result.root in ROOTS
        assert result.usages(), "a known root always comes with usage lines"


def test_unknown_word_after_a_bare_command_is_an_unknown_subcommand() -> None:
    """`/contacts frobnicate` is not `/contacts` with junk: it lists every /contacts usage."""
    error = err("/contacts frobnicate")
    assert error.spec is None and error.root == "contacts"
    assert "Unknown subcommand 'frobnicate'" in error.message
    assert "/contacts sharing on|off" in slash(error.usages())


def test_lone_surrogates_become_replacement_characters() -> None:
    """Undecodable input (lone surrogates) is replaced, so it can be stored and sent."""
    comment = ok("/ticket comment 1 caf\udce9 ok")
    assert comment.args["TEXT"] == "caf\ufffd ok"
    assert "\ufffd" in err("/subdesk \udfff").message.encode("utf-8").decode()


@pytest.mark.parametrize("token", ["sev9", "SEV0", "sev"])
def test_unknown_severity_is_named_not_taken_as_subject(token: str) -> None:
    """`/ticket new sev9 …` is a mistyped severity, not a subject starting with "sev9"."""
    result = parse(f"/ticket new {token} Database down")
    assert isinstance(result, ParseError)
    assert "SEVERITY must be one of sev1, sev2, sev3, sev4" in result.message


def test_subject_words_that_merely_start_like_a_severity_pass() -> None:
    """Subjects such as "several nodes down" are subjects."""
    result = parse("/ticket new several nodes down")
    assert isinstance(result, Parsed)
    assert result.args == {"SEVERITY": None, "SUBJECT": "several nodes down"}

"""Every command of SPEC §3, once. Adapters and help are generated from this table."""

from __future__ import annotations

from bot.commands.spec import Arg, ArgKind, CommandSpec
from bot.policy import Permission as P

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
LEVELS = ("info", "warning", "critical")

_TEXT = Arg("TEXT", ArgKind.TEXT, label="Message")
_OPT_TEXT = Arg("TEXT", ArgKind.TEXT, optional=True, label="Message")
_TICKET = Arg("ID", ArgKind.TICKET, label="Ticket")


def _c(
    key: str,
    words: str,
    args: tuple[Arg, ...],
    summary: str,
    permission: P,
    feature: str = "core",
    *,
    form: bool = False,
) -> CommandSpec:
    root, *rest = words.split()
    return CommandSpec(key, root, tuple(rest), args, summary, permission, feature, form)


GRAMMAR: tuple[CommandSpec, ...] = (
    # /subdesk
    _c("subdesk.help", "subdesk help", (), "what you can do here", P.ANYONE),
    _c("subdesk.whoami", "subdesk whoami", (), "who Subdesk thinks you are", P.ANYONE),
    _c(
        "subdesk.link.verify",
        "subdesk link verify",
        (Arg("CODE", ArgKind.CODE),),
        "finish linking with the emailed code",
        P.ANYONE,
    ),
    _c(
        "subdesk.link",
        "subdesk link",
        (Arg("EMAIL", ArgKind.EMAIL, optional=True),),
        "link this chat account to your contact email",
        P.ANYONE,
    ),
    _c("subdesk.unlink", "subdesk unlink", (), "unlink this chat account", P.LINKED),
    _c(
        "subdesk.approve",
        "subdesk approve",
        (Arg("REQUEST_ID", ArgKind.NUMBER),),
        "approve a Technical Contact request",
        P.STAFF_ADMIN,
    ),
    _c(
        "subdesk.deny",
        "subdesk deny",
        (Arg("REQUEST_ID", ArgKind.NUMBER), Arg("REASON", ArgKind.TEXT, optional=True)),
        "deny a Technical Contact request",
        P.STAFF_ADMIN,
    ),
    # /ticket
    _c(
        "ticket.new",
        "ticket new",
        (
            Arg("SEVERITY", ArgKind.CHOICE, optional=True, choices=SEVERITIES),
            Arg("SUBJECT", ArgKind.TEXT, optional=True, form_required=True),
            Arg("DESCRIPTION", ArgKind.TEXT, optional=True, form_only=True),
        ),
        "open a support ticket",
        P.TICKETS,
        "tickets",
        form=True,
    ),
    _c(
        "ticket.list",
        "ticket list",
        (Arg("SCOPE", ArgKind.CHOICE, optional=True, choices=("open", "all")),),
        "your tickets",
        P.TICKETS_FOLLOW,
        "tickets",
    ),
    _c("ticket.show", "ticket show", (_TICKET,), "one ticket and its thread", P.TICKETS_VIEW,
       "tickets"),
    _c(
        "ticket.comment",
        "ticket comment",
        (_TICKET, _TEXT),
        "add a comment",
        P.TICKETS_FOLLOW,
        "tickets",
        form=True,
    ),
    _c(
        "ticket.close",
        "ticket close",
        (_TICKET, _OPT_TEXT),
        "close a ticket",
        P.TICKETS_FOLLOW,
        "tickets",
    ),
    _c(
        "ticket.reopen",
        "ticket reopen",
        (_TICKET, _OPT_TEXT),
        "reopen a ticket",
        P.TICKETS_FOLLOW,
        "tickets",
    ),
    _c(
        "ticket.rate",
        "ticket rate",
        (
            _TICKET,
            Arg("RATING", ArgKind.CHOICE, choices=("good", "bad"), label="Rating"),
            Arg("COMMENT", ArgKind.TEXT, optional=True, label="Comment"),
        ),
        "rate how a solved ticket was handled",
        P.TICKETS_FOLLOW,
        "tickets",
    ),
    # /billing
    _c(
        "billing.invoices",
        "billing invoices",
        (Arg("SCOPE", ArgKind.CHOICE, optional=True, choices=("open", "all")),),
        "your organization's invoices",
        P.BILLING,
        "billing",
    ),
    _c("billing.statement", "billing statement", (), "invoiced, paid, outstanding", P.BILLING,
       "billing"),
    _c("billing.question", "billing question", (_TEXT,), "ask the billing team", P.BILLING,
       "billing", form=True),
    _c(
        "billing.servers",
        "billing servers",
        (Arg("N", ArgKind.NUMBER), Arg("NOTE", ArgKind.TEXT, optional=True)),
        "notify additional services or servers",
        P.BILLING,
        "billing",
    ),
    _c(
        "billing.answer",
        "billing answer",
        (Arg("ID", ArgKind.NUMBER, label="Request"), _TEXT),
        "answer a billing request",
        P.STAFF_BILLING,
        "billing",
        form=True,
    ),
    # /contacts
    _c("contacts.list", "contacts", (), "your organization's designated contacts", P.CONTACTS),
    _c(
        "contacts.set",
        "contacts set",
        (
            Arg("ROLE", ArgKind.CHOICE, choices=("main", "administrative")),
            Arg("EMAIL", ArgKind.EMAIL),
            Arg("NAME", ArgKind.TEXT, optional=True),
        ),
        "designate the Main or Administrative Contact",
        P.CONTACTS_MANAGE,
    ),
    _c(
        "contacts.request_technical",
        "contacts request-technical",
        (Arg("EMAIL", ArgKind.EMAIL), Arg("NAME", ArgKind.TEXT, optional=True)),
        "request an additional Technical Contact",
        P.CONTACTS_MANAGE,
    ),
    _c(
        "contacts.remove_technical",
        "contacts remove-technical",
        (Arg("EMAIL", ArgKind.EMAIL),),
        "remove a Technical Contact",
        P.CONTACTS_MANAGE,
    ),
    _c(
        "contacts.sharing",
        "contacts sharing",
        (Arg("STATE", ArgKind.CHOICE, choices=("on", "off")),),
        "share tickets across your organization",
        P.CONTACTS_MANAGE,
    ),
    # /triage
    _c("triage.queue", "triage queue", (), "tickets by SLA urgency", P.TRIAGE, "triage"),
    _c("triage.claim", "triage claim", (_TICKET,), "assign a ticket to yourself", P.TRIAGE,
       "triage"),
    _c(
        "triage.status",
        "triage status",
        (_TICKET, Arg("STATUS", ArgKind.CHOICE, choices=STATUSES)),
        "change a ticket's status",
        P.TRIAGE,
        "triage",
        form=True,
    ),
    _c(
        "triage.severity",
        "triage severity",
        (_TICKET, Arg("SEV", ArgKind.CHOICE, choices=SEVERITIES, label="Severity")),
        "change a ticket's severity",
        P.TRIAGE,
        "triage",
        form=True,
    ),
    _c("triage.note", "triage note", (_TICKET, _TEXT), "internal note", P.TRIAGE, "triage",
       form=True),
    _c("triage.reply", "triage reply", (_TICKET, _TEXT), "public reply to the customer",
       P.TRIAGE, "triage", form=True),
    # /alert
    _c(
        "alert.send",
        "alert",
        (
            Arg("LEVEL", ArgKind.CHOICE, choices=LEVELS),
            Arg("SCOPE", ArgKind.WORD),
            _TEXT,
        ),
        "alert all organizations or one (all|ORG_KEY)",
        P.ALERTS,
        "alerts",
    ),
    _c("alert.ack", "alert ack", (Arg("ID", ArgKind.NUMBER, label="Alert"),),
       "acknowledge a firing alert", P.ALERTS, "alerts"),
    _c("alert.resolve", "alert resolve", (Arg("ID", ArgKind.NUMBER, label="Alert"),),
       "resolve a firing alert by hand", P.ALERTS, "alerts"),
)

# Bare command words that mean a default subcommand.
DEFAULTS: dict[str, str] = {
    "subdesk": "subdesk.help",
    "triage": "triage.queue",
    "contacts": "contacts.list",
}

ROOTS: frozenset[str] = frozenset(spec.root for spec in GRAMMAR)
BY_KEY: dict[str, CommandSpec] = {spec.key: spec for spec in GRAMMAR}

"""Domain vocabulary shared by the core, storage and adapters (SPEC §1–§2).

Plain enums and frozen value objects only: no I/O and no platform imports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Program(StrEnum):
    CUSTOMER = "customer"
    PARTNER = "partner"


class Level(StrEnum):
    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"


class Region(StrEnum):
    US = "us"
    EUROPE = "europe"
    WORLDWIDE = "worldwide"


class ContactRole(StrEnum):
    MAIN = "main"
    ADMINISTRATIVE = "administrative"
    TECHNICAL = "technical"


class StaffRole(StrEnum):
    ENGINEER = "engineer"
    BILLING = "billing"
    ADMIN = "admin"


class Platform(StrEnum):
    SLACK = "slack"
    MATRIX = "matrix"
    CONSOLE = "console"
    EMAIL = "email"


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    SUPERSEDED = "superseded"  # a card edit replaced by a later edit before it went out
    DROPPED = "dropped"  # no longer applied when it was due (e.g. the invoice was paid)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a sent message landed, as its platform names it: Slack (channel, ts), Matrix
    (room id, event id), email (address, Message-ID), console (target, outbox id)."""

    channel: str
    id: str


class AlertLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


# Internal alerts (source "internal"): one stable fingerprint per event, so an event posts
# once, and the change that ends it finds the same alert to resolve.


def sev1_fingerprint(ticket_id: int) -> str:
    """A sev1 ticket waiting for an engineer: `sev1:ticket:1042`."""
    return f"sev1:ticket:{ticket_id}"


def sla_fingerprint(ticket_id: int, breached: bool, cycle: int) -> str:
    """One response target's stage: `sla-breach:ticket:1042:first-response`, or
    `sla-risk:ticket:1042:next-response-2` for the second next response."""
    target = "first-response" if cycle == 0 else f"next-response-{cycle}"
    return f"sla-{'breach' if breached else 'risk'}:ticket:{ticket_id}:{target}"


DEAD_LETTER_PREFIX = "outbox-dead:"


def dead_letter_fingerprint(platform: str) -> str:
    """Messages to one platform that became dead letters: `outbox-dead:slack`."""
    return DEAD_LETTER_PREFIX + platform


def expiring_fingerprint(org_key: str, ends_on: dt.date) -> str:
    """A subscription nearing its end: `subscription-expiring:acme:2026-12-31`."""
    return f"subscription-expiring:{org_key}:{ends_on.isoformat()}"


@dataclass(frozen=True, slots=True)
class Organization:
    id: int
    key: str
    name: str
    program: Program
    level: Level
    region: Region
    timezone: str
    starts_on: dt.date | None
    ends_on: dt.date | None
    sharing: bool
    alert_channels: tuple[str, ...] = ()
    country: str | None = None  # ISO 3166 alpha-2: whose public holidays are not business days

    def subscription_active(self, today: dt.date) -> bool:
        """True while `today` lies inside the subscription period (inclusive)."""
        if self.starts_on is not None and today < self.starts_on:
            return False
        return self.ends_on is None or today <= self.ends_on

    @property
    def calendar(self) -> str:
        """What its tickets' response clocks count in, but for the severity: timezone,
        country and level, `Europe/Madrid|ES|standard` (kept on each ticket)."""
        return f"{self.timezone}|{self.country or ''}|{self.level.value}"


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    org_id: int
    name: str
    email: str
    roles: frozenset[ContactRole]

    @property
    def is_main(self) -> bool:
        return ContactRole.MAIN in self.roles

    @property
    def is_administrative(self) -> bool:
        return ContactRole.ADMINISTRATIVE in self.roles

    @property
    def is_technical(self) -> bool:
        return ContactRole.TECHNICAL in self.roles


@dataclass(frozen=True, slots=True)
class StaffMember:
    id: int
    email: str
    name: str
    roles: frozenset[StaffRole]


@dataclass(frozen=True, slots=True)
class ChatIdentity:
    platform: Platform
    workspace: str
    user_id: str
    contact_id: int | None
    staff_id: int | None

    @property
    def address(self) -> str:
        """This account as an outbox target."""
        return chat_address(self.platform.value, self.workspace, self.user_id)


def chat_address(platform: str, workspace: str, user_id: str) -> str:
    """A chat account as an outbox target, carrying its workspace where the id alone is not
    unique: a Slack user is `T0ACME:U0TOM` (ids are unique only within a team); a Matrix id
    already names its homeserver; a console account is local."""
    if platform == Platform.SLACK.value and workspace:
        return f"{workspace}:{user_id}"
    return user_id


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a contact of one organization, a staff member, or nobody known.

    `sole_contact` is true when the contact is the organization's only contact, which
    makes a Main Contact a Technical Contact for every purpose (SPEC §1).
    """

    contact: Contact | None = None
    org: Organization | None = None
    staff: StaffMember | None = None
    sole_contact: bool = False
    identity: ChatIdentity | None = None

    @property
    def known(self) -> bool:
        return self.contact is not None or self.staff is not None

    @property
    def label(self) -> str:
        if self.staff is not None:
            return f"{self.staff.name} <{self.staff.email}>"
        if self.contact is not None:
            return f"{self.contact.name} <{self.contact.email}>"
        return "unknown user"


ACTIVE_STATUSES: frozenset[TicketStatus] = frozenset(
    {TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD}
)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A support ticket. `first_response_due_at` moves later while the SLA clock is paused."""

    id: int
    org_id: int
    opener_id: int | None
    subject: str
    description: str
    severity: Severity
    status: TicketStatus
    assignee_id: int | None
    source_platform: str
    created_at: dt.datetime
    updated_at: dt.datetime
    first_response_due_at: dt.datetime | None
    first_responded_at: dt.datetime | None
    sla_paused_at: dt.datetime | None
    solved_at: dt.datetime | None
    closed_at: dt.datetime | None
    sla_warn_at: dt.datetime | None = None  # when the running response clock turns "at risk"
    next_response_due_at: dt.datetime | None = None  # the running next-response target
    response_cycle: int = 0  # 0: first response; n: the n-th next response

    @property
    def ref(self) -> str:
        return f"#{self.id}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def response_due_at(self) -> dt.datetime | None:
        """When the current response target falls due: the first response until it is
        given, then the next response a customer comment started (None when none runs)."""
        if self.first_responded_at is None:
            return self.first_response_due_at
        return self.next_response_due_at

    @property
    def clock_set(self) -> bool:
        """True while a response target is open, running or paused (`pending`)."""
        return self.active and self.sla_warn_at is not None and self.response_due_at is not None

    @property
    def awaiting_response(self) -> bool:
        """True while a response clock runs (a target open, not paused, not done)."""
        return self.clock_set and self.status is not TicketStatus.PENDING


@dataclass(frozen=True, slots=True)
class Rating:
    """How the opener rated one solve of a ticket."""

    ticket_id: int
    solved_at: dt.datetime
    rating: str  # "good" | "bad"
    comment: str
    author_name: str
    rated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TicketComment:
    """A public comment or an internal note (never shown to customers)."""

    id: int
    ticket_id: int
    author_contact_id: int | None
    author_staff_id: int | None
    author_name: str
    body: str
    internal: bool
    source_platform: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    ticket_id: int
    comment_id: int | None
    name: str
    size: int
    content_type: str
    storage_ref: str
    internal: bool
    created_at: dt.datetime

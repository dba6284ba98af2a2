"""ORM models for the whole domain of SPEC §2.

Tables are plain; rules live in `bot.services`. Partial unique indexes hold the invariants
that must survive concurrent writers: one Main Contact and at most one Administrative
Contact per organization, one claim per (kind, subject, stage), one outbox row per
idempotency key.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


def _id() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def _fk(target: str, *, nullable: bool = False, ondelete: str = "CASCADE") -> Mapped[Any]:
    return mapped_column(BigId, ForeignKey(target, ondelete=ondelete), nullable=nullable)


class OrganizationRow(Base):
    __tablename__ = "organizations"
    __table_args__ = (
        # The reminder sweep reads the distinct timezones (a skip scan over this index) and
        # the subscriptions ending soon.
        Index("ix_organizations_timezone", "timezone"),
        Index("ix_organizations_ends_on", "ends_on"),
    )

    id: Mapped[int] = _id()
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    program: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    starts_on: Mapped[dt.date | None]
    ends_on: Mapped[dt.date | None]
    sharing: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class ContactRow(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("org_id", "email", name="uq_contacts_org_email"),
        Index(
            "uq_contacts_one_main",
            "org_id",
            unique=True,
            sqlite_where=text("is_main"),
            postgresql_where=text("is_main"),
        ),
        Index(
            "uq_contacts_one_administrative",
            "org_id",
            unique=True,
            sqlite_where=text("is_administrative"),
            postgresql_where=text("is_administrative"),
        ),
        Index("ix_contacts_email", "email"),
    )

    id: Mapped[int] = _id()
    org_id: Mapped[int] = _fk("organizations.id")
    name: Mapped[str] = mapped_column(String(320))  # defaults to the email
    email: Mapped[str] = mapped_column(String(320))
    is_main: Mapped[bool] = mapped_column(Boolean, default=False)
    is_administrative: Mapped[bool] = mapped_column(Boolean, default=False)
    is_technical: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class TechnicalRequestRow(Base):
    """A Main Contact's request for an additional Technical Contact, decided by a vendor admin."""

    __tablename__ = "technical_requests"
    __table_args__ = (Index("ix_technical_requests_status", "status"),)

    id: Mapped[int] = _id()
    org_id: Mapped[int] = _fk("organizations.id")
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(320))  # defaults to the email
    requested_by: Mapped[int | None] = _fk("contacts.id", nullable=True, ondelete="SET NULL")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[int | None] = _fk("staff.id", nullable=True, ondelete="SET NULL")
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]


class StaffRow(Base):
    __tablename__ = "staff"

    id: Mapped[int] = _id()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    is_engineer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_billing: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]


class ChatIdentityRow(Base):
    __tablename__ = "chat_identities"
    __table_args__ = (
        UniqueConstraint("platform", "workspace", "user_id", name="uq_chat_identities_account"),
        CheckConstraint(
            "(contact_id IS NULL) <> (staff_id IS NULL)", name="exactly_one_owner"
        ),
        Index("ix_chat_identities_contact", "contact_id"),
        Index("ix_chat_identities_staff", "staff_id"),
    )

    id: Mapped[int] = _id()
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[int | None] = _fk("contacts.id", nullable=True)
    staff_id: Mapped[int | None] = _fk("staff.id", nullable=True)
    linked_at: Mapped[dt.datetime]


class LinkCodeRow(Base):
    """A pending email proof for linking one chat account; the code is stored hashed."""

    __tablename__ = "link_codes"
    __table_args__ = (
        UniqueConstraint("platform", "workspace", "user_id", name="uq_link_codes_account"),
    )

    id: Mapped[int] = _id()
    platform: Mapped[str] = mapped_column(String(16))
    workspace: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[int] = _fk("contacts.id")
    code_hash: Mapped[str] = mapped_column(String(128))
    salt: Mapped[str] = mapped_column(String(64))
    attempts_left: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]


class LinkEventRow(Base):
    """A link code sent, or a wrong code tried, for the link-code limits. `scope` is a hash
    of the chat account or the contact it counts against, so limits hold across processes
    and restarts without keeping account names around."""

    __tablename__ = "link_events"
    __table_args__ = (Index("ix_link_events_scope", "scope", "kind", "at"),)

    id: Mapped[int] = _id()
    scope: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime]


# Partial-index predicates, repeated verbatim in the queries that must use them (SQLite
# matches a partial index only when the query holds the same terms).
TICKETS_AWAITING = "sla_warn_at IS NOT NULL AND status IN ('new', 'open', 'on_hold')"
TICKETS_ACTIVE = "status IN ('new', 'open', 'pending', 'on_hold')"
# The running response target's due time: the first response until it is given, then the
# next response a customer comment started.
TICKETS_RUNNING_DUE = ("CASE WHEN first_responded_at IS NULL THEN first_response_due_at "
                       "ELSE next_response_due_at END")


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_org_opener_status", "org_id", "opener_id", "status", "id"),
        Index("ix_tickets_org_status", "org_id", "status", "id"),
        Index(
            "ix_tickets_awaiting",
            "sla_warn_at",
            "id",
            sqlite_where=text(TICKETS_AWAITING),
            postgresql_where=text(TICKETS_AWAITING),
        ),
        Index(
            "ix_tickets_pending",
            "sla_paused_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_tickets_solved",
            "solved_at",
            sqlite_where=text("status = 'solved'"),
            postgresql_where=text("status = 'solved'"),
        ),
        Index(
            "ix_tickets_active",
            "id",
            sqlite_where=text(TICKETS_ACTIVE),
            postgresql_where=text(TICKETS_ACTIVE),
        ),
        # The triage queue: running clocks of one calendar and severity, soonest due first.
        Index(
            "ix_tickets_queue",
            "sla_calendar",
            "severity",
            "sla_due_at",
            "id",
            sqlite_where=text(TICKETS_AWAITING),
            postgresql_where=text(TICKETS_AWAITING),
        ),
    )

    id: Mapped[int] = _id()
    org_id: Mapped[int] = _fk("organizations.id")
    opener_id: Mapped[int | None] = _fk("contacts.id", nullable=True, ondelete="SET NULL")
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="new")
    assignee_id: Mapped[int | None] = _fk("staff.id", nullable=True, ondelete="SET NULL")
    source_platform: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    first_response_due_at: Mapped[dt.datetime | None]
    first_responded_at: Mapped[dt.datetime | None]
    sla_paused_at: Mapped[dt.datetime | None]
    solved_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    sla_warn_at: Mapped[dt.datetime | None]
    next_response_due_at: Mapped[dt.datetime | None]
    response_cycle: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The organization's timezone, country and level (`Europe/Madrid|ES|standard`): with the
    # severity, the calendar its response clock counts in.
    sla_calendar: Mapped[str | None] = mapped_column(String(100))
    sla_due_at: Mapped[dt.datetime | None] = mapped_column(Computed(TICKETS_RUNNING_DUE))


class TicketRatingRow(Base):
    """How the opener rated one solve of a ticket (`good` or `bad`, with a comment)."""

    __tablename__ = "ticket_ratings"
    __table_args__ = (
        UniqueConstraint("ticket_id", "solved_at", name="uq_ticket_ratings_solve"),
    )

    id: Mapped[int] = _id()
    ticket_id: Mapped[int] = _fk("tickets.id")
    contact_id: Mapped[int | None] = _fk("contacts.id", nullable=True, ondelete="SET NULL")
    solved_at: Mapped[dt.datetime]
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class TicketFollowerRow(Base):
    __tablename__ = "ticket_followers"

    ticket_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[dt.datetime]


class TicketCommentRow(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket", "ticket_id", "id"),)

    id: Mapped[int] = _id()
    ticket_id: Mapped[int] = _fk("tickets.id")
    author_contact_id: Mapped[int | None] = _fk("contacts.id", nullable=True, ondelete="SET NULL")
    author_staff_id: Mapped[int | None] = _fk("staff.id", nullable=True, ondelete="SET NULL")
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    source_platform: Mapped[str] = mapped_column(String(16))
    platform_refs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime]


class AttachmentRow(Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_ticket", "ticket_id"),)

    id: Mapped[int] = _id()
    ticket_id: Mapped[int] = _fk("tickets.id")
    comment_id: Mapped[int | None] = _fk("ticket_comments.id", nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(127))
    storage_ref: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by_contact_id: Mapped[int | None] = _fk(
        "contacts.id", nullable=True, ondelete="SET NULL"
    )
    uploaded_by_staff_id: Mapped[int | None] = _fk("staff.id", nullable=True, ondelete="SET NULL")
    created_at: Mapped[dt.datetime]


class MessageLinkRow(Base):
    """Where a logical thread or card landed on one target: `ticket:1042:opener` sent to
    `slack` target `T0ACME:U0TOM` has its root at (channel `D0TOM`, ref `1700000000.0001`).

    Outbound, later messages of the thread go under the root and card edits replace it;
    inbound, a reply under (platform, channel, ref) resolves to the thread's key.
    """

    __tablename__ = "message_links"
    __table_args__ = (
        UniqueConstraint("platform", "target", "key", name="uq_message_links_key"),
        Index("ix_message_links_ref", "platform", "channel", "ref"),
    )

    id: Mapped[int] = _id()
    platform: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(512))
    key: Mapped[str] = mapped_column(String(128))  # thread key, or card:… for a card
    channel: Mapped[str] = mapped_column(String(255))
    ref: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]


class ProcessedEventRow(Base):
    """Inbound platform events already handled (Slack retries, Matrix redeliveries)."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("platform", "event_id", name="uq_processed_events_event"),)

    id: Mapped[int] = _id()
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]


class InvoiceRow(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_org", "org_id", "due_on"),
        Index("ix_invoices_open_due", "status", "due_on"),
    )

    id: Mapped[int] = _id()
    number: Mapped[str] = mapped_column(String(64), unique=True)
    org_id: Mapped[int] = _fk("organizations.id")
    issued_on: Mapped[dt.date]
    due_on: Mapped[dt.date]
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | paid | void
    paid_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class PaymentRow(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("invoice_id", "paid_on", "amount", name="uq_payments_invoice_day_amount"),
    )

    id: Mapped[int] = _id()
    invoice_id: Mapped[int] = _fk("invoices.id")
    paid_on: Mapped[dt.date]
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    created_at: Mapped[dt.datetime]


class BillingRequestRow(Base):
    __tablename__ = "billing_requests"
    __table_args__ = (Index("ix_billing_requests_org", "org_id"),)

    id: Mapped[int] = _id()
    org_id: Mapped[int] = _fk("organizations.id")
    contact_id: Mapped[int | None] = _fk("contacts.id", nullable=True, ondelete="SET NULL")
    kind: Mapped[str] = mapped_column(String(16))  # question | servers
    text: Mapped[str] = mapped_column(Text)
    servers: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | answered
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[int | None] = _fk("staff.id", nullable=True, ondelete="SET NULL")
    source_platform: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    answered_at: Mapped[dt.datetime | None]


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("source", "fingerprint", name="uq_alerts_fingerprint"),
        Index("ix_alerts_ticket", "ticket_id", "status"),
    )

    id: Mapped[int] = _id()
    source: Mapped[str] = mapped_column(String(32))  # staff | alertmanager | internal
    fingerprint: Mapped[str] = mapped_column(String(255))
    org_id: Mapped[int | None] = _fk("organizations.id", nullable=True)
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    # Times this fingerprint started firing: a new episode is a new message.
    episode: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    acked_by: Mapped[str | None] = mapped_column(String(200))
    acked_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    # The ticket an internal alert is about (sev1 opened, SLA at risk or breached).
    ticket_id: Mapped[int | None] = _fk("tickets.id", nullable=True)
    # Why the source resolved it ("answered by Sam", "renewed until 2027-12-31").
    resolution: Mapped[str | None] = mapped_column(String(200))
    # When the monitored episode started (Alertmanager's startsAt), if the source says.
    started_at: Mapped[dt.datetime | None]


class OutboxRow(Base):
    """One logical outbound message (DM, channel post or email) per idempotency key."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # Partial: most rows have no dedupe key, and bulk queueing should not pay for them.
        Index("ix_outbox_dedupe_target", "dedupe_key", "platform", "target",
              postgresql_where=text("dedupe_key IS NOT NULL"),
              sqlite_where=text("dedupe_key IS NOT NULL")),
        # The lines: each target's waiting messages in order (see `OutboxStore.claim_due`).
        Index("ix_outbox_lines", "platform", "target", "id",
              postgresql_where=text("status IN ('pending', 'sending')"),
              sqlite_where=text("status IN ('pending', 'sending')")),
    )

    id: Mapped[int] = _id()
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    platform: Mapped[str] = mapped_column(String(16))  # slack | matrix | console | email
    target: Mapped[str] = mapped_column(String(512))  # channel/user/room id or email address
    kind: Mapped[str] = mapped_column(String(16))  # dm | channel | email
    recipient: Mapped[str] = mapped_column(Text, default="")  # who it is for (display)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime]
    lease_until: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    platform_ref: Mapped[str | None] = mapped_column(String(255))
    ref_channel: Mapped[str | None] = mapped_column(String(255))  # where it landed
    edit: Mapped[bool] = mapped_column(Boolean, default=False)  # replaces the card `dedupe_key`
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
    attempted_at: Mapped[dt.datetime | None]  # when the latest claim started its attempt
    # Set when an attempt may have reached the peer unconfirmed (its holder died, or the
    # peer did not answer): the time to look for it from before sending again.
    in_doubt_since: Mapped[dt.datetime | None]


class ReminderClaimRow(Base):
    """An idempotent claim: a (kind, subject, stage) is acted on exactly once, ever.

    A reminder's claim is also its queue entry: `queue` is "pending" until the dispatcher
    turns it into one outbox row per recipient (in one transaction with clearing it), and
    "unsent" when there was nobody to send it to. Other claims (SLA alerts, and reminders
    once queued) have no queue state, so the partial index holds only the few that do.
    """

    __tablename__ = "reminder_claims"
    __table_args__ = (
        UniqueConstraint("kind", "subject_id", "stage", name="uq_reminder_claims_stage"),
        Index("ix_reminder_claims_queue", "id",
              postgresql_where=text("queue IS NOT NULL"),
              sqlite_where=text("queue IS NOT NULL")),
    )

    id: Mapped[int] = _id()
    kind: Mapped[str] = mapped_column(String(16))  # invoice | renewal | sla
    subject_id: Mapped[int] = mapped_column(BigId)
    stage: Mapped[str] = mapped_column(String(32))
    claimed_at: Mapped[dt.datetime]
    queue: Mapped[str | None] = mapped_column(String(16))  # pending | unsent


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_org", "org_id", "id"),)

    id: Mapped[int] = _id()
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(Text)
    org_id: Mapped[int | None] = _fk("organizations.id", nullable=True, ondelete="SET NULL")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# Slack workspaces installed through OAuth -------------------------------------------------
# The schema of slack_sdk's SQLAlchemy installation and OAuth state stores, which read and
# write these tables (adapters/slack/installs.py). Times are naive UTC, as those stores write
# them. Token columns hold Fernet-sealed text, never a token in the clear, hence `Text`.


class SlackInstallationRow(Base):
    """One OAuth install of the app in a workspace (the latest per workspace counts)."""

    __tablename__ = "slack_installations"
    __table_args__ = (Index("ix_slack_installations_lookup", "client_id", "enterprise_id",
                            "team_id", "user_id", "installed_at"),)

    id: Mapped[int] = _id()
    client_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_name: Mapped[str | None] = mapped_column(String(200))
    enterprise_url: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(32))
    team_name: Mapped[str | None] = mapped_column(String(200))
    bot_token: Mapped[str | None] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(String(32))
    bot_user_id: Mapped[str | None] = mapped_column(String(32))
    bot_scopes: Mapped[str | None] = mapped_column(String(1000))
    bot_refresh_token: Mapped[str | None] = mapped_column(Text)
    bot_token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    user_id: Mapped[str] = mapped_column(String(32))
    user_token: Mapped[str | None] = mapped_column(Text)
    user_scopes: Mapped[str | None] = mapped_column(String(1000))
    user_refresh_token: Mapped[str | None] = mapped_column(Text)
    user_token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    incoming_webhook_url: Mapped[str | None] = mapped_column(Text)
    incoming_webhook_channel: Mapped[str | None] = mapped_column(String(200))
    incoming_webhook_channel_id: Mapped[str | None] = mapped_column(String(200))
    incoming_webhook_configuration_url: Mapped[str | None] = mapped_column(String(200))
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean, default=False)
    token_type: Mapped[str | None] = mapped_column(String(32))
    installed_at: Mapped[dt.datetime] = mapped_column(DateTime())


class SlackBotRow(Base):
    """A workspace's bot token from its latest install."""

    __tablename__ = "slack_bots"
    __table_args__ = (Index("ix_slack_bots_lookup", "client_id", "enterprise_id", "team_id",
                            "installed_at"),)

    id: Mapped[int] = _id()
    client_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_name: Mapped[str | None] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(32))
    team_name: Mapped[str | None] = mapped_column(String(200))
    bot_token: Mapped[str | None] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(String(32))
    bot_user_id: Mapped[str | None] = mapped_column(String(32))
    bot_scopes: Mapped[str | None] = mapped_column(String(1000))
    bot_refresh_token: Mapped[str | None] = mapped_column(Text)
    bot_token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime())
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean, default=False)
    installed_at: Mapped[dt.datetime] = mapped_column(DateTime())


class SlackOAuthStateRow(Base):
    """An OAuth `state` handed to a browser on /slack/install, consumed once on its return."""

    __tablename__ = "slack_oauth_states"
    __table_args__ = (Index("ix_slack_oauth_states_state", "state"),
                      Index("ix_slack_oauth_states_expire_at", "expire_at"))

    id: Mapped[int] = _id()
    state: Mapped[str] = mapped_column(String(200))
    expire_at: Mapped[dt.datetime] = mapped_column(DateTime())


class MatrixStateRow(Base):
    """Where the Matrix account's sync stands: the device it syncs as and the sync token
    up to which every event has been handled (shared by replicas; one syncs at a time)."""

    __tablename__ = "matrix_state"

    account: Mapped[str] = mapped_column(String(255), primary_key=True)  # the bot's user id
    device_id: Mapped[str] = mapped_column(String(255))
    sync_token: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime]

"""internal alerts: the ticket an alert is about, and why its source resolved it; the
triage queue's calendars

`alerts.ticket_id` ties an internal alert (sev1 opened, SLA at risk or breached) to its
ticket, so answering, solving or closing the ticket resolves it; `alerts.resolution` says
why the source resolved an alert ("answered by Sam Support", "renewed until 2027-12-31").

`tickets.sla_calendar` holds the organization's timezone, country and level
(`Europe/Madrid|ES|standard`), which with the severity make the calendar a response clock
counts in; `tickets.sla_due_at` is the running target's due time (generated from the first
and next response due times). Covered time left orders like the due time within one
calendar, so `ix_tickets_queue` lets the triage queue read the soonest due of each calendar
instead of every running clock.

Revision ID: 0012
Revises: 0007
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0012'
down_revision = '0009'
branch_labels = None
depends_on = None

AWAITING = "sla_warn_at IS NOT NULL AND status IN ('new', 'open', 'on_hold')"
RUNNING_DUE = ("CASE WHEN first_responded_at IS NULL THEN first_response_due_at "
               "ELSE next_response_due_at END")


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_alerts_ticket_id_tickets'), 'tickets', ['ticket_id'], ['id'],
            ondelete='CASCADE')
        batch_op.create_index('ix_alerts_ticket', ['ticket_id', 'status'], unique=False)
    # PostgreSQL stores a generated column; SQLite can add only a virtual one (indexed).
    stored = op.get_bind().dialect.name == 'postgresql'
    op.add_column('tickets', sa.Column('sla_calendar', sa.String(length=100), nullable=True))
    op.add_column('tickets', sa.Column(
        'sla_due_at', storage.types.UTCDateTime(timezone=True),
        sa.Computed(RUNNING_DUE, persisted=stored), nullable=True))
    op.execute("UPDATE tickets SET sla_calendar = (SELECT o.timezone || '|' || "
               "COALESCE(o.country, '') || '|' || o.level FROM organizations o "
               "WHERE o.id = tickets.org_id)")
    op.create_index('ix_tickets_queue', 'tickets',
                    ['sla_calendar', 'severity', 'sla_due_at', 'id'], unique=False,
                    sqlite_where=sa.text(AWAITING), postgresql_where=sa.text(AWAITING))


def downgrade() -> None:
    op.drop_index('ix_tickets_queue', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('sla_due_at')
        batch_op.drop_column('sla_calendar')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_ticket')
        batch_op.drop_constraint(batch_op.f('fk_alerts_ticket_id_tickets'), type_='foreignkey')
        batch_op.drop_column('resolution')
        batch_op.drop_column('ticket_id')

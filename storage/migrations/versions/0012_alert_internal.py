"""internal alerts: the ticket an alert is about, and why its source resolved it

`alerts.ticket_id` ties an internal alert (sev1 opened, SLA at risk or breached) to its
ticket, so answering, solving or closing the ticket resolves it; `alerts.resolution` says
why the source resolved an alert ("answered by Sam Support", "renewed until 2027-12-31").

Revision ID: 0012
Revises: 0007
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.String(length=200), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_alerts_ticket_id_tickets'), 'tickets', ['ticket_id'], ['id'],
            ondelete='CASCADE')
        batch_op.create_index('ix_alerts_ticket', ['ticket_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_ticket')
        batch_op.drop_constraint(batch_op.f('fk_alerts_ticket_id_tickets'), type_='foreignkey')
        batch_op.drop_column('resolution')
        batch_op.drop_column('ticket_id')

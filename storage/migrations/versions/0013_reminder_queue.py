"""reminder claims are the reminders' queue entries

A sweep writes only claims: `reminder_claims.queue` is "pending" until the dispatcher turns
the claim into one outbox row per recipient (clearing it in the same transaction), and
"unsent" when the organization had nobody to send it to. A partial index holds just those
rows. Claims from before (already queued with their messages) and SLA claims have none.
Organizations get indexes on `timezone` (the sweep reads the distinct timezones by skipping
through it) and `ends_on` (subscriptions ending soon).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_WHERE = sa.text('queue IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('reminder_claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue', sa.String(length=16), nullable=True))
    op.create_index('ix_reminder_claims_queue', 'reminder_claims', ['id'], unique=False,
                    postgresql_where=_WHERE, sqlite_where=_WHERE)
    op.create_index('ix_organizations_timezone', 'organizations', ['timezone'], unique=False)
    op.create_index('ix_organizations_ends_on', 'organizations', ['ends_on'], unique=False)


def downgrade() -> None:
    # Reminders claimed but not queued yet would never be sent by the code before this
    # revision: refuse rather than lose them (deliver them first: `subdesk outbox drain`).
    waiting = op.get_bind().execute(
        sa.text("SELECT count(*) FROM reminder_claims WHERE queue = 'pending'")).scalar()
    if waiting:
        raise RuntimeError(f"{waiting} reminder(s) are claimed but not queued yet; run "
                           "`subdesk outbox drain` before downgrading")
    op.drop_index('ix_organizations_ends_on', table_name='organizations')
    op.drop_index('ix_organizations_timezone', table_name='organizations')
    op.drop_index('ix_reminder_claims_queue', table_name='reminder_claims')
    with op.batch_alter_table('reminder_claims', schema=None) as batch_op:
        batch_op.drop_column('queue')

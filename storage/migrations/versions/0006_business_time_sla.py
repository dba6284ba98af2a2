"""business-time SLAs: organization country, next-response targets, the "at risk" instant,
satisfaction ratings, auto-close lookups

`organizations.country` names whose public holidays are not business days. A ticket's open
response target (the first response, then each next response a customer comment starts) is
found by `tickets.sla_warn_at`, the instant 80 % of its business time is used, so the
awaiting index moves to it; `response_cycle` numbers the targets so each cycle's "at risk"
and "breached" are claimed once. Open tickets from before take their due time as warning.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

OLD_AWAITING = "first_responded_at IS NULL AND status IN ('new', 'open', 'on_hold')"
AWAITING = "sla_warn_at IS NOT NULL AND status IN ('new', 'open', 'on_hold')"


def upgrade() -> None:
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('sla_warn_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_response_due_at',
                                      storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('response_cycle', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_index('ix_tickets_awaiting')
    op.create_table(
        'ticket_ratings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('ticket_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=True),
        sa.Column('solved_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('rating', sa.String(length=8), nullable=False),
        sa.Column('comment', sa.Text(), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'],
                                name=op.f('fk_ticket_ratings_contact_id_contacts'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'],
                                name=op.f('fk_ticket_ratings_ticket_id_tickets'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_ratings')),
        sa.UniqueConstraint('ticket_id', 'solved_at', name='uq_ticket_ratings_solve'),
    )
    op.execute("UPDATE tickets SET sla_warn_at = first_response_due_at "
               "WHERE first_responded_at IS NULL "
               "AND status IN ('new', 'open', 'pending', 'on_hold')")
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_awaiting', ['sla_warn_at', 'id'], unique=False,
                              sqlite_where=sa.text(AWAITING), postgresql_where=sa.text(AWAITING))
        for status, column in (("pending", "sla_paused_at"), ("solved", "solved_at")):
            where = sa.text(f"status = '{status}'")
            batch_op.create_index(f'ix_tickets_{status}', [column], unique=False,
                                  sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_table('ticket_ratings')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_solved')
        batch_op.drop_index('ix_tickets_pending')
        batch_op.drop_index('ix_tickets_awaiting')
        batch_op.create_index('ix_tickets_awaiting', ['first_response_due_at', 'id'],
                              unique=False, sqlite_where=sa.text(OLD_AWAITING),
                              postgresql_where=sa.text(OLD_AWAITING))
        batch_op.drop_column('response_cycle')
        batch_op.drop_column('next_response_due_at')
        batch_op.drop_column('sla_warn_at')
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('country')

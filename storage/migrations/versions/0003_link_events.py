"""link events: link-code limits per chat account and per contact

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 17:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('link_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_events'))
    )
    with op.batch_alter_table('link_events', schema=None) as batch_op:
        batch_op.create_index('ix_link_events_scope', ['scope', 'kind', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('link_events', schema=None) as batch_op:
        batch_op.drop_index('ix_link_events_scope')
    op.drop_table('link_events')

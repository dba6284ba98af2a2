"""alert lifecycle: episodes, acknowledgement and who resolved

`alerts.episode` counts the times one fingerprint started firing, so an alert that fires
again after it was resolved is a new message (its card is keyed by id and episode).
`acked_by` / `acked_at` record who acknowledged the current episode; `resolved_by` who
resolved it by hand (empty when the source resolved it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('episode', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('acked_by', sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column('acked_at', storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('acked_at')
        batch_op.drop_column('acked_by')
        batch_op.drop_column('episode')

"""matrix state: the device and the sync token of the Matrix account

The sync token is written only after every event of the batch it ends was handled, so a
restart resumes where handling stopped; replicas share it (one syncs at a time).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'matrix_state',
        sa.Column('account', sa.String(length=255), nullable=False),
        sa.Column('device_id', sa.String(length=255), nullable=False),
        sa.Column('sync_token', sa.Text(), nullable=True),
        sa.Column('updated_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('account', name=op.f('pk_matrix_state')),
    )


def downgrade() -> None:
    op.drop_table('matrix_state')

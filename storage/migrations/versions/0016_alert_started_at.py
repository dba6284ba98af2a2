"""alerts: when the monitored episode started (Alertmanager's startsAt)

A notification for an episode that already ended (a replay, or one that arrives after its
`resolved`) changes nothing: it is recognized by its start.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.add_column(sa.Column('started_at', storage.types.UTCDateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.drop_column('started_at')

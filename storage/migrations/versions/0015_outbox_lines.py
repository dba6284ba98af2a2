"""outbox lines: when a claim's attempt started, in-doubt sends, the line index

Each target's messages go out in order, one at a time: a dispatcher claims the first waiting
message of a line (`ix_outbox_lines` finds it). `attempted_at` is when the latest claim
started its attempt; `in_doubt_since` marks a message whose attempt may have reached the
peer before its holder died or timed out, so the transport looks for it before resending.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

ACTIVE = "status IN ('pending', 'sending')"


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('attempted_at', storage.types.UTCDateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('in_doubt_since', storage.types.UTCDateTime(timezone=True),
                                   nullable=True))
    op.create_index('ix_outbox_lines', 'outbox', ['platform', 'target', 'id'],
                    postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))


def downgrade() -> None:
    op.drop_index('ix_outbox_lines', table_name='outbox')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('in_doubt_since')
        batch.drop_column('attempted_at')

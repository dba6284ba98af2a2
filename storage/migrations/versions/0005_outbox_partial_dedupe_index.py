"""outbox: index only the rows that have a dedupe key

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_WHERE = sa.text('dedupe_key IS NOT NULL')


def upgrade() -> None:
    # Most rows (every reminder, welcome and notification) have no dedupe key: leaving them
    # out of the index makes queueing thousands of rows at once markedly cheaper.
    op.drop_index('ix_outbox_dedupe_target', table_name='outbox')
    op.create_index('ix_outbox_dedupe_target', 'outbox', ['dedupe_key', 'platform', 'target'],
                    unique=False, postgresql_where=_WHERE, sqlite_where=_WHERE)


def downgrade() -> None:
    op.drop_index('ix_outbox_dedupe_target', table_name='outbox')
    op.create_index('ix_outbox_dedupe_target', 'outbox', ['dedupe_key', 'platform', 'target'],
                    unique=False)

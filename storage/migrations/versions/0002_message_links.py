"""message links (threads and cards per target) replace thread_links; outbox ref channel

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('thread_links')
    op.create_table(
        'message_links',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=512), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('channel', sa.String(length=255), nullable=False),
        sa.Column('ref', sa.String(length=255), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_links')),
        sa.UniqueConstraint('platform', 'target', 'key', name='uq_message_links_key'),
    )
    op.create_index('ix_message_links_ref', 'message_links', ['platform', 'channel', 'ref'])
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('ref_channel', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('edit', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('edit')
        batch.drop_column('ref_channel')
    op.drop_index('ix_message_links_ref', table_name='message_links')
    op.drop_table('message_links')
    op.create_table(
        'thread_links',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('platform', sa.String(length=16), nullable=False),
        sa.Column('channel', sa.String(length=255), nullable=False),
        sa.Column('thread_ref', sa.String(length=255), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('subject_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_thread_links')),
        sa.UniqueConstraint('platform', 'channel', 'thread_ref', name='uq_thread_links_thread'),
    )

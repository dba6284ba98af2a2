"""widen columns to hold the longest valid values

Names default to the email (up to 254 characters), so name columns take 320; the display
columns that join a name and an email (outbox recipient, audit actor and target) become
text. SQLite does not enforce lengths, so only PostgreSQL is altered.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# (table, column, old type, new type)
CHANGES = [
    ("contacts", "name", sa.String(length=200), sa.String(length=320)),
    ("technical_requests", "name", sa.String(length=200), sa.String(length=320)),
    ("outbox", "recipient", sa.String(length=320), sa.Text()),
    ("audit_events", "actor", sa.String(length=400), sa.Text()),
    ("audit_events", "target", sa.String(length=400), sa.Text()),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, old, new in CHANGES:
        op.alter_column(table, column, type_=new, existing_type=old, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column, old, new in CHANGES:
        op.alter_column(table, column, type_=old, existing_type=new, existing_nullable=False)

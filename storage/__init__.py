"""Persistence: SQLAlchemy 2 models, repositories (stores) and Alembic migrations.

Stores return frozen values from `bot.domain` and never commit; services own transactions.
"""

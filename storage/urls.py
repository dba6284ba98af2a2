"""Database URL options: what a PostgreSQL URL's query may say, in asyncpg's words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# libpq's name (as managed PostgreSQL services write their URLs) → asyncpg's.
_RENAMED = {"sslmode": "ssl"}
# Options taken as written: asyncpg's `ssl` (disable … verify-full, libpq's modes) and
# `target_session_attrs`, and SQLAlchemy's own statement cache size.
_TAKEN = frozenset({"ssl", "target_session_attrs", "prepared_statement_cache_size"})


def pg_options(query: Mapping[str, Any]) -> dict[str, Any]:
    """A PostgreSQL URL's query options for asyncpg (`sslmode=require` is `ssl=require`);
    one it cannot take is a ValueError naming the option (never the URL)."""
    options: dict[str, Any] = {}
    for key, value in query.items():
        name = _RENAMED.get(key, key)
        if name not in _TAKEN:
            raise ValueError(f"the query option {key[:40]!r} is not supported (use "
                             f"{', '.join(sorted({*_RENAMED, *_TAKEN}))})")
        options[name] = value
    return options

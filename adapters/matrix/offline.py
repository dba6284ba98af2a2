"""The commands answered "temporarily unavailable" while the database could not be reached,
kept in the device's directory until the database has recorded them as handled.

The list outlives the process: if it stops before the database comes back, the next one
reads the same batch again (its sync token was not saved) and must not run those commands
after all. It lives beside the device's keys, which every replica shares."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from adapters.matrix.client import private_file

log = logging.getLogger(__name__)

FILE = "answered-offline.json"


class AnsweredOffline:
    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE
        self.events: set[str] = set()

    async def load(self) -> None:
        """What a previous run left (nothing when the file is missing or unreadable)."""
        try:
            found = json.loads(await asyncio.to_thread(self.path.read_text))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("Matrix: %s not readable (%s); ignored", FILE, type(exc).__name__)
            return
        if isinstance(found, list):
            self.events.update(e for e in found if isinstance(e, str))

    async def add(self, event_id: str) -> None:
        self.events.add(event_id)
        await self._write()

    async def clear(self) -> None:
        self.events.clear()
        await asyncio.to_thread(self.path.unlink, missing_ok=True)

    async def _write(self) -> None:
        await asyncio.to_thread(private_file, self.path, json.dumps(sorted(self.events)))

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.events

    def __bool__(self) -> bool:
        return bool(self.events)

    def __len__(self) -> int:
        return len(self.events)

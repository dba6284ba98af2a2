"""Messages read once their room key arrives late go through the same guard as any other
event: a bug in handling one is logged and skipped, never the end of the sync, and an
outage leaves them waiting for the next sync; while one waits, the sync position saved
stays before it, so a process started meanwhile sees it again."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from nio import MegolmEvent, RoomMessageText
from sqlalchemy.exc import OperationalError

from adapters.matrix.app import MatrixAdapter, _Undecrypted
from adapters.matrix.client import MatrixLink, Tuning
from tests.harness import Harness

ROOM = "!dm:example.test"


def _encrypted(n: int) -> MegolmEvent:
    event = MegolmEvent.from_dict({
        "type": "m.room.encrypted", "event_id": f"$sealed{n}", "sender": "@tom:example.test",
        "origin_server_ts": 1, "room_id": ROOM,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "sender_key": "k",
                    "session_id": "s", "device_id": "DEVICE"}})
    assert isinstance(event, MegolmEvent)
    return event


class _KeyArrived:
    """A client whose room key has arrived: every waiting message now reads."""

    def decrypt_event(self, event: MegolmEvent) -> RoomMessageText:
        read = RoomMessageText.from_dict({
            "type": "m.room.message", "event_id": event.event_id, "sender": event.sender,
            "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "!boom"}})
        assert isinstance(read, RoomMessageText)
        return read


def _adapter(harness: Harness, tmp_path: Path) -> MatrixAdapter:
    link = MatrixLink("http://127.0.0.1:9", "@bot:example.test", password="x",
                      access_token=None, data_dir=tmp_path, tuning=Tuning())
    link.client = _KeyArrived()  # type: ignore[assignment]
    adapter = MatrixAdapter(harness.app, link)
    adapter._waiting = [_Undecrypted(_encrypted(n), ROOM, time.monotonic()) for n in (1, 2)]
    return adapter


async def test_a_late_message_that_breaks_the_handling_is_skipped(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    adapter = _adapter(harness, tmp_path)
    handled: list[str] = []

    async def broken(room_id: str, event: Any) -> None:
        handled.append(event.event_id)
        raise ValueError("a bug")

    monkeypatch.setattr(adapter, "_event", broken)
    with caplog.at_level(logging.ERROR):
        await adapter._retry_undecrypted()
    assert handled == ["$sealed1", "$sealed2"], "the first one's bug does not stop the second"
    assert adapter._waiting == []
    assert sum("not handled" in r.getMessage() for r in caplog.records) == 2


async def test_an_outage_leaves_late_messages_waiting(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = _adapter(harness, tmp_path)
    handled: list[str] = []

    async def outage(room_id: str, event: Any) -> None:
        handled.append(event.event_id)
        if event.event_id == "$sealed2":
            raise OperationalError("SELECT 1", {}, ConnectionError("down"))

    monkeypatch.setattr(adapter, "_event", outage)
    with pytest.raises(OperationalError):
        await adapter._retry_undecrypted()
    assert handled == ["$sealed1", "$sealed2"]
    assert [p.event.event_id for p in adapter._waiting] == ["$sealed2"], "handled: not again"


async def test_the_saved_position_stays_before_a_message_waiting_for_its_key(
    harness: Harness, tmp_path: Path
) -> None:
    adapter = _adapter(harness, tmp_path)
    adapter._waiting = [_Undecrypted(_encrypted(1), ROOM, time.monotonic(), "s10"),
                        _Undecrypted(_encrypted(2), ROOM, time.monotonic(), "s12")]
    assert adapter._position("s15") == "s10", "from before the oldest one waiting"
    adapter._waiting = [_Undecrypted(_encrypted(3), ROOM, time.monotonic(), None)]
    assert adapter._position("s15") == "s15", "the first sync has nothing before it"
    adapter._waiting = []
    assert adapter._position("s15") == "s15"

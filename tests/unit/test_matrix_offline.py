"""The list of Matrix commands answered without the database: kept in the device's
directory (readable by its user only) until recorded, read back by the next process, and a
damaged file is ignored with one line."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from adapters.matrix.offline import FILE, AnsweredOffline

pytestmark = pytest.mark.nodb


async def test_the_list_outlives_the_process_until_cleared(tmp_path: Path) -> None:
    first = AnsweredOffline(tmp_path)
    await first.add("$one")
    await first.add("$two")
    assert stat.S_IMODE((tmp_path / FILE).stat().st_mode) == 0o600
    again = AnsweredOffline(tmp_path)
    await again.load()
    assert "$one" in again and "$two" in again and len(again) == 2
    await again.clear()
    assert not (tmp_path / FILE).exists()
    last = AnsweredOffline(tmp_path)
    await last.load()
    assert not last


@pytest.mark.parametrize(("damaged", "kept", "warned"), [
    ("{not json", set(), 1), ('{"a": 1}', set(), 0), ('["$ok", 3, null]', {"$ok"}, 0)])
async def test_a_damaged_list_is_ignored(tmp_path: Path, damaged: str, kept: set[str],
                                         warned: int, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    (tmp_path / FILE).write_text(damaged)
    found = AnsweredOffline(tmp_path)
    with caplog.at_level(logging.WARNING):
        await found.load()
    assert found.events == kept
    assert len(caplog.records) == warned and "Traceback" not in caplog.text

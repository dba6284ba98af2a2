"""The Slack Web API in a storm under a running `subdesk run`: every `chat.postMessage`
answered 5xx, or 429 with `Retry-After`, for a minute (`SUBDESK_FAULT_STORM_SECONDS`),
then healthy again. Alerts queued for several channels arrive exactly once each, no
channel is asked again before its Retry-After has passed, and none becomes a dead letter.
The two storms blow at the same time, each on its own process."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import zlib
from pathlib import Path

import pytest

from tests.faults.world import (
    FaultySlack,
    Refusal,
    Subdesk,
    alerts,
    orders,
    slack_env,
    storm_seconds,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

CHANNELS = tuple(f"C0STORM{n}" for n in range(1, 5))
ALERTS = 5


def _server_errors(channel: str, count: int) -> Refusal:
    return Refusal((500, 502, 503)[count % 3])


def _rate_limited(channel: str, count: int) -> Refusal:
    """Retry-After of 1 to 3 seconds, differing by channel and from one answer to the next."""
    return Refusal(429, 1 + (zlib.crc32(channel.encode()) + count) % 3)


STORMS = {"5xx": _server_errors, "429": _rate_limited}


def _slack_outbox(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT status, count(*) FROM outbox WHERE platform = 'slack' "
                            "GROUP BY 1")
        return {str(s): int(n) for s, n in rows}


async def test_slack_storms_then_healthy(tmp_path: Path) -> None:
    """Both storms at once, each against its own process and fake Web API (the minute is
    spent once). Alerts for four channels are queued as the storm starts; while it lasts a
    command is still answered; once it ends every alert is in every channel exactly once,
    no request came before a Retry-After ended, and there is no dead letter."""
    for kind in STORMS:
        (tmp_path / kind).mkdir()
    await asyncio.gather(*(_storm(kind, tmp_path / kind) for kind in sorted(STORMS)))


async def _storm(kind: str, workdir: Path) -> None:
    fake = FaultySlack()
    await fake.start()
    try:
        await _weather(kind, fake, workdir)
    finally:
        await fake.stop()


async def _weather(kind: str, fake: FaultySlack, workdir: Path) -> None:
    database = workdir / "subdesk.db"
    env = slack_env(fake, SUBDESK_DATABASE_URL=f"sqlite:///{database}",
                    SUBDESK_OUTBOX_BASE_DELAY="1", SUBDESK_OUTBOX_MAX_DELAY="5",
                    SUBDESK_OUTBOX_MAX_ATTEMPTS="40")
    subdesk = Subdesk(env, workdir)
    await subdesk.start()
    seconds = storm_seconds()
    try:
        channels = tuple(f"slack:{c}" for c in CHANNELS)
        status, report = await subdesk.post("/api/v1/orders",
                                            orders(1, prefix="storm", channels=channels))
        assert status == 200, report
        fake.storm, fake.storm_until = STORMS[kind], time.time() + seconds
        status, received = await subdesk.post("/hooks/alertmanager",
                                               alerts("storm1", ALERTS, tag="storm"))
        assert (status, received["posted"]) == (200, ALERTS), received
        await until(lambda: len(fake.refused) >= len(CHANNELS), 30, "the storm to bite")
        await subdesk.slack(fake).command("U0NOBODY", "/subdesk", "help")
        await until(lambda: len(fake.answers()) == 1, 30, "an answer during the storm")
        await asyncio.sleep(max(0.0, fake.storm_until - time.time()))
        assert not fake.delivered(), "nothing gets through a storm"
        await until(lambda: _slack_outbox(database) == {"sent": ALERTS * len(CHANNELS)},
                    60, "every alert in every channel after the storm")
        await asyncio.sleep(2.0)  # time for any stray resend to show
    finally:
        await subdesk.stop()
    delivered = fake.delivered()
    assert sorted(delivered) == sorted(CHANNELS)
    for channel, texts in delivered.items():
        for n in range(1, ALERTS + 1):
            name = f"storm alert {n:03d}"
            assert sum(name in text for text in texts) == 1, (kind, channel, name, texts)
    statuses = {status for _, status in fake.refused}
    assert statuses == ({429} if kind == "429" else {500, 502, 503})
    per_channel = {c: sum(1 for ch, _ in fake.refused if ch == c) for c in CHANNELS}
    assert min(per_channel.values()) >= 3, f"each channel met the storm: {per_channel}"
    assert fake.early == [], f"requests before their Retry-After ended: {fake.early[:5]}"
    assert _slack_outbox(database) == {"sent": ALERTS * len(CHANNELS)}
    assert "Traceback" not in subdesk.log_text()

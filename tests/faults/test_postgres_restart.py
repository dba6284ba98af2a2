"""PostgreSQL stopped and started again under a running `subdesk run` (a private cluster:
the shared server is never touched): what was queued is delivered once, commands asked
during the outage are told "temporarily unavailable", and /readyz follows the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.faults.world import (
    Cluster,
    FaultySlack,
    Subdesk,
    orders,
    outbox_statuses,
    slack_env,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

ORGS = 12


async def test_postgresql_restarted_while_messages_are_in_flight(
    cluster: Cluster, fake: FaultySlack, tmp_path: Path
) -> None:
    """Welcome DMs are claimed and on their way to Slack when PostgreSQL stops. During the
    outage /readyz says the database is unavailable, slash commands are answered
    "temporarily unavailable" through their response_url, and the import API answers 503;
    Slack then takes the messages while the database is still down. Once PostgreSQL is
    back, every message is recorded as sent and none is sent twice, new work flows, and
    commands get their real answers."""
    env = slack_env(fake, SUBDESK_DATABASE_URL=cluster.url, SUBDESK_OUTBOX_BASE_DELAY="0.5",
                    SUBDESK_OUTBOX_MAX_DELAY="2", SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0")
    subdesk = Subdesk(env, tmp_path)
    await subdesk.cli("db", "upgrade")
    await subdesk.start()
    try:
        await until(lambda: _ready(subdesk), 30, "/readyz to say ready")
        fake.flowing.clear()  # Slack takes the messages, but answers only when told
        status, report = await subdesk.post("/api/v1/orders", orders(ORGS, slack=True))
        assert status == 200, report
        assert report["messages_queued"] == ORGS
        await until(lambda: fake.waiting == ORGS, 30, "every welcome DM to be on its way")

        await asyncio.to_thread(cluster.stop)
        status, body = await subdesk.ready()
        assert (status, body["status"]) == (503, "database unavailable")
        user = f"U0ORG{1:04d}"
        slack = subdesk.slack(fake)
        asked = ["/subdesk whoami", "/ticket list", "/ticket new sev3 Printer on fire"]
        for line in asked:
            command, _, text = line.partition(" ")
            assert (await slack.command(user, command, text))[0] == 200
        await until(lambda: len(fake.answers()) == len(asked), 30, "an answer to each command")
        assert all("temporarily unavailable" in text for text in fake.answers().values()), (
            fake.answers())
        status, refused = await subdesk.post("/api/v1/orders", orders(1, prefix="late"))
        assert (status, refused["error"]) == (503, "temporarily unavailable; nothing was "
                                                    "written")

        fake.flowing.set()  # Slack delivers them all while the database is still down
        await until(lambda: len(fake.delivered()) == ORGS, 30, "Slack to take the messages")
        await asyncio.sleep(1.0)  # the process tries to record them, and cannot
        assert (await subdesk.ready())[0] == 503

        await asyncio.to_thread(cluster.start)
        await until(lambda: _ready(subdesk), 60, "/readyz to say ready again")
        await until(lambda: _all_sent(cluster.url, ORGS), 60,
                    "every message to be recorded as sent")

        # Work after the outage: a new organization's welcome, a command answered.
        status, report = await subdesk.post("/api/v1/orders", orders(1, prefix="after",
                                                                     slack=True))
        assert status == 200 and report["messages_queued"] == 1, report
        await until(lambda: _all_sent(cluster.url, ORGS + 1), 60, "the new welcome DM")
        await slack.command(user, "/subdesk", "whoami")
        await until(lambda: len(fake.answers()) == len(asked) + 1, 30, "a real answer")
        last = fake.answers()[max(fake.answers(), key=int)]
        assert "temporarily unavailable" not in last and "Main org 1" in last, last
    finally:
        await subdesk.stop()
    delivered = fake.delivered()
    assert sorted(delivered) == sorted([f"DU0ORG{n:04d}" for n in range(1, ORGS + 1)]
                                       + ["DU0AFTER0001"])
    assert {channel: len(texts) for channel, texts in delivered.items()
            if len(texts) != 1} == {}, "a welcome DM was sent twice"
    assert await outbox_statuses(cluster.url) == {"sent": ORGS + 1}
    log = subdesk.log_text()
    assert "Traceback" not in log, log[-4000:]
    assert "deliveries recorded after the database came back" in log


async def _ready(subdesk: Subdesk) -> bool:
    return (await subdesk.ready())[0] == 200


async def _all_sent(url: str, count: int) -> bool:
    found: dict[str, Any] = await outbox_statuses(url)
    return found == {"sent": count}

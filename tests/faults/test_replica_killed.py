"""A replica killed (SIGKILL) while it holds claimed outbox rows, one of several on a private
PostgreSQL cluster: the others answer commands meanwhile, take its messages over once their
lease runs out, and deliver each exactly once (a post that reached Slack before the kill is
found by its metadata, not sent again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.world import (
    Cluster,
    FaultySlack,
    Subdesk,
    orders,
    outbox_statuses,
    slack_env,
    unavailable,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.peers, pytest.mark.slow]

ORGS = 12
CONCURRENCY = 8  # deliveries under way per replica: the rest of its claims wait for a slot
LEASE = 8  # seconds: long enough to ask the others a command while the claims still hold


async def test_a_replica_killed_while_holding_claims(
    cluster: Cluster, fake: FaultySlack, tmp_path: Path
) -> None:
    """Twelve welcome DMs are claimed by the first replica: Slack has stored eight of its
    posts and not answered yet, four more wait for a delivery slot. It is killed with
    SIGKILL. Two other replicas start on the same database; while the dead replica's leases
    still hold, a slash command sent to one of them gets its real answer, not silence and
    not "temporarily unavailable". Once the leases run out they take the twelve messages
    over, look for the ones that may have arrived, and every DM is in Slack exactly once,
    each recorded as sent."""
    env = slack_env(fake, SUBDESK_DATABASE_URL=cluster.url, SUBDESK_OUTBOX_LEASE=str(LEASE),
                    SUBDESK_OUTBOX_CONCURRENCY=str(CONCURRENCY),
                    SUBDESK_OUTBOX_PER_TARGET_INTERVAL="0")
    first, *others = [Subdesk(env, tmp_path / name) for name in ("a", "b", "c")]
    for replica in (first, *others):
        replica.workdir.mkdir()
    await first.cli("db", "upgrade")
    try:
        await first.start()
        fake.stall = "chat.postMessage"  # Slack stores each post and does not answer
        status, report = await first.post("/api/v1/orders", orders(ORGS, slack=True))
        assert status == 200 and report["messages_queued"] == ORGS, report
        await until(lambda: len(fake.delivered()) == CONCURRENCY, 30,
                    "Slack to store eight posts")

        async def all_claimed() -> bool:
            return await outbox_statuses(cluster.url) == {"sending": ORGS}

        await until(all_claimed, 30, "the first replica to hold every message: eight under "
                                     "way, four waiting for a slot")
        assert len(fake.delivered()) == CONCURRENCY, "no more than eight under way"

        assert first.process is not None
        first.process.kill()
        assert await first.process.wait() == -9
        fake.stall = None
        fake.answer.set()

        for replica in others:
            await replica.start()
        slack = others[0].slack(fake)
        assert (await slack.command("U0ORG0001", "/subdesk", "whoami"))[0] == 200
        await until(lambda: len(fake.answers()) == 1, 30, "an answer to the command")
        [answer] = fake.answers().values()
        assert answer and not unavailable(answer), answer
        assert (await outbox_statuses(cluster.url)).get("sending") == ORGS, (
            "the command was answered while the dead replica's claims still held")

        async def all_sent() -> bool:
            return await outbox_statuses(cluster.url) == {"sent": ORGS}

        await until(all_sent, LEASE + 60, "every message to be taken over and sent")
        delivered = fake.delivered()
        assert len(delivered) == ORGS and all(len(t) == 1 for t in delivered.values()), (
            delivered)
        assert len(fake.of("conversations.history")) >= CONCURRENCY, (
            "the messages in doubt were looked for before any was sent again")
    finally:  # no process outlives the test, whatever failed (the killed one is gone)
        for replica in (first, *others):
            await replica.stop()

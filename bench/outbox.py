"""Benchmark: 10,000 outbox messages to 1,000 Slack channels, one replica, then three.

    .venv/bin/python bench/outbox.py [--channels 1000] [--each 10] [--replicas 1,3]

The Web API is the tests' fake Slack in a process of its own, enforcing one message per
second per channel (a faster post gets 429 with `Retry-After`). Each replica is a real
`subdesk run` process (Slack over HTTP, the scheduler, the dispatcher) on one PostgreSQL
database (`subdesk_bench_outbox`, dropped and recreated per run, at
SUBDESK_TEST_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres). The messages
are queued in one transaction once every replica answers `/readyz`.

Printed per run: lost (queued, never accepted by Slack), duplicated (accepted posts beyond
one per outbox key, read from each post's metadata), 429s, elapsed, the achieved rate,
each replica's share, and the CPU time per post of the replicas together, the fake and
PostgreSQL (from /proc, queueing to all marked sent: on a machine with two cores they
compete for the same CPUs).

The achieved rate is a percentage of the allowed rate: Slack allows a channel one message a
second, so n messages to one channel need at least (n − 1) s from its first to its last;
for the whole load the fastest schedule the fake accepts takes max over channels of
(n − 1) s, from the first post accepted to the last (9 s for 10 per channel).
rate % = that minimum ÷ the time the run took from its first accepted post to its last.
Start-up (processes, `/readyz`, queueing) is outside both and printed apart.

Baseline, same run: the fake's own ceiling on this machine now — posts per second it
answers to a bare aiohttp client (200 at a time, one post per channel, so none is
refused), fake and client in processes of their own. The allowed rate is 1,000 posts a
second; when the ceiling is below it, no client can reach it here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import ClientSession
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.common import cpu_seconds, cpu_since, number, numbers, pg_recreate
from bot.clock import SystemClock
from bot.presentation.messages import Message
from storage.bulk import OutboxDraft
from storage.db import Database
from storage.models import OutboxRow
from storage.outbox import OutboxStore
from tests.adapters.slack_fake import SECRET, FakeSlack

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
PACE = 1.0  # seconds between two posts to one channel, as the fake enforces


# The fake, in its own process ---------------------------------------------------------


def stats(fake: FakeSlack) -> dict[str, Any]:
    """What Slack accepted: posts per outbox key and channel, first and last times."""
    keys: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    times: list[float] = []
    last: dict[str, float] = {}
    first: dict[str, float] = {}
    gaps: list[float] = []
    for call in fake.calls:
        if call.method != "chat.postMessage" or not call.result.get("ok"):
            continue
        metadata = call.args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        keys[str(metadata["event_payload"]["key"])] += 1
        channel = str(call.args["channel"])
        channels[channel] += 1
        times.append(call.at)
        first.setdefault(channel, call.at)
        if channel in last:
            gaps.append(call.at - last[channel])
        last[channel] = call.at
    gaps.sort()
    methods = Counter(f"{c.method} {'ok' if c.result.get('ok') else c.result.get('error')}"
                      for c in fake.calls)
    return {"accepted": sum(keys.values()), "keys": len(keys), "calls": dict(methods),
            "doubled": sum(n - 1 for n in keys.values()), "refused": fake.refused,
            "lookups": len(fake.of("conversations.history")),
            "most_per_channel": max(channels.values(), default=0),
            "first": min(times, default=0.0), "last": max(times, default=0.0),
            "spread": max(first.values(), default=0.0) - min(first.values(), default=0.0),
            "span": max((last[c] - first[c] for c in last), default=0.0),
            "gap_p50": gaps[len(gaps) // 2] if gaps else 0.0,
            "gap_p90": gaps[len(gaps) * 9 // 10] if gaps else 0.0}


async def serve_fake() -> None:
    """Serve the fake on a free port, print it, answer `stats` lines on stdin."""
    fake = FakeSlack(pace=PACE)
    await fake.start()
    print(fake.port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"stats":
            print(json.dumps(stats(fake)), flush=True)
    await fake.stop()


# The run -------------------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _fresh_database(base: str) -> str:
    url = make_url(base).set(database="subdesk_bench_outbox").render_as_string(
        hide_password=False)
    await pg_recreate(url)
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    return url


async def _ask(fake: asyncio.subprocess.Process) -> dict[str, Any]:
    assert fake.stdin is not None and fake.stdout is not None
    fake.stdin.write(b"stats\n")
    await fake.stdin.drain()
    return dict(json.loads(await fake.stdout.readline()))


async def ceiling(posts: int = 3000, at_once: int = 200) -> float:
    """Posts per second the fake answers to a bare aiohttp client."""
    fake = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-fake", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert fake.stdout is not None and fake.stdin is not None
    port = int(await fake.stdout.readline())
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--hammer", str(port), str(posts), str(at_once),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await client.communicate()
    fake.stdin.close()
    await fake.wait()
    return posts / float(out)


async def hammer(port: int, posts: int, at_once: int) -> None:
    """Post `posts` messages to as many channels, `at_once` at a time; print the seconds."""
    from aiohttp import TCPConnector

    url = f"http://127.0.0.1:{port}/api/chat.postMessage"
    numbers = iter(range(posts))
    async with ClientSession(connector=TCPConnector(limit=0)) as http:
        async def worker() -> None:
            for n in numbers:
                body = {"channel": f"C{n}", "text": "hi", "metadata": {
                    "event_type": "subdesk_outbox", "event_payload": {"key": str(n)}}}
                async with http.post(url, json=body,
                                     headers={"Authorization": "Bearer xoxb-x"}) as resp:
                    await resp.read()

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(at_once)))
        print(time.monotonic() - started)


async def run(base_url: str, replicas: int, channels: int, each: int,
              concurrency: int | None) -> dict[str, Any]:
    url = await _fresh_database(base_url)
    fake = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-fake", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert fake.stdout is not None
    fake_port = int(await fake.stdout.readline())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUBDESK_", "SLACK_",
                                                                     "MATRIX_"))}
    env.update(SUBDESK_DATABASE_URL=url, SUBDESK_LOG_LEVEL="WARNING",
               SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SECRET,
               SLACK_API_URL=f"http://127.0.0.1:{fake_port}/api/")
    if concurrency is not None:
        env["SUBDESK_OUTBOX_CONCURRENCY"] = str(concurrency)
    ports = [_port() for _ in range(replicas)]
    procs = [await asyncio.create_subprocess_exec(
        SUBDESK, "run", env={**env, "SUBDESK_HTTP_PORT": str(port)},
        stdin=asyncio.subprocess.DEVNULL, cwd="/tmp") for port in ports]
    db = Database(url)
    try:
        async with ClientSession() as http:
            for port in ports:
                for _ in range(600):
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                            if resp.status == 200:
                                break
                    except OSError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise SystemExit(f"replica on port {port} never became ready")
        total = channels * each
        drafts = [OutboxDraft(key=f"bench:{c}:{n}", platform="slack", target=f"C{c:05d}",
                              kind="channel", recipient="",
                              payload=Message(f"message {n} to channel {c}").to_json())
                  for n in range(each) for c in range(channels)]
        watched = [p.pid for p in procs] + [fake.pid]
        cpu_before = cpu_seconds(watched), cpu_seconds(named="postgres")
        queued_at = time.monotonic()
        async with db.transaction() as session:
            await OutboxStore(session, SystemClock().now()).enqueue_many(drafts)
        queue_seconds = time.monotonic() - queued_at
        deadline = time.monotonic() + 60 + 30 * each  # "lost" must not mean "slow"
        sent = 0
        while time.monotonic() < deadline:
            async with db.read() as session:
                sent = int(await session.scalar(
                    select(func.count()).where(OutboxRow.status == "sent")) or 0)
            if sent >= total:
                break
            await asyncio.sleep(0.25)
        all_sent = time.monotonic() - queued_at
        cpu_after = cpu_seconds(watched), cpu_seconds(named="postgres")
        await asyncio.sleep(1.0)  # anything late would show as doubled
        seen = await _ask(fake)
        async with db.read() as session:
            shares = sorted((int(n) for _, n in await session.execute(
                select(OutboxRow.claimed_by, func.count()).where(OutboxRow.status == "sent")
                .group_by(OutboxRow.claimed_by))), reverse=True)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in procs))
        assert fake.stdin is not None
        fake.stdin.close()
        await fake.wait()
        await db.dispose()
    per_post = 1e6 / total  # seconds of CPU → µs per post
    cpu = {"replicas": per_post * cpu_since(cpu_before[0], cpu_after[0],
                                            {p.pid for p in procs}),
           "fake": per_post * cpu_since(cpu_before[0], cpu_after[0], {fake.pid}),
           "postgresql": per_post * cpu_since(cpu_before[1], cpu_after[1])}
    elapsed = seen["last"] - seen["first"]
    fastest = (each - 1) * PACE
    return {"replicas": replicas, "messages": total, "sent": sent,
            "lost": total - seen["keys"], "doubled": seen["doubled"],
            "refused": seen["refused"], "elapsed": elapsed, "fastest": fastest,
            "rate": 100 * fastest / elapsed if elapsed > 0 else 0.0,
            "first_post": seen["first"] - queued_at, "all_sent": all_sent,
            "queue_seconds": queue_seconds, "shares": shares,
            "gaps": (seen["gap_p50"], seen["gap_p90"]),
            "spread": seen["spread"], "span": seen["span"], "cpu": cpu}


def show(r: dict[str, Any]) -> None:
    print(f"{r['replicas']} replica(s): {r['messages']:,} messages, lost {r['lost']}, "
          f"duplicated {r['doubled']}, 429s {r['refused']}; first to last accepted post "
          f"{r['elapsed']:.2f} s (fastest allowed {r['fastest']:.0f} s) = "
          f"{r['rate']:.1f} % of the allowed rate; queueing {r['queue_seconds']:.2f} s, "
          f"first post {r['first_post']:.2f} s after, all marked sent "
          f"{r['all_sent']:.2f} s after; per replica {r['shares']}; gap between posts to "
          f"a channel p50 {r['gaps'][0]:.3f} s, p90 {r['gaps'][1]:.3f} s; first posts spread over "
          f"{r['spread']:.2f} s; the longest channel took {r['span']:.2f} s; CPU per post "
          f"(queueing to all marked sent): replicas {r['cpu']['replicas']:.0f} µs, the fake "
          f"{r['cpu']['fake']:.0f} µs, PostgreSQL {r['cpu']['postgresql']:.0f} µs", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=number(1), default=1000)
    parser.add_argument("--each", type=number(2), default=10,
                        help="messages per channel (two at least: the rate is between them)")
    parser.add_argument("--replicas", type=numbers(1), default=[1, 3],
                        help="comma-separated replica counts, a run each")
    parser.add_argument("--concurrency", type=number(1), default=None,
                        help="SUBDESK_OUTBOX_CONCURRENCY of each replica (default: its own)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hammer", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        await serve_fake()
        return
    if args.hammer:
        await hammer(*args.hammer)
        return
    print(f"baseline: the fake answers {await ceiling():.0f} posts/s to a bare aiohttp "
          f"client; {args.channels:,} channels allow {args.channels / PACE:.0f} posts/s",
          flush=True)
    base = os.environ.get("SUBDESK_TEST_DATABASE_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")
    for replicas in args.replicas:
        show(await run(base, replicas, args.channels, args.each, args.concurrency))


if __name__ == "__main__":
    asyncio.run(main())

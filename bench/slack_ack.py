"""Benchmark: signed `/ticket new` slash commands over HTTP against SQLite, three processes.

    .venv/bin/python bench/slack_ack.py [--rounds 3] [--concurrency 1,10,50] [--seconds 5]
                                        [--workers 1]

Each part runs in a process of its own:

- Subdesk: `subdesk run` itself (Slack in HTTP mode, one bot token, SQLite, the outbox
  dispatcher delivering at its default pace per channel), with `SUBDESK_SLACK_WORKERS` as
  `--workers` says (one `subdesk run` per value, each on its own copy of the database this
  script seeds: the demo organization, its Technical Contact linked to the Slack user who
  sends the commands); its worker processes inherit its CPU;
- the baseline: a bare slack-bolt `AsyncApp` on aiohttp that only acks `/ticket`, in its
  fastest configuration (`process_before_response=True`, an `authorize` that answers at
  once);
- the fake Slack of the tests (`tests/adapters/slack_fake.py`: the Web API and the
  commands' `response_url`s), which also reports how many calls of each method it saw;
- the load: `wrk` (Debian's package) with `slack_ack.lua`, one thread, sending bodies this
  script signed just before with slack_sdk's `SignatureVerifier` (a fresh timestamp, a
  unique trigger id each), so every request passes the real verification.

The servers are pinned to CPU 1 with `taskset`, wrk, the fake and this script to CPU 0.
For each round and each concurrency, the baseline runs, then each Subdesk, back to back. Per
run: p50/p99 time-to-ack and acks/s from wrk, the ratio of Subdesk's acks/s to the
baseline's, the CPU time per ack of the bare app and of Subdesk's front process while the
load ran (from /proc: steadier than rates on a shared machine; a worker process's own CPU is
not in it), and for Subdesk the completed commands per second — commands whose ticket was
stored, cards queued, and answer sent through `response_url` — counted from the fake's calls
(and checked against the tickets and outbox rows in the database) from the start of the load
until the last answer, so it includes the drain after the load stops. Delivering the cards
is not part of it: Slack takes about one message a second per channel, and a run's cards
queue on two channels (the opener's DM and the triage channel), so they would take far
longer than the run. Between runs, the Slack outbox rows still pending are marked `dropped`
in the database (plain SQL, by this script), so their deliveries do not compete with the
next run. A command refused because the backlog was full (BUSY, a 200 with a body) is
counted apart, in the done/s column (wrk counts it as an ack, in acks/s and the latencies:
it is one, to Slack). Any answer other than 200 (a signature refused is a
401), a socket error, a body sent twice or a command taken and left unanswered stops the
benchmark with an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, web  # noqa: E402

from bench.common import cpu_seconds, cpu_since, number, numbers  # noqa: E402
from tests.adapters.slack_fake import SECRET, TEAM, Call, FakeSlack  # noqa: E402

LUA = Path(__file__).with_name("slack_ack.lua")
SERVER_CPU, LOAD_CPU = "1", "0"
USER = "U0TOM"


class Failed(Exception):
    """The benchmark cannot go on: what went wrong, in one line."""


# The processes -----------------------------------------------------------------------------


class CountingFake(FakeSlack):
    """The tests' fake Slack, counting its calls by method (served at `/counts`)."""

    counts: Counter[str]

    async def _record(self, call: Call) -> None:
        self.counts[call.method] += 1
        if call.method in ("chat.postMessage", "chat.update", "response_url"):
            return  # thousands of these: counted, not kept
        await super()._record(call)


async def serve_fake() -> None:
    fake = CountingFake()
    fake.counts = Counter()
    await fake.start()

    async def counts(request: web.Request) -> web.Response:
        return web.json_response(dict(fake.counts))

    app = web.Application()
    app.router.add_get("/counts", counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"api": fake.url, "counts": runner.addresses[0][1],
                      "hooks": f"http://127.0.0.1:{fake.port}/hooks/"}), flush=True)
    await asyncio.Event().wait()


async def serve_bare(port: int) -> None:
    """A slack-bolt app that only acks `/ticket`, as fast as bolt goes."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.app.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult

    result = AuthorizeResult(enterprise_id=None, team_id=TEAM, bot_token="xoxb-bench",
                             bot_user_id="U0BOT", bot_id="B0BOT")

    async def authorize() -> AuthorizeResult:
        return result

    bolt = AsyncApp(signing_secret=SECRET, authorize=authorize, process_before_response=True)

    @bolt.command("/ticket")
    async def ack_only(ack: Any) -> None:
        await ack()

    async def handle(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(
            await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def seed(database_url: str) -> None:
    """The demo organization, its Technical Contact linked to the Slack user `USER`."""
    from bot.domain import Platform
    from bot.wiring.config import Settings
    from bot.wiring.demo import DEMO_TECH, seed_demo
    from bot.wiring.runtime import build_app

    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    app = await build_app(settings, upgrade=True, factories={})
    try:
        await seed_demo(app.services)
        await app.services.identity.admin_link(DEMO_TECH, Platform.SLACK, TEAM, USER)
    finally:
        await app.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Processes:
    """The child processes this run started, stopped by their own ids at the end."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, cpu: str, argv: list[str], *, env: dict[str, str] | None = None,
              log: Path) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["taskset", "-c", cpu, *argv], env=env,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=log.open("wb"))
        self.started.append(process)
        return process

    def check(self) -> None:
        for process in self.started:
            if process.poll() is not None:
                raise Failed(f"{' '.join(map(str, process.args))[:120]} ended "
                             f"(exit {process.returncode})")

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


# The load ----------------------------------------------------------------------------------


def sign(body: str, timestamp: str) -> str:
    """`v0=` HMAC-SHA256 over `v0:timestamp:body`: slack_sdk's SignatureVerifier scheme."""
    digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    return f"v0={digest.hexdigest()}"


def write_bodies(path: Path, count: int, tag: str, hooks: str) -> None:
    """`count` signed `/ticket new` commands, each with its own trigger id and response_url."""
    from slack_sdk.signature import SignatureVerifier

    timestamp = str(int(time.time()))
    with path.open("w") as out:
        for n in range(count):
            body = urlencode({
                "token": "x", "team_id": TEAM, "team_domain": "demo",
                "channel_id": "C0GENERAL", "channel_name": "general", "user_id": USER,
                "user_name": "tom", "command": "/ticket", "text": f"new Bench {tag} {n}",
                "api_app_id": "A0APP", "is_enterprise_install": "false",
                "response_url": f"{hooks}{tag}-{n}", "trigger_id": f"{n}.{tag}.bench"})
            out.write(f"{timestamp}\t{sign(body, timestamp)}\t{body}\n")
    verifier = SignatureVerifier(SECRET)  # the scheme above is slack_sdk's own
    assert verifier.is_valid(body, timestamp, sign(body, timestamp))


async def wrk(url: str, concurrency: int, seconds: float, bodies: Path) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{concurrency}", f"-d{round(seconds)}s",
        "--timeout", "10s", "-s", str(LUA), url,
        env={**os.environ, "SLACK_BENCH_BODIES": str(bodies)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    lines = [x for x in out.decode().splitlines() if x.startswith("BENCH ")]
    if process.returncode != 0 or not lines:
        raise Failed(f"wrk failed (exit {process.returncode}): "
                     f"{(err or out).decode().strip()[-300:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("BENCH "):])
    if result["bad"] or result["status_errors"]:
        raise Failed(f"{result['bad']} answers other than 200 (first: HTTP "
                     f"{result['first_bad']}) from {url}")
    if result["socket_errors"]:
        raise Failed(f"{result['socket_errors']} socket errors or timeouts from {url}")
    if result["wrapped"]:
        raise Failed(f"wrk sent {result['wrapped']} bodies twice: raise --bodies")
    return result


# Measuring completion ----------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    answered: int
    posted: int


@dataclass
class Watcher:
    """Counts of the fake's calls and of the database's rows, over time."""

    http: ClientSession
    counts_url: str
    database: Path
    samples: list[Sample] = field(default_factory=list)

    async def counts(self) -> Counter[str]:
        async with self.http.get(self.counts_url) as response:
            return Counter(await response.json())

    def rows(self) -> tuple[int, int]:
        """Tickets, and Slack outbox rows (the cards queued)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True,
                                                timeout=30)) as db:
            tickets = db.execute("SELECT count(*) FROM tickets").fetchone()[0]
            total = db.execute(
                "SELECT count(*) FROM outbox WHERE platform = 'slack'").fetchone()[0]
        return int(tickets), int(total)

    def drop_pending(self) -> int:
        """Mark the Slack cards still waiting `dropped`, so they are not sent during the
        next run (a benchmark's shortcut, never done to a real outbox)."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db, db:
            return db.execute("UPDATE outbox SET status = 'dropped' "
                              "WHERE platform = 'slack' AND status = 'pending'").rowcount

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            counts = await self.counts()
            self.samples.append(Sample(time.perf_counter(), counts["response_url"],
                                       counts["chat.postMessage"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)


def ms(us: int) -> float:
    return us / 1000


@dataclass
class Row:
    round: int
    concurrency: int
    workers: int
    bare: dict[str, Any]
    ours: dict[str, Any]
    done_per_s: float
    drain_s: float
    load: str
    cpu: tuple[float, float]  # CPU seconds of the bare app and of Subdesk's front in the run

    def acks(self, result: dict[str, Any]) -> float:
        return float(result["requests"]) / (result["duration_us"] / 1e6)

    def line(self) -> str:
        b, o = self.bare, self.ours
        ratio = self.acks(o) / self.acks(b)
        return (f"| {self.round} | {self.concurrency} | {self.workers} | {ms(b['p50_us']):.2f} / "
                f"{ms(b['p99_us']):.2f} | {self.acks(b):,.0f} | {ms(o['p50_us']):.2f} / "
                f"{ms(o['p99_us']):.2f} | {self.acks(o):,.0f} | {ratio:.2f} | "
                f"{1e6 * self.cpu[0] / b['requests']:.0f} / "
                f"{1e6 * self.cpu[1] / o['requests']:.0f} | "
                f"{self.done_per_s:,.0f} ({self.drain_s:.1f} s){self.refused()} | {self.load} |")

    def refused(self) -> str:
        busy = int(self.ours["busy"])
        return f", {busy:,} refused BUSY" if busy else ""


HEADER = ("| round | conc | workers | bare p50 / p99 ms | bare acks/s | Subdesk p50 / p99 ms | "
          "Subdesk acks/s | ratio | CPU µs per ack, bare / front | Subdesk done/s (drain) | "
          "load (1 min) |\n|---|---|---|---|---|---|---|---|---|---|---|")


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


async def wait_ready(http: ClientSession, url: str, processes: Processes) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        processes.check()
        with contextlib.suppress(OSError):
            async with http.get(url) as response:
                if response.status < 500:
                    return
        await asyncio.sleep(0.2)
    raise Failed(f"{url} did not come up in 60 s")


async def run_subdesk(watcher: Watcher, url: str, concurrency: int, seconds: float,
                      bodies: Path, processes: Processes, front: subprocess.Popen[bytes]
                      ) -> tuple[dict[str, Any], float, float]:
    """Subdesk under load: wrk's figures (with `cpu`, the CPU seconds the front spent while
    the load ran), completed commands/s and the drain's seconds."""
    tickets0, outbox0 = watcher.rows()
    answered0 = (await watcher.counts())["response_url"]
    watcher.samples.clear()
    stop = asyncio.Event()
    sampler = asyncio.create_task(watcher.sample(stop))
    started = time.perf_counter()
    try:
        cpu = cpu_seconds([front.pid])
        result = await wrk(url, concurrency, seconds, bodies)
        result["cpu"] = cpu_since(cpu, cpu_seconds([front.pid]))
        ended = time.perf_counter()
        # Every acked command answered: wrk's completed requests, and the few it had in
        # flight when it stopped (acked too, but not counted by wrk).
        deadline = ended + 600
        while True:
            processes.check()
            answered = (await watcher.counts())["response_url"] - answered0
            tickets = watcher.rows()[0] - tickets0
            if answered >= result["requests"] - result["busy"] and answered == tickets:
                await asyncio.sleep(0.5)  # and nothing more arrives
                if (await watcher.counts())["response_url"] - answered0 == answered:
                    break
                continue
            if time.perf_counter() > deadline:
                raise Failed(f"{answered} of {result['requests'] - result['busy']} commands "
                             "taken answered after 600 s")
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await sampler
    last = next((s.at for s in watcher.samples if s.answered - answered0 >= answered),
                time.perf_counter())
    tickets, outbox = watcher.rows()
    if tickets - tickets0 != answered:
        raise Failed(f"{answered} commands answered but {tickets - tickets0} tickets stored")
    if outbox - outbox0 < answered:
        raise Failed(f"{answered} tickets but only {outbox - outbox0} cards queued")
    watcher.drop_pending()
    return result, answered / (last - started), last - ended


async def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise Failed("wrk is not installed (apt-get install -y wrk)")
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # this script stays off the servers' CPU
    python = sys.executable
    subdesk = str(Path(python).with_name("subdesk"))
    processes = Processes()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seeded = tmp / "seeded.db"
        await seed(f"sqlite:///{seeded}")
        try:
            fake = processes.start(LOAD_CPU, [python, __file__, "fake"], log=tmp / "fake.log")
            assert fake.stdout is not None
            ends = json.loads(await asyncio.to_thread(fake.stdout.readline) or "{}")
            if not ends:
                raise Failed("the fake Slack did not start: " + (tmp / "fake.log").read_text())
            bare_port = free_port()
            bare_server = processes.start(
                SERVER_CPU, [python, __file__, "bare", "--port", str(bare_port)],
                log=tmp / "bare.log")
            # workers → events URL, database, the front's process
            ours: dict[int, tuple[str, Path, subprocess.Popen[bytes]]] = {}
            for workers in args.workers:
                port, database = free_port(), tmp / f"subdesk-{workers}.db"
                shutil.copy(seeded, database)
                env = {**os.environ, "SUBDESK_DATABASE_URL": f"sqlite:///{database}",
                       "SUBDESK_HTTP_PORT": str(port), "SUBDESK_HTTP_HOST": "127.0.0.1",
                       "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET,
                       "SLACK_API_URL": ends["api"], "SUBDESK_TRIAGE_CHANNELS": "slack:C0TRIAGE",
                       "SUBDESK_SLACK_WORKERS": str(workers),
                       "SUBDESK_DATA_DIR": str(tmp / f"data-{workers}")}
                for name in ("SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET",
                             "MATRIX_HOMESERVER", "SUBDESK_OUTBOX_PER_TARGET_INTERVAL"):
                    env.pop(name, None)
                front = processes.start(SERVER_CPU, [subdesk, "run"], env=env,
                                        log=tmp / f"subdesk-{workers}.log")
                ours[workers] = f"http://127.0.0.1:{port}/slack/events", database, front
            bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
            async with ClientSession() as http:
                await wait_ready(http, f"http://127.0.0.1:{bare_port}/", processes)
                for url, _, _ in ours.values():
                    await wait_ready(http, url.replace("/slack/events", "/readyz"), processes)
                counts = f"http://127.0.0.1:{ends['counts']}/counts"
                print(f"wrk -t1 on CPU {LOAD_CPU} (with the fake Slack), servers on CPU "
                      f"{SERVER_CPU}; {args.seconds:g} s per run; `subdesk run` on SQLite "
                      f"with SUBDESK_SLACK_WORKERS={','.join(map(str, args.workers))}")
                print(HEADER, flush=True)
                for round_ in range(1, args.rounds + 1):
                    for concurrency in args.concurrency:
                        bodies = tmp / "bodies.txt"
                        tag = f"r{round_}c{concurrency}"
                        write_bodies(bodies, args.bodies, "bare" + tag, ends["hooks"])
                        before = cpu_seconds([bare_server.pid])
                        bare = await wrk(bare_url, concurrency, args.seconds, bodies)
                        bare_cpu = cpu_since(before, cpu_seconds([bare_server.pid]))
                        for workers, (url, database, front) in ours.items():
                            await asyncio.sleep(1)
                            write_bodies(bodies, args.bodies, f"{tag}w{workers}", ends["hooks"])
                            result, done, drain = await run_subdesk(
                                Watcher(http, counts, database), url, concurrency,
                                args.seconds, bodies, processes, front)
                            row = Row(round_, concurrency, workers, bare, result, done, drain,
                                      load_average(), (bare_cpu, result["cpu"]))
                            print(row.line(), flush=True)
                        await asyncio.sleep(1)
        except Failed:
            for workers in args.workers:
                log = tmp / f"subdesk-{workers}.log"
                if log.exists():
                    print(f"{log.name}, last lines:\n" +
                          "\n".join(log.read_text().splitlines()[-20:]), file=sys.stderr)
            raise
        finally:
            processes.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=("fake", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=number(1), default=3)
    parser.add_argument("--concurrency", default=[1, 10, 50], type=numbers(1))
    parser.add_argument("--seconds", type=float, default=5.0, help="of load per run")
    parser.add_argument("--workers", default=[1], type=numbers(0),
                        help="SUBDESK_SLACK_WORKERS, a `subdesk run` each (say 0,1)")
    parser.add_argument("--bodies", type=number(1), default=40_000,
                        help="signed commands prepared per run (more than wrk can send)")
    arguments = parser.parse_args()
    try:
        if arguments.part == "fake":
            asyncio.run(serve_fake())
        elif arguments.part == "bare":
            asyncio.run(serve_bare(arguments.port))
        else:
            asyncio.run(main(arguments))
    except Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)

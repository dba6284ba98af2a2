"""What the fault scenarios drive: a real `subdesk run` process (its HTTP interfaces, its
log), a Slack Web API fake that can be made to fail, and a private PostgreSQL cluster that
can be stopped and started without touching the shared server."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import ClientError, ClientSession, web

from bot.core import UNAVAILABLE
from tests.adapters.slack_fake import SECRET, TEAM, Call, FakeSlack, SlackClient
from tests.peers.matrix_people import Person
from tests.peers.synapse import Account, Synapse, free_port

SUBDESK = str(Path(sys.executable).with_name("subdesk"))
API_TOKEN = "fault-suite-token"
STARTUP_SECONDS = 60.0


def storm_seconds() -> float:
    """How long a storm lasts (`SUBDESK_FAULT_STORM_SECONDS`, a minute by default)."""
    return float(os.environ.get("SUBDESK_FAULT_STORM_SECONDS", "60"))


async def until(check: Callable[[], Any], within: float, what: str) -> None:
    """Until `check()` (sync or async) is truthy, or fail naming `what`."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


# Slack -------------------------------------------------------------------------------


@dataclass
class Refusal:
    """One answer of a storm: an HTTP status, with `Retry-After` seconds for a 429."""

    status: int
    retry_after: int | None = None


@dataclass
class FaultySlack(FakeSlack):
    """The fake Web API, with `chat.postMessage` held back while `flowing` is clear and
    answered by `storm` (a refusal per call, or None to let it through) until
    `storm_until` (time.time()). Every call's arrival is stamped (`stamps`, parallel to
    `calls`) and every 429 remembered with the time its Retry-After ends, per channel."""

    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    storm: Callable[[str, int], Refusal | None] | None = None
    storm_until: float = 0.0
    stamps: list[float] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)  # (channel, status)
    not_before: dict[str, float] = field(default_factory=dict)  # channel → Retry-After end
    early: list[tuple[str, float]] = field(default_factory=list)  # (channel, seconds early)
    waiting: int = 0  # `chat.postMessage` calls held back now
    _seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.flowing.set()

    async def _record(self, call: Call) -> None:
        self.stamps.append(time.time())
        await super()._record(call)

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["method"] != "chat.postMessage":
            return await super()._api(request)
        arrived = time.time()
        self.waiting += 1
        try:
            await self.flowing.wait()
        finally:
            self.waiting -= 1
        if self.storm is None or arrived >= self.storm_until:
            return await super()._api(request)
        body = await request.text()
        args = (json.loads(body) if request.content_type == "application/json"
                else dict(parse_qsl(body)))
        channel = str(args.get("channel", ""))
        if (ends := self.not_before.get(channel)) is not None and arrived < ends:
            self.early.append((channel, ends - arrived))
        count = self._seen.get(channel, 0)
        self._seen[channel] = count + 1
        refusal = self.storm(channel, count)
        if refusal is None:
            return await super()._api(request)  # the body was read: aiohttp keeps it
        self.refused.append((channel, refusal.status))
        self.stamps.append(arrived)
        self.calls.append(Call("chat.postMessage", args, {"ok": False}))
        if refusal.status == 429:
            retry = refusal.retry_after or 1
            self.not_before[channel] = time.time() + retry
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(retry)})
        return web.Response(status=refusal.status, text="upstream trouble")

    def delivered(self) -> dict[str, list[str]]:
        """The texts posted successfully, by channel."""
        found: dict[str, list[str]] = {}
        for call in self.calls:
            if call.method == "chat.postMessage" and call.result.get("ok"):
                found.setdefault(str(call.args["channel"]), []).append(
                    str(call.args.get("text", "")))
        return found

    def answers(self) -> dict[str, str]:
        """What was said through each `response_url` (by its id)."""
        return {str(c.args["id"]): str(c.args.get("text", "")) for c in self.calls
                if c.method == "response_url"}


# The process ---------------------------------------------------------------------------


@dataclass
class Subdesk:
    """One `subdesk run` process with the environment it was given, its log in a file."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    http: ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "subdesk.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SUBDESK_", "SLACK_", "MATRIX_"))}
        base.update(SUBDESK_HTTP_PORT=str(self.port), SUBDESK_API_TOKEN=API_TOKEN,
                    SUBDESK_LOG_LEVEL="INFO", SUBDESK_DATA_DIR=str(self.workdir / "data"),
                    SUBDESK_OUTBOX_POLL_INTERVAL="0.1",
                    SUBDESK_SLACK_WORKERS="0",  # the faults are the outbox's; one process
                    **self.env)
        return base

    async def cli(self, *args: str) -> str:
        """A one-shot `subdesk` command with the same settings; its output."""
        proc = await asyncio.create_subprocess_exec(
            SUBDESK, *args, env=self._env(), cwd=self.workdir, stdin=subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, out.decode(errors="replace")
        return out.decode(errors="replace")

    async def start(self) -> None:
        self.http = self.http or ClientSession()
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                SUBDESK, "run", env=self._env(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise AssertionError(f"subdesk run exited at start:\n{self.log_text()[-3000:]}")
            try:
                async with self.http.get(f"{self.base}/healthz") as response:
                    if response.status == 200:
                        return
            except (ClientError, OSError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"subdesk run never answered /healthz:\n{self.log_text()[-3000:]}")

    async def stop(self) -> None:
        """SIGTERM, as a service manager stops it; it must exit cleanly and soon."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError("subdesk run did not stop within 30 s of SIGTERM") from None
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def ready(self) -> tuple[int, dict[str, Any]]:
        assert self.http is not None
        async with self.http.get(f"{self.base}/readyz") as response:
            return response.status, await response.json()

    async def post(self, path: str, document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self.http is not None
        async with self.http.post(f"{self.base}{path}", json=document,
                                  headers={"Authorization": f"Bearer {API_TOKEN}"}) as response:
            return response.status, await response.json()

    def slack(self, fake: FakeSlack) -> SlackClient:
        assert self.http is not None
        return SlackClient(f"{self.base}/slack/events", fake, self.http)


def slack_env(fake: FakeSlack, **more: str) -> dict[str, str]:
    """Settings for a process that serves Slack against `fake`."""
    return {"SLACK_BOT_TOKEN": fake.token, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.url, **more}


def orders(count: int, *, prefix: str = "org", slack: bool = False,
           email_domain: str = "customer.test", channels: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    """`count` organizations, each with one Main Contact: linked on Slack (`TEAM:U…`) when
    `slack`, else reached by email; `channels` as every organization's alert channels."""
    organizations = []
    for n in range(1, count + 1):
        person: dict[str, str] = {"role": "main", "name": f"Main {prefix} {n}",
                                  "email": f"main{n}@{prefix}{n}.{email_domain}"}
        if slack:
            person["slack"] = f"{TEAM}:U0{prefix.upper()}{n:04d}"
        organizations.append({
            "key": f"{prefix}{n}", "name": f"{prefix.title()} {n}", "program": "customer",
            "level": "standard", "region": "europe", "timezone": "Europe/Madrid",
            "subscription": {"starts_on": "2026-01-01", "ends_on": "2099-12-31"},
            "contacts": [person], "alert_channels": list(channels)})
    return {"organizations": organizations}


def alerts(org: str, count: int, *, tag: str) -> dict[str, Any]:
    """An Alertmanager notification (version 4) firing `count` alerts routed to `org`."""
    return {"version": "4", "status": "firing", "receiver": "subdesk", "groupKey": tag,
            "alerts": [{"status": "firing", "fingerprint": f"{tag}{n:04d}",
                        "labels": {"alertname": f"{tag} alert {n:03d}", "org": org,
                                   "severity": "warning"},
                        "annotations": {"summary": f"{tag} alert {n:03d}"},
                        "startsAt": "2026-11-25T10:00:00Z"} for n in range(1, count + 1)]}


def unavailable(text: str) -> bool:
    """Whether `text` is the core's "temporarily unavailable" (as a platform shows it)."""
    return UNAVAILABLE in text


async def outbox_statuses(url: str, platform: str | None = None) -> dict[str, int]:
    """How many outbox messages (of `platform`, else all) are in each status, in the
    PostgreSQL database `url`."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM outbox WHERE $1::text IS "
                                "NULL OR platform = $1 GROUP BY status", platform)
    finally:
        await conn.close()
    return {str(r["status"]): int(r["n"]) for r in rows}


# Matrix ----------------------------------------------------------------------------------

_txn = itertools.count(1)


class RoomReader:
    """A person reading a room (and typing in it) over the plain client-server API."""

    def __init__(self, server: Synapse, token: str, room: str) -> None:
        self.base = f"{server.url}/_matrix/client/v3/rooms/{quote(room)}"
        self.headers = {"Authorization": f"Bearer {token}"}

    async def messages(self, http: ClientSession) -> list[dict[str, Any]]:
        """Every message of the room, oldest first."""
        found: list[dict[str, Any]] = []
        params = {"dir": "b", "limit": "1000"}
        while True:
            async with http.get(f"{self.base}/messages", params=params,
                                headers=self.headers) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            found += [e for e in page.get("chunk", []) if e.get("type") == "m.room.message"]
            if not page.get("end") or not page.get("chunk"):
                return list(reversed(found))
            params["from"] = page["end"]

    async def say(self, http: ClientSession, text: str) -> str:
        url = f"{self.base}/send/m.room.message/fault{next(_txn)}"
        async with http.put(url, json={"msgtype": "m.text", "body": text},
                            headers=self.headers) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["event_id"])

    async def answers_to(self, http: ClientSession, sender: str, asked: str) -> list[str]:
        """The bodies of `sender`'s replies to the event `asked`."""
        return [str(e["content"].get("body", "")) for e in await self.messages(http)
                if e["sender"] == sender and e["content"].get("m.relates_to", {}).get(
                    "m.in_reply_to", {}).get("event_id") == asked]


async def room_with_bot(synapse: Synapse, person: Account, bot: Account, root: Path
                        ) -> tuple[str, str]:
    """A room `person` made and the bot joined (it accepts invites); their access token."""
    someone = await Person(synapse, person, root / person.localpart).start()
    try:
        room = await someone.room(bot.user_id, name="alerts")
        assert someone.client is not None
        return room, str(someone.client.access_token)
    finally:
        await someone.stop()


def matrix_env(synapse: Synapse, bot: Account, **more: str) -> dict[str, str]:
    """Settings for a process that serves Matrix as `bot` on `synapse`."""
    return {"MATRIX_HOMESERVER": synapse.url, "MATRIX_USER_ID": bot.user_id,
            "MATRIX_PASSWORD": bot.password, **more}


# PostgreSQL ------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


@dataclass
class Cluster:
    """A private PostgreSQL cluster on a free port, run as the `postgres` user when this
    process is root (PostgreSQL refuses to run as root), trust authentication on loopback."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def missing() -> str | None:
        if _pg_bin() is None:
            return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root without runuser to start PostgreSQL as another user"
        return None

    def _run(self, *args: str) -> None:
        binary = _pg_bin()
        assert binary is not None
        command = [str(binary / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-1000:]}{done.stderr[-1000:]}")

    def init(self) -> None:
        data = self.directory / "data"
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.directory} -c fsync=off")
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-l",
                  str(self.directory / "server.log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, as in a restart for maintenance."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "-t",
                  "60", "stop")

    def remove(self) -> None:
        with_pid = self.directory / "data" / "postmaster.pid"
        if with_pid.exists():
            with suppress(RuntimeError):
                self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def private_directory() -> Path:
    """A directory the `postgres` user can reach (pytest's own tmp is root-only)."""
    return Path(tempfile.mkdtemp(prefix="subdesk-faults-pg-"))

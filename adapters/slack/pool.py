"""The worker processes that run acknowledged Slack requests (`SUBDESK_SLACK_WORKERS`).

The process that answers Slack only verifies, dispatches through bolt and acknowledges; the
work a request asks for (the core, the database, the answer through `response_url`) would
otherwise run in its event loop between two requests and hold the next ack back. So it
forwards the verified request to a worker process instead (`adapters.slack.worker`), which
dispatches it again through its own bolt app, where the same listeners run the work.

Front and worker talk over the worker's stdin and stdout: frames of a 4-byte big-endian
length and a JSON object. A request goes in as `{"id", "mode", "body", "headers"}`; `{"done":
id}` comes back once its work has ended. A request is counted as held by its worker until
then, so the front knows how many it has taken and not finished (its backlog), which worker
is least loaded, and what a worker that died took with it. Closing a worker's stdin tells it
to finish what it holds and exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MODULE = "adapters.slack.worker"
FRAME = struct.Struct(">I")
QUICK_END = 1.0  # a worker that ended sooner than this after its start did not start
RESTART_AFTER = 1.0  # its successor waits this long, doubling while they keep ending as
RESTART_MAX = 30.0  # soon, up to this


_JSON = json.JSONEncoder(separators=(",", ":"))  # made once: json.dumps makes one per call


def frame(message: dict[str, Any]) -> bytes:
    """One message on the pipe: its length, then its JSON."""
    data = _JSON.encode(message).encode()
    return FRAME.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message on the pipe; None once it is closed."""
    try:
        size = FRAME.unpack(await reader.readexactly(FRAME.size))[0]
        message: dict[str, Any] = json.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None
    return message


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)
    held: set[int] = field(default_factory=set)  # requests forwarded, not reported done
    waiting: list[bytes] = field(default_factory=list)  # frames for the next write

    def flush(self) -> None:
        """Write the frames forwarded since the last write in one go (one system call for
        the requests acknowledged in one turn of the event loop, not one each)."""
        if self.waiting and self.process.stdin is not None and self.process.returncode is None:
            self.process.stdin.write(b"".join(self.waiting))
        self.waiting.clear()


class Pool:
    """`size` worker processes, each started again when it dies; `done` is called whenever
    one reports a request finished (the outbox has cards to send)."""

    def __init__(self, size: int, done: Callable[[], None]) -> None:
        self.size = size
        self.done = done
        self._workers: list[_Worker] = []
        self._listeners: set[asyncio.Task[None]] = set()
        self._sent = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._stopping = False
        self._quick_ends = 0  # workers in a row that ended within QUICK_END of starting

    async def start(self) -> None:
        for _ in range(self.size):
            await self._start_one()

    async def _start_one(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", MODULE, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        worker = _Worker(process)
        self._workers.append(worker)
        listener = asyncio.create_task(self._listen(worker), name=f"slack-pool-{process.pid}")
        self._listeners.add(listener)
        listener.add_done_callback(self._listeners.discard)

    @property
    def running(self) -> bool:
        """Whether a worker is there to take a request."""
        return bool(self._workers) and not self._stopping

    @property
    def problem(self) -> str | None:
        """Why no request can be taken now (for readiness), or None."""
        if self._workers or self._stopping:
            return None
        return "no Slack worker process is running (one is being started)"

    @property
    def held(self) -> int:
        """Requests forwarded and not finished yet, over every worker."""
        return sum(len(worker.held) for worker in self._workers)

    def forward(self, request: dict[str, Any]) -> None:
        """Hand a request to the worker holding the fewest (`running` checked before)."""
        worker = min(self._workers, key=lambda w: len(w.held))
        self._sent += 1
        worker.held.add(self._sent)
        self._settled.clear()
        if not worker.waiting:
            asyncio.get_running_loop().call_soon(worker.flush)
        worker.waiting.append(frame({"id": self._sent, **request}))

    async def settle(self) -> None:
        """Until every request forwarded has been reported done (or lost with its worker)."""
        await self._settled.wait()

    def _check_settled(self) -> None:
        if not self.held:
            self._settled.set()

    async def _listen(self, worker: _Worker) -> None:
        """A worker's reports, until its pipe closes; then, unless stopping, its successor."""
        assert worker.process.stdout is not None
        while (message := await read_frame(worker.process.stdout)) is not None:
            worker.held.discard(message["done"])
            self._check_settled()
            self.done()
        code = await worker.process.wait()
        if self._stopping:
            return  # `stop` counts what is left
        self._workers.remove(worker)
        quick = time.monotonic() - worker.started < QUICK_END
        self._quick_ends = self._quick_ends + 1 if quick else 0
        # Not a restart loop for a worker that cannot start (database down, say): its
        # successors wait longer and longer, and a worker that lived resets the wait.
        wait = min(RESTART_MAX, RESTART_AFTER * 2 ** (self._quick_ends - 1)) if quick else 0.0
        log.error("Slack worker process %s ended (exit %s) holding %s acknowledged requests, "
                  "lost; starting another%s", worker.process.pid, code, len(worker.held),
                  f" in {wait:g} s" if wait else "")
        self._check_settled()
        if wait:
            await asyncio.sleep(wait)
        if not self._stopping:
            await self._start_one()

    async def stop(self, seconds: float) -> None:
        """Take nothing more, let the workers finish what they hold (up to `seconds`), then
        end them; what was not finished by then is logged."""
        self._stopping = True
        for worker in self._workers:
            worker.flush()
            assert worker.process.stdin is not None
            worker.process.stdin.close()
        ending = [asyncio.create_task(w.process.wait()) for w in self._workers]
        if ending:
            await asyncio.wait(ending, timeout=seconds)
        for worker in self._workers:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        await asyncio.gather(*self._listeners, return_exceptions=True)
        if left := self.held:
            log.error("Slack: %s acknowledged requests not answered at shutdown", left)
        for worker in self._workers:
            worker.held.clear()
        self._workers.clear()
        self._check_settled()

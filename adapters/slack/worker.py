"""A worker process of the Slack plug-in: `python -m adapters.slack.worker`, started by
`subdesk run` (see `adapters.slack.pool`), never by hand.

It builds the application from the same settings (the environment it inherited: database,
core, services) with the Slack plug-in alone, in its worker role: no HTTP server, no
scheduler, no outbox dispatcher (the front delivers the cards the work queues). It reads
forwarded requests on stdin and reports each one done on stdout; anything else written to
stdout goes to stderr instead, so nothing can break the frames. It runs at a lower CPU
priority, so on a shared core the front's acks come first; SIGINT and SIGTERM are the
front's to act on (a Ctrl-C reaches the whole process group): the worker ends when its
stdin closes, once it has finished what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from adapters.slack.app import SlackAdapter, setup_of
from adapters.slack.pool import frame, read_frame
from bot.wiring.config import Settings
from bot.wiring.logs import configure
from bot.wiring.runtime import App, build_app

log = logging.getLogger(__name__)

# The work yields the CPU to the acknowledgements wherever the two share a core (on a
# CPU of its own a worker loses nothing by it): Linux's idle scheduling class, where a
# waking front takes the core back at once (a niceness alone lets the worker finish its
# time slice first, up to a few milliseconds on every ack), and the lowest niceness too,
# which is what counts where that class is not available.
NICENESS = 19


def yield_to_the_front() -> None:
    """Lower this process's CPU priority below the front's, as far as the system allows."""
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    with contextlib.suppress(OSError, AttributeError):  # Linux only
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reports = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, reports)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    settings = Settings()
    configure(settings)
    setup = setup_of(settings)
    assert setup is not None, "started by the Slack plug-in, which is configured"

    def slack(_: Settings, app: App) -> SlackAdapter:
        return SlackAdapter(app, setup, role="worker")

    app = await build_app(settings, factories={"slack": slack})
    try:
        adapter = app.adapters["slack"]
        assert isinstance(adapter, SlackAdapter)
        try:
            await adapter.replay(lambda: read_frame(reader),
                                 lambda done: writer.write(frame({"done": done})))
        finally:
            await adapter.stop()
    finally:
        await app.close()


def main() -> None:
    yield_to_the_front()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        asyncio.run(serve())
    except Exception as exc:  # the database out of reach, say: the front starts another
        log.error("Slack worker process ended: %s", type(exc).__name__,
                  exc_info=logging.getLogger().isEnabledFor(logging.DEBUG))
        sys.exit(1)


if __name__ == "__main__":
    main()

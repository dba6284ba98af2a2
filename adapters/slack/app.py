"""The Slack plug-in: slash commands, buttons, modals and thread replies in through
slack-bolt, on the one HTTP server (`POST /slack/events`) or over Socket Mode when
`SLACK_APP_TOKEN` is set; outbox messages out through the Web API. One workspace's bot token
(`SLACK_BOT_TOKEN`), or any number of workspaces installed through OAuth
(`SLACK_CLIENT_ID` / `SLACK_CLIENT_SECRET`, see `installs`).

Every request is verified against the signing secret and acknowledged at once: the
listeners run before the response (`process_before_response`), acknowledge, and hand the
work on (`_spawn`), so no ack waits for the database or for bolt's ack poll. Where the work
runs is the adapter's role:

- `front` (`subdesk run` with `SUBDESK_SLACK_WORKERS` ≥ 1): the verified request is
  forwarded to a worker process (`pool`), so the work acknowledged never runs in the event
  loop that acknowledges the next requests;
- `worker` (`adapters.slack.worker`): the forwarded request is dispatched again through
  this process's own bolt app, without verification (it comes over a local pipe); the same
  listeners run, their ack goes nowhere, and the work runs here;
- `local` (`SUBDESK_SLACK_WORKERS=0`): the work runs in this process, as a worker does.

Work that runs in a process waits in a queue that a few tasks take it from. The answer
follows through the command's `response_url`, a modal, or an ephemeral message.

When the backlog is full (`BACKLOG` requests acknowledged and not finished), nothing more is
taken: a slash command is answered at once that it was not run and should be sent again in
a minute, and any other request gets 503 — Slack sends an event again later (its retry is
recognised), and shows a button press or a modal submission as failed, the modal kept open
to submit again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from aiohttp import ClientError, web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters import downloads
from adapters.http.bodies import read_within
from adapters.slack import files, inbound
from adapters.slack.installs import (
    KEY_HINT,
    KEY_SETTING,
    SealedInstallationStore,
    install_routes,
    oauth_parts,
)
from adapters.slack.pool import Pool
from adapters.slack.render import ACTION_PREFIX, FORM_CALLBACK, form_view, home_view, render
from adapters.slack.socket import SocketMode
from adapters.slack.transport import (
    InstalledWorkspaces,
    OneWorkspace,
    SlackTransport,
    delivery_client,
)
from bot.commands import ParseError, form_named, parse_values
from bot.commands.grammar import ROOTS
from bot.commands.invocation import IncomingFile, Invocation, Sender
from bot.delivery.ports import Route, Transport
from bot.domain import MessageRef
from bot.presentation.messages import (
    Actions,
    Button,
    Heading,
    Message,
    Outcome,
    Paragraph,
    Reply,
    resolve_commands,
)
from bot.services.base import ServiceError
from bot.wiring import logs
from bot.wiring.config import Settings
from bot.wiring.manifest import BOT_SCOPES, MESSAGE_SHORTCUT
from bot.wiring.runtime import App

log = logging.getLogger(__name__)


class _NoEnvTokenNotice(logging.Filter):
    """bolt reads `SLACK_BOT_TOKEN` from the environment on its own, and warns at every start
    that the client it is given wins over it. Here that is the design (the client's token
    comes from `authorize`, per request), so the notice says nothing to an operator."""

    notice = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.notice


_BOLT_LOG = logging.getLogger(f"{__name__}.bolt")  # bolt's own lines
_BOLT_LOG.addFilter(_NoEnvTokenNotice())

EVENTS_PATH = "/slack/events"
EMAIL_CACHE_SECONDS = 300.0
TEAMS_CACHED = 10_000  # users whose workspace is remembered
EVENTS_REMEMBERED = 4096  # reaction event ids, to tell of a retried one only once
WORKERS = 4  # acknowledged requests worked on at once in a process that runs them
BACKLOG = 5000  # acknowledged requests not finished; beyond, requests are refused
STOP_SECONDS = 5.0  # how long a stop waits for the acknowledged requests to finish
# Bytes a request to /slack/events may carry: Slack's largest payloads (a modal's values, a
# message event with blocks) are some tens of kilobytes.
MAX_BODY = 1024 * 1024
REFUSALS_LOGGED_EVERY = 60.0  # seconds: refused requests are counted in one line at most
BUSY = ("Subdesk is too busy to take this right now: nothing was done. "
        "Send it again in a minute.")
RECHECK_SECONDS = 30.0  # while Slack has not accepted the token, ask again this often
_COMMANDS = re.compile("^/(" + "|".join(re.escape(r) for r in sorted(ROOTS)) + ")$")

Role = Literal["local", "front", "worker"]
_Work = Callable[..., Coroutine[Any, Any, None]]
# The forwarded request a worker is replaying (it reports it done when its work has ended).
_REPLAYED: contextvars.ContextVar[int] = contextvars.ContextVar("slack_replayed")


@dataclass(frozen=True)
class Setup:
    """How this deployment meets Slack: which tokens, and HTTP or Socket Mode."""

    api_url: str
    signing_secret: str | None = None
    bot_token: str | None = None  # one workspace
    app_token: str | None = None  # Socket Mode
    client_id: str | None = None  # OAuth installs: any number of workspaces
    client_secret: str | None = None
    token_key: str | None = None  # Fernet keys sealing the installs' tokens


class SlackAdapter:
    """Slack through one bolt app: its requests come over HTTP or Socket Mode, and are
    authorized with one bot token or with the token of the workspace's installation."""

    chat = True

    def __init__(self, app: App, setup: Setup, *, role: Role = "local") -> None:
        self.app = app
        self.setup = setup
        self.role = role
        self.client: AsyncWebClient | None = None  # the one bot token's, if that is the mode
        self.installs: SealedInstallationStore | None = None
        self._auth: AuthorizeResult | None = None
        self._emails: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._teams: dict[str, str] = {}
        self._seen: dict[str, None] = {}
        self.backlog = BACKLOG
        # The work, with the replayed request it is for (a worker's), and the tasks doing it.
        self._queue: asyncio.Queue[tuple[Coroutine[Any, Any, None], int | None]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._queued = 0
        self._report: Callable[[int], None] | None = None  # a worker's "request done"
        self.pool = (Pool(app.settings.slack_workers, app.dispatcher.poke)
                     if role == "front" else None)
        self._refused = 0
        self._stopped = asyncio.Event()
        # Readiness: why the last `auth.test` failed, and the background re-check of it.
        self._auth_problem: str | None = "Slack's auth.test has not run yet"
        self._checked_at = -RECHECK_SECONDS
        self._recheck: asyncio.Task[None] | None = None
        self.recheck_seconds = RECHECK_SECONDS

        oauth: AsyncOAuthSettings | None = None
        authorize: Any
        if setup.client_id is not None and setup.client_secret is not None:
            assert setup.token_key is not None
            parts = oauth_parts(setup.client_id, setup.client_secret, setup.token_key,
                                engine=app.db.engine, api_url=setup.api_url,
                                scopes=BOT_SCOPES)
            self.installs, oauth, authorize = parts.store, parts.settings, parts.authorize
            self.transport = SlackTransport(InstalledWorkspaces(self.installs, setup.api_url))
        else:
            self.client = delivery_client(setup.bot_token, setup.api_url)
            self._one = OneWorkspace(self.client)
            self.transport = SlackTransport(self._one)

            async def one_token() -> AuthorizeResult:
                return await self._authorize()

            authorize = one_token

        self.bolt = AsyncApp(
            # bolt's own client takes the token from `authorize`, per request
            client=AsyncWebClient(base_url=setup.api_url),
            signing_secret=setup.signing_secret or "",
            # a worker's requests were verified by the front, and come over a local pipe
            request_verification_enabled=setup.signing_secret is not None and role != "worker",
            authorize=authorize,
            oauth_settings=oauth,
            installation_store=self.installs,
            installation_store_bot_only=True if self.installs is not None else None,
            process_before_response=True,
            raise_error_for_unhandled_request=False,
            # bolt composes a dozen debug lines per request unless the level set on its
            # logger says otherwise (see `logs.pinned`)
            logger=logs.pinned(_BOLT_LOG.name, log),
        )
        # Checks requests over HTTP before bolt reads them (see `handle`); a worker's come
        # from the front, checked there.
        self.verifier = (SignatureVerifier(setup.signing_secret)
                         if setup.signing_secret is not None and role != "worker" else None)
        self.unread = 0  # requests refused unread since the last line said so
        self._unread_logged = -REFUSALS_LOGGED_EVERY
        self.socket = (SocketMode(self.bolt, setup.app_token, setup.api_url)
                       if setup.app_token is not None and role != "worker" else None)
        self.bolt.command(_COMMANDS)(self._command)
        self.bolt.action(re.compile("^" + re.escape(ACTION_PREFIX)))(self._action)
        self.bolt.view_submission(FORM_CALLBACK)(self._submission)
        self.bolt.shortcut(MESSAGE_SHORTCUT)(self._shortcut)
        self.bolt.event("message")(self._message)
        self.bolt.event("reaction_added")(self._reaction)
        self.bolt.event("app_home_opened")(self._home)
        if self.installs is not None:
            # `app_uninstalled` and `tokens_revoked` remove the installation or its tokens
            self.bolt.enable_token_revocation_listeners()
        self.bolt.event(re.compile(".*"))(self._ignore)

    # The adapter contract ---------------------------------------------------------------

    @property
    def transports(self) -> Mapping[str, Transport]:
        return {"slack": self.transport}

    @property
    def routes(self) -> Sequence[Route]:
        """`POST /slack/events` unless Socket Mode brings the requests; the OAuth install
        pages when workspaces install through OAuth."""
        found = [] if self.socket is not None else [Route("POST", EVENTS_PATH, self.handle)]
        if self.bolt.oauth_flow is not None:
            found += install_routes(self.bolt.oauth_flow)
        return found

    async def start(self) -> None:
        """Check the bot token once (`auth.test`) and learn its workspace, or seal again the
        installs' tokens sealed under an older key; check the app token (Socket Mode); start
        the worker processes (the front). A token Slack refuses stops the process; Slack out
        of reach does not (it is asked again on the first request, and the outbox waits)."""
        if self.installs is not None:
            if resealed := await self.installs.reseal():
                log.info("Slack tokens of %s installations sealed under the first key of %s",
                         resealed, KEY_SETTING)
        else:
            try:
                await self._authorize()
            except SlackApiError as exc:
                raise ServiceError(f"Slack refused SLACK_BOT_TOKEN: "
                                   f"{exc.response.get('error', 'error')}") from None
            except (TimeoutError, ClientError, OSError) as exc:
                log.warning("Slack not reachable at SLACK_API_URL: %s", type(exc).__name__)
        if self.socket is not None:
            await self.socket.start()
        if self.pool is not None:
            await self.pool.start()

    async def run(self) -> None:
        """Serve until stopped: over Socket Mode, connected (and reconnected) for as long;
        otherwise Slack's requests arrive on the HTTP server, so the task only keeps the
        process up (a chat adapter's task ending ends it)."""
        if self.socket is not None:
            await self.socket.connect()
        await self._stopped.wait()

    async def readiness(self) -> str | None:
        """Ready once `auth.test` has succeeded (at start, or on a re-check) and Slack has
        not refused the token or its scopes on a delivery since. Cheap: while not ready,
        `auth.test` is asked again in the background at most every `recheck_seconds`. With
        OAuth installs each workspace's token stands alone: one refused is not the adapter's
        problem (its messages wait), so only the process-wide parts count. With worker
        processes, not ready while none is running (requests get BUSY meanwhile)."""
        if self.pool is not None and (problem := self.pool.problem) is not None:
            return problem
        if self.installs is not None:
            return None
        if self._auth is None:
            self._recheck_later()
            return self._auth_problem
        return self.transport.refused

    def _recheck_later(self) -> None:
        if self._recheck is not None and not self._recheck.done():
            return
        if time.monotonic() < self._checked_at + self.recheck_seconds:
            return
        self._checked_at = time.monotonic()

        async def recheck() -> None:
            with contextlib.suppress(SlackApiError, TimeoutError, ClientError, OSError):
                await self._authorize()  # the outcome is kept in `_auth` / `_auth_problem`

        self._recheck = asyncio.create_task(recheck())

    async def stop(self) -> None:
        """Take no more requests (`full` from now on), let the ones acknowledged finish
        (up to `STOP_SECONDS`), then end what works on them."""
        self._stopped.set()
        if self._recheck is not None:
            self._recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._recheck
        if self.socket is not None:
            await self.socket.stop()  # no new requests; the ones acknowledged finish
        if self.pool is not None:
            await self.pool.stop(STOP_SECONDS)
        await self.settle(STOP_SECONDS)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()
        if self._queue is not None and (left := self._queue.qsize()):
            log.error("Slack: %s acknowledged requests not answered at shutdown", left)
            while not self._queue.empty():
                self._queue.get_nowait()[0].close()
                self._queue.task_done()
        await self.transport.close()

    async def settle(self, seconds: float | None = 10.0) -> None:
        """Wait (up to `seconds`) until every acknowledged request has been answered."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                if self.pool is not None:
                    await self.pool.settle()
                if self._queue is not None:
                    await self._queue.join()

    # HTTP ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /slack/events`: verify, dispatch to a listener, answer bolt's response.

        The signature is checked on the raw bytes before anything reads them: a request
        not signed by Slack costs one HMAC, never a parse, and nothing of it is logged."""
        raw = await read_within(request, MAX_BODY)
        if raw is None:
            return _refusal(413, "too large")
        try:
            body = raw.decode()
        except UnicodeDecodeError:
            return self._unread(400, "not UTF-8")
        if self.verifier is not None:
            try:
                signed = self.verifier.is_valid(
                    body, request.headers.get("X-Slack-Request-Timestamp"),
                    request.headers.get("X-Slack-Signature"))
            except ValueError:  # a timestamp that is not a number
                signed = False
            if not signed:
                return self._unread(401, "bad or stale signature")
        try:
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string,
                                            headers=request.headers)  # type: ignore[arg-type]
        except (ValueError, TypeError, AttributeError, RecursionError):
            return self._unread(400, "not a Slack payload")
        response = await self.bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    def _unread(self, status: int, why: str) -> web.Response:
        """A request refused unread: counted, and logged in one line a minute at most."""
        self.unread += 1
        now = time.monotonic()
        if now - self._unread_logged >= REFUSALS_LOGGED_EVERY:
            log.warning("Slack request refused (%s); %s refused since the last such line",
                        why, self.unread)
            self._unread_logged, self.unread = now, 0
        return _refusal(status, why)

    # Worker processes ------------------------------------------------------------------

    async def replay(self, receive: Callable[[], Awaitable[dict[str, Any] | None]],
                     report: Callable[[int], None]) -> None:
        """A worker's life: each request `receive` gives is dispatched again through bolt,
        its work queued here; `report` is told its id once the work has ended (at once
        when a listener had none to do). Returns when `receive` has no more, once the work
        queued has been done."""
        self._report = report
        while (message := await receive()) is not None:
            token, queued = _REPLAYED.set(message["id"]), self._queued
            try:
                request = AsyncBoltRequest(body=message["body"], headers=message["headers"],
                                           mode=message["mode"])
                await self.bolt.async_dispatch(request)
            finally:
                _REPLAYED.reset(token)
            if self._queued == queued:
                report(message["id"])
        await self.settle(None)

    async def _authorize(self) -> AuthorizeResult:
        """The one bot token's authorization, asked of Slack (`auth.test`) once."""
        if self._auth is None:
            assert self.client is not None
            self._checked_at = time.monotonic()
            try:
                found = await self.client.auth_test()
            except SlackApiError as exc:
                self._auth_problem = (f"Slack refused SLACK_BOT_TOKEN: "
                                      f"{exc.response.get('error', 'error')}")
                raise
            except (TimeoutError, ClientError, OSError) as exc:
                self._auth_problem = f"Slack not reachable at SLACK_API_URL ({type(exc).__name__})"
                raise
            self._auth = AuthorizeResult.from_auth_test_response(
                auth_test_response=found, bot_token=self.client.token
            )
            self._one.team_id = self._auth.team_id
            self._auth_problem = None
        return self._auth

    @property
    def full(self) -> bool:
        """Whether nothing more is taken: the backlog of acknowledged requests is full, or
        (the front) stopping or without a worker process for the moment. A worker takes
        whatever the front forwards."""
        if self.pool is not None:
            return (self._stopped.is_set() or not self.pool.running
                    or self.pool.held >= self.backlog)
        if self.role == "worker":
            return False
        return self._queue is not None and self._queue.qsize() >= self.backlog

    def _spawn(self, request: AsyncBoltRequest, work: _Work, *args: Any, **kwargs: Any
               ) -> None:
        """Have `work(*args, **kwargs)` run (the listeners check `full` before they ack):
        the front forwards `request` to a worker process, where the same listener calls
        this again; otherwise it is queued for this process's tasks. The coroutine is made
        only where it runs."""
        if self.pool is not None:
            self.pool.forward({
                "mode": request.mode, "headers": _forwarded(request.headers),
                "body": request.raw_body if request.mode == "http" else request.body})
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(), name=f"slack-worker-{n}")
                             for n in range(WORKERS)]
        self._queue.put_nowait((work(*args, **kwargs), _REPLAYED.get(None)))
        self._queued += 1

    async def _work(self) -> None:
        """One task: acknowledged requests, one at a time, in the order they came. A few
        tasks, not one each, so the work waiting never competes with what runs."""
        assert self._queue is not None
        while True:
            work, replayed = await self._queue.get()
            try:
                await work
            except Exception as error:
                log.error("Slack request not answered: %s", type(error).__name__,
                          exc_info=error)
            finally:
                self._queue.task_done()
                if replayed is not None and self._report is not None:
                    self._report(replayed)

    def _refuse(self, kind: str) -> BoltResponse:
        """The answer to a request that finds the backlog full (503: Slack sends an event
        again later, and shows a press or a submission as failed)."""
        self._refused += 1
        if self._refused == 1 or self._refused % 100 == 0:
            log.warning("Slack: %s refused, %s acknowledged requests waiting (%s refused "
                        "so far)", kind, self.backlog, self._refused)
        return BoltResponse(status=503, body=BUSY)

    # Listeners: acknowledge, then work -------------------------------------------------

    async def _command(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                       request: AsyncBoltRequest) -> None:
        if self.full:
            self._refuse("a slash command")
            await ack(text=BUSY, response_type="ephemeral")
            return
        await ack()
        self._spawn(request, self._run_command, client, body)

    async def _action(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                      client: AsyncWebClient, request: AsyncBoltRequest) -> BoltResponse | None:
        press = inbound.pressed(action)
        if press is not None and self.full:
            return self._refuse("a button press")
        await ack()
        if press is None:
            return None
        channel = (body.get("channel") or {}).get("id")
        if press.form and (form := form_named(press.command, press.args)) is not None:
            self._spawn(request, self._show, client, body["trigger_id"],
                        form_view(form, channel=channel))
            return None
        self._spawn(request, self._run, client, inbound.action_invocation(body, press),
                    response_url=body.get("response_url"), channel=channel)
        return None

    async def _submission(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                          client: AsyncWebClient, request: AsyncBoltRequest
                          ) -> BoltResponse | None:
        form = inbound.submitted(view)
        if form is None:
            await ack()
            return None
        problem = _problem(form)
        inputs = [b["block_id"] for b in view.get("blocks", ()) if b.get("type") == "input"]
        if problem is not None and inputs:
            field = problem[0] if problem[0] is not None and problem[0] in inputs else inputs[0]
            await ack(response_action="errors", errors={field: problem[1][:150]})
            return None
        if self.full:
            return self._refuse("a form")
        await ack()
        invocation = inbound.submission_invocation(body, form)
        if form.files:
            self._spawn(request, self._run_with_files, client, invocation, form.files,
                        channel=form.channel)
            return None
        self._spawn(request, self._run, client, invocation, channel=form.channel)
        return None

    async def _shortcut(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient,
                        request: AsyncBoltRequest) -> BoltResponse | None:
        if body.get("type") == "message_action" and self.full:
            return self._refuse("a shortcut")
        await ack()
        if body.get("type") == "message_action":
            self._spawn(request, self._run_shortcut, client, body)
        return None

    async def _message(self, ack: AsyncAck, body: dict[str, Any], event: dict[str, Any],
                       client: AsyncWebClient, request: AsyncBoltRequest
                       ) -> BoltResponse | None:
        invocation = inbound.thread_reply(event, str(body.get("team_id", "")))
        if invocation is not None and self.full:
            return self._refuse("a message event")
        await ack()
        if invocation is not None:
            self._spawn(request, self._run_reply, client, invocation,
                        event.get("channel_type") == "im", files.shared(event.get("files")))
        return None

    async def _reaction(self, ack: AsyncAck, body: dict[str, Any], event: dict[str, Any],
                        client: AsyncWebClient, request: AsyncBoltRequest
                        ) -> BoltResponse | None:
        found = inbound.reacted(event) if event.get("user") else None
        if found is not None and self.full:
            return self._refuse("a reaction event")
        await ack()
        if found is not None:
            if not self._first_delivery(str(body.get("event_id", ""))):
                return None  # Slack's retry: the ticket is the core's to dedupe, the word ours
            team = str(body.get("team_id", ""))
            self._spawn(request, self._run_reaction, client, str(event["user"]),
                        event.get("user_team"), *found, team)
        return None

    async def _home(self, ack: AsyncAck, body: dict[str, Any], event: dict[str, Any],
                    client: AsyncWebClient, request: AsyncBoltRequest
                    ) -> BoltResponse | None:
        opened = event.get("tab") == "home" and isinstance(event.get("user"), str)
        if opened and self.full:
            return self._refuse("an App Home event")
        await ack()
        if opened:
            team = str(event.get("user_team") or body.get("team_id", ""))
            self._spawn(request, self._publish_home, client,
                        inbound.sender(team, str(event["user"])))
        return None

    async def _publish_home(self, client: AsyncWebClient, viewer: Sender) -> None:
        """App Home: the viewer's open tickets as `/ticket list` shows them (or the core's
        word on why not, say to link first), with a button that opens the new-ticket form."""
        reply = await self.app.core.handle(Invocation(viewer, text="/ticket list"))
        shown = reply.message
        blocks = (shown.blocks or (Paragraph(shown.text),)) + (Actions((
            Button("Open a ticket", "ticket.new", style="primary", form=True),)),)
        home = Message(shown.text, blocks=(Heading("Subdesk"), *blocks), tone=shown.tone)
        try:
            await client.views_publish(user_id=viewer.user_id, view=home_view(home))
        except SlackApiError as exc:
            log.warning("App Home not published: %s", exc.response.get("error", "error"))

    def _first_delivery(self, event_id: str) -> bool:
        """Whether this process sees a Slack event id for the first time (a few thousand
        remembered), so a retried reaction does not tell the same person twice."""
        if not event_id:
            return True
        if event_id in self._seen:
            return False
        if len(self._seen) >= EVENTS_REMEMBERED:
            del self._seen[next(iter(self._seen))]
        self._seen[event_id] = None
        return True

    async def _ignore(self, ack: AsyncAck) -> None:
        await ack()

    # Work ------------------------------------------------------------------------------

    async def _run_command(self, client: AsyncWebClient, body: dict[str, Any]) -> None:
        text = f"{body['command']} {body.get('text') or ''}"
        email = None
        if inbound.wants_verified_email(inbound.unescape(text)):
            email = await self.verified_email(client, body["team_id"], body["user_id"])
        invocation = inbound.command_invocation(body, verified_email=email)
        reply = await self.app.core.handle(invocation)
        trigger = body.get("trigger_id")
        if (reply.outcome is Outcome.NEEDS_INPUT and reply.form is not None and trigger
                and await self._open(client, trigger, form_view(
                    reply.form, channel=body.get("channel_id")))):
            return
        await self._answer(client, reply, invocation, response_url=body.get("response_url"),
                           channel=body.get("channel_id"))

    async def _run(self, client: AsyncWebClient, invocation: Invocation, *,
                   response_url: str | None = None, channel: str | None = None) -> None:
        reply = await self.app.core.handle(invocation)
        await self._answer(client, reply, invocation, response_url=response_url,
                           channel=channel)

    async def _run_shortcut(self, client: AsyncWebClient, body: dict[str, Any]) -> None:
        """"Open a ticket from this message": the core answers `/ticket new` with the
        message as its description by asking for the subject (or refuses, say to someone
        not linked); the form opens with the message's files riding along."""
        channel = str((body.get("channel") or {}).get("id", ""))
        ts = str((body.get("message") or {}).get("ts") or body.get("message_ts") or "")
        permalink = await self._permalink(client, channel, ts)
        invocation = inbound.shortcut_invocation(body, permalink)
        reply = await self.app.core.handle(invocation)
        attach = self._simple_files(body.get("message") or {})
        if (reply.outcome is Outcome.NEEDS_INPUT and reply.form is not None
                and await self._open(client, body["trigger_id"], form_view(
                    reply.form, channel=channel, files=attach))):
            return
        await self._answer(client, reply, invocation, response_url=body.get("response_url"),
                           channel=channel)

    async def _run_reaction(self, client: AsyncWebClient, reactor: str, reactor_team: object,
                            channel: str, ts: str, team_id: str) -> None:
        """A `:ticket:` reaction on a message: a ticket for the message's author, if the one
        reacting is support staff or the author, and the author may open tickets (a linked
        technical contact: the core's check). The one reacting is told what happened."""
        message = await self._message_at(client, channel, ts)
        author = message.get("user") if message else None
        if message is None or not isinstance(author, str) or message.get("bot_id"):
            return
        reactor_team = (reactor_team if isinstance(reactor_team, str) and reactor_team
                        else await self.team_of(client, reactor, team_id))
        actor = await self.app.services.identity.actor(inbound.sender(reactor_team, reactor))
        if actor.staff is None and reactor != author:
            return
        author_team = (inbound.author_team(message, "")
                       or await self.team_of(client, author, team_id))
        permalink = await self._permalink(client, channel, ts)
        invocation = inbound.reaction_invocation(message, author_team, channel, permalink)
        shared = self._simple_files(message)
        try:
            invocation = replace(invocation, files=await self.download(client, shared))
        except (downloads.TooLarge, downloads.NotFetched) as exc:
            await self._tell(client, channel, reactor, Reply.error(exc.message()))
            return
        reply = await self.app.core.handle(invocation)
        self.app.dispatcher.poke()
        if reply.duplicate:
            told = Reply.text("A ticket was already opened from this message.")
        elif reply.ok:
            told = Reply(replace(reply.message, text="For the author of this message: "
                                 + reply.message.text))
        elif reply.outcome is Outcome.REFUSED:
            told = Reply.error("No ticket opened: the author of this message may not open "
                               "tickets (only a linked technical contact can).")
        else:
            told = Reply.error("No ticket opened: Subdesk cannot do it right now. "
                               "Try again in a few minutes.")
        await self._tell(client, channel, reactor, told)

    def _simple_files(self, message: Mapping[str, Any]) -> tuple[files.Shared, ...]:
        settings = self.app.settings
        return inbound.message_files(message, limit=settings.attachment_max_bytes,
                                     accepted=settings.attachment_types)

    async def _message_at(self, client: AsyncWebClient, channel: str, ts: str
                          ) -> dict[str, Any] | None:
        """One message of a conversation, by its ts (a thread reply, too)."""
        try:
            found = await client.conversations_history(channel=channel, latest=ts,
                                                            inclusive=True, limit=1)
            messages = [m for m in found.get("messages") or () if m.get("ts") == ts]
            if not messages:
                found = await client.conversations_replies(channel=channel, ts=ts,
                                                                inclusive=True, limit=1)
                messages = [m for m in found.get("messages") or () if m.get("ts") == ts]
        except SlackApiError as exc:
            log.info("Reacted message not read: %s", exc.response.get("error", "error"))
            return None
        return dict(messages[0]) if messages else None

    async def _permalink(self, client: AsyncWebClient, channel: str, ts: str) -> str | None:
        try:
            found = await client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.info("chat.getPermalink failed: %s", exc.response.get("error", "error"))
            return None
        link = found.get("permalink")
        return link if isinstance(link, str) else None

    async def team_of(self, client: AsyncWebClient, user_id: str, fallback: str) -> str:
        """The workspace a user belongs to, as `users.info` says (in a Slack Connect
        channel, a customer's own), cached; `fallback` when Slack does not say."""
        cached = self._teams.get(user_id)
        if cached is not None:
            return cached
        try:
            found = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.info("users.info failed: %s", exc.response.get("error", "error"))
            return fallback
        team = (found.get("user") or {}).get("team_id")
        if not isinstance(team, str) or not team:
            return fallback
        if len(self._teams) >= TEAMS_CACHED:
            self._teams.clear()
        self._teams[user_id] = team
        return team

    async def _tell(self, client: AsyncWebClient, channel: str, user: str, reply: Reply
                    ) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user,
                                                 **render(reply.message).payload())
        except SlackApiError as exc:
            log.warning("Slack answer not delivered: %s", exc.response.get("error", "error"))

    async def _run_with_files(self, client: AsyncWebClient, invocation: Invocation,
                              shared: Sequence[files.Shared], *, channel: str | None) -> None:
        try:
            invocation = replace(invocation, files=await self.download(client, shared))
        except (downloads.TooLarge, downloads.NotFetched) as exc:
            await self._answer(client, Reply.error(exc.message()), invocation, channel=channel)
            return
        await self._run(client, invocation, channel=channel)

    async def _run_reply(self, client: AsyncWebClient, invocation: Invocation, direct: bool,
                         shared: Sequence[files.Shared] = ()) -> None:
        """A reply in a thread, with the files shared in it. In a channel, chatter under
        messages that are not ours is none of our business, so it is not answered at all."""
        thread = invocation.thread
        assert thread is not None
        if not direct and not await self._ours(thread):
            return
        if shared:
            try:
                invocation = replace(invocation, files=await self.download(client, shared))
            except (downloads.TooLarge, downloads.NotFetched) as exc:
                await self._answer(client, Reply.error(exc.message()), invocation,
                                   channel=thread.channel, thread=thread)
                return
        reply = await self.app.core.handle(invocation)
        self.app.dispatcher.poke()
        if not reply.ok:
            await self._answer(client, reply, invocation, channel=thread.channel,
                               thread=thread)

    async def download(self, client: AsyncWebClient, shared: Sequence[files.Shared]
                       ) -> tuple[IncomingFile, ...]:
        """The bytes of files shared in Slack, fetched with the workspace's bot token from
        Slack's own host, within the attachment limit."""
        settings = self.app.settings
        return await files.download(
            shared, token=str(client.token), api_url=client.base_url,
            limit=settings.attachment_max_bytes, accepted=settings.attachment_types)

    async def _ours(self, thread: MessageRef) -> bool:
        """Whether a thread is one of a ticket's or a billing request's."""
        try:
            return await self.app.services.threads.meaning_of("slack", thread) is not None
        except Exception:  # the database is down: the core answers "unavailable" in it
            return True

    async def _show(self, client: AsyncWebClient, trigger_id: str, view: dict[str, Any]
                    ) -> None:
        await self._open(client, trigger_id, view)

    async def _open(self, client: AsyncWebClient, trigger_id: str, view: dict[str, Any]
                    ) -> bool:
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            log.warning("Slack modal not opened: %s", exc.response.get("error", "error"))
            return False
        return True

    async def _answer(self, client: AsyncWebClient, reply: Reply, invocation: Invocation, *,
                      response_url: str | None = None, channel: str | None = None,
                      thread: MessageRef | None = None) -> None:
        """Tell the person: through `response_url` when there is one, else ephemerally in
        the conversation they acted in (or their DM with the bot)."""
        self.app.dispatcher.poke()
        if reply.duplicate:
            return
        body = render(reply.message).payload()
        try:
            if response_url:
                body["response_type"] = "in_channel" if reply.public else "ephemeral"
                await AsyncWebhookClient(response_url).send_dict(body)
                return
            user = invocation.sender.user_id
            if channel is None:
                opened = await client.conversations_open(users=user)
                channel = str(opened["channel"]["id"])
            if thread is not None:
                body["thread_ts"] = thread.id
            await client.chat_postEphemeral(channel=channel, user=user, **body)
        except SlackApiError as exc:
            log.warning("Slack answer not delivered: %s", exc.response.get("error", "error"))

    async def verified_email(self, client: AsyncWebClient, team_id: str, user_id: str
                             ) -> str | None:
        """The account's email as its workspace verified it (`users.info`), cached a few
        minutes; None when Slack does not vouch for one."""
        now = time.monotonic()
        cached = self._emails.get((team_id, user_id))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found = await client.users_info(user=user_id)
        except SlackApiError as exc:
            log.info("users.info failed: %s", exc.response.get("error", "error"))
            return None
        user = found.get("user") or {}
        email = (user.get("profile") or {}).get("email")
        vouched = (
            isinstance(email, str) and email
            and user.get("team_id", team_id) == team_id
            and not user.get("deleted") and not user.get("is_bot")
            and user.get("is_email_confirmed", True) is not False
        )
        result = email if vouched else None
        self._emails[(team_id, user_id)] = (now + EMAIL_CACHE_SECONDS, result)
        return result


def _refusal(status: int, why: str) -> web.Response:
    return web.json_response({"error": f"Slack request refused: {why}"}, status=status)


def _forwarded(headers: Mapping[str, Sequence[str]]) -> dict[str, Sequence[str]]:
    """The headers a worker's bolt reads of a request the front verified: its content type
    and Slack's own (retries among them); the rest stay behind."""
    return {name: value for name, value in headers.items()
            if name == "content-type" or name.startswith("x-slack-")}


def _problem(form: inbound.Submitted) -> tuple[str | None, str] | None:
    """What is wrong with a submitted form, and which field it is about: the parser's
    checks, then the fields the form requires (a subject of invisible characters only)."""
    checked = parse_values(form.command, {k: v or None for k, v in form.values.items()})
    if isinstance(checked, ParseError):
        return checked.field, resolve_commands(checked.message, "/")
    known = {k: v for k, v in checked.args.items() if v is not None}
    asked = form_named(form.command, known)
    for field in asked.to_ask if asked is not None else ():
        if not field.optional:
            return field.name, f"{field.label} is needed."
    return None


def setup_of(settings: Settings) -> Setup | None:
    """The Slack setup the settings describe; None when Slack is not configured. Settings
    that do not fit together are one clear error (never quoting a secret)."""
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    bot, app_token = secret(settings.slack_bot_token), secret(settings.slack_app_token)
    client_id, client_secret = settings.slack_client_id, secret(settings.slack_client_secret)
    signing = secret(settings.slack_signing_secret)
    if bot is None and client_id is None and client_secret is None:
        return None
    if (client_id is None) != (client_secret is None):
        raise ServiceError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together "
                           "(OAuth installs need both)")
    if bot is not None and client_id is not None:
        raise ServiceError(
            "SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set: with OAuth installs each "
            "workspace's token comes from its installation (install yours at /slack/install); "
            "unset SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
    if signing is None and app_token is None:
        raise ServiceError("SLACK_SIGNING_SECRET is needed to check Slack's requests "
                           "(or SLACK_APP_TOKEN, for Socket Mode)")
    key = secret(settings.slack_token_key)
    if client_id is not None:
        if not key:
            raise ServiceError(
                f"{KEY_SETTING} is needed with SLACK_CLIENT_ID: the workspaces' tokens are "
                f"sealed with it in the database ({KEY_HINT})")
        for channel in (*settings.triage_channels, *settings.billing_channels):
            platform, _, target = channel.partition(":")
            if platform == "slack" and ":" not in target:
                raise ServiceError(
                    f"{channel[:80]}: with OAuth installs a Slack channel names its workspace "
                    "(slack:TEAM_ID:CHANNEL_ID) in SUBDESK_TRIAGE_CHANNELS and "
                    "SUBDESK_BILLING_CHANNELS")
    return Setup(api_url=settings.slack_api_url.rstrip("/") + "/", signing_secret=signing,
                 bot_token=bot, app_token=app_token, client_id=client_id,
                 client_secret=client_secret, token_key=key)


def plugin(settings: Settings, app: App) -> SlackAdapter | None:
    """Slack, when `SLACK_BOT_TOKEN` (one workspace) or `SLACK_CLIENT_ID` and
    `SLACK_CLIENT_SECRET` (OAuth installs) are set; over Socket Mode with `SLACK_APP_TOKEN`."""
    setup = setup_of(settings)
    if setup is None:
        return None
    return SlackAdapter(app, setup, role="front" if settings.slack_workers else "local")

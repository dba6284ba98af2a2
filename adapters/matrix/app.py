"""The Matrix plug-in: the bot's account syncs with its homeserver (matrix-nio, end-to-end
encryption on), commands typed with `!` and replies in ticket threads come in, outbox
messages go out.

One process syncs: it holds a lease (a PostgreSQL advisory lock; a file lock on SQLite);
replicas stand by and take over when it dies. The sync token is saved in the database only
after every event of its batch was handled, so a restart resumes where handling stopped:
events seen again are recognised by their id and run once. Answers go through the outbox
like every other message, so a rate limit or a homeserver away delays them, never loses
them.

While the database is unreachable the holder keeps syncing for the lease's term: each
command is answered "temporarily unavailable" straight in the room (the outbox needs the
database), with a transaction id made from the command's event id, and is not run later.
Once the database answers, those events are recorded as handled and the sync token saved,
so reading the batch again runs none of them and answers none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from nio import (
    ErrorResponse,
    InviteMemberEvent,
    MegolmEvent,
    MessageDirection,
    RoomGetEventResponse,
    RoomMessagesResponse,
    SyncError,
    SyncResponse,
    UnknownAccountDataEvent,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapters import downloads
from adapters.matrix import files, inbound
from adapters.matrix.client import (
    Failed,
    Limited,
    MatrixError,
    MatrixLink,
    Refused,
    Tuning,
    Unreachable,
    error_of,
)
from adapters.matrix.offline import AnsweredOffline
from adapters.matrix.transport import MatrixTransport
from bot.commands import Form, prompts
from bot.commands.invocation import Action, IncomingFile, Invocation
from bot.delivery.ports import Route, Transport
from bot.domain import MessageRef
from bot.presentation.messages import Message, Outcome, Reply, Tone, command
from bot.services.base import ServiceError
from bot.wiring.config import Settings
from bot.wiring.runtime import App
from storage.lease import Lease, Tenure, try_lease
from storage.matrix_state import MatrixStateStore

log = logging.getLogger(__name__)

PLATFORM = "matrix"


def sync_filter(timeline_limit: int) -> dict[str, Any]:
    """No presence, whole member lists (encryption needs every member's devices), and a
    timeline long enough that a gap is rare (a gap is read back with /messages)."""
    return {"presence": {"not_types": ["*"]},
            "room": {"timeline": {"limit": timeline_limit},
                     "state": {"lazy_load_members": False}}}

GAP_EVENTS = 1000  # events fetched at most to fill one room's gap after downtime
GAP_PAGE = 100
HINT = Message(f"Commands start with !. Try {command('subdesk help')}.")
UNREADABLE = Message(
    "I could not read your last message: it was encrypted with keys my device did not "
    "receive. Please send it again.", tone=Tone.WARNING)
UNREADABLE_EVERY = 600.0  # seconds between two such requests to one person in a shared room
ASKED_AGAIN_KEPT = 10_000  # (room, person) pairs remembered for that
_DATABASE_ERRORS = (OperationalError, PoolTimeout, ConnectionError, DBAPIError)
PROMPT_WAIT = 900.0  # seconds a question stays open for its answer
SKIP = frozenset({"skip", "-"})
CANCEL = frozenset({"cancel"})


class _Lapsed(Exception):
    """The sync lease was lost, or its term ran out while the database could not be
    reached: nothing more may be acted on."""


@dataclass
class _Prompt:
    """A form being asked of one person in one room (in the thread of the command that
    opened it), a field per message."""

    form: Form
    thread: str | None
    since: float
    answered: set[str]  # events already taken as answers (a batch handled again)


@dataclass
class _Undecrypted:
    event: MegolmEvent
    room_id: str
    since: float
    resume: str | None = None  # the sync token of the batch it came in (from before it)


class MatrixAdapter:
    """The bot's Matrix account as a chat platform."""

    chat = True
    routes: Sequence[Route] = ()

    def __init__(self, app: App, link: MatrixLink, tuning: Tuning | None = None) -> None:
        self.app = app
        self.link = link
        self.tuning = tuning or link.tuning
        self.transport = MatrixTransport(link, lambda: self.delivering)
        self.lease_name = f"matrix-sync:{link.homeserver}:{link.user_id}"
        self._stopped = asyncio.Event()
        self._leading = False
        self._ready = False  # a sync succeeded since this process took the lease
        self._status: str | None = "not connected to the homeserver yet"
        self._token: str | None = None
        self._first = True  # the next sync is the first of this connection (full state)
        self._waiting: list[_Undecrypted] = []
        self._asked_again: dict[tuple[str, str], float] = {}  # (room, person) → when
        self._prompts: dict[tuple[str, str], _Prompt] = {}  # by (room, person)
        self._rng = random.Random()
        self._tenure: Tenure | None = None
        self._unsaved = False  # the token of a handled batch waits for the database
        self._offline = AnsweredOffline(link.directory)  # to record once the database answers
        self.batches = 0  # syncs handled (tests wait on it)

    # The adapter contract ---------------------------------------------------------------

    @property
    def transports(self) -> Mapping[str, Transport]:
        return {PLATFORM: self.transport}

    @property
    def delivering(self) -> bool:
        """Whether this process sends Matrix messages now: it holds the sync and has
        synced (the rooms and their members are known)."""
        return self._leading and self._ready

    @property
    def leading(self) -> bool:
        return self._leading

    async def start(self) -> None:
        """Check that the data directory can hold the device's keys; the homeserver is
        reached by the task (it may be away at start: the task retries)."""
        try:
            self.link.prepare()
        except OSError as exc:
            raise ServiceError(
                f"cannot use SUBDESK_DATA_DIR for the Matrix keys: {exc.strerror}") from None
        await self._offline.load()

    async def run(self) -> None:
        """Sync while holding the lease; stand by while another replica holds it."""
        try:
            while not self._stopped.is_set():
                taken = await self._acquire()
                if taken is None:
                    return
                lease, contended = taken
                tenure = Tenure(self.app.db, self.lease_name, lease, self.tuning.lease_term)
                try:
                    if contended and self.app.db.is_postgres:
                        # The last holder may still act for its term, cut off from the
                        # database; it has stopped by the time this wait ends.
                        self._status = "taking over the Matrix sync"
                        if not await tenure.settle(self._stopped):
                            continue
                    self._leading = True
                    self._tenure = tenure
                    await self._lead(tenure)
                finally:
                    self._leading = self._ready = False
                    self._tenure = None
                    with contextlib.suppress(Exception):
                        await tenure.release()
                    await self.link.close()
        finally:
            self._leading = self._ready = False

    async def stop(self) -> None:
        self._stopped.set()

    async def readiness(self) -> str | None:
        """None when Matrix works (or this replica stands by for the one that syncs); else
        why not, in a few words."""
        if self._leading and self._ready and self._status is None:
            return None
        if not self._leading and self._status is None:
            return None  # standing by: another replica syncs
        return f"Matrix: {self._status or 'not synced yet'}"

    # The lease -------------------------------------------------------------------------

    async def _acquire(self) -> tuple[Lease, bool] | None:
        """The sync lease, once taken, and whether anything stood in the way first (it was
        held, or the database unreachable): then another process may have held it."""
        told = False
        contended = False
        while not self._stopped.is_set():
            try:
                lease = await try_lease(self.app.db, self.lease_name)
            except (*_DATABASE_ERRORS, OSError) as exc:
                self._status = "database unavailable"
                log.warning("Matrix: sync lease not taken: %s", type(exc).__name__)
                lease = None
            if lease is not None:
                self._status = "not synced yet"
                log.info("Matrix: this process syncs %s", self.link.user_id)
                return lease, contended
            contended = True
            if not told:
                log.info("Matrix: another process syncs %s; standing by", self.link.user_id)
                self._status = None
                told = True
            await self._sleep(self.tuning.lease_poll)
        return None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)

    def _backoff(self, failures: int) -> float:
        delay = min(self.tuning.backoff_cap, self.tuning.backoff_base * 2 ** max(0, failures - 1))
        return self._rng.uniform(delay / 2, delay)

    # Syncing ---------------------------------------------------------------------------

    async def _lead(self, tenure: Tenure) -> None:
        """Sync until stopped or the lease is lost; reconnect after failures, backing off."""
        failures = 0
        connected = positioned = False
        told: str | None = None
        self._unsaved = False
        while not self._stopped.is_set():
            if not await tenure.check():
                log.warning("Matrix: sync lease lost; standing by")
                return
            if not tenure.cut_off and (self._offline or self._unsaved):
                with contextlib.suppress(*_DATABASE_ERRORS):  # tried again next time
                    await self._catch_up()
            try:
                if not connected:
                    await self.link.connect()
                    self._first = True
                    connected = True
                if not positioned:
                    await self._load_position()
                    positioned = True
                await self._sync_once(tenure)
                failures, told = 0, None
                continue
            except _Lapsed:
                log.warning("Matrix: sync lease lost; standing by")
                return
            except Limited as exc:
                self._status = "rate limited by the homeserver"
                await self._sleep(exc.retry_after)
                continue
            except Refused as exc:
                reason = str(exc)
                connected = False
            except (Unreachable, Failed) as exc:
                reason = f"homeserver unreachable ({exc})"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                reason = f"homeserver unreachable ({type(exc).__name__})"
            except _DATABASE_ERRORS as exc:
                reason = f"database unavailable ({type(exc).__name__})"
            self._ready = False
            self._status = reason
            failures += 1
            if reason != told:
                log.warning("Matrix: %s; retrying", reason)
                told = reason
            await self._sleep(self._backoff(failures))

    async def _load_position(self) -> None:
        async with self.app.db.read() as session:
            found = await MatrixStateStore(session, self.app.clock.now()).position(
                self.link.user_id)
        self._token = None if found is None else found.sync_token
        log.info("Matrix: syncing as %s, device %s", self.link.user_id, self.link.device_id)
        if found is not None and found.device_id != self.link.device_id:
            log.warning("Matrix: syncing as device %s (was %s): messages encrypted for the "
                        "old device only cannot be read", self.link.device_id, found.device_id)

    def _position(self, next_batch: str) -> str:
        """The sync token to save: past the batch just handled, unless a message in it or
        before still waits for its room key; then from before the batch it came in, so a
        process started meanwhile sees it again (what was handled already is not handled
        twice: events are recorded as handled)."""
        return next((w.resume for w in self._waiting if w.resume is not None), next_batch)

    async def _save_position(self, token: str) -> None:
        async with self.app.db.transaction() as session:
            await MatrixStateStore(session, self.app.clock.now()).save(
                self.link.user_id, self.link.device_id, token)

    async def _catch_up(self) -> None:
        """What waited for the database: the events answered without it, recorded as
        handled, and the sync token of the batches handled meanwhile."""
        if self._offline:
            for event_id in sorted(self._offline.events):
                await self.app.services.events.first_time(PLATFORM,
                                                          inbound.event_key(event_id))
            log.info("Matrix: answered without the database: %s event(s) recorded as "
                     "handled", len(self._offline))
            await self._offline.clear()
        if self._unsaved and self._token is not None:
            await self._save_position(self._position(self._token))
            self._unsaved = False

    async def _sync_once(self, tenure: Tenure) -> None:
        client = self.link.client
        if client is None:
            raise Unreachable("not connected")
        wait_ms = 0 if self._first else self.tuning.sync_timeout_ms
        if tenure.cut_off:  # look at the lease often: it is not renewed meanwhile
            wait_ms = min(wait_ms, int(self.tuning.lease_poll * 1000))
        try:
            response = await asyncio.wait_for(
                client.sync(timeout=wait_ms, sync_filter=sync_filter(self.tuning.timeline_limit),
                            since=self._token,
                            full_state=True if self._first else None),
                timeout=wait_ms / 1000 + self.tuning.request_timeout)
        except TimeoutError:
            raise Unreachable("sync timed out") from None
        if isinstance(response, SyncError):
            raise error_of(response, "sync")
        if not isinstance(response, SyncResponse):
            raise Unreachable("unexpected sync answer")
        await self._keys()
        if not await tenure.check():
            raise _Lapsed()  # nothing of this batch is acted on
        self._ready = True
        self._status = None
        await self._handle(response, history=self._token is not None)
        try:
            await self._save_position(self._position(response.next_batch))
        except _DATABASE_ERRORS:
            if tenure.expired:
                raise
            self._unsaved = True  # saved by `_catch_up` once the database answers
        self._token = response.next_batch
        self._first = False
        self.batches += 1

    async def _keys(self) -> None:
        """What `sync_forever` does between syncs: publish our keys, learn the members'
        devices, open sessions, send queued to-device messages (room keys)."""
        client = self.link.client
        assert client is not None
        if client.should_upload_keys:
            await _checked(client.keys_upload(), "keys upload")
        if client.should_query_keys:
            await _checked(client.keys_query(), "keys query")
        if client.should_claim_keys:
            await _checked(client.keys_claim(client.get_users_for_key_claiming()), "keys claim")
        await client.send_to_device_messages()

    # Handling a batch ------------------------------------------------------------------

    async def _handle(self, response: SyncResponse, *, history: bool) -> None:
        """Every event of the batch, in order. On the very first sync of an account
        (`history` False) the rooms' past is not replayed: only invites are answered."""
        for event in response.account_data_events:
            if isinstance(event, UnknownAccountDataEvent) and event.type == "m.direct":
                self.link.direct = self.link.read_direct(event.content)
        for room_id, invited in response.rooms.invite.items():
            await self._accept(room_id, invited.invite_state)
        await self._retry_undecrypted()
        if not history:
            return
        for room_id, info in response.rooms.join.items():
            events = list(info.timeline.events)
            if info.timeline.limited and info.timeline.prev_batch and self._token:
                events = await self._gap(room_id, info.timeline.prev_batch, self._token) + events
            for event in events:
                await self._guarded(room_id, event)

    async def _guarded(self, room_id: str, event: Any) -> None:
        """Handle one event; one that breaks the handling is logged and skipped, so it
        cannot hold up the sync for good (an outage is raised: the batch is retried)."""
        try:
            await self._event(room_id, event)
        except (*_DATABASE_ERRORS, MatrixError, aiohttp.ClientError, TimeoutError, OSError,
                _Lapsed):
            raise
        except Exception:
            log.exception("Matrix: event %s in %s not handled",
                          str(getattr(event, "event_id", "?"))[:80], room_id[:80])

    async def _gap(self, room_id: str, start: str, end: str) -> list[Any]:
        """The events between the last handled batch and this one's timeline, when the
        sync cut them (many commands while the bot was down)."""
        client = self.link.client
        assert client is not None
        found: list[Any] = []
        token: str | None = start
        while token and len(found) < GAP_EVENTS:
            page = await client.room_messages(room_id, start=token, end=end,
                                              direction=MessageDirection.back, limit=GAP_PAGE)
            if not isinstance(page, RoomMessagesResponse):
                raise error_of(page, "reading the room's history")
            found.extend(page.chunk)
            if not page.chunk or page.end == token:
                break
            token = page.end
        if len(found) >= GAP_EVENTS:
            log.warning("Matrix: more than %s events missed in a room; older ones skipped",
                        GAP_EVENTS)
        return list(reversed(found[:GAP_EVENTS]))

    async def _accept(self, room_id: str, state: Sequence[Any]) -> None:
        """Join a room we are invited to; a DM invite (`is_direct`) is remembered as our
        DM room with the inviter."""
        inviter = None
        direct = False
        for event in state:
            if isinstance(event, InviteMemberEvent) and event.state_key == self.link.user_id:
                inviter = event.sender
                direct = bool((event.content or {}).get("is_direct"))
        try:
            await self.link.join(room_id, wait=False)  # the sync is this task
        except Failed as exc:
            log.info("Matrix: invite not accepted: %s", exc)
            return
        if direct and isinstance(inviter, str):
            await self.link.remember_direct(inviter, room_id)

    async def _event(self, room_id: str, event: Any) -> None:
        if isinstance(event, MegolmEvent):
            if event.sender != self.link.user_id:
                self._waiting.append(_Undecrypted(event, room_id, time.monotonic(),
                                                  self._token))
            return
        said = inbound.read(getattr(event, "source", {}) or {}, room_id)
        if said is None or said.sender == self.link.user_id or said.event_id in self._offline:
            return
        await self._said(said)

    async def _retry_undecrypted(self) -> None:
        """Messages whose room key arrives late are read once it has; after a while
        without it, the sender is asked to send again."""
        client = self.link.client
        if not self._waiting or client is None:
            return
        waiting, self._waiting = self._waiting, []
        for n, pending in enumerate(waiting):
            try:
                event = client.decrypt_event(pending.event)
            except Exception:
                event = pending.event
            try:
                if not isinstance(event, MegolmEvent):
                    # like any other event: one that breaks the handling is logged and
                    # skipped, never the end of the sync
                    await self._guarded(pending.room_id, event)
                elif time.monotonic() - pending.since < self.tuning.undecryptable_wait:
                    self._waiting.append(pending)
                else:
                    log.warning("Matrix: a message from %s in %s could not be decrypted",
                                pending.event.sender, pending.room_id)
                    if self._ask_again(pending.room_id, pending.event.sender):
                        await self._answer(pending.room_id, pending.event.event_id, None,
                                           Reply(UNREADABLE), pending.event.sender)
            except BaseException:  # an outage: this one and the rest wait for the next sync
                self._waiting.extend(waiting[n:])
                raise

    def _ask_again(self, room_id: str, sender: str) -> bool:
        """Whether to ask `sender` to send an unreadable message again: always in their DM;
        in a shared room (where it may be chatter not meant for the bot) once in a while
        per person, not once per message."""
        if self._direct(room_id, sender):
            return True
        now = time.monotonic()
        asked = self._asked_again.get((room_id, sender))
        if asked is not None and now - asked < UNREADABLE_EVERY:
            return False
        if len(self._asked_again) >= ASKED_AGAIN_KEPT:
            self._asked_again.clear()
        self._asked_again[(room_id, sender)] = now
        return True

    async def _said(self, said: inbound.Said) -> None:
        """A person's message: a command, the answer to a question of an open form, a reply
        in one of our threads, or (in a DM) chatter we point at the help."""
        root = said.thread_root or said.reply_to
        if said.command and said.file is None:
            self._prompts.pop((said.room_id, said.sender), None)  # a command closes a form
            reply = await self.app.core.handle(inbound.command_invocation(said))
            if reply.outcome is Outcome.NEEDS_INPUT and reply.form is not None \
                    and reply.form.to_ask:
                await self._open(said, reply.form)
                return
            await self._answer(said.room_id, said.event_id, said.thread_root, reply,
                               said.sender)
            return
        prompt = self._prompt_for(said)
        if prompt is not None:
            await self._prompted(said, prompt)
            return
        if root is not None and await self._ours(said.room_id, root, said.sender):
            await self._reply_in_thread(said, root)
            return
        if self._direct(said.room_id, said.sender) and said.thread_root is None:
            await self._answer(said.room_id, said.event_id, None, Reply(HINT), said.sender)

    # Forms, asked a field per message --------------------------------------------------

    def _prompt_for(self, said: inbound.Said) -> _Prompt | None:
        """The open form this message answers: the sender's, in this room and thread,
        not left unanswered too long; a file answers nothing."""
        key = (said.room_id, said.sender)
        prompt = self._prompts.get(key)
        if prompt is None:
            return None
        if time.monotonic() - prompt.since > PROMPT_WAIT:
            del self._prompts[key]
            return None
        if said.file is not None or said.thread_root != prompt.thread:
            return None
        return prompt

    async def _open(self, said: inbound.Said, form: Form) -> None:
        """Start asking for the fields a command still needs (forms left unanswered too
        long are forgotten here)."""
        now = time.monotonic()
        for key in [k for k, p in self._prompts.items() if now - p.since > PROMPT_WAIT]:
            del self._prompts[key]
        self._prompts[(said.room_id, said.sender)] = _Prompt(
            form, said.thread_root, now, {said.event_id})
        field = prompts.asking(form)
        assert field is not None
        intro = Message(f"{form.title}: a few questions, each answered in a message of its "
                        "own (skip leaves out an optional one, cancel stops).\n"
                        f"{field.prompt}?")
        await self._answer(said.room_id, said.event_id, said.thread_root, Reply(intro),
                           said.sender)

    async def _prompted(self, said: inbound.Said, prompt: _Prompt) -> None:
        """One answer: checked, and the next question asked; the last one submits the
        form as a typed action, through the same checks as a button or a modal."""
        if said.event_id in prompt.answered:
            return
        prompt.answered.add(said.event_id)
        key = (said.room_id, said.sender)
        value = said.text.strip()
        if value.lower() in CANCEL:
            del self._prompts[key]
            await self._say(said, Message("Cancelled."))
            return
        step = prompts.answer(prompt.form, "" if value.lower() in SKIP else value)
        asked = step.asking
        if step.problem is not None:
            field = prompts.asking(prompt.form)
            assert field is not None
            await self._say(said, Message(f"{step.problem}\n{field.prompt}?",
                                          tone=Tone.WARNING))
            return
        if asked is not None:
            prompt.form, prompt.since = step.form, time.monotonic()
            await self._say(said, Message(f"{asked.prompt}?"))
            return
        del self._prompts[key]
        thread = MessageRef(said.room_id, said.thread_root) if said.thread_root else None
        reply = await self.app.core.handle(Invocation(
            inbound.sender(said.sender), thread=thread, event_id=inbound.event_key(
                said.event_id),
            action=Action.of(step.form.command, prompts.submitted(step.form))))
        await self._answer(said.room_id, said.event_id, said.thread_root, reply, said.sender)

    async def _say(self, said: inbound.Said, message: Message) -> None:
        await self._answer(said.room_id, said.event_id, said.thread_root, Reply(message),
                           said.sender)

    async def _reply_in_thread(self, said: inbound.Said, root: str) -> None:
        fetched: tuple[IncomingFile, ...] = ()
        if said.file is not None:
            try:
                fetched = await self.download([said.file])
            except (downloads.TooLarge, downloads.NotFetched) as exc:
                await self._answer(said.room_id, said.event_id, said.thread_root,
                                   Reply.error(exc.message()), said.sender)
                return
        reply = await self.app.core.handle(inbound.thread_invocation(said, root, fetched))
        self.app.dispatcher.poke()
        if not reply.ok:
            await self._answer(said.room_id, said.event_id, said.thread_root, reply,
                               said.sender)

    def _direct(self, room_id: str, person: str) -> bool:
        """Whether a room is the bot's conversation with `person`: their DM in the bot's
        `m.direct` (where every room opened as a DM is recorded: one the bot made, or an
        invite marked `is_direct`). A room of just the two of them is not enough: an alert
        or triage room often holds only the bot and one person."""
        return room_id in self.link.direct.get(person, ())

    async def _ours(self, room_id: str, root: str, sender: str) -> bool:
        """Whether a message is the root of one of our threads (a card, a request).

        Without the database nobody can tell: the core answers "unavailable" where the
        reply may be meant for us (the person's DM, or under a message the bot sent),
        never to people replying to each other in a shared room."""
        try:
            return await self.app.services.threads.meaning_of(
                PLATFORM, MessageRef(room_id, root)) is not None
        except _DATABASE_ERRORS:
            return self._direct(room_id, sender) or await self._sent_by_us(room_id, root)

    async def _sent_by_us(self, room_id: str, event_id: str) -> bool:
        """Whether the homeserver says the bot sent `event_id` (False when it cannot say)."""
        client = self.link.client
        if client is None:
            return False
        try:
            found = await client.room_get_event(room_id, event_id)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False
        return (isinstance(found, RoomGetEventResponse)
                and getattr(found.event, "sender", None) == self.link.user_id)

    async def download(self, shared: Sequence[inbound.SharedFile]) -> tuple[IncomingFile, ...]:
        """Files shared in Matrix, from the bot's homeserver, decrypted, within the limit."""
        settings = self.app.settings
        return await files.download(shared, homeserver=self.link.homeserver,
                                    token=self.link.access_token,
                                    limit=settings.attachment_max_bytes,
                                    accepted=settings.attachment_types)

    async def _answer(self, room_id: str, event_id: str, thread: str | None, reply: Reply,
                      who: str) -> None:
        """Answer in the room, as a reply to the command (in its thread when it was typed
        in one), through the outbox. A command seen again gets no second answer.

        Without the database (the core says "temporarily unavailable", or the outbox
        cannot take the answer) it is sent straight to the room, while the lease's term
        lasts, and the event remembered so that it is not handled again."""
        if reply.duplicate:
            return
        if reply.outcome is not Outcome.UNAVAILABLE:
            try:
                await self.app.services.answers.queue(
                    PLATFORM, MessageRef(room_id, event_id), reply.message,
                    thread=None if thread is None else MessageRef(room_id, thread),
                    recipient=who)
            except _DATABASE_ERRORS:
                pass
            else:
                self.app.dispatcher.poke()
                return
        tenure = self._tenure
        if tenure is None or (tenure.cut_off and tenure.expired):
            raise _Lapsed()
        await self.transport.answer_now(room_id, event_id, thread, reply.message)
        await self._offline.add(event_id)


async def _checked(request: Any, what: str) -> None:
    found = await request
    if isinstance(found, ErrorResponse):
        raise error_of(found, what)


def link_for(settings: Settings, tuning: Tuning | None = None) -> MatrixLink:
    assert settings.matrix_homeserver is not None and settings.matrix_user_id is not None
    return MatrixLink(
        settings.matrix_homeserver, settings.matrix_user_id,
        password=(settings.matrix_password.get_secret_value()
                  if settings.matrix_password is not None else None),
        access_token=(settings.matrix_access_token.get_secret_value()
                      if settings.matrix_access_token is not None else None),
        data_dir=settings.data_dir, tuning=tuning or Tuning())


__all__ = ["MatrixAdapter", "MatrixError", "link_for"]

"""People on Matrix for the tests: real matrix-nio clients (end-to-end encryption on, each
with its own key store) that log in to the test Synapse, create encrypted DMs, type
commands, reply in threads, share encrypted files and read what the bot sends them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)
from nio.event_builders import EnableEncryptionBuilder

from tests.peers.synapse import Account, Synapse

Event = dict[str, Any]


def text_of(event: Event) -> str:
    """What a person reads of a message: the latest edit's body, else its own."""
    content = event.get("content") or {}
    return str(content.get("body", ""))


def relation(event: Event) -> dict[str, Any]:
    found = (event.get("content") or {}).get("m.relates_to") or {}
    return found if isinstance(found, dict) else {}


@dataclass
class Person:
    """One Matrix account, syncing in the background and keeping every message it sees."""

    server: Synapse
    account: Account
    store: Path
    client: AsyncClient | None = None
    seen: dict[str, list[Event]] = field(default_factory=dict)  # by room, decrypted
    undecryptable: list[tuple[str, MegolmEvent]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def user_id(self) -> str:
        return self.account.user_id

    async def start(self) -> Person:
        self.store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False,
                                   max_limit_exceeded=None, request_timeout=30,
                                   backoff_factor=0.1, max_timeout_retry_wait_time=1)
        client = AsyncClient(self.server.url, self.user_id, store_path=str(self.store),
                             config=config)
        found = await client.login(self.account.password, device_name="test")
        assert isinstance(found, LoginResponse), found
        self.client = client
        first = await client.sync(timeout=0, full_state=True)
        assert isinstance(first, SyncResponse), first
        await self._keys()
        self.task = asyncio.create_task(self._sync())
        return self

    async def _keys(self) -> None:
        client = self._client
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    @property
    def _client(self) -> AsyncClient:
        assert self.client is not None
        return self.client

    async def _sync(self) -> None:
        client = self._client
        while True:
            response = await client.sync(timeout=500)
            if not isinstance(response, SyncResponse):
                await asyncio.sleep(0.2)
                continue
            await self._keys()
            for room_id in response.rooms.invite:
                await client.join(room_id)
            for room_id, info in response.rooms.join.items():
                for event in info.timeline.events:
                    self._keep(room_id, event)
            self._decrypt_late()

    def _keep(self, room_id: str, event: Any) -> None:
        if isinstance(event, MegolmEvent):
            self.undecryptable.append((room_id, event))
            return
        source = dict(event.source)
        if source.get("type") == "m.room.message":
            self.seen.setdefault(room_id, []).append(source)

    def _decrypt_late(self) -> None:
        """Like every client, read a message once its room key has come (a key may arrive
        in a later sync than the message)."""
        waiting, self.undecryptable = self.undecryptable, []
        for room_id, event in waiting:
            try:
                read = self._client.decrypt_event(event)
            except Exception:
                read = event
            if isinstance(read, MegolmEvent):
                self.undecryptable.append((room_id, event))
            else:
                read.source.setdefault("room_id", room_id)
                self._keep(room_id, read)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.client is not None:
            await self.client.close()

    # Rooms -----------------------------------------------------------------------------

    async def dm(self, other: str, *, encrypted: bool = True) -> str:
        """An encrypted DM with `other` (as Element makes one), once they joined."""
        state = [EnableEncryptionBuilder().as_dict()] if encrypted else []
        created = await self._client.room_create(
            is_direct=True, invite=[other], preset=RoomPreset.trusted_private_chat,
            initial_state=state)
        assert isinstance(created, RoomCreateResponse), created
        await self.until_member(created.room_id, other)
        return created.room_id

    async def room(self, *invite: str, encrypted: bool = False, name: str = "room") -> str:
        """A group room with `invite` in it once they all joined."""
        state = [EnableEncryptionBuilder().as_dict()] if encrypted else []
        created = await self._client.room_create(name=name, invite=list(invite),
                                                 initial_state=state)
        assert isinstance(created, RoomCreateResponse), created
        for other in invite:
            await self.until_member(created.room_id, other)
        return created.room_id

    async def until_member(self, room_id: str, user_id: str, within: float = 30) -> None:
        """Until `user_id` has joined `room_id` (as this client's sync sees it)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            room = self._client.rooms.get(room_id)
            if room is not None and user_id in room.users and not room.users[user_id].invited:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{user_id} did not join {room_id}")

    async def invite(self, room_id: str, user_id: str) -> None:
        await self._client.room_invite(room_id, user_id)
        await self.until_member(room_id, user_id)

    # Saying things ---------------------------------------------------------------------

    async def send(self, room_id: str, content: dict[str, Any]) -> str:
        found = await self._client.room_send(room_id, "m.room.message", content,
                                             ignore_unverified_devices=True)
        assert isinstance(found, RoomSendResponse), found
        return str(found.event_id)

    async def say(self, room_id: str, text: str, *, thread: str | None = None,
                  reply_to: str | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if thread is not None:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread,
                                       "is_falling_back": True,
                                       "m.in_reply_to": {"event_id": thread}}
        elif reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return await self.send(room_id, content)

    async def share(self, room_id: str, name: str, data: bytes, mimetype: str, *,
                    thread: str | None = None, msgtype: str = "m.file") -> str:
        """Upload `data` encrypted (as clients do in encrypted rooms) and post it."""
        import io

        response, keys = await self._client.upload(
            io.BytesIO(data), content_type="application/octet-stream", filename=name,
            encrypt=True, filesize=len(data))
        assert isinstance(response, UploadResponse), response
        assert keys is not None
        content: dict[str, Any] = {
            "msgtype": msgtype, "body": name,
            "info": {"mimetype": mimetype, "size": len(data)},
            "file": {"url": response.content_uri, "key": keys["key"], "iv": keys["iv"],
                     "hashes": keys["hashes"], "v": keys["v"]},
        }
        if thread is not None:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread,
                                       "is_falling_back": True,
                                       "m.in_reply_to": {"event_id": thread}}
        return await self.send(room_id, content)

    # Reading ---------------------------------------------------------------------------

    def from_(self, room_id: str, sender: str) -> list[Event]:
        return [e for e in self.seen.get(room_id, []) if e.get("sender") == sender]

    def posts(self, room_id: str, sender: str) -> list[Event]:
        """Messages of `sender` that are not edits."""
        return [e for e in self.from_(room_id, sender)
                if relation(e).get("rel_type") != "m.replace"]

    def edits_of(self, room_id: str, event_id: str) -> list[Event]:
        return [e for e in self.seen.get(room_id, [])
                if relation(e).get("rel_type") == "m.replace"
                and relation(e).get("event_id") == event_id]

    def current(self, room_id: str, event: Event) -> str:
        """A message's text as shown now: its latest edit's new content, else its own."""
        edits = self.edits_of(room_id, str(event["event_id"]))
        if edits:
            return str(edits[-1]["content"]["m.new_content"]["body"])
        return text_of(event)

    async def wait_for(self, room_id: str, sender: str, predicate: Callable[[Event], bool],
                       within: float = 30) -> Event:
        """The first message of `sender` in `room_id` that `predicate` accepts."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for event in self.posts(room_id, sender):
                if predicate(event):
                    return event
            await asyncio.sleep(0.05)
        texts = [text_of(e)[:120] for e in self.seen.get(room_id, [])]
        raise AssertionError(f"no such message from {sender} in {room_id}: {texts}; "
                             f"undecryptable: {len(self.undecryptable)}")

    def answers_to(self, room_id: str, sender: str, asked: str) -> list[str]:
        """The texts of `sender`'s answers (replies) to the message `asked`."""
        return [text_of(e) for e in self.posts(room_id, sender)
                if relation(e).get("m.in_reply_to", {}).get("event_id") == asked]

    async def answer(self, room_id: str, sender: str, asked: str, within: float = 30) -> str:
        """`sender`'s answer to the message `asked`, once it came."""
        found = await self.wait_for(
            room_id, sender,
            lambda e: relation(e).get("m.in_reply_to", {}).get("event_id") == asked, within)
        return text_of(found)

    async def wait_text(self, room_id: str, sender: str, needle: str, within: float = 30
                        ) -> Event:
        return await self.wait_for(room_id, sender, lambda e: needle in text_of(e), within)

    def dm_rooms_with(self, user_id: str) -> list[str]:
        """Rooms this person was invited to by `user_id` as a DM, or shares with them alone."""
        rooms = []
        for room_id, room in self._client.rooms.items():
            if user_id in room.users and room.member_count <= 2:
                rooms.append(room_id)
        return rooms


def invited_directly(event: Any) -> bool:
    return isinstance(event, InviteMemberEvent) and bool((event.content or {}).get("is_direct"))

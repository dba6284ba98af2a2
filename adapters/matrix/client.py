"""The bot's Matrix account: one nio client, its login, its device and encryption store in
the data directory, its DM rooms (`m.direct`), and sending with a transaction id.

Everything the homeserver answers is mapped to what the caller can act on: `Refused` (the
operator must fix the credentials), `Unreachable` (the homeserver is away: retry with
backoff), `Limited` (`M_LIMIT_EXCEEDED`: come back after `retry_after`) and `Failed` (this
request cannot succeed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DirectRoomsResponse,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    WhoamiResponse,
)
from nio.event_builders import EnableEncryptionBuilder
from nio.exceptions import LocalProtocolError

log = logging.getLogger(__name__)

DEVICE_NAME = "Subdesk"
RATE_LIMITED_DEFAULT = 5.0  # seconds, when M_LIMIT_EXCEEDED says no retry_after_ms
CONFIGURATION_ERRORS = frozenset({"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_USER_DEACTIVATED"})
PERMANENT_ERRORS = frozenset({"M_FORBIDDEN", "M_NOT_FOUND", "M_BAD_JSON", "M_NOT_JSON",
                              "M_TOO_LARGE", "M_INVALID_PARAM", "M_UNKNOWN"})


@dataclass(frozen=True)
class Tuning:
    """Timings of the connection (the defaults suit a homeserver on the internet)."""

    sync_timeout_ms: int = 30_000  # how long one sync waits for new events
    request_timeout: float = 60.0  # seconds any other request may take
    backoff_base: float = 1.0  # first wait after the homeserver failed, doubled each time
    backoff_cap: float = 30.0
    lease_poll: float = 5.0  # how often a standby replica asks for the sync lease
    # Seconds the sync lease outlives its last renewal (a database outage); renewed after
    # every sync, so longer than a sync's wait.
    lease_term: float = 60.0
    room_wait: float = 20.0  # seconds a new DM room may take to reach the sync
    undecryptable_wait: float = 20.0  # seconds to wait for a message's room key
    timeline_limit: int = 50  # events per room in one sync; a longer gap is read back


class MatrixError(Exception):
    """A request failed; `reason` is one line, never with a token or a message's text."""


class Refused(MatrixError):
    """The homeserver refuses the credentials: only the operator can fix it."""


class Unreachable(MatrixError):
    """The homeserver did not answer (down, restarting, network)."""


class Limited(MatrixError):
    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Failed(MatrixError):
    """This request cannot succeed as it is (forbidden, unknown room, too large)."""


def error_of(response: ErrorResponse, what: str) -> MatrixError:
    """The failure an error response stands for."""
    code = str(response.status_code or "")
    if code == "M_LIMIT_EXCEEDED" or code == "429":
        after = getattr(response, "retry_after_ms", None)
        seconds = after / 1000 if isinstance(after, int | float) and after > 0 else None
        return Limited(f"{what}: rate limited (M_LIMIT_EXCEEDED)",
                       RATE_LIMITED_DEFAULT if seconds is None else seconds)
    if code in CONFIGURATION_ERRORS:
        return Refused(f"{what}: the homeserver refused the bot's credentials ({code})")
    if code in PERMANENT_ERRORS:
        return Failed(f"{what}: {code}")
    return Unreachable(f"{what}: {code or 'error'}")


def private_file(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by this user only, replacing it atomically."""
    partial = path.with_name(path.name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)


class MatrixLink:
    """One login of the bot's account, with the encryption store of its device."""

    def __init__(self, homeserver: str, user_id: str, *, password: str | None,
                 access_token: str | None, data_dir: Path, tuning: Tuning) -> None:
        self.homeserver = homeserver.rstrip("/")
        self.user_id = user_id
        self._password = password
        self._access_token = access_token
        self.tuning = tuning
        account = hashlib.sha256(f"{self.homeserver}\n{user_id}".encode()).hexdigest()[:16]
        self.directory = data_dir / "matrix" / account
        self.client: AsyncClient | None = None
        self.direct: dict[str, list[str]] = {}  # m.direct: person → their DM rooms with us
        self._dm_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # Login -----------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return str(self.client.device_id) if self.client is not None else ""

    @property
    def access_token(self) -> str:
        return str(self.client.access_token) if self.client is not None else ""

    def prepare(self) -> str:
        """The account's directory (0700) and the key its encryption store is pickled
        with, made on first use."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_file = self.directory / "store.key"
        if not key_file.exists():
            private_file(key_file, secrets.token_urlsafe(32))
        return key_file.read_text().strip()

    def _credentials(self) -> dict[str, str]:
        try:
            found = json.loads((self.directory / "credentials.json").read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(found, dict) or found.get("user_id") != self.user_id:
            return {}
        return {k: v for k, v in found.items() if isinstance(v, str)}

    def _save_credentials(self, device_id: str, token: str | None) -> None:
        record = {"user_id": self.user_id, "device_id": device_id}
        if token is not None:  # a password login's token; a configured one stays in config
            record["access_token"] = token
        private_file(self.directory / "credentials.json", json.dumps(record))

    async def connect(self) -> None:
        """Log in (or resume the saved login) and open the device's encryption store.

        The device is made once and kept: a password login saves its device id and token
        in the data directory, an access token names its own device (`whoami`)."""
        await self.close()
        pickle_key = self.prepare()
        config = AsyncClientConfig(
            max_limit_exceeded=0, max_timeouts=0, encryption_enabled=True,
            store_sync_tokens=False, pickle_key=pickle_key,
            request_timeout=self.tuning.request_timeout)
        saved = self._credentials()
        client = AsyncClient(self.homeserver, self.user_id, device_id=saved.get("device_id"),
                             store_path=str(self.directory), config=config)
        self.client = client
        try:
            if self._access_token is not None:
                await self._resume(client, self._access_token, expected=None)
                self._save_credentials(client.device_id, None)
            elif saved.get("access_token") and saved.get("device_id"):
                try:
                    await self._resume(client, saved["access_token"],
                                       expected=saved["device_id"])
                except Refused:
                    await self._login(client)  # the saved token expired: same device again
            else:
                await self._login(client)
            await self.load_direct()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unreachable(f"homeserver unreachable: {type(exc).__name__}") from None

    async def _resume(self, client: AsyncClient, token: str, *, expected: str | None) -> None:
        client.access_token = token
        found = await client.whoami()
        if not isinstance(found, WhoamiResponse):
            raise error_of(found, "whoami")
        if found.user_id != self.user_id:
            raise Refused("the access token belongs to another account than MATRIX_USER_ID")
        if not found.device_id or (expected is not None and found.device_id != expected):
            raise Refused("the access token names no device (log in with a device)")
        client.restore_login(self.user_id, found.device_id, token)

    async def _login(self, client: AsyncClient) -> None:
        if self._password is None:
            raise Refused("no MATRIX_PASSWORD to log in with")
        found = await client.login(self._password, device_name=DEVICE_NAME)
        if not isinstance(found, LoginResponse):
            if str(found.status_code) == "M_FORBIDDEN":
                raise Refused("the homeserver refused MATRIX_USER_ID / MATRIX_PASSWORD")
            raise error_of(found, "login")
        self._save_credentials(found.device_id, found.access_token)
        log.info("Matrix: logged in as %s, device %s", self.user_id, found.device_id)

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
            store = getattr(self.client, "store", None)
            database = getattr(store, "database", None)
            if database is not None:
                with contextlib.suppress(Exception):
                    database.close()
        self.client = None

    def _client(self) -> AsyncClient:
        if self.client is None or not self.client.logged_in:
            raise Unreachable("not connected to the homeserver")
        return self.client

    # Direct rooms ----------------------------------------------------------------------

    async def load_direct(self) -> None:
        found = await self._client().list_direct_rooms()
        self.direct = self.read_direct(found.rooms) if isinstance(
            found, DirectRoomsResponse) else {}

    @staticmethod
    def read_direct(content: Mapping[str, Any]) -> dict[str, list[str]]:
        """`m.direct` content, keeping only well-formed entries."""
        return {user: [r for r in rooms if isinstance(r, str)]
                for user, rooms in content.items()
                if isinstance(user, str) and isinstance(rooms, list)}

    async def remember_direct(self, user_id: str, room_id: str) -> None:
        """Record `room_id` as our DM with `user_id` in the account's `m.direct`."""
        rooms = self.direct.get(user_id, [])
        if rooms[:1] == [room_id]:
            return
        self.direct[user_id] = [room_id, *[r for r in rooms if r != room_id]]
        client = self._client()
        path = (f"/_matrix/client/v3/user/{_quote(self.user_id)}/account_data/m.direct")
        response = await client.send(
            "PUT", path, json.dumps(self.direct),
            headers={"Authorization": f"Bearer {client.access_token}",
                     "Content-Type": "application/json"})
        if response.status != 200:
            log.warning("Matrix: m.direct not saved (HTTP %s)", response.status)

    async def dm_room(self, user_id: str) -> str:
        """Our DM room with `user_id`: the one `m.direct` names where they still are, else
        a new encrypted one with them invited (recorded in `m.direct`)."""
        client = self._client()
        async with self._dm_locks[user_id]:
            for room_id in self.direct.get(user_id, ()):
                room = client.rooms.get(room_id)
                if room is not None and user_id in room.users:
                    return room_id
            created = await client.room_create(
                is_direct=True, invite=[user_id], preset=RoomPreset.trusted_private_chat,
                initial_state=[EnableEncryptionBuilder().as_dict()])
            if not isinstance(created, RoomCreateResponse):
                raise error_of(created, "creating a DM room")
            await self.remember_direct(user_id, created.room_id)
            # The sync may bring the new room before the invite: encrypting then would
            # share the room key with nobody, and the person could never read the message.
            await self.wait_for_room(created.room_id, member=user_id)
            return str(created.room_id)

    async def wait_for_room(self, room_id: str, *, member: str | None = None) -> None:
        """Until the sync has brought `room_id` (its state is needed to encrypt to it),
        with `member` in it (joined or invited) when given."""
        client = self._client()
        deadline = asyncio.get_running_loop().time() + self.tuning.room_wait
        while True:
            room = client.rooms.get(room_id)
            if room is not None and (member is None or member in room.users):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise Unreachable("the new room has not reached the sync yet")
            await asyncio.sleep(0.05)

    # Sending ---------------------------------------------------------------------------

    async def join(self, room_id: str, *, wait: bool = True) -> None:
        """Join `room_id`; with `wait`, until the sync has brought its state."""
        found = await self._client().join(room_id)
        if not isinstance(found, JoinResponse):
            raise error_of(found, "joining the room")
        if wait:
            await self.wait_for_room(room_id)

    async def send(self, room_id: str, content: dict[str, Any], txn_id: str) -> str:
        """Send `content` to `room_id` (encrypted where the room is) with a transaction
        id, so sending again after a crash lands as the same event. Returns its id."""
        client = self._client()
        if room_id not in client.rooms:
            await self.join(room_id)  # a triage room the bot was invited to, or a public one
        try:
            found = await client.room_send(room_id, "m.room.message", content, tx_id=txn_id,
                                           ignore_unverified_devices=True)
        except LocalProtocolError as exc:
            raise Unreachable(f"room not ready: {type(exc).__name__}") from None
        if not isinstance(found, RoomSendResponse):
            raise error_of(found, "sending")
        return str(found.event_id)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")

"""Slack workspaces installed through OAuth (`/slack/install`, `/slack/oauth_redirect`).

Bolt runs the OAuth dance; slack_sdk's async SQLAlchemy stores keep the installations and the
OAuth `state` values in the project's database (tables of migration 0009). Two thin layers
sit on those stock stores:

- `SealedInstallationStore` seals every token with Fernet before it reaches the store and
  opens it on the way out, so the database only ever holds sealed text. Keys come from
  `SUBDESK_SLACK_TOKEN_KEY` (comma-separated: the first seals, all of them open; tokens
  sealed under an older key are sealed again under the first at start). Lookups are cached
  for a short while, so acknowledging a request does not wait for the database, and an old
  answer is used when the database is slow or down.
- `BoundedStateStore` drops expired states and refuses new ones past a bound, so anyone
  requesting `/slack/install` in a loop cannot grow the table without end.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import delete, desc, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.delivery.ports import Route
from bot.services.base import ServiceError
from bot.wiring.manifest import INSTALL_REDIRECT

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = INSTALL_REDIRECT
KEY_SETTING = "SUBDESK_SLACK_TOKEN_KEY"
KEY_HINT = ("a Fernet key: 32 url-safe base64-encoded bytes; make one with `python -c \"from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`")
SEALED = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token",
          "incoming_webhook_url")
CACHE_SECONDS = 30.0  # an installation looked up is trusted this long
CACHE_ENTRIES = 10_000
PATIENCE = 1.0  # seconds a lookup may take before an older answer is used instead
STATE_SECONDS = 600  # an install link is good for ten minutes
LIVE_STATES = 1000  # install links handed out and not yet used or expired, at most

T = TypeVar("T")


class TokenCipher:
    """Fernet under one or more keys: the first seals, any of them opens."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ServiceError(f"{KEY_SETTING} is empty: it needs {KEY_HINT}")
        fernets = []
        for number, key in enumerate(parts, 1):
            try:
                fernets.append(Fernet(key))
            except ValueError:  # the key is never quoted: it is the secret
                raise ServiceError(f"{KEY_SETTING}: key {number} is not {KEY_HINT}") from None
        self._first = fernets[0]
        self._all = MultiFernet(fernets)

    def seal(self, token: str | None) -> str | None:
        return None if token is None else self._first.encrypt(token.encode()).decode()

    def open(self, sealed: str | None) -> str | None:
        """The token; raises `InvalidToken` when no key opens it."""
        return None if sealed is None else self._all.decrypt(sealed.encode()).decode()

    def current(self, sealed: str) -> bool:
        """Whether `sealed` is sealed under the first key."""
        try:
            self._first.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """`sealed` sealed again under the first key (raises `InvalidToken` if none opens it)."""
        return self._all.rotate(sealed.encode()).decode()


@dataclass
class _Cached:
    at: float
    value: Any


class SealedInstallationStore(AsyncInstallationStore):
    """slack_sdk's async SQLAlchemy installation store with every token sealed at rest.

    Wraps the stock store rather than subclassing it: whatever it writes has been sealed
    here first (`async_save` and `async_save_bot` both), and whatever it reads is opened
    here, so no path of the stock store can write a token in the clear or seal one twice.
    """

    def __init__(self, inner: AsyncSQLAlchemyInstallationStore, cipher: TokenCipher,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.cipher = cipher
        self.clock = clock
        self._cache: dict[tuple[Any, ...], _Cached] = {}

    @property
    def logger(self) -> logging.Logger:
        return log

    # Writes ----------------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        await self.inner.async_save(self._sealed(installation))
        self._cache.clear()

    async def async_save_bot(self, bot: Bot) -> None:
        await self.inner.async_save_bot(self._sealed(bot))
        self._cache.clear()

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        self._cache.clear()
        log.info("Slack bot token removed for workspace %s", team_id or enterprise_id)

    async def async_delete_installation(self, *, enterprise_id: str | None,
                                        team_id: str | None, user_id: str | None = None
                                        ) -> None:
        await self.inner.async_delete_installation(enterprise_id=enterprise_id,
                                                   team_id=team_id, user_id=user_id)
        self._cache.clear()
        log.info("Slack installation removed for workspace %s", team_id or enterprise_id)

    # Reads ------------------------------------------------------------------------------

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        found = await self._cached(
            ("bot", enterprise_id, team_id, bool(is_enterprise_install)),
            lambda: self.inner.async_find_bot(enterprise_id=enterprise_id, team_id=team_id,
                                              is_enterprise_install=is_enterprise_install))
        return self._opened(found)

    async def async_find_installation(self, *, enterprise_id: str | None,
                                      team_id: str | None, user_id: str | None = None,
                                      is_enterprise_install: bool | None = False
                                      ) -> Installation | None:
        found = await self._cached(
            ("installation", enterprise_id, team_id, user_id, bool(is_enterprise_install)),
            lambda: self.inner.async_find_installation(
                enterprise_id=enterprise_id, team_id=team_id, user_id=user_id,
                is_enterprise_install=is_enterprise_install))
        return self._opened(found)

    async def bot_token(self, team_id: str) -> str | None:
        """The bot token of a workspace's latest install (whatever its enterprise), for
        outbox delivery, where only the workspace is known; None when it is not installed."""

        async def load() -> str | None:
            bots = self.inner.bots
            c = bots.c
            query = (select(c.bot_token)
                     .where(c.client_id == self.inner.client_id, c.team_id == team_id,
                            c.bot_token.is_not(None))
                     .order_by(desc(c.installed_at)).limit(1))
            async with self.inner.engine.connect() as conn:
                return (await conn.execute(query)).scalar_one_or_none()

        sealed: str | None = await self._cached(("token", team_id), load)
        try:
            return self.cipher.open(sealed)
        except InvalidToken:
            log.warning("The Slack token of workspace %s is sealed under a key not in %s",
                        team_id, KEY_SETTING)
            return None

    def forget(self) -> None:
        """Drop every cached lookup (a token was refused: ask the database again)."""
        self._cache.clear()

    async def reseal(self) -> int:
        """Seal again, under the first key, every token sealed under another; the count.
        Several replicas doing it at once write equivalent values."""
        changed = 0
        for table in (self.inner.installations, self.inner.bots):
            columns = [table.c[name] for name in SEALED if name in table.c]
            async with self.inner.engine.begin() as conn:
                rows = (await conn.execute(select(table.c.id, *columns).where(
                    table.c.client_id == self.inner.client_id))).all()
                for row in rows:
                    values = {}
                    for column in columns:
                        sealed = row._mapping[column.name]
                        if sealed is None or self.cipher.current(sealed):
                            continue
                        try:
                            values[column.name] = self.cipher.reseal(sealed)
                        except InvalidToken:
                            log.warning("A Slack token (row %s of %s) is sealed under a key "
                                        "not in %s", row.id, table.name, KEY_SETTING)
                    if values:
                        await conn.execute(update(table).where(table.c.id == row.id)
                                           .values(**values))
                        changed += 1
        self._cache.clear()
        return changed

    # Sealing and caching ---------------------------------------------------------------

    def _sealed(self, found: T) -> T:
        sealed = copy.copy(found)
        for name in SEALED:
            if hasattr(sealed, name):
                setattr(sealed, name, self.cipher.seal(getattr(found, name)))
        return sealed

    def _opened(self, found: T | None) -> T | None:
        if found is None:
            return None
        opened = copy.copy(found)
        try:
            for name in SEALED:
                if hasattr(opened, name):
                    setattr(opened, name, self.cipher.open(getattr(found, name)))
        except InvalidToken:
            log.warning("A Slack installation is sealed under a key not in %s: it cannot be "
                        "used (add the old key after the new one, or reinstall)", KEY_SETTING)
            return None
        return opened

    async def _cached(self, key: tuple[Any, ...], load: Callable[[], Awaitable[T]]) -> T:
        """`load()`, remembered for `CACHE_SECONDS`. Past that it is asked again; when the
        database takes longer than `PATIENCE` or fails, the remembered answer stands (the
        lookup still completes in the background and refreshes it)."""
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit.at < CACHE_SECONDS:
            return copy.copy(hit.value)  # type: ignore[no-any-return]
        lookup = asyncio.ensure_future(load())

        def keep(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = _Cached(self.clock(), done.result())

        lookup.add_done_callback(keep)
        try:
            value = await asyncio.wait_for(asyncio.shield(lookup),
                                           PATIENCE if hit is not None else None)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            if hit is None:
                raise
            log.warning("Slack installation lookup slow or failing (%s): using the one "
                        "looked up %.0f s ago", type(exc).__name__, now - hit.at)
            return copy.copy(hit.value)  # type: ignore[no-any-return]
        return copy.copy(value)


class TooManyInstalls(Exception):
    pass


class BoundedStateStore(AsyncOAuthStateStore):
    """slack_sdk's async SQLAlchemy OAuth state store, with expired states deleted and at
    most `LIVE_STATES` live ones: `/slack/install` cannot be used to fill the database."""

    def __init__(self, inner: AsyncSQLAlchemyOAuthStateStore, limit: int = LIVE_STATES) -> None:
        self.inner = inner
        self.limit = limit

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        table = self.inner.oauth_states
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        async with self.inner.engine.begin() as conn:
            await conn.execute(delete(table).where(table.c.expire_at <= now))
            live = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        if live >= self.limit:
            raise TooManyInstalls()
        state: str = await self.inner.async_issue(*args, **kwargs)
        return state

    async def async_consume(self, state: str) -> bool:
        if not state or len(state) > 200:
            return False
        consumed: bool = await self.inner.async_consume(state)
        return consumed


@dataclass(frozen=True)
class OAuthParts:
    store: SealedInstallationStore
    settings: AsyncOAuthSettings
    authorize: AsyncInstallationStoreAuthorize


def oauth_parts(client_id: str, client_secret: str, keys: str, *, engine: AsyncEngine,
                api_url: str, scopes: Sequence[str]) -> OAuthParts:
    """Bolt's OAuth settings and authorize for this deployment: installations and states in
    the database behind `engine`, tokens sealed under `keys`, bot tokens only."""
    store = SealedInstallationStore(
        AsyncSQLAlchemyInstallationStore(client_id, engine=engine, logger=log),
        TokenCipher(keys))
    states = BoundedStateStore(AsyncSQLAlchemyOAuthStateStore(STATE_SECONDS, engine=engine,
                                                              logger=log))
    settings = AsyncOAuthSettings(
        client_id=client_id, client_secret=client_secret, scopes=list(scopes), user_scopes=[],
        install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH, installation_store=store,
        installation_store_bot_only=True, state_store=states,
        state_expiration_seconds=STATE_SECONDS, logger=log)
    # bolt's own authorize, with each token's `auth.test` answer remembered
    authorize = AsyncInstallationStoreAuthorize(
        logger=log, installation_store=store, client_id=client_id,
        client_secret=client_secret, bot_only=True, cache_enabled=True,
        client=AsyncWebClient(base_url=api_url))
    return OAuthParts(store, settings, authorize)


def install_routes(flow: AsyncOAuthFlow) -> list[Route]:
    """`GET /slack/install` (the Add to Slack page, with a fresh `state`) and `GET
    /slack/oauth_redirect` (Slack sends the installer back here), both Bolt's."""

    async def install(request: web.Request) -> web.StreamResponse:
        try:
            response = await flow.handle_installation(await to_bolt_request(request))
        except TooManyInstalls:
            return web.Response(status=503, text="Too many installations in progress; "
                                                 "try again in a few minutes.")
        return await to_aiohttp_response(response)

    async def redirect(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(
            await flow.handle_callback(await to_bolt_request(request)))

    return [Route("GET", INSTALL_PATH, install), Route("GET", REDIRECT_PATH, redirect)]


"""A local Slack Web API on port 0 for the Slack adapter's tests, and signed requests.

Like python-slack-sdk's own mock server, it records every call (with the token it carried);
it serves the methods the adapter uses (`auth.test`, `users.info`, `conversations.open`,
`chat.*`, `views.open`, `oauth.v2.access`) and the `response_url`s it hands out, answers a
method with an `ok: false` error or a 429 with `Retry-After` on demand, and can be made
slow. Posted messages keep their `metadata` (unless told to drop it, as an app without
the metadata scopes sees them) and are served back by `conversations.history` and
`conversations.replies`; a post can be held unanswered (a sender that dies before it learns
the message arrived), and posts can be limited to one per `pace` seconds per channel, beyond
which Slack's 429 with `Retry-After` comes back. Requests to the adapter are signed the way
Slack signs them, with slack_sdk's `SignatureVerifier`.

It is also Slack's Socket Mode end: `apps.connections.open` hands out a `ws://` URL served
here, where each new link gets a `hello`, envelopes are sent as Slack sends them
(`slash_commands`, `events_api`, `interactive`, `disconnect`) and acknowledgements are
recorded; a link can be dropped from this side.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import ClientSession, WSMsgType, web
from slack_sdk.signature import SignatureVerifier

TEAM = "T0DEMO"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)
    token: str | None = None  # the bearer token of the call, as its Authorization header said
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Install:
    """What `oauth.v2.access` answers for one code: a workspace's bot token."""

    team: str
    token: str
    installer: str = "U0INSTALLER"
    team_name: str = "Workspace"


BACKLOG = 4096  # connections waiting to be accepted (the kernel caps it at somaxconn)


@dataclass
class FakeSlack:
    """The Web API at `url`, `response_url`s under `hooks`; `calls` in order."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # method → `ok: false` error, once
    limited: dict[str, int] = field(default_factory=dict)  # method → Retry-After, once
    delay: float = 0.0
    hook_delay: float = 0.0  # seconds a `response_url` takes to answer (work held that long)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by channel
    files: dict[str, bytes] = field(default_factory=dict)  # served at `file_url(name)`
    token: str = "xoxb-test-token"  # the bot token a file download must carry
    installs: dict[str, Install] = field(default_factory=dict)  # OAuth code → install
    teams: dict[str, str] = field(default_factory=dict)  # bot token → its workspace
    links: list[web.WebSocketResponse] = field(default_factory=list)  # Socket Mode links
    acks: list[dict[str, Any]] = field(default_factory=list)  # what came back over them
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _hooks: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    runner: web.AppRunner | None = None
    port: int = 0
    keep_metadata: bool = True  # False: posts lose their metadata, lookups find nothing
    # A method whose calls are recorded (a post stored) but not answered until `answer` is
    # set: the sender never learns the outcome.
    stall: str | None = None
    answer: asyncio.Event = field(default_factory=asyncio.Event)
    # method → how its next answer breaks after the call was carried out (a post stored),
    # once: "reset" (the connection reset), "cut" (the body cut short), "bare" (`ok`
    # alone, no channel or ts), "502" (a gateway's error page).
    broken: dict[str, str] = field(default_factory=dict)
    pace: float = 0.0  # seconds between posts to one channel; 0: no limit
    last_post: dict[str, float] = field(default_factory=dict)  # channel → time.monotonic()
    refused: int = 0  # posts answered 429 for going faster than `pace`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{next(self._hooks)}"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files-pri/{TEAM}-F0/download/{name}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{file}/download/{name}", self._file)
        app.router.add_get("/moved/{name}", self._moved)
        app.router.add_post("/hooks/{id}", self._hook)
        app.router.add_get("/link/", self._link)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        # A restart after `stop` comes back on the same port (Slack down, then up again).
        # Slack takes any number of new connections at once; with aiohttp's default accept
        # backlog (128) a few hundred deliveries starting together would see their
        # connections dropped and retried by the kernel a second later, an artefact of
        # the fake, not of the client.
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=BACKLOG)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        for link in self.links:
            await link.close()
        if self.runner is not None:
            await self.runner.cleanup()

    # Socket Mode -----------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        """One Socket Mode link: `hello`, then every text frame that comes back is an ack."""
        link = web.WebSocketResponse(autoping=True)
        await link.prepare(request)
        await link.send_json({"type": "hello", "num_connections": 1,
                              "debug_info": {"host": "applink-fake", "build_number": 1,
                                             "approximate_connection_time": 18060},
                              "connection_info": {"app_id": "A0APP"}})
        async with self.arrived:
            self.links.append(link)
            self.arrived.notify_all()
        async for frame in link:
            if frame.type == WSMsgType.TEXT:
                async with self.arrived:
                    self.acks.append(json.loads(frame.data))
                    self.arrived.notify_all()
        return link

    @property
    def link(self) -> web.WebSocketResponse:
        """The latest link, which must be open."""
        assert self.links and not self.links[-1].closed, "no open Socket Mode link"
        return self.links[-1]

    async def until(self, ready: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait until `ready()` holds, checked whenever a call, link or ack arrives."""
        async def wait() -> None:
            async with self.arrived:
                await self.arrived.wait_for(ready)

        await asyncio.wait_for(wait(), seconds)

    async def linked(self, count: int = 1) -> web.WebSocketResponse:
        """The latest link, once `count` links have been opened and it is open."""
        await self.until(lambda: len(self.links) >= count and not self.links[-1].closed)
        return self.links[-1]

    async def send(self, envelope: dict[str, Any]) -> str:
        """Send an envelope over the latest link; its envelope id."""
        await self.link.send_json(envelope)
        return str(envelope.get("envelope_id", ""))

    async def ack(self, envelope_id: str, seconds: float = 10.0) -> dict[str, Any]:
        """The acknowledgement of an envelope, once it has come back."""
        await self.until(lambda: any(a.get("envelope_id") == envelope_id for a in self.acks),
                         seconds)
        return next(a for a in self.acks if a.get("envelope_id") == envelope_id)

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    async def wait_for(self, method: str, count: int = 1, seconds: float = 10.0
                       ) -> list[dict[str, Any]]:
        """The calls of `method`, once there are at least `count` of them."""
        async def enough() -> None:
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.of(method)) >= count)

        await asyncio.wait_for(enough(), seconds)
        return self.of(method)

    def posted(self, channel: str) -> list[tuple[dict[str, Any], str]]:
        """The messages posted in `channel` (not under a thread), with their ts."""
        return [(c.args, c.result["ts"]) for c in self.calls
                if c.method == "chat.postMessage" and c.result.get("ok")
                and c.args["channel"] == channel and "thread_ts" not in c.args]

    async def _record(self, call: Call) -> None:
        async with self.arrived:
            self.calls.append(call)
            self.arrived.notify_all()

    async def _file(self, request: web.Request) -> web.Response:
        """A file's bytes, to the bot token only (Slack answers others with a login page)."""
        name = request.match_info["name"]
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        await self._record(Call("file", {"name": name, "authorized": authorized}))
        if not authorized or name not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[name], content_type="application/octet-stream")

    async def _moved(self, request: web.Request) -> web.Response:
        """A redirect to wherever the query's `to` says."""
        await self._record(Call("moved", {"name": request.match_info["name"]}))
        raise web.HTTPFound(request.query["to"])

    async def _hook(self, request: web.Request) -> web.Response:
        if self.hook_delay:
            await asyncio.sleep(self.hook_delay)
        await self._record(Call("response_url", {"id": request.match_info["id"],
                                                 **await request.json()}))
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.can_read_body:
            args.update(dict(parse_qsl(await request.text())))
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        if self.delay:
            await asyncio.sleep(self.delay)
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Basic":  # a client's id and secret (`oauth.v2.access`)
            client_id, _, client_secret = base64.b64decode(credentials).decode().partition(":")
            args |= {"client_id": client_id, "client_secret": client_secret}
        token = credentials if scheme == "Bearer" else args.get("token")
        call = Call(method, args, token=token)
        if method in self.limited:
            call.result = {"ok": False, "error": "ratelimited"}
            retry_after = self.limited.pop(method)
            await self._record(call)
            return web.json_response(call.result, status=429,
                                     headers={"Retry-After": str(retry_after)})
        if method == "chat.postMessage" and self.pace > 0:
            channel, now = str(args.get("channel")), time.monotonic()
            wait = self.last_post.get(channel, -self.pace) + self.pace - now
            if wait > 0:
                self.refused += 1
                call.result = {"ok": False, "error": "ratelimited"}
                await self._record(call)
                return web.json_response(call.result, status=429,
                                         headers={"Retry-After": str(max(1, round(wait)))})
            self.last_post[channel] = now
        if method in self.errors:
            call.result = {"ok": False, "error": self.errors.pop(method)}
        else:
            call.result = {"ok": True, **self._answer(method, args, call.token)}
        await self._record(call)
        if method == self.stall:
            await self.answer.wait()
        if (how := self.broken.pop(method, None)) is not None:
            return await self._broken(request, how)
        return web.json_response(call.result)

    async def _broken(self, request: web.Request, how: str) -> web.StreamResponse:
        """An answer that never reaches the caller whole (see `broken`)."""
        if how == "bare":
            return web.json_response({"ok": True})
        if how == "502":
            return web.Response(status=502, text="<html>Bad Gateway</html>",
                                content_type="text/html")
        transport = request.transport
        assert transport is not None
        if how == "reset":
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return web.Response()  # never sent: the connection is gone
        answer = web.StreamResponse(headers={"Content-Type": "application/json",
                                             "Content-Length": "100"})
        await answer.prepare(request)
        await answer.write(b'{"ok": true, "chan')
        transport.close()
        return answer

    def _store(self, args: dict[str, Any], ts: str) -> None:
        """Keep a posted message for `conversations.history` and `.replies`."""
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        message: dict[str, Any] = {"type": "message", "user": "U0BOT", "bot_id": "B0BOT",
                                   "ts": ts, "text": args.get("text", "")}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        if metadata and self.keep_metadata:
            message["metadata"] = metadata
        self.messages.setdefault(str(args["channel"]), []).append(message)

    def _conversation(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """One message by its ts (`latest` or `ts` alone), or, given `oldest`, the channel's
        messages (`history`: not replies) or the thread's since then, newest first; their
        metadata only when asked for (`include_all_metadata`)."""
        messages = self.messages.get(args["channel"], [])
        if "oldest" not in args:
            key = "latest" if method == "conversations.history" else "ts"
            return {"messages": [m for m in messages if m["ts"] == args[key]],
                    "has_more": False}
        oldest = float(args["oldest"])
        if method == "conversations.history":
            found = [m for m in messages if m.get("thread_ts", m["ts"]) == m["ts"]]
        else:
            found = [m for m in messages if args["ts"] in (m["ts"], m.get("thread_ts"))]
        found = [m for m in found if float(m["ts"]) >= oldest]
        if str(args.get("include_all_metadata")).lower() not in ("1", "true"):
            found = [{k: v for k, v in m.items() if k != "metadata"} for m in found]
        return {"messages": found[::-1], "has_more": False}

    def _answer(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        match method:
            case "auth.test":
                team = self.teams.get(token or "", TEAM)
                return {"url": f"https://{team.lower()}.slack.test/", "team": "Demo",
                        "user": "subdesk", "team_id": team, "user_id": "U0BOT",
                        "bot_id": "B0BOT"}
            case "apps.connections.open":
                return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={next(self._ts)}"}
            case "oauth.v2.access":
                install = self.installs.get(str(args.get("code")))
                if install is None:
                    return {"ok": False, "error": "invalid_code"}
                self.teams[install.token] = install.team
                return {"app_id": "A0APP", "authed_user": {"id": install.installer},
                        "scope": "commands,chat:write", "token_type": "bot",
                        "access_token": install.token, "bot_user_id": "U0BOT",
                        "team": {"id": install.team, "name": install.team_name},
                        "enterprise": None, "is_enterprise_install": False}
            case "users.info":
                return {"user": self.users.get(args["user"], {"id": args["user"],
                                                              "team_id": TEAM})}
            case "conversations.open":
                return {"channel": {"id": "D" + str(args["users"])}}
            case "chat.postMessage":
                self._store(args, ts)
                return {"channel": args["channel"], "ts": ts,
                        "message": {"text": args.get("text"), "ts": ts}}
            case "chat.update":
                return {"channel": args["channel"], "ts": args["ts"]}
            case "chat.postEphemeral":
                return {"message_ts": ts}
            case "conversations.history" | "conversations.replies":
                return self._conversation(method, args)
            case "chat.getPermalink":
                return {"channel": args["channel"], "permalink": (
                    f"https://demo.slack.test/archives/{args['channel']}/"
                    f"p{str(args['message_ts']).replace('.', '')}")}
            case "views.publish":
                return {"view": {"id": "V0HOME", **args["view"]}}
            case "views.open":
                return {"view": {"id": "V0001", **args["view"]}}
        return {}


def signed(body: str, *, secret: str = SECRET, age: float = 0.0) -> dict[str, str]:
    """Headers that sign `body` as Slack does (`v0=` HMAC over `v0:timestamp:body`)."""
    timestamp = str(int(time.time() - age))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}


@dataclass
class SlackClient:
    """Sends what Slack sends to the adapter's `POST /slack/events`, signed."""

    events_url: str
    fake: FakeSlack
    http: ClientSession
    _triggers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def trigger(self) -> str:
        return f"{next(self._triggers)}.98765.abcdef"

    async def post(self, body: str, content_type: str, *, headers: dict[str, str] | None = None,
                   secret: str = SECRET, age: float = 0.0) -> tuple[int, str, float]:
        """Status, body text and seconds until the answer came."""
        sent = {"Content-Type": content_type, **signed(body, secret=secret, age=age),
                **(headers or {})}
        started = time.perf_counter()
        async with self.http.post(self.events_url, data=body.encode(), headers=sent) as resp:
            text = await resp.text()
        return resp.status, text, time.perf_counter() - started

    async def command(self, user: str, command: str, text: str, *, channel: str = "C0GENERAL",
                      team: str = TEAM, **kwargs: Any) -> tuple[int, str, float]:
        form = command_payload(self.fake, user, command, text, channel=channel, team=team,
                               trigger=self.trigger())
        return await self.post(urlencode(form), "application/x-www-form-urlencoded", **kwargs)

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str, float]:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def press(self, user: str, button: dict[str, Any], *, channel: str,
                    message_ts: str) -> tuple[int, str, float]:
        """A `block_actions` payload for a button of a posted message."""
        return await self.interact({
            "type": "block_actions", "api_app_id": "A0APP", "trigger_id": self.trigger(),
            "team": {"id": TEAM, "domain": "demo"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel, "name": "triage"},
            "message": {"type": "message", "ts": message_ts, "text": "card"},
            "response_url": self.fake.response_url(),
            "actions": [{"type": "button", "block_id": "b1", "action_id": button["action_id"],
                         "value": button["value"], "text": button["text"],
                         "action_ts": "1700000100.000001"}],
        })

    async def shortcut(self, user: str, callback_id: str, message: dict[str, Any], *,
                       channel: str, team: str = TEAM) -> tuple[int, str, float]:
        """A message shortcut (`message_action`) used on `message` in `channel`."""
        return await self.interact({
            "type": "message_action", "token": "x", "action_ts": "1700000200.000001",
            "callback_id": callback_id, "trigger_id": self.trigger(),
            "team": {"id": TEAM, "domain": "demo"},
            "user": {"id": user, "username": user.lower(), "team_id": team},
            "channel": {"id": channel, "name": "support"}, "is_enterprise_install": False,
            "response_url": self.fake.response_url(), "message_ts": message["ts"],
            "message": message,
        })

    async def submit(self, user: str, view: dict[str, Any], values: dict[str, str]
                     ) -> tuple[int, str, float]:
        """A `view_submission` of an opened modal with `values` typed or picked."""
        state: dict[str, Any] = {}
        for block in view["blocks"]:
            if block.get("type") != "input":
                continue
            element = block["element"]
            value = values.get(block["block_id"])
            if element["type"] == "static_select":
                picked = {"value": value, "text": {"type": "plain_text", "text": value}}
                state[block["block_id"]] = {"value": {"type": "static_select",
                                                      "selected_option": picked if value
                                                      else None}}
            else:
                state[block["block_id"]] = {"value": {"type": "plain_text_input",
                                                      "value": value}}
        return await self.interact({
            "type": "view_submission", "api_app_id": "A0APP", "trigger_id": self.trigger(),
            "team": {"id": TEAM, "domain": "demo"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "view": {**view, "id": "V0001", "team_id": TEAM, "state": {"values": state}},
        })

    async def event(self, event: dict[str, Any], event_id: str, *, retry: int = 0,
                    team: str = TEAM) -> tuple[int, str, float]:
        body = json.dumps(event_payload(event, event_id, team=team))
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"
                   } if retry else None
        return await self.post(body, "application/json", headers=headers)


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A posted message's buttons by label."""
    return {e["text"]["text"]: e for b in blocks if b["type"] == "actions"
            for e in b["elements"] if e["type"] == "button"}


def command_payload(fake: FakeSlack, user: str, command: str, text: str, *, trigger: str,
                    channel: str = "C0GENERAL", team: str = TEAM) -> dict[str, str]:
    """A slash command as Slack sends it (form fields over HTTP, JSON over Socket Mode)."""
    return {"token": "x", "team_id": team, "team_domain": "demo", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": user.lower(),
            "command": command, "text": text, "api_app_id": "A0APP",
            "is_enterprise_install": "false", "response_url": fake.response_url(),
            "trigger_id": trigger}


def event_payload(event: dict[str, Any], event_id: str, *, team: str = TEAM) -> dict[str, Any]:
    """An Events API `event_callback` as Slack sends it."""
    return {"token": "x", "team_id": team, "api_app_id": "A0APP", "type": "event_callback",
            "event_id": event_id, "event_time": int(time.time()), "event": event,
            "authorizations": [{"enterprise_id": None, "team_id": team, "user_id": "U0BOT",
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False, "event_context": f"4-{event_id}"}


@dataclass
class SocketSlack:
    """Sends what Slack sends over a Socket Mode link: envelopes, each with its own id."""

    fake: FakeSlack
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _triggers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def envelope_id(self) -> str:
        return f"dbdd0ef3-1543-4f94-bfb4-{next(self._ids):012d}"

    async def command(self, user: str, command: str, text: str, *,
                      channel: str = "C0GENERAL") -> str:
        payload = command_payload(self.fake, user, command, text, channel=channel,
                                  trigger=f"{next(self._triggers)}.13579.socket")
        return await self.fake.send({"envelope_id": self.envelope_id(), "payload": payload,
                                     "type": "slash_commands",
                                     "accepts_response_payload": True})

    async def event(self, event: dict[str, Any], event_id: str, *, retry: int = 0,
                    envelope_id: str | None = None) -> str:
        """An `events_api` envelope; a retry carries `retry_attempt` and its reason."""
        return await self.fake.send({
            "envelope_id": envelope_id or self.envelope_id(),
            "payload": event_payload(event, event_id), "type": "events_api",
            "accepts_response_payload": False, "retry_attempt": retry,
            "retry_reason": "timeout" if retry else ""})

    async def interact(self, payload: dict[str, Any]) -> str:
        return await self.fake.send({
            "envelope_id": self.envelope_id(), "payload": payload, "type": "interactive",
            "accepts_response_payload": payload.get("type") == "view_submission"})

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's word that this link is about to go: open another."""
        await self.fake.send({"type": "disconnect", "reason": reason,
                              "debug_info": {"host": "applink-fake"}})

"""The single aiohttp server (SPEC §6): `/healthz`, `/readyz`, and the bearer-token import API
`POST /api/v1/orders` and `POST /api/v1/invoices`, validated against `openapi.yaml`.

`build_http_app(app)` returns the `web.Application`; later features add their routes to it
(Slack events, metrics, Alertmanager hooks). `serve()` starts it and returns the runner.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.contrib.aiohttp import AIOHTTPOpenAPIWebRequest
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError, OperationalError

from adapters.http.bodies import read_within
from adapters.http.limits import over_limits
from bot.delivery.ports import Route, readiness_of
from bot.importing import ImportFailed, field_path, parse_json, validate
from bot.services.alerts import AmPayload, from_alertmanager
from bot.services.base import ServiceError
from bot.services.billing import parse_invoices
from bot.services.onboarding import OrderForm
from bot.wiring import logs
from bot.wiring.runtime import App, configuration_gaps
from storage.db import is_outage

log = logging.getLogger(__name__)

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
APP: web.AppKey[App] = web.AppKey("subdesk_app", App)
# One import document is parsed and validated at a time, so concurrent requests cannot
# multiply the memory a maximal body costs.
GATE: web.AppKey[asyncio.Semaphore] = web.AppKey("subdesk_import_gate", asyncio.Semaphore)
_MESSAGE_MAX = 300
READINESS_TIMEOUT = 2.0  # seconds an adapter may take to say whether it is ready
_ERRORS_MAX = 100
_REQUIRED = re.compile(r"^'([^']+)' is a required property$")
_EXTRA = re.compile(r"\('([^']+)'(?: was| were) unexpected\)")


@lru_cache(maxsize=1)
def openapi() -> Any:
    """The shipped OpenAPI 3 document, parsed once."""
    return OpenAPI.from_file_path(str(SPEC_PATH))


def _schema_errors(error: Exception) -> list[str]:
    cause = error.__cause__
    details = getattr(cause, "schema_errors", None)
    if not details:
        return [str(cause or error).split("\n")[0][:300]]
    lines = []
    for item in details:
        path = list(item.absolute_path)
        message = str(item.message)
        if item.validator == "required" and (m := _REQUIRED.match(message)):
            path.append(m.group(1))
            message = "field required"
        elif item.validator == "additionalProperties" and (m := _EXTRA.search(message)):
            path.append(m.group(1))
            message = "unexpected field"
        if len(message) > _MESSAGE_MAX:  # messages quote the offending value, which may be huge
            message = message[:_MESSAGE_MAX] + "…"
        lines.append(f"{field_path(path) or 'body'}: {message}")
    return sorted(lines)


def _json_error(status: int, error: str, errors: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if errors:
        more = len(errors) - _ERRORS_MAX
        body["errors"] = errors[:_ERRORS_MAX] + ([f"(+{more} more)"] if more > 0 else [])
    return web.json_response(body, status=status)


def _authorized(app: App, request: web.Request) -> web.Response | None:
    """None when the bearer token matches; otherwise the refusal to send."""
    token = app.settings.api_token
    if token is None:
        return _json_error(503, "the API is disabled: SUBDESK_API_TOKEN is not set")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    try:
        offered = given.strip().encode()
    except UnicodeEncodeError:  # bytes no token has
        offered = b""
    if (scheme.lower() != "bearer" or not offered
            or not hmac.compare_digest(offered, expected)):
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="subdesk"'},
        )
    return None


def _too_large(limit: int) -> web.Response:
    """413 as an RFC 9457 problem document (with the `error` member every refusal has)."""
    detail = f"the body is larger than {limit} bytes (SUBDESK_API_MAX_BODY_BYTES); split it"
    return web.json_response(
        {"type": "about:blank", "title": "Payload Too Large", "status": 413,
         "detail": detail, "error": detail},
        status=413,
        content_type="application/problem+json",
    )


async def _read_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    body = await read_within(request, limit)
    return _too_large(limit) if body is None else body


def _prepare(kind: str, settings: Any, openapi_request: Any, raw: bytes) -> Any:
    """Parse, bound and validate an import body; CPU-bound, so run off the event loop.

    Raises `ImportFailed` with one line per problem; returns the validated document.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFailed([f"body: not UTF-8 text (byte {exc.start})"]) from None
    try:
        document = parse_json(raw)
    except ImportFailed as exc:
        raise ImportFailed([f"body: {line}" for line in exc.errors]) from None
    if errors := over_limits(kind, document, settings):
        raise ImportFailed(errors)
    result = openapi().unmarshal_request(openapi_request)
    if result.errors:
        errors = []
        for error in result.errors:
            errors.extend(_schema_errors(error))
        raise ImportFailed(errors)
    if kind == "orders":
        return validate(document, OrderForm)
    return parse_invoices("body.json", raw)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers, every configured adapter is connected and no delivery
    is held for the operator; else 503 with the reasons (`adapters` names each adapter's)."""
    app = request.app[APP]
    try:
        await app.db.ping()
    except Exception as exc:
        log.warning("readiness check: database unavailable (%s)", type(exc).__name__)
        return web.json_response({"status": "database unavailable"}, status=503)
    adapters: dict[str, str] = {}
    for name, adapter in sorted(app.adapters.items()):
        try:
            reason = await asyncio.wait_for(readiness_of(adapter), READINESS_TIMEOUT)
        except TimeoutError:
            reason = "its readiness check timed out"
        except Exception as exc:
            log.warning("readiness check of %s: %s", name, type(exc).__name__)
            reason = f"its readiness check failed ({type(exc).__name__})"
        if reason:
            adapters[name] = reason[:_MESSAGE_MAX]
    reasons = list(adapters.values())
    # Held deliveries of a platform whose adapter did not already say why.
    told = {p for name in adapters for p in app.adapters[name].transports}
    reasons += [line for platform, line in (await app.services.outbox.held()).items()
                if platform not in told]
    body: dict[str, Any] = {"status": "; ".join(reasons) if reasons else "ready"}
    if adapters:
        body["adapters"] = adapters
    if gaps := configuration_gaps(app.settings):
        body["warnings"] = gaps
    return web.json_response(body, status=503 if reasons else 200)


async def _authorized_body(request: web.Request) -> bytes | web.Response:
    """The request's body once its bearer token checks out, or the refusal to send."""
    app = request.app[APP]
    refused = _authorized(app, request)
    if refused is not None:
        return refused
    return await _read_body(request, app.settings.api_max_body_bytes)


async def _import(request: web.Request, kind: str) -> web.Response:
    app = request.app[APP]
    raw = await _authorized_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        async with request.app[GATE]:
            document = await asyncio.to_thread(
                _prepare, kind, app.settings, AIOHTTPOpenAPIWebRequest(request, body=raw), raw
            )
        del raw
        if kind == "orders":
            report: Any = await app.services.onboarding.import_orders(document)
        else:
            report = await app.services.billing.import_invoices(document)
    except ImportFailed as exc:
        return _json_error(400, "invalid request body; nothing was written", exc.errors)
    except ServiceError as exc:
        return _json_error(400, str(exc))
    except (OperationalError, DBAPIError, OSError) as exc:
        if not is_outage(exc):  # a statement the database refused: a bug, not an outage
            log.exception("import API: the database refused the import")
            return _json_error(500, "the import could not be applied; nothing was written")
        log.warning("import API: database unavailable (%s)", type(exc).__name__)
        return _json_error(503, "temporarily unavailable; nothing was written")
    app.dispatcher.poke()
    return web.json_response(report.model_dump())


async def import_orders(request: web.Request) -> web.Response:
    return await _import(request, "orders")


async def import_invoices(request: web.Request) -> web.Response:
    return await _import(request, "invoices")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition (no token: counts only, nothing personal)."""
    app = request.app[APP]
    try:
        body = await app.services.metrics.scrape(app.db, app.clock.now())
    except (OperationalError, DBAPIError, OSError) as exc:
        log.warning("metrics: database unavailable (%s)", type(exc).__name__)
        return _json_error(503, "database unavailable")
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def alertmanager_hook(request: web.Request) -> web.Response:
    """Alertmanager's webhook (payload version 4): one message per alert fingerprint."""
    app = request.app[APP]
    raw = await _authorized_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        # Parsing and validation run off the event loop, one document at a time, like imports.
        async with request.app[GATE]:
            payload = await asyncio.to_thread(lambda: validate(parse_json(raw), AmPayload))
        received = await app.services.alerts.receive(
            "alertmanager", [from_alertmanager(alert) for alert in payload.alerts])
    except ImportFailed as exc:
        return _json_error(400, "invalid Alertmanager notification; nothing was changed",
                           exc.errors)
    except (OperationalError, DBAPIError, OSError) as exc:
        log.warning("alert hook: database unavailable (%s)", type(exc).__name__)
        return _json_error(503, "temporarily unavailable; nothing was changed")
    app.dispatcher.poke()
    return web.json_response({"posted": len(received.posted), "updated": len(received.updated),
                              "unchanged": len(received.unchanged)})


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_ids(request: web.Request, handler: Any) -> web.StreamResponse:
    """Each request's log records carry its id (the caller's `X-Request-Id` when it is a
    plain token, else a new one), echoed in the response."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if _REQUEST_ID.fullmatch(given) else logs.new_id()
    with logs.scope(logs.request_id, rid):
        response: web.StreamResponse = await handler(request)
        log.debug("%s %s: %s", request.method, request.path[:200], response.status)
    response.headers["X-Request-Id"] = rid
    return response


def build_http_app(app: App, routes: Sequence[Route] = ()) -> web.Application:
    """The aiohttp application for `app`, with the adapters' `routes` mounted beside its own."""
    web_app = web.Application(client_max_size=app.settings.api_max_body_bytes,
                              middlewares=[request_ids])
    web_app[APP] = app
    web_app[GATE] = asyncio.Semaphore(1)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_post("/api/v1/orders", import_orders)
    web_app.router.add_post("/api/v1/invoices", import_invoices)
    web_app.router.add_post("/hooks/alertmanager", alertmanager_hook)
    web_app.router.add_get("/metrics", metrics)
    for route in routes:
        web_app.router.add_route(route.method, route.path, route.handler)
    return web_app


async def serve(
    app: App, host: str, port: int, routes: Sequence[Route] = ()
) -> web.AppRunner:
    """Start the server on host:port (0: any free port); `await runner.cleanup()` stops it."""
    runner = web.AppRunner(build_http_app(app, routes), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

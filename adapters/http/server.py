"""The single aiohttp server (SPEC §6): `/healthz`, `/readyz`, and the bearer-token import API
`POST /api/v1/orders` and `POST /api/v1/invoices`, validated against `openapi.yaml`.

`build_http_app(app)` returns the `web.Application`; later features add their routes to it
(Slack events, metrics, Alertmanager hooks). `serve()` starts it and returns the runner.
"""

from __future__ import annotations

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
from sqlalchemy.exc import DBAPIError, OperationalError

from bot.importing import ImportFailed, field_path, load_json
from bot.ports import Route
from bot.runtime import App, configuration_gaps
from bot.services.base import ServiceError
from bot.services.billing import parse_invoices
from bot.services.onboarding import OrderForm

log = logging.getLogger(__name__)

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
APP: web.AppKey[App] = web.AppKey("subdesk_app", App)
MAX_BODY = 20 * 1024 * 1024
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
        lines.append(f"{field_path(path) or 'body'}: {message}")
    return sorted(lines)


def _json_error(status: int, error: str, errors: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status)


def _authorized(app: App, request: web.Request) -> web.Response | None:
    """None when the bearer token matches; otherwise the refusal to send."""
    token = app.settings.api_token
    if token is None:
        return _json_error(503, "the API is disabled: SUBDESK_API_TOKEN is not set")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="subdesk"'},
        )
    return None


async def _validated_body(request: web.Request) -> bytes | web.Response:
    raw = await request.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _json_error(400, "invalid request body; nothing was written",
                           [f"body: not UTF-8 text (byte {exc.start})"])
    result = openapi().unmarshal_request(AIOHTTPOpenAPIWebRequest(request, body=raw))
    if result.errors:
        errors: list[str] = []
        for error in result.errors:
            errors.extend(_schema_errors(error))
        return _json_error(400, "invalid request body; nothing was written", errors)
    return raw


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[APP].db.ping()
    except Exception as exc:
        log.warning("readiness check: database unavailable (%s)", type(exc).__name__)
        return web.json_response({"status": "database unavailable"}, status=503)
    body: dict[str, Any] = {"status": "ready"}
    if gaps := configuration_gaps(request.app[APP].settings):
        body["warnings"] = gaps
    return web.json_response(body)


async def _import(request: web.Request, kind: str) -> web.Response:
    app = request.app[APP]
    refused = _authorized(app, request)
    if refused is not None:
        return refused
    raw = await _validated_body(request)
    if isinstance(raw, web.Response):
        return raw
    try:
        if kind == "orders":
            report: Any = await app.services.onboarding.import_orders(load_json(raw, OrderForm))
        else:
            report = await app.services.billing.import_invoices(parse_invoices("body.json", raw))
    except ImportFailed as exc:
        return _json_error(400, "invalid request body; nothing was written", exc.errors)
    except ServiceError as exc:
        return _json_error(400, str(exc))
    except (OperationalError, DBAPIError, OSError) as exc:
        log.warning("import API: database unavailable (%s)", type(exc).__name__)
        return _json_error(503, "temporarily unavailable; nothing was written")
    app.dispatcher.poke()
    return web.json_response(report.model_dump())


async def import_orders(request: web.Request) -> web.Response:
    return await _import(request, "orders")


async def import_invoices(request: web.Request) -> web.Response:
    return await _import(request, "invoices")


def build_http_app(app: App, routes: Sequence[Route] = ()) -> web.Application:
    """The aiohttp application for `app`, with the adapters' `routes` mounted beside its own."""
    web_app = web.Application(client_max_size=MAX_BODY)
    web_app[APP] = app
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_post("/api/v1/orders", import_orders)
    web_app.router.add_post("/api/v1/invoices", import_invoices)
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

"""Logging: plain text or one JSON object per line (`SUBDESK_LOG_FORMAT=json`), each record
with the id of the HTTP request or command it belongs to, and every configured secret
masked wherever it would appear (a library's debug line, an exception's text).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from bot.wiring.config import Settings

MASK = "**********"
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "subdesk_request_id", default=None)
command_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "subdesk_command_id", default=None)
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MIN_SECRET = 4  # shorter values would mask ordinary words


_ID_PREFIX = os.urandom(4).hex()  # this process's, so replicas' ids do not collide
_ID_COUNTER = itertools.count(1)


def new_id() -> str:
    """A request's or command's id for the logs: unique, not secret (16 hex digits)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


def pinned(name: str, like: logging.Logger) -> logging.Logger:
    """Logger `name` with the level in effect for `like` set on it, for libraries that look
    at a logger's own level (not `isEnabledFor`) before composing their debug lines: with
    no level set (NOTSET) they compose them on every request and throw them away."""
    logger = logging.getLogger(name)
    logger.setLevel(like.getEffectiveLevel())
    return logger


@contextmanager
def scope(var: contextvars.ContextVar[str | None], value: str) -> Iterator[str]:
    """Records logged inside the block carry `value` as the request or command id."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, and the password inside each URL that holds one (as written
    and percent-decoded), longest first."""
    found: set[str] = set()
    urls = [settings.database_url]
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and (raw := value.get_secret_value()):
            found.add(raw)
            urls.append(raw)
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            found.update({password, unquote(password)})
    return sorted((s for s in found if len(s) >= _MIN_SECRET), key=len, reverse=True)


# Tokens no setting names: those of workspaces installed through OAuth (bot, user, refresh and
# app-level Slack tokens), whichever library prints them (a debug dump of `oauth.v2.access`).
TOKEN_SHAPES = re.compile(r"\b(?:xox[a-z]|xapp|xoxe\.xox[a-z]|xoxe)-[A-Za-z0-9-]{8,}")


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = list(secrets)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return TOKEN_SHAPES.sub(MASK, text)


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(_TEXT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={v}" for k, v in (("request", request_id.get()),
                                       ("command", command_id.get())) if v]
        return self.redact(line + (f" [{' '.join(ids)}]" if ids else ""))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, exception."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        if (rid := request_id.get()) is not None:
            entry["request_id"] = rid
        if (cid := command_id.get()) is not None:
            entry["command_id"] = cid
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send every record to `stream` (stderr), formatted as `SUBDESK_LOG_FORMAT` says."""
    redact = Redactor(secret_values(settings))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if settings.log_format == "json"
                         else TextFormatter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler

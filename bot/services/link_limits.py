"""Limits on link codes (SPEC §4 Linking), per chat account and per contact.

A code is emailed at most once per cool-down and a few times an hour, and a chat account
(or a contact) that has used up its wrong guesses waits out a lockout before it may guess or
ask again. Events live in the database, so the limits hold across processes and restarts.

Account limits may be told to the asker: they depend only on what that account did, whatever
email it named. Contact limits are never told: a limited contact gets the same neutral answer
as an unknown email, and no mail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

from bot.services.base import Tx
from bot.wiring.config import Settings

SENT = "sent"
FAILED = "failed"
HOUR = dt.timedelta(hours=1)


def account_scope(platform: str, workspace: str, user_id: str) -> str:
    return hashlib.sha256(f"account\0{platform}\0{workspace}\0{user_id}".encode()).hexdigest()


def contact_scope(contact_id: int) -> str:
    return hashlib.sha256(f"contact\0{contact_id}".encode()).hexdigest()


def wait_text(delta: dt.timedelta) -> str:
    """`delta` rounded up, in words: "45 seconds", "1 minute", "12 minutes"."""
    seconds = max(1, math.ceil(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def locked_until(tx: Tx, settings: Settings, scope: str) -> dt.datetime | None:
    """The end of the lockout of `scope`, when it used up its wrong guesses lately."""
    window = dt.timedelta(minutes=settings.link_lockout_minutes)
    failed = await tx.link_events.stats(scope, FAILED, tx.now - window)
    if failed.count >= settings.link_code_attempts and failed.last is not None:
        return failed.last + window
    return None


async def guesses_left(tx: Tx, settings: Settings, scope: str) -> int:
    """Wrong guesses `scope` may still make before its lockout."""
    window = dt.timedelta(minutes=settings.link_lockout_minutes)
    failed = await tx.link_events.stats(scope, FAILED, tx.now - window)
    return max(0, settings.link_code_attempts - failed.count)


async def send_refusal(tx: Tx, settings: Settings, scope: str) -> str | None:
    """Why `scope` may not be sent a code now (lockout, cool-down, hourly cap), or None."""
    until = await locked_until(tx, settings, scope)
    if until is not None:
        return f"too many wrong codes: try again in {wait_text(until - tx.now)}"
    sent = await tx.link_events.stats(scope, SENT, tx.now - HOUR)
    cooldown = dt.timedelta(seconds=settings.link_code_cooldown_seconds)
    if sent.last is not None and tx.now - sent.last < cooldown:
        wait = wait_text(sent.last + cooldown - tx.now)
        return f"a code was asked for just now: try again in {wait}"
    if sent.count >= settings.link_codes_per_hour and sent.first is not None:
        return (f"{sent.count} codes were asked for in the last hour: try again in "
                f"{wait_text(sent.first + HOUR - tx.now)}")
    return None

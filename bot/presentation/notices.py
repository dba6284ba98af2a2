"""The standing messages Subdesk sends people: welcomes, link codes, request decisions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.delivery.intents import Audience, Dropped, Intent, Intents, Rendered
from bot.domain import Contact, Organization
from bot.presentation.messages import (
    BulletList,
    Context,
    Fields,
    Heading,
    Message,
    Paragraph,
    Tone,
    command,
)
from bot.services.base import Tx

WELCOME = "welcome"
SUPPORT_WELCOME = "support_welcome"


def welcome_intent(kind: str, org: Organization, contact: Contact) -> Intent:
    """A welcome (`WELCOME` for a Main Contact, `SUPPORT_WELCOME` for a Technical Contact)
    as queued intent, rendered with the organization and contact as they are when sent."""
    return Intent({"kind": kind, "org": org.id, "contact": contact.id})


async def render_welcome(tx: Tx, intent: Mapping[str, Any], audience: Audience) -> Rendered:
    org = await tx.directory.org(int(intent["org"]))
    contact = await tx.directory.contact(int(intent["contact"]))
    if org is None or contact is None or contact.org_id != org.id:
        return Dropped("the contact is no longer one of the organization's")
    build = welcome if intent["kind"] == WELCOME else support_welcome
    return build(org, contact)


def register(intents: Intents) -> None:
    """Register the welcomes' renderer."""
    intents.register(WELCOME, render_welcome)
    intents.register(SUPPORT_WELCOME, render_welcome)


def welcome(org: Organization, contact: Contact) -> Message:
    """Sent to a new Main Contact: contractual, subscription and billing matters."""
    period = f"{org.starts_on or '—'} to {org.ends_on or 'open-ended'}"
    return Message(
        text=f"Welcome to {org.name}'s {org.level.value} subscription, {contact.name}.",
        subject=f"Welcome to your {org.level.value} subscription",
        blocks=(
            Heading(f"Welcome, {contact.name}"),
            Paragraph(
                f"You are the Main Contact of {org.name}. You will receive contractual, "
                "subscription and billing notices, and you manage your organization's contacts."
            ),
            Fields((("Organization", org.name), ("Level", org.level.value), ("Period", period))),
            BulletList(
                (
                    f"{command('contacts')} — see and manage your designated contacts",
                    f"{command('billing invoices')} — your invoices and statement",
                    f"{command('subdesk help')} — everything you can do",
                )
            ),
        ),
    )


def support_welcome(org: Organization, contact: Contact) -> Message:
    """Sent to a new Technical Contact."""
    return Message(
        text=f"Support Welcome: {contact.name}, you are a Technical Contact of {org.name}.",
        subject=f"Support Welcome — {org.name}",
        tone=Tone.GOOD,
        blocks=(
            Heading(f"Support Welcome, {contact.name}"),
            Paragraph(
                f"You are a Technical Contact of {org.name} ({org.level.value} subscription). "
                "You can open and follow support tickets and you receive technical alerts."
            ),
            BulletList(
                (
                    f"{command('ticket new [sev1|sev2|sev3|sev4] SUBJECT')} — open a ticket",
                    f"{command('ticket list')} — follow your tickets",
                    f"{command('subdesk link')} — link your chat account to get updates here",
                )
            ),
        ),
    )


def link_code(code: str, minutes: int, platform: str | None = None) -> Message:
    """The email with a link code, naming the verify command as `platform` types it."""
    return Message(
        commands_for=platform,
        text=f"Your Subdesk link code is {code}. It expires in {minutes} minutes.",
        subject="Your Subdesk link code",
        blocks=(
            Heading("Link your chat account"),
            Paragraph(f"Your code is {code}. Reply with: {command('subdesk link verify', code)}"),
            Context(
                f"It expires in {minutes} minutes. If you did not ask for it, ignore this email."
            ),
        ),
    )


def role_granted(org: Organization, contact: Contact, role: str) -> Message:
    return Message(
        text=f"{contact.name}, you are now the {role} of {org.name}.",
        subject=f"You are now the {role} of {org.name}",
        blocks=(Heading(f"You are now the {role}"), Paragraph(f"Organization: {org.name}.")),
    )

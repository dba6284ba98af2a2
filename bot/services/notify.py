"""Turn "tell this person / post in this channel" into outbox rows (SPEC §4 Notifications).

A person gets a DM on every linked chat account; by email when none is linked, and by email
as well when the message is critical. Each logical notification has a key, and each channel
it goes out on gets its own idempotency key derived from it, so it is delivered once per
channel however often it is queued.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from bot.delivery.intents import Intent
from bot.domain import ChatIdentity, Contact, Platform, StaffMember, StaffRole
from bot.presentation.messages import Message
from bot.services.base import Tx
from storage.bulk import OutboxDraft

Queued = Message | Intent  # a whole message, or intent rendered at delivery


def split_channel(channel: str) -> tuple[str, str]:
    """`slack:C123` → ("slack", "C123"); `matrix:!room:server` keeps the room's own colons."""
    platform, _, target = channel.partition(":")
    return platform, target


def person_drafts(
    name: str,
    email: str,
    accounts: Iterable[tuple[str, str]],
    key: str,
    payload: dict[str, Any],
    *,
    critical: bool = False,
) -> list[OutboxDraft]:
    """The outbox rows that notify one person: a DM per linked (platform, address) account,
    else (or also, when critical) an email. Pure, so bulk senders and `Notifier` share one
    rule."""
    label = f"{name} <{email}>"
    drafts = [
        OutboxDraft(f"{key}:{platform}:{user_id}", platform, user_id, "dm", label, payload)
        for platform, user_id in accounts
    ]
    if not drafts or critical:
        drafts.append(
            OutboxDraft(f"{key}:email:{email}", Platform.EMAIL.value, email, "email", label,
                        payload)
        )
    return drafts


class Notifier:
    """Queues notifications to people and channels in the caller's transaction."""

    async def to_contact(
        self, tx: Tx, contact: Contact, key: str, message: Queued, *, critical: bool = False
    ) -> int:
        identities = await tx.identities.identities_of_contacts([contact.id])
        return await self._to_person(
            tx, contact.name, contact.email, identities, key, message, critical=critical
        )

    async def to_contacts(
        self, tx: Tx, sends: Sequence[tuple[Contact, str, Queued]]
    ) -> int:
        """`to_contact` for each (contact, key, message) in order, with one identity query."""
        if not sends:
            return 0
        linked: dict[int | None, list[ChatIdentity]] = defaultdict(list)
        for identity in await tx.identities.identities_of_contacts([c.id for c, _, _ in sends]):
            linked[identity.contact_id].append(identity)
        queued = 0
        for contact, key, message in sends:
            queued += await self._to_person(
                tx, contact.name, contact.email, linked[contact.id], key, message, critical=False
            )
        return queued

    async def to_staff(
        self, tx: Tx, staff: StaffMember, key: str, message: Queued, *, critical: bool = False
    ) -> int:
        identities = await tx.identities.identities_of_staff(staff.id)
        return await self._to_person(
            tx, staff.name, staff.email, identities, key, message, critical=critical
        )

    async def to_role(self, tx: Tx, role: StaffRole, key: str, message: Queued) -> int:
        """Tell every staff member who has `role`; the number of people told. Zero means
        nobody holds the role: the caller must say so instead of reporting a delivery."""
        members = await tx.directory.staff_with_role(role)
        for member in members:
            await self.to_staff(tx, member, f"{key}:staff:{member.id}", message)
        return len(members)

    async def _to_person(
        self,
        tx: Tx,
        name: str,
        email: str,
        identities: Iterable[ChatIdentity],
        key: str,
        message: Queued,
        *,
        critical: bool,
    ) -> int:
        queued = 0
        accounts = [(i.platform.value, i.address) for i in identities]
        for draft in person_drafts(name, email, accounts, key, message.to_json(),
                                   critical=critical):
            inserted = await tx.outbox.enqueue(
                draft.key,
                platform=draft.platform,
                target=draft.target,
                kind=draft.kind,
                payload=draft.payload,
                recipient=draft.recipient,
                card=message.card_key,
            )
            queued += inserted is not None
        return queued

    async def email(
        self, tx: Tx, address: str, key: str, message: Queued, *, recipient: str = ""
    ) -> int:
        inserted = await tx.outbox.enqueue(
            f"{key}:email:{address}",
            platform=Platform.EMAIL.value,
            target=address,
            kind="email",
            payload=message.to_json(),
            recipient=recipient or address,
        )
        return int(inserted is not None)

    async def to_channel(self, tx: Tx, channel: str, key: str, message: Queued) -> int:
        platform, target = split_channel(channel)
        inserted = await tx.outbox.enqueue(
            f"{key}:{channel}",
            platform=platform,
            target=target,
            kind="channel",
            payload=message.to_json(),
            recipient=channel,
            card=message.card_key,
        )
        return int(inserted is not None)

    async def update_card(self, tx: Tx, message: Queued) -> int:
        """Replace card `message.card_key` with `message` wherever it was sent (an edit in
        place: `chat.update`, `m.replace`, a reprint); email copies cannot change and are
        left alone. Queued edits of the card that have not gone out yet are superseded."""
        card = message.card_key
        if card is None:
            raise ValueError("update_card needs a message with a card_key")
        version = uuid.uuid4().hex[:16]
        queued = 0
        for copy in await tx.outbox.card_copies(card):
            if copy.platform == Platform.EMAIL.value:
                continue
            inserted = await tx.outbox.enqueue(
                f"{card}:edit:{version}:{copy.platform}:{copy.target}",
                platform=copy.platform,
                target=copy.target,
                kind=copy.kind,
                payload=message.to_json(),
                recipient=copy.recipient,
                card=card,
                edit=True,
            )
            queued += inserted is not None
        return queued

    async def to_channels(
        self, tx: Tx, channels: Iterable[str], key: str, message: Queued
    ) -> int:
        total = 0
        for channel in channels:
            total += await self.to_channel(tx, channel, key, message)
        return total

    async def to_triage(
        self, tx: Tx, channels: Sequence[str], key: str, message: Queued
    ) -> int:
        """Post to the triage channels; with none configured, tell every support engineer
        directly, so what engineers must see is never queued for nobody."""
        if channels:
            return await self.to_channels(tx, channels, key, message)
        total = 0
        for engineer in await tx.directory.staff_with_role(StaffRole.ENGINEER):
            total += await self.to_staff(tx, engineer, f"{key}:staff:{engineer.id}", message)
        return total

"""Turn "tell this person / post in this channel" into outbox rows (SPEC §4 Notifications).

A person gets a DM on every linked chat account; by email when none is linked, and by email
as well when the message is critical. Each logical notification has a key, and each channel
it goes out on gets its own idempotency key derived from it, so it is delivered once per
channel however often it is queued.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain import ChatIdentity, Contact, Platform, StaffMember
from bot.messages import Message
from bot.services.base import Tx


def split_channel(channel: str) -> tuple[str, str]:
    """`slack:C123` → ("slack", "C123"); `matrix:!room:server` keeps the room's own colons."""
    platform, _, target = channel.partition(":")
    return platform, target


class Notifier:
    async def to_contact(
        self, tx: Tx, contact: Contact, key: str, message: Message, *, critical: bool = False
    ) -> int:
        identities = await tx.directory.identities_of_contacts([contact.id])
        return await self._to_person(
            tx, contact.name, contact.email, identities, key, message, critical=critical
        )

    async def to_staff(
        self, tx: Tx, staff: StaffMember, key: str, message: Message, *, critical: bool = False
    ) -> int:
        identities = await tx.directory.identities_of_staff(staff.id)
        return await self._to_person(
            tx, staff.name, staff.email, identities, key, message, critical=critical
        )

    async def _to_person(
        self,
        tx: Tx,
        name: str,
        email: str,
        identities: Iterable[ChatIdentity],
        key: str,
        message: Message,
        *,
        critical: bool,
    ) -> int:
        label = f"{name} <{email}>"
        queued = 0
        linked = False
        for identity in identities:
            platform = identity.platform.value
            linked = True
            inserted = await tx.outbox.enqueue(
                f"{key}:{platform}:{identity.user_id}",
                platform=platform,
                target=identity.user_id,
                kind="dm",
                payload=message.to_json(),
                recipient=label,
            )
            queued += inserted is not None
        if not linked or critical:
            queued += await self.email(tx, email, key, message, recipient=label)
        return queued

    async def email(
        self, tx: Tx, address: str, key: str, message: Message, *, recipient: str = ""
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

    async def to_channel(self, tx: Tx, channel: str, key: str, message: Message) -> int:
        platform, target = split_channel(channel)
        inserted = await tx.outbox.enqueue(
            f"{key}:{channel}",
            platform=platform,
            target=target,
            kind="channel",
            payload=message.to_json(),
            recipient=channel,
        )
        return int(inserted is not None)

    async def to_channels(
        self, tx: Tx, channels: Iterable[str], key: str, message: Message
    ) -> int:
        total = 0
        for channel in channels:
            total += await self.to_channel(tx, channel, key, message)
        return total

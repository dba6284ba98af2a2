"""Chat identities (which chat account is which person) and email link codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain import ChatIdentity, Contact, Organization, Platform, StaffMember
from storage.directory import contact_value, org_value, staff_value
from storage.models import ChatIdentityRow, ContactRow, LinkCodeRow, OrganizationRow, StaffRow


def identity_value(row: ChatIdentityRow) -> ChatIdentity:
    return ChatIdentity(
        Platform(row.platform), row.workspace, row.user_id, row.contact_id, row.staff_id
    )


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a chat account or an email belongs to, with what policy needs about them."""

    identity: ChatIdentity | None = None
    contact: Contact | None = None
    org: Organization | None = None
    org_contacts: int = 0
    staff: StaffMember | None = None


@dataclass(frozen=True, slots=True)
class LinkCode:
    contact_id: int
    code_hash: str
    salt: str
    attempts_left: int
    expires_at: dt.datetime


def _account(model: type[ChatIdentityRow] | type[LinkCodeRow], platform: str, workspace: str,
             user_id: str) -> tuple[Any, ...]:
    """The WHERE clauses that pick one chat account's row of `model`."""
    return (
        model.platform == platform,
        model.workspace == workspace,
        model.user_id == user_id,
    )


def _org_contacts() -> Any:
    """How many contacts the row's organization has (for the sole-contact rule)."""
    others = aliased(ContactRow)
    return (
        select(func.count(others.id))
        .where(others.org_id == ContactRow.org_id)
        .correlate(ContactRow)
        .scalar_subquery()
    )


# The two owner lookups run for every command: built once, with bound parameters, so each
# call only binds values and reuses the compiled statement.
_OWNER_OF_ACCOUNT = (
    select(ContactRow, OrganizationRow, _org_contacts(), ChatIdentityRow, StaffRow)
    .select_from(ChatIdentityRow)
    .outerjoin(ContactRow, ContactRow.id == ChatIdentityRow.contact_id)
    .outerjoin(OrganizationRow, OrganizationRow.id == ContactRow.org_id)
    .outerjoin(StaffRow, StaffRow.id == ChatIdentityRow.staff_id)
    .where(
        ChatIdentityRow.platform == bindparam("platform"),
        ChatIdentityRow.workspace == bindparam("workspace"),
        ChatIdentityRow.user_id == bindparam("user_id"),
    )
)
_EMAIL = bindparam("email", type_=String)
_SAME_EMAIL = aliased(ContactRow)
_LOWEST_CONTACT = (
    select(func.min(_SAME_EMAIL.id)).where(_SAME_EMAIL.email == _EMAIL).scalar_subquery()
)
# Staff and the lowest-id contact with one email, in one query anchored on a one-row select.
_OWNER_OF_EMAIL = (
    select(StaffRow, ContactRow, OrganizationRow, _org_contacts())
    .select_from(select(_EMAIL.label("email")).subquery("who"))
    .outerjoin(StaffRow, StaffRow.email == _EMAIL)
    .outerjoin(ContactRow, ContactRow.id == _LOWEST_CONTACT)
    .outerjoin(OrganizationRow, OrganizationRow.id == ContactRow.org_id)
)


class IdentityStore:
    """Chat accounts and link codes. Every method runs inside the caller's transaction."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    # Owners ---------------------------------------------------------------------------

    async def owner_of_account(self, platform: str, workspace: str, user_id: str) -> Owner | None:
        """The linked owner of a chat account, in one round trip (None when not linked)."""
        params = {"platform": platform, "workspace": workspace, "user_id": user_id}
        row = (await self.s.execute(_OWNER_OF_ACCOUNT, params)).first()
        if row is None:
            return None
        contact, org, count, identity, staff = row
        return Owner(
            identity=identity_value(identity),
            contact=None if contact is None else contact_value(contact),
            org=None if org is None else org_value(org),
            org_contacts=int(count or 0),
            staff=None if staff is None else staff_value(staff),
        )

    async def owner_of_email(self, email: str) -> Owner | None:
        """Staff first, else the (lowest-id) contact with this email, in one round trip."""
        row = (await self.s.execute(_OWNER_OF_EMAIL, {"email": email.lower()})).one()
        staff, contact, org, count = row
        if staff is not None:
            return Owner(staff=staff_value(staff))
        if contact is None or org is None:
            return None
        return Owner(contact=contact_value(contact), org=org_value(org), org_contacts=int(count))

    # Chat identities ------------------------------------------------------------------

    async def identity(self, platform: str, workspace: str, user_id: str) -> ChatIdentity | None:
        row = await self.s.scalar(
            select(ChatIdentityRow).where(*_account(ChatIdentityRow, platform, workspace, user_id))
        )
        return None if row is None else identity_value(row)

    async def identities_of_contacts(self, contact_ids: Sequence[int]) -> list[ChatIdentity]:
        if not contact_ids:
            return []
        rows = await self.s.scalars(
            select(ChatIdentityRow)
            .where(ChatIdentityRow.contact_id.in_(list(contact_ids)))
            .order_by(ChatIdentityRow.id)
        )
        return [identity_value(r) for r in rows]

    async def identities_of_staff(self, staff_id: int) -> list[ChatIdentity]:
        rows = await self.s.scalars(
            select(ChatIdentityRow)
            .where(ChatIdentityRow.staff_id == staff_id)
            .order_by(ChatIdentityRow.id)
        )
        return [identity_value(r) for r in rows]

    async def link(
        self,
        platform: str,
        workspace: str,
        user_id: str,
        *,
        contact_id: int | None = None,
        staff_id: int | None = None,
    ) -> ChatIdentity:
        """Point a chat account at a contact or staff member (replacing any earlier link)."""
        row = await self.s.scalar(
            select(ChatIdentityRow).where(*_account(ChatIdentityRow, platform, workspace, user_id))
        )
        if row is None:
            row = ChatIdentityRow(platform=platform, workspace=workspace, user_id=user_id)
            self.s.add(row)
        row.contact_id = contact_id
        row.staff_id = staff_id
        row.linked_at = self.now
        await self.s.flush()
        return identity_value(row)

    async def unlink(self, platform: str, workspace: str, user_id: str) -> bool:
        result = await self.s.execute(
            delete(ChatIdentityRow).where(*_account(ChatIdentityRow, platform, workspace, user_id))
        )
        return bool(getattr(result, "rowcount", 0))

    # Link codes -----------------------------------------------------------------------

    async def put_link_code(
        self,
        platform: str,
        workspace: str,
        user_id: str,
        *,
        contact_id: int,
        code_hash: str,
        salt: str,
        attempts: int,
        expires_at: dt.datetime,
    ) -> None:
        await self.drop_link_code(platform, workspace, user_id)
        self.s.add(
            LinkCodeRow(
                platform=platform,
                workspace=workspace,
                user_id=user_id,
                contact_id=contact_id,
                code_hash=code_hash,
                salt=salt,
                attempts_left=attempts,
                expires_at=expires_at,
                created_at=self.now,
            )
        )
        await self.s.flush()

    async def link_code(self, platform: str, workspace: str, user_id: str) -> LinkCode | None:
        row = await self.s.scalar(
            select(LinkCodeRow)
            .where(*_account(LinkCodeRow, platform, workspace, user_id))
            .with_for_update()
        )
        if row is None:
            return None
        return LinkCode(row.contact_id, row.code_hash, row.salt, row.attempts_left, row.expires_at)

    async def spend_link_attempt(self, platform: str, workspace: str, user_id: str) -> None:
        await self.s.execute(
            update(LinkCodeRow)
            .where(*_account(LinkCodeRow, platform, workspace, user_id))
            .values(attempts_left=LinkCodeRow.attempts_left - 1)
        )

    async def drop_link_code(self, platform: str, workspace: str, user_id: str) -> None:
        await self.s.execute(
            delete(LinkCodeRow).where(*_account(LinkCodeRow, platform, workspace, user_id))
        )

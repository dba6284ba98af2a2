"""Organizations, contacts, staff, Technical Contact requests and audit events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import (
    Contact,
    ContactRole,
    Level,
    Organization,
    Program,
    Region,
    RequestStatus,
    StaffMember,
    StaffRole,
)
from storage.models import (
    AuditEventRow,
    ChatIdentityRow,
    ContactRow,
    OrganizationRow,
    StaffRow,
    TechnicalRequestRow,
)
from storage.sql import chunks, insert_ignore


def org_value(row: OrganizationRow) -> Organization:
    return Organization(
        id=row.id,
        key=row.key,
        name=row.name,
        program=Program(row.program),
        level=Level(row.level),
        region=Region(row.region),
        timezone=row.timezone,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        sharing=row.sharing,
        alert_channels=tuple(row.alert_channels or ()),
        country=row.country,
    )


_Role = TypeVar("_Role", ContactRole, StaffRole)

_ROLE_COLUMN = {
    ContactRole.MAIN: "is_main",
    ContactRole.ADMINISTRATIVE: "is_administrative",
    ContactRole.TECHNICAL: "is_technical",
}
_STAFF_ROLE_COLUMN = {
    StaffRole.ENGINEER: "is_engineer",
    StaffRole.BILLING: "is_billing",
    StaffRole.ADMIN: "is_admin",
}


def _roles(row: object, columns: dict[_Role, str]) -> frozenset[_Role]:
    """The roles whose flag column is set on `row`."""
    return frozenset(role for role, column in columns.items() if getattr(row, column))


def contact_value(row: ContactRow) -> Contact:
    return Contact(row.id, row.org_id, row.name, row.email, _roles(row, _ROLE_COLUMN))


def staff_value(row: StaffRow) -> StaffMember:
    return StaffMember(row.id, row.email, row.name, _roles(row, _STAFF_ROLE_COLUMN))


@dataclass(frozen=True, slots=True)
class OrgFields:
    key: str
    name: str
    program: Program
    level: Level
    region: Region
    timezone: str
    starts_on: dt.date | None
    ends_on: dt.date | None
    alert_channels: tuple[str, ...]
    country: str | None = None



@dataclass(frozen=True, slots=True)
class TechnicalRequest:
    id: int
    org_id: int
    email: str
    name: str
    requested_by: int | None
    status: RequestStatus
    reason: str | None
    created_at: dt.datetime



@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: dt.datetime
    actor: str
    org_id: int | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Directory:
    """Who is who. Every method runs inside the caller's transaction."""

    def __init__(self, session: AsyncSession, now: dt.datetime) -> None:
        self.s = session
        self.now = now

    # Organizations --------------------------------------------------------------------

    async def org(self, org_id: int) -> Organization | None:
        row = await self.s.get(OrganizationRow, org_id)
        return None if row is None else org_value(row)

    async def org_by_key(self, key: str) -> Organization | None:
        row = await self.s.scalar(select(OrganizationRow).where(OrganizationRow.key == key))
        return None if row is None else org_value(row)

    async def org_ids_by_key(self, keys: Iterable[str]) -> dict[str, int]:
        """The ids of the organizations with these keys (unknown keys are left out)."""
        wanted = sorted(set(keys))
        found: dict[str, int] = {}
        for part in chunks(wanted):
            rows = await self.s.execute(
                select(OrganizationRow.key, OrganizationRow.id).where(OrganizationRow.key.in_(part))
            )
            found.update({key: org_id for key, org_id in rows})
        return found

    async def has_orgs(self) -> bool:
        return await self.s.scalar(select(OrganizationRow.id).limit(1)) is not None

    async def orgs(self) -> list[Organization]:
        rows = await self.s.scalars(select(OrganizationRow).order_by(OrganizationRow.key))
        return [org_value(r) for r in rows]

    async def upsert_org(self, fields: OrgFields) -> tuple[Organization, Organization | None]:
        """Create or update by key; returns (after, before) with before None when created.

        The row is inserted if missing (`ON CONFLICT DO NOTHING`) and then locked, so two
        imports of a new organization at once take turns instead of one failing on the
        unique key."""
        locked = (select(OrganizationRow).where(OrganizationRow.key == fields.key)
                  .with_for_update().execution_options(populate_existing=True))
        row = await self.s.scalar(locked)
        created = None
        if row is None:  # a new key (the common re-import finds it above, in one statement)
            created = await insert_ignore(self.s, OrganizationRow, {
                "key": fields.key, "name": fields.name, "program": fields.program.value,
                "level": fields.level.value, "region": fields.region.value,
                "timezone": fields.timezone, "starts_on": fields.starts_on,
                "ends_on": fields.ends_on, "sharing": False,
                "alert_channels": list(fields.alert_channels), "country": fields.country,
                "created_at": self.now, "updated_at": self.now,
            }, ("key",))
            row = await self.s.scalar(locked)
            assert row is not None
        before = None if created is not None else org_value(row)
        row.name = fields.name
        row.program = fields.program.value
        row.level = fields.level.value
        row.region = fields.region.value
        row.timezone = fields.timezone
        row.starts_on = fields.starts_on
        row.ends_on = fields.ends_on
        row.alert_channels = list(fields.alert_channels)
        row.country = fields.country
        row.updated_at = self.now
        await self.s.flush()
        return org_value(row), before

    async def set_sharing(self, org_id: int, on: bool) -> None:
        await self.s.execute(
            update(OrganizationRow)
            .where(OrganizationRow.id == org_id)
            .values(sharing=on, updated_at=self.now)
        )

    # Contacts -------------------------------------------------------------------------

    async def contact(self, contact_id: int) -> Contact | None:
        row = await self.s.get(ContactRow, contact_id)
        return None if row is None else contact_value(row)

    async def contact_by_email(self, org_id: int, email: str) -> Contact | None:
        row = await self.s.scalar(
            select(ContactRow).where(ContactRow.org_id == org_id, ContactRow.email == email.lower())
        )
        return None if row is None else contact_value(row)

    async def contacts_with_email(self, email: str) -> list[Contact]:
        rows = await self.s.scalars(
            select(ContactRow).where(ContactRow.email == email.lower()).order_by(ContactRow.id)
        )
        return [contact_value(r) for r in rows]

    async def contacts(self, org_id: int) -> list[Contact]:
        rows = await self.s.scalars(
            select(ContactRow).where(ContactRow.org_id == org_id).order_by(ContactRow.id)
        )
        return [contact_value(r) for r in rows]

    async def lock_org(self, org_id: int) -> None:
        """Serialise role changes of one organization (row lock on PostgreSQL)."""
        await self.s.execute(
            select(OrganizationRow.id).where(OrganizationRow.id == org_id).with_for_update()
        )

    async def add_contact(
        self, org_id: int, name: str, email: str, roles: Iterable[ContactRole] = ()
    ) -> Contact:
        row = ContactRow(
            org_id=org_id,
            name=name,
            email=email.lower(),
            is_main=False,
            is_administrative=False,
            is_technical=False,
            created_at=self.now,
            updated_at=self.now,
        )
        for role in roles:
            setattr(row, _ROLE_COLUMN[role], True)
        self.s.add(row)
        await self.s.flush()
        return contact_value(row)

    async def rename_contact(self, contact_id: int, name: str) -> None:
        await self.s.execute(
            update(ContactRow)
            .where(ContactRow.id == contact_id)
            .values(name=name, updated_at=self.now)
        )

    async def set_role(self, contact_id: int, role: ContactRole, on: bool) -> None:
        await self.s.execute(
            update(ContactRow)
            .where(ContactRow.id == contact_id)
            .values({_ROLE_COLUMN[role]: on, "updated_at": self.now})
        )
        await self.s.flush()

    async def clear_role(self, org_id: int, role: ContactRole) -> None:
        """Take `role` away from whoever holds it in the organization."""
        column = getattr(ContactRow, _ROLE_COLUMN[role])
        await self.s.execute(
            update(ContactRow)
            .where(ContactRow.org_id == org_id, column.is_(True))
            .values({_ROLE_COLUMN[role]: False, "updated_at": self.now})
        )
        await self.s.flush()

    async def count_role(self, org_id: int, role: ContactRole) -> int:
        column = getattr(ContactRow, _ROLE_COLUMN[role])
        count = await self.s.scalar(
            select(func.count()).where(ContactRow.org_id == org_id, column.is_(True))
        )
        return int(count or 0)

    async def delete_contact_if_roleless(self, contact_id: int) -> bool:
        """Delete a contact left without roles, with its chat identities; False otherwise."""
        row = await self.s.get(ContactRow, contact_id)
        if row is None or row.is_main or row.is_administrative or row.is_technical:
            return False
        await self.s.execute(delete(ChatIdentityRow).where(ChatIdentityRow.contact_id == row.id))
        await self.s.delete(row)
        await self.s.flush()
        return True

    # Staff ----------------------------------------------------------------------------

    async def staff(self, staff_id: int) -> StaffMember | None:
        row = await self.s.get(StaffRow, staff_id)
        return None if row is None else staff_value(row)

    async def staff_by_email(self, email: str) -> StaffMember | None:
        row = await self.s.scalar(select(StaffRow).where(StaffRow.email == email.lower()))
        return None if row is None else staff_value(row)

    async def staff_emails(self, emails: Iterable[str]) -> set[str]:
        """Which of `emails` (lower-case) belong to staff members."""
        found: set[str] = set()
        for part in chunks(sorted({e.lower() for e in emails})):
            rows = await self.s.scalars(select(StaffRow.email).where(StaffRow.email.in_(part)))
            found.update(rows)
        return found

    async def staff_with_role(self, role: StaffRole) -> list[StaffMember]:
        column = getattr(StaffRow, _STAFF_ROLE_COLUMN[role])
        rows = await self.s.scalars(select(StaffRow).where(column.is_(True)).order_by(StaffRow.id))
        return [staff_value(r) for r in rows]

    async def upsert_staff(self, email: str, name: str, roles: Iterable[StaffRole]) -> StaffMember:
        """Create a staff member or add roles; an empty `name` keeps the current one."""
        row = await self.s.scalar(select(StaffRow).where(StaffRow.email == email.lower()))
        if row is None:
            row = StaffRow(
                email=email.lower(),
                name=name or email.split("@")[0],
                is_engineer=False,
                is_billing=False,
                is_admin=False,
                created_at=self.now,
            )
            self.s.add(row)
        if name:
            row.name = name
        for role in roles:
            setattr(row, _STAFF_ROLE_COLUMN[role], True)
        await self.s.flush()
        return staff_value(row)

    # Technical Contact requests -------------------------------------------------------

    async def add_request(
        self, org_id: int, email: str, name: str, requested_by: int | None
    ) -> TechnicalRequest:
        row = TechnicalRequestRow(
            org_id=org_id,
            email=email.lower(),
            name=name,
            requested_by=requested_by,
            status=RequestStatus.PENDING.value,
            created_at=self.now,
        )
        self.s.add(row)
        await self.s.flush()
        return _request_value(row)

    async def request(self, request_id: int, *, lock: bool = False) -> TechnicalRequest | None:
        stmt = select(TechnicalRequestRow).where(TechnicalRequestRow.id == request_id)
        row = await self.s.scalar(stmt.with_for_update() if lock else stmt)
        return None if row is None else _request_value(row)

    async def pending_requests(self, org_id: int | None = None) -> list[TechnicalRequest]:
        stmt = select(TechnicalRequestRow).where(
            TechnicalRequestRow.status == RequestStatus.PENDING.value
        )
        if org_id is not None:
            stmt = stmt.where(TechnicalRequestRow.org_id == org_id)
        rows = await self.s.scalars(stmt.order_by(TechnicalRequestRow.id))
        return [_request_value(r) for r in rows]

    async def decide_request(
        self, request_id: int, status: RequestStatus, staff_id: int, reason: str | None
    ) -> None:
        await self.s.execute(
            update(TechnicalRequestRow)
            .where(TechnicalRequestRow.id == request_id)
            .values(status=status.value, decided_by=staff_id, reason=reason, decided_at=self.now)
        )

    # Audit ----------------------------------------------------------------------------

    async def audit(
        self,
        actor: str,
        org_id: int | None,
        action: str,
        target: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        self.s.add(
            AuditEventRow(
                at=self.now,
                actor=actor,
                org_id=org_id,
                action=action,
                target=target,
                before=before,
                after=after,
            )
        )

    async def audit_events(self, org_id: int | None = None, limit: int = 100) -> list[AuditEvent]:
        stmt = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
        if org_id is not None:
            stmt = stmt.where(AuditEventRow.org_id == org_id)
        rows = await self.s.scalars(stmt)
        return [
            AuditEvent(r.id, r.at, r.actor, r.org_id, r.action, r.target, r.before, r.after)
            for r in rows
        ]


def _request_value(row: TechnicalRequestRow) -> TechnicalRequest:
    return TechnicalRequest(
        row.id,
        row.org_id,
        row.email,
        row.name,
        row.requested_by,
        RequestStatus(row.status),
        row.reason,
        row.created_at,
    )

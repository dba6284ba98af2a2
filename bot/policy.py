"""Who may do what (SPEC §1), as pure functions over `Actor` values.

Nothing here does I/O; services load the facts and ask. Organization scoping is part of
every rule: a contact never acts on another organization's data.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from bot.domain import Actor, Attachment, ContactRole, StaffRole, TicketComment


class Permission(StrEnum):
    ANYONE = "anyone"
    LINKED = "linked"  # any known contact or staff member
    CONTACTS = "contacts"  # see the organization's contacts
    CONTACTS_MANAGE = "contacts_manage"  # Main Contact
    TICKETS = "tickets"  # open tickets: Technical Contact, or the sole Main Contact
    TICKETS_FOLLOW = "tickets_follow"  # follow the tickets one opened: any contact
    TICKETS_VIEW = "tickets_view"  # read one ticket: TICKETS_FOLLOW, or engineers and admins
    BILLING = "billing"  # Main or Administrative Contact
    TRIAGE = "triage"  # support engineer
    STAFF_BILLING = "staff_billing"  # billing agent
    STAFF_ADMIN = "staff_admin"  # vendor admin
    ALERTS = "alerts"  # support engineer or vendor admin


def contact_roles(actor: Actor) -> frozenset[ContactRole]:
    """The contact's roles, with the sole-contact rule applied."""
    if actor.contact is None:
        return frozenset()
    roles = set(actor.contact.roles)
    if actor.sole_contact and ContactRole.MAIN in roles:
        roles |= {ContactRole.ADMINISTRATIVE, ContactRole.TECHNICAL}
    return frozenset(roles)


def staff_roles(actor: Actor) -> frozenset[StaffRole]:
    return actor.staff.roles if actor.staff is not None else frozenset()


def allows(actor: Actor, permission: Permission) -> bool:
    """Whether `actor` may use commands guarded by `permission` at all."""
    roles = contact_roles(actor)
    staff = staff_roles(actor)
    match permission:
        case Permission.ANYONE:
            return True
        case Permission.LINKED:
            return actor.known
        case Permission.CONTACTS:
            return actor.contact is not None
        case Permission.CONTACTS_MANAGE:
            return ContactRole.MAIN in roles
        case Permission.TICKETS:
            return ContactRole.TECHNICAL in roles
        case Permission.TICKETS_FOLLOW:
            return actor.contact is not None
        case Permission.TICKETS_VIEW:
            return actor.contact is not None or sees_all_tickets(actor)
        case Permission.BILLING:
            return bool(roles & {ContactRole.MAIN, ContactRole.ADMINISTRATIVE})
        case Permission.TRIAGE:
            return StaffRole.ENGINEER in staff
        case Permission.STAFF_BILLING:
            return StaffRole.BILLING in staff
        case Permission.STAFF_ADMIN:
            return StaffRole.ADMIN in staff
        case Permission.ALERTS:
            return bool(staff & {StaffRole.ENGINEER, StaffRole.ADMIN})
    return False  # pragma: no cover - exhaustive


def in_org(actor: Actor, org_id: int) -> bool:
    """True when the actor is a contact of organization `org_id`."""
    return actor.contact is not None and actor.contact.org_id == org_id


def sees_all_tickets(actor: Actor) -> bool:
    """Support engineers and vendor admins see every ticket and its internal notes."""
    return bool(staff_roles(actor) & {StaffRole.ENGINEER, StaffRole.ADMIN})


def sharing_for(actor: Actor, org_id: int) -> bool:
    """The ticket-sharing flag that applies to `actor` for a ticket of `org_id`."""
    return actor.org is not None and actor.org.id == org_id and actor.org.sharing


def may_view_ticket(actor: Actor, *, org_id: int, opener_id: int | None, sharing: bool) -> bool:
    """Staff engineers see every ticket; contacts the tickets they opened (by authorship,
    whatever their roles now, while they remain a contact of the organization), and Technical
    Contacts their organization's when shared."""
    if sees_all_tickets(actor):
        return True
    if not in_org(actor, org_id):
        return False
    assert actor.contact is not None
    if opener_id is not None and opener_id == actor.contact.id:
        return True
    return sharing and allows(actor, Permission.TICKETS)


def may_comment_ticket(
    actor: Actor, *, org_id: int, opener_id: int | None, sharing: bool
) -> bool:
    """Commenting follows visibility: sharing grants read and comment (SPEC §1)."""
    if StaffRole.ENGINEER in staff_roles(actor):
        return True
    if actor.staff is not None:
        return False
    return may_view_ticket(actor, org_id=org_id, opener_id=opener_id, sharing=sharing)


def may_change_ticket(actor: Actor, *, org_id: int, opener_id: int | None) -> bool:
    """Close and reopen: engineers, and the contact who opened the ticket.

    Sharing grants read and comment only, so colleagues cannot close each other's tickets.
    """
    if StaffRole.ENGINEER in staff_roles(actor):
        return True
    if actor.staff is not None or not in_org(actor, org_id):
        return False
    assert actor.contact is not None
    return opener_id is not None and opener_id == actor.contact.id


def may_see_internal(actor: Actor) -> bool:
    """Internal notes and internal attachments are for vendor staff who handle tickets."""
    return actor.contact is None and sees_all_tickets(actor)


def visible_comments(actor: Actor, comments: Iterable[TicketComment]) -> list[TicketComment]:
    """The comments `actor` may read: everything for staff, public ones for customers."""
    internal = may_see_internal(actor)
    return [c for c in comments if internal or not c.internal]


def visible_attachments(actor: Actor, attachments: Iterable[Attachment]) -> list[Attachment]:
    """The attachments `actor` may see: internal ones only for staff."""
    internal = may_see_internal(actor)
    return [a for a in attachments if internal or not a.internal]


def may_view_billing(actor: Actor, org_id: int) -> bool:
    if StaffRole.BILLING in staff_roles(actor):
        return True
    return in_org(actor, org_id) and allows(actor, Permission.BILLING)


def may_manage_contacts(actor: Actor, org_id: int) -> bool:
    return in_org(actor, org_id) and allows(actor, Permission.CONTACTS_MANAGE)

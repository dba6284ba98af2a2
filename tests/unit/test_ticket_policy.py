"""Ticket policy as pure functions: who may see, comment on and change which ticket."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import (
    Actor,
    Attachment,
    Contact,
    ContactRole,
    Level,
    Organization,
    Program,
    Region,
    StaffMember,
    StaffRole,
    TicketComment,
)
from bot.policy import (
    Permission,
    allows,
    may_change_ticket,
    may_comment_ticket,
    may_see_internal,
    may_view_ticket,
    sharing_for,
    visible_attachments,
    visible_comments,
)

pytestmark = pytest.mark.nodb

T0 = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def org(org_id: int, sharing: bool = False) -> Organization:
    return Organization(org_id, f"o{org_id}", f"Org {org_id}", Program.CUSTOMER, Level.STANDARD,
                        Region.EUROPE, "UTC", None, None, sharing)


def contact(contact_id: int, org_id: int, *roles: ContactRole) -> Contact:
    return Contact(contact_id, org_id, f"C{contact_id}", f"c{contact_id}@x.test",
                   frozenset(roles))


def as_contact(c: Contact, o: Organization, sole: bool = False) -> Actor:
    return Actor(contact=c, org=o, sole_contact=sole)


def as_staff(*roles: StaffRole) -> Actor:
    return Actor(staff=StaffMember(1, "s@vendor.test", "Sam", frozenset(roles)))


def comment(i: int, internal: bool) -> TicketComment:
    return TicketComment(i, 1, None, None, "x", f"body {i}", internal, "console", T0)


def attachment(i: int, internal: bool) -> Attachment:
    return Attachment(i, 1, None, f"f{i}", 1, "text/plain", "db", internal, T0)


def view(actor: Actor, org_id: int, opener_id: int | None) -> bool:
    return may_view_ticket(actor, org_id=org_id, opener_id=opener_id,
                           sharing=sharing_for(actor, org_id))


def test_own_tickets_only_without_sharing() -> None:
    """A Technical Contact sees their own ticket, not a colleague's, until sharing is on."""
    o = org(1)
    tom, tia = contact(1, 1, ContactRole.TECHNICAL), contact(2, 1, ContactRole.TECHNICAL)
    assert view(as_contact(tom, o), 1, tom.id)
    assert not view(as_contact(tom, o), 1, tia.id)
    shared = org(1, sharing=True)
    assert view(as_contact(tom, shared), 1, tia.id)
    assert may_comment_ticket(as_contact(tom, shared), org_id=1, opener_id=tia.id, sharing=True)
    assert not may_change_ticket(as_contact(tom, shared), org_id=1, opener_id=tia.id)
    assert may_change_ticket(as_contact(tom, shared), org_id=1, opener_id=tom.id)


def test_sole_main_contact_acts_as_technical() -> None:
    """A Main Contact who is the only contact may open tickets; with colleagues they may not,
    but they still follow the tickets they opened."""
    o = org(1)
    ana = contact(1, 1, ContactRole.MAIN)
    assert allows(as_contact(ana, o, sole=True), Permission.TICKETS)
    assert view(as_contact(ana, o, sole=True), 1, ana.id)
    assert not allows(as_contact(ana, o, sole=False), Permission.TICKETS)
    assert allows(as_contact(ana, o, sole=False), Permission.TICKETS_FOLLOW)
    assert view(as_contact(ana, o, sole=False), 1, ana.id)
    assert not view(as_contact(ana, o, sole=False), 1, ana.id + 1)


def test_staff_roles() -> None:
    """Engineers see and act on everything; admins see; billing agents see nothing."""
    assert view(as_staff(StaffRole.ENGINEER), 7, 3)
    assert may_comment_ticket(as_staff(StaffRole.ENGINEER), org_id=7, opener_id=3, sharing=False)
    assert view(as_staff(StaffRole.ADMIN), 7, 3)
    assert not may_comment_ticket(as_staff(StaffRole.ADMIN), org_id=7, opener_id=3,
                                  sharing=False)
    assert not view(as_staff(StaffRole.BILLING), 7, 3)
    assert not view(Actor(), 7, 3)
    assert allows(as_staff(StaffRole.ENGINEER), Permission.TICKETS_VIEW)
    assert not allows(as_staff(StaffRole.BILLING), Permission.TICKETS_VIEW)


def test_customers_never_get_internal_notes() -> None:
    notes = [comment(1, False), comment(2, True)]
    tom = as_contact(contact(1, 1, ContactRole.TECHNICAL), org(1))
    assert [c.id for c in visible_comments(tom, notes)] == [1]
    assert [c.id for c in visible_comments(as_staff(StaffRole.ENGINEER), notes)] == [1, 2]
    files = [attachment(1, True), attachment(2, False)]
    assert [a.id for a in visible_attachments(tom, files)] == [2]


@dataclass(frozen=True)
class World:
    actor: Actor
    ticket_org: int
    opener_id: int | None
    comments: tuple[TicketComment, ...]
    attachments: tuple[Attachment, ...]


_roles = st.frozensets(st.sampled_from(list(ContactRole)))
_staff_roles = st.frozensets(st.sampled_from(list(StaffRole)))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    org_id = draw(st.integers(1, 3))
    o = org(org_id, sharing=draw(st.booleans()))
    kind = draw(st.sampled_from(["contact", "staff", "nobody"]))
    if kind == "contact":
        c = contact(draw(st.integers(1, 6)), org_id, *draw(_roles))
        actor = Actor(contact=c, org=o, sole_contact=draw(st.booleans()))
    elif kind == "staff":
        actor = Actor(staff=StaffMember(1, "s@v.test", "S", draw(_staff_roles)))
    else:
        actor = Actor()
    flags = st.lists(st.booleans(), max_size=6)
    return World(
        actor,
        draw(st.integers(1, 3)),
        draw(st.one_of(st.none(), st.integers(1, 6))),
        tuple(comment(i, f) for i, f in enumerate(draw(flags))),
        tuple(attachment(i, f) for i, f in enumerate(draw(flags))),
    )


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_no_actor_reaches_another_orgs_ticket_or_internal_notes(w: World) -> None:
    """Across random organizations, roles, actors, tickets and threads: contacts never see
    or act on another organization's ticket, acting implies seeing, and customers never
    see internal notes or internal attachments."""
    a = w.actor
    sharing = sharing_for(a, w.ticket_org)
    sees = may_view_ticket(a, org_id=w.ticket_org, opener_id=w.opener_id, sharing=sharing)
    comments = may_comment_ticket(a, org_id=w.ticket_org, opener_id=w.opener_id,
                                  sharing=sharing)
    changes = may_change_ticket(a, org_id=w.ticket_org, opener_id=w.opener_id)
    assert not comments or sees
    assert not changes or sees
    if a.contact is not None:
        if a.contact.org_id != w.ticket_org:
            assert not (sees or comments or changes)
        if sees and (not sharing or not allows(a, Permission.TICKETS)):
            assert w.opener_id == a.contact.id, "by authorship, or shared with a Technical one"
        assert not may_see_internal(a)
        assert all(not c.internal for c in visible_comments(a, w.comments))
        assert all(not f.internal for f in visible_attachments(a, w.attachments))
    elif a.staff is None:
        assert not (sees or comments or changes)
    else:
        engineer = StaffRole.ENGINEER in a.staff.roles
        assert comments == engineer and changes == engineer
        assert sees == bool(a.staff.roles & {StaffRole.ENGINEER, StaffRole.ADMIN})

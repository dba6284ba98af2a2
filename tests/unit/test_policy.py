"""The permission policy of SPEC §1 as pure functions, and organization isolation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain import (
    Actor,
    Contact,
    ContactRole,
    Level,
    Organization,
    Program,
    Region,
    StaffMember,
    StaffRole,
)
from bot.policy import (
    Permission,
    allows,
    contact_roles,
    in_org,
    may_comment_ticket,
    may_manage_contacts,
    may_view_billing,
    may_view_ticket,
)

pytestmark = pytest.mark.nodb

MAIN, ADMIN, TECH = ContactRole.MAIN, ContactRole.ADMINISTRATIVE, ContactRole.TECHNICAL
ENGINEER, BILLING, VADMIN = StaffRole.ENGINEER, StaffRole.BILLING, StaffRole.ADMIN


def org(org_id: int = 1, *, sharing: bool = False, level: Level = Level.STANDARD) -> Organization:
    return Organization(org_id, f"org{org_id}", f"Org {org_id}", Program.CUSTOMER, level,
                        Region.EUROPE, "Europe/Madrid", dt.date(2026, 1, 1),
                        dt.date(2026, 12, 31), sharing)


def contact_actor(*roles: ContactRole, org_id: int = 1, contact_id: int = 10,
                  sole: bool = False) -> Actor:
    contact = Contact(contact_id, org_id, "C", f"c{contact_id}@o{org_id}.test", frozenset(roles))
    return Actor(contact=contact, org=org(org_id), sole_contact=sole)


def staff_actor(*roles: StaffRole) -> Actor:
    return Actor(staff=StaffMember(1, "s@vendor.test", "S", frozenset(roles)))


def expected(actor: Actor, permission: Permission) -> bool:
    """SPEC §1 restated independently of bot.policy."""
    roles: set[ContactRole] = set(actor.contact.roles) if actor.contact else set()
    if actor.sole_contact and MAIN in roles:
        roles |= {ADMIN, TECH}
    staff: set[StaffRole] = set(actor.staff.roles) if actor.staff else set()
    table: dict[Permission, bool] = {
        Permission.ANYONE: True,
        Permission.LINKED: actor.contact is not None or actor.staff is not None,
        Permission.CONTACTS: actor.contact is not None,
        Permission.CONTACTS_MANAGE: MAIN in roles,
        Permission.TICKETS: TECH in roles,
        Permission.BILLING: MAIN in roles or ADMIN in roles,
        Permission.TRIAGE: ENGINEER in staff,
        Permission.STAFF_BILLING: BILLING in staff,
        Permission.STAFF_ADMIN: VADMIN in staff,
        Permission.ALERTS: ENGINEER in staff or VADMIN in staff,
    }
    if "TICKETS_VIEW" in Permission.__members__:
        table[Permission("tickets_view")] = (actor.contact is not None
                                             or bool(staff & {ENGINEER, VADMIN}))
    # Following the tickets one opened goes by authorship: any contact.
    table[Permission.TICKETS_FOLLOW] = actor.contact is not None
    return table[permission]


def test_every_permission_has_a_rule_from_the_spec() -> None:
    """The restated rules cover every permission the policy knows."""
    for permission in Permission:
        expected(Actor(), permission)


ROLE_SETS = [frozenset(s) for s in ([], [MAIN], [ADMIN], [TECH], [MAIN, ADMIN], [MAIN, TECH],
                                   [ADMIN, TECH], [MAIN, ADMIN, TECH])]
STAFF_SETS = [frozenset(s) for s in ([], [ENGINEER], [BILLING], [VADMIN], [ENGINEER, BILLING],
                                    [ENGINEER, BILLING, VADMIN])]


@pytest.mark.parametrize("roles", ROLE_SETS, ids=lambda r: "+".join(sorted(r)) or "none")
@pytest.mark.parametrize("sole", [False, True])
@pytest.mark.parametrize("permission", list(Permission))
def test_contact_permissions_match_spec(
    roles: frozenset[ContactRole], sole: bool, permission: Permission
) -> None:
    """Every contact role combination gets exactly the permissions SPEC §1 gives it."""
    actor = contact_actor(*roles, sole=sole)
    assert allows(actor, permission) is expected(actor, permission)


@pytest.mark.parametrize("roles", STAFF_SETS, ids=lambda r: "+".join(sorted(r)) or "none")
@pytest.mark.parametrize("permission", list(Permission))
def test_staff_permissions_match_spec(
    roles: frozenset[StaffRole], permission: Permission
) -> None:
    """Every staff role combination gets exactly the permissions SPEC §1 gives it."""
    actor = staff_actor(*roles)
    assert allows(actor, permission) is expected(actor, permission)


def test_unknown_actor_may_only_do_what_anyone_may() -> None:
    """Someone unlinked can ask for help and link, nothing else."""
    nobody = Actor()
    assert [p for p in Permission if allows(nobody, p)] == [Permission.ANYONE]


def test_sole_main_contact_is_technical_and_administrative_too() -> None:
    """A Main Contact who is the only contact acts for every role (SPEC §1)."""
    alone = contact_actor(MAIN, sole=True)
    assert contact_roles(alone) == {MAIN, ADMIN, TECH}
    assert allows(alone, Permission.TICKETS)
    not_alone = contact_actor(MAIN, sole=False)
    assert not allows(not_alone, Permission.TICKETS)
    assert allows(not_alone, Permission.BILLING)


def test_sole_flag_does_nothing_for_other_roles() -> None:
    """Only a Main Contact is lifted by being the sole contact."""
    assert contact_roles(contact_actor(TECH, sole=True)) == {TECH}
    assert not allows(contact_actor(ADMIN, sole=True), Permission.TICKETS)


def test_main_contact_manages_only_own_organization() -> None:
    """A Main Contact manages the contacts of their organization and nobody else's."""
    ana = contact_actor(MAIN, org_id=1)
    assert may_manage_contacts(ana, 1)
    assert not may_manage_contacts(ana, 2)
    assert not may_manage_contacts(contact_actor(TECH, ADMIN, org_id=1), 1)
    assert not may_manage_contacts(staff_actor(VADMIN, ENGINEER, BILLING), 1)


def test_billing_visibility() -> None:
    """Main and Administrative Contacts see their own billing; billing agents see all."""
    assert may_view_billing(contact_actor(ADMIN, org_id=1), 1)
    assert not may_view_billing(contact_actor(ADMIN, org_id=1), 2)
    assert not may_view_billing(contact_actor(TECH, org_id=1), 1)
    assert may_view_billing(staff_actor(BILLING), 7)
    assert not may_view_billing(staff_actor(ENGINEER), 7)


def test_ticket_visibility_and_sharing() -> None:
    """Technical Contacts see their own tickets, and their organization's when shared."""
    tom = contact_actor(TECH, contact_id=10)
    assert may_view_ticket(tom, org_id=1, opener_id=10, sharing=False)
    assert not may_view_ticket(tom, org_id=1, opener_id=11, sharing=False)
    assert may_view_ticket(tom, org_id=1, opener_id=11, sharing=True)
    assert may_comment_ticket(tom, org_id=1, opener_id=11, sharing=True)
    assert not may_view_ticket(tom, org_id=2, opener_id=10, sharing=True)
    main = contact_actor(MAIN, contact_id=12)
    assert may_view_ticket(main, org_id=1, opener_id=12, sharing=False), "authorship"
    assert not may_view_ticket(main, org_id=1, opener_id=10, sharing=True), (
        "sharing is for Technical Contacts")
    assert not may_view_ticket(main, org_id=2, opener_id=12, sharing=False)
    assert may_view_ticket(staff_actor(ENGINEER), org_id=5, opener_id=None, sharing=False)
    assert may_comment_ticket(staff_actor(ENGINEER), org_id=5, opener_id=None, sharing=False)
    assert not may_view_ticket(staff_actor(BILLING), org_id=5, opener_id=None, sharing=False)
    assert not may_comment_ticket(staff_actor(BILLING), org_id=5, opener_id=None, sharing=True)


# Organizations, their contacts and vendor staff, drawn at random -----------------------

role_sets = st.frozensets(st.sampled_from(list(ContactRole)))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Actor], list[int]]:
    """Several organizations, each with 1..4 contacts with random roles, plus staff."""
    org_ids = draw(st.lists(st.integers(1, 50), min_size=2, max_size=5, unique=True))
    actors: list[Actor] = []
    next_id = 1
    for org_id in org_ids:
        sharing = draw(st.booleans())
        organization = org(org_id, sharing=sharing)
        roles = draw(st.lists(role_sets, min_size=1, max_size=4))
        for contact_roles_ in roles:
            contact = Contact(next_id, org_id, f"P{next_id}", f"p{next_id}@x.test",
                              contact_roles_)
            next_id += 1
            sole = len(roles) == 1 and MAIN in contact_roles_
            actors.append(Actor(contact=contact, org=organization, sole_contact=sole))
    for staff_roles_ in draw(st.lists(st.frozensets(st.sampled_from(list(StaffRole))),
                                      max_size=3)):
        actors.append(Actor(staff=StaffMember(next_id, f"s{next_id}@v.test", "S",
                                              staff_roles_)))
        next_id += 1
    return actors, org_ids


OrgCheck = Callable[[Actor, int], bool]
ORG_CHECKS: dict[str, OrgCheck] = {
    "manage contacts": may_manage_contacts,
    "view billing as a contact": lambda a, o: a.contact is not None and may_view_billing(a, o),
    "view a shared ticket": lambda a, o: a.contact is not None
    and may_view_ticket(a, org_id=o, opener_id=None, sharing=True),
    "comment a shared ticket": lambda a, o: a.contact is not None
    and may_comment_ticket(a, org_id=o, opener_id=None, sharing=True),
    "be in the organization": in_org,
}


@settings(max_examples=300, deadline=None)
@given(worlds(), st.data())
def test_no_contact_reaches_another_organization(
    world: tuple[list[Actor], list[int]], data: st.DataObject
) -> None:
    """Whatever their roles, sharing flags or sole-contact status, a contact of one
    organization can neither act on nor read another organization's data."""
    actors, org_ids = world
    for actor in actors:
        if actor.contact is None:
            continue
        own = actor.contact.org_id
        for other in org_ids:
            if other == own:
                continue
            opener = data.draw(st.sampled_from([None, actor.contact.id]))
            for name, check in ORG_CHECKS.items():
                assert not check(actor, other), f"{actor.label} may {name} of org {other}"
            assert not may_view_ticket(actor, org_id=other, opener_id=opener, sharing=True)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_allows_matches_the_spec_for_random_people(world: tuple[list[Actor], list[int]]) -> None:
    """For every drawn person, allows() equals SPEC §1 for every permission."""
    actors, _ = world
    for actor in actors:
        for permission in Permission:
            assert allows(actor, permission) is expected(actor, permission), (
                actor, permission)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_own_organization_access_follows_roles(world: tuple[list[Actor], list[int]]) -> None:
    """Inside their own organization, Main Contacts manage contacts and billing contacts
    see billing, exactly as their roles say."""
    actors, _ = world
    for actor in actors:
        if actor.contact is None:
            continue
        own = actor.contact.org_id
        roles = contact_roles(actor)
        assert may_manage_contacts(actor, own) is (MAIN in roles)
        assert may_view_billing(actor, own) is bool(roles & {MAIN, ADMIN})
        assert may_view_ticket(actor, org_id=own, opener_id=actor.contact.id, sharing=False)
        assert may_view_ticket(actor, org_id=own, opener_id=-1, sharing=True) is (TECH in roles)

"""Contacts and roles (SPEC §1) through the console adapter and the real core."""

from __future__ import annotations

import asyncio

import pytest

from bot.commands.invocation import Invocation, Sender
from bot.commands.registry import Registry
from bot.core import Core
from bot.domain import ContactRole, Platform, StaffRole
from bot.handlers import directory
from bot.wiring.demo import DEMO_ADMIN, DEMO_MAIN, DEMO_STAFF, DEMO_TECH
from tests.harness import Harness
from tests.scenarios.orders import audit_of, contact, contacts_of, form, organization

MAIN, ADMIN, TECH = ContactRole.MAIN, ContactRole.ADMINISTRATIVE, ContactRole.TECHNICAL


async def test_contacts_lists_the_organization(harness: Harness) -> None:
    """Any contact sees their organization's designated contacts and the technical quota."""
    await harness.seed_demo()
    reply = await harness.as_(DEMO_TECH).send("/contacts")
    assert reply.ok
    text = reply.message.text
    assert "Ana Main <ana@demo.test> — Main Contact" in text
    assert "Ada Admin <ada@demo.test> — Administrative Contact" in text
    assert "Technical Contacts 1/2" in text
    assert "ticket sharing off" in text


async def test_set_main_moves_the_role_and_audits_it(harness: Harness) -> None:
    """The Main Contact hands the role over: the old holder loses it, both changes are
    audited with before and after, and the new Main Contact is welcomed."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    reply = await ana.send("/contacts set main mia@demo.test Mia Main")
    assert reply.ok, reply.message.text
    assert "Mia Main <mia@demo.test> is now the Main Contact" in reply.message.text

    people = await contacts_of(harness, "demo")
    assert people["mia@demo.test"].roles == {MAIN}
    assert "ana@demo.test" not in people, "a contact left with no role is removed"
    assert [c.email for c in people.values() if c.is_main] == ["mia@demo.test"]

    events = {e.action: e for e in await audit_of(harness, "demo")}
    removed = events["role.main.removed"]
    assert removed.target == DEMO_MAIN
    assert removed.actor == "Ana Main <ana@demo.test>"
    assert removed.before == {"name": "Ana Main", "email": DEMO_MAIN, "roles": ["main"]}
    assert removed.after == {"name": "Ana Main", "email": DEMO_MAIN, "roles": []}
    granted = events["role.main.granted"]
    assert granted.before is None
    assert granted.after == {"name": "Mia Main", "email": "mia@demo.test", "roles": ["main"]}

    assert [m.subject for m in harness.emails_to("mia@demo.test")] == [
        "Welcome to your standard subscription"]

    again = await ana.send("/contacts set administrative x@demo.test")
    assert not again.ok
    assert "Link this account" in again.message.text or "know who you are" in again.message.text


async def test_set_main_keeps_other_roles_of_the_old_holder(harness: Harness) -> None:
    """A Main Contact who is also technical stays a Technical Contact after handing over."""
    await harness.import_orders(form(organization("acme", [
        contact("main", "ana@acme.test"), contact("technical", "ana@acme.test"),
        contact("technical", "tom@acme.test")])))
    reply = await harness.as_("ana@acme.test").send("/contacts set main tom@acme.test")
    assert reply.ok, reply.message.text
    people = await contacts_of(harness, "acme")
    assert people["ana@acme.test"].roles == {TECH}
    assert people["tom@acme.test"].roles == {MAIN, TECH}
    granted = [e for e in await audit_of(harness, "acme") if e.action == "role.main.granted"][-1]
    assert granted.before == {"name": "Tom", "email": "tom@acme.test", "roles": ["technical"]}
    assert granted.after == {"name": "Tom", "email": "tom@acme.test",
                             "roles": ["main", "technical"]}


async def test_at_most_one_administrative_contact(harness: Harness) -> None:
    """Designating a new Administrative Contact replaces the old one."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    reply = await ana.send("/contacts set administrative bea@demo.test Bea Books")
    assert reply.ok, reply.message.text
    people = await contacts_of(harness, "demo")
    admins = [c.email for c in people.values() if c.is_administrative]
    assert admins == ["bea@demo.test"]
    assert DEMO_ADMIN not in people
    assert harness.emails_to("bea@demo.test"), "the new Administrative Contact is told"
    actions = [e.action for e in await audit_of(harness, "demo")]
    assert actions[-2:] == ["role.administrative.removed", "role.administrative.granted"]

    same = await ana.send("/contacts set administrative bea@demo.test")
    assert not same.ok and "already the Administrative Contact" in same.message.text


async def test_renaming_the_current_holder_is_audited(harness: Harness) -> None:
    """Setting the current holder again with a new name updates the name, audited."""
    await harness.seed_demo()
    reply = await harness.as_(DEMO_MAIN).send(f"/contacts set administrative {DEMO_ADMIN} Ada B")
    assert reply.ok, reply.message.text
    assert (await contacts_of(harness, "demo"))[DEMO_ADMIN].name == "Ada B"
    rename = (await audit_of(harness, "demo"))[-1]
    assert rename.action == "contact.rename"
    assert rename.before is not None and rename.before["name"] == "Ada Admin"
    assert rename.after is not None and rename.after["name"] == "Ada B"


@pytest.mark.parametrize(("level", "limit"), [("basic", 1), ("standard", 2), ("premium", 5)])
async def test_technical_limit_per_level(harness: Harness, level: str, limit: int) -> None:
    """Requests count against the level's limit; the one beyond it is refused, naming it."""
    await harness.import_orders(form(organization(
        "acme", [contact("main", "ana@acme.test"), contact("administrative", "ada@acme.test")],
        level=level)))
    ana = harness.as_("ana@acme.test")
    for n in range(limit):
        reply = await ana.send(f"/contacts request-technical t{n}@acme.test Tech {n}")
        assert reply.ok, reply.message.text
    refused = await ana.send("/contacts request-technical extra@acme.test")
    assert not refused.ok
    plural = "s" if limit != 1 else ""
    assert f"{level} subscription allows {limit} Technical Contact{plural}" in (
        refused.message.text)


async def test_technical_limit_counts_designated_and_pending(harness: Harness) -> None:
    """On standard (2), one designated plus one pending fills the quota."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    assert (await ana.send("/contacts request-technical nia@demo.test Nia")).ok
    refused = await ana.send("/contacts request-technical olu@demo.test Olu")
    assert not refused.ok
    assert "allows 2 Technical Contacts" in refused.message.text
    assert "2 already designated or requested" in refused.message.text


async def test_duplicate_and_existing_requests_are_refused(harness: Harness) -> None:
    """A second request for the same email, or for a Technical Contact, is refused."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    assert (await ana.send("/contacts request-technical nia@demo.test Nia")).ok
    again = await ana.send("/contacts request-technical NIA@demo.test")
    assert not again.ok and "already waiting for approval" in again.message.text
    tom = await ana.send(f"/contacts request-technical {DEMO_TECH}")
    assert not tom.ok and "already a Technical Contact" in tom.message.text


async def test_only_vendor_admins_decide_requests(harness: Harness) -> None:
    """Engineers, billing agents and contacts cannot approve; a vendor admin can, once."""
    await harness.seed_demo()
    await harness.add_staff("eve@vendor.test", StaffRole.ENGINEER, StaffRole.BILLING)
    assert (await harness.as_(DEMO_MAIN).send("/contacts request-technical nia@demo.test")).ok
    for who in ("eve@vendor.test", DEMO_MAIN, DEMO_TECH, DEMO_ADMIN):
        reply = await harness.as_(who).send("/subdesk approve 1")
        assert not reply.ok, who
        assert "not available to you" in reply.message.text
        reply = await harness.as_(who).send("/subdesk deny 1")
        assert not reply.ok, who
    assert "nia@demo.test" not in await contacts_of(harness, "demo")

    sam = harness.as_(DEMO_STAFF)
    reply = await sam.send("/subdesk approve #1")
    assert reply.ok, reply.message.text
    assert (await contacts_of(harness, "demo"))["nia@demo.test"].roles == {TECH}
    again = await sam.send("/subdesk deny 1")
    assert not again.ok and "already approved" in again.message.text
    missing = await sam.send("/subdesk approve 99")
    assert not missing.ok and "no request #99" in missing.message.text

    approved = [e for e in await audit_of(harness, "demo") if e.action == "technical.approved"]
    assert approved[0].actor == "Sam Support <sam@vendor.test>"
    assert approved[0].after == {"name": "nia@demo.test", "email": "nia@demo.test",
                                 "roles": ["technical"]}


async def test_approval_rechecks_the_limit(harness: Harness) -> None:
    """A request approved after the quota filled up by import is refused, naming the limit."""
    await harness.import_orders(form(organization(
        "acme", [contact("main", "ana@acme.test"), contact("administrative", "ada@acme.test")],
        level="basic")))
    assert (await harness.as_("ana@acme.test").send(
        "/contacts request-technical t1@acme.test")).ok
    await harness.import_orders(form(organization(
        "acme", [contact("main", "ana@acme.test"), contact("administrative", "ada@acme.test"),
                 contact("technical", "t2@acme.test")], level="basic")))
    await harness.add_staff("root@vendor.test", StaffRole.ADMIN)
    reply = await harness.as_("root@vendor.test").send("/subdesk approve 1")
    assert not reply.ok
    assert "1 Technical Contact(s), the limit of its basic subscription" in reply.message.text
    assert "t1@acme.test" not in await contacts_of(harness, "acme")


async def test_request_reaches_admins_and_deny_notifies_requester(harness: Harness) -> None:
    """Vendor admins get the request with buttons; a denial reaches the requester with
    its reason, and no contact is created."""
    await harness.seed_demo()
    await harness.add_staff("root@vendor.test", StaffRole.ADMIN, name="Root")
    await harness.add_staff("eve@vendor.test", StaffRole.ENGINEER)
    assert (await harness.as_(DEMO_MAIN).send("/contacts request-technical nia@demo.test")).ok
    for admin in (DEMO_STAFF, "root@vendor.test"):
        [note] = harness.emails_to(admin)
        assert note.subject == "Technical Contact request #1 (Demo Corp)"
    assert not harness.emails_to("eve@vendor.test")

    reply = await harness.as_("root@vendor.test").send("/subdesk deny 1 not on the contract")
    assert reply.ok and "Denied request #1" in reply.message.text
    [decision] = harness.emails_to(DEMO_MAIN)[-1:]
    assert "was denied" in decision.text and "not on the contract" in decision.text
    assert "nia@demo.test" not in await contacts_of(harness, "demo")
    assert not harness.emails_to("nia@demo.test")
    denied = [e for e in await audit_of(harness, "demo") if e.action == "technical.denied"]
    assert denied[0].after == {"reason": "not on the contract"}
    listed = await harness.as_(DEMO_MAIN).send("/contacts")
    assert "nia@demo.test" not in listed.message.text


async def test_pending_requests_show_in_contacts(harness: Harness) -> None:
    """A request waiting for approval is listed with its number."""
    await harness.seed_demo()
    await harness.as_(DEMO_MAIN).send("/contacts request-technical nia@demo.test Nia New")
    reply = await harness.as_(DEMO_TECH).send("/contacts")
    assert "request #1: Nia New <nia@demo.test> (waiting for approval)" in reply.message.text


async def test_remove_technical(harness: Harness) -> None:
    """The Main Contact removes a Technical Contact; it is audited and frees the quota."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    reply = await ana.send(f"/contacts remove-technical {DEMO_TECH}")
    assert reply.ok, reply.message.text
    assert DEMO_TECH not in await contacts_of(harness, "demo")
    event = (await audit_of(harness, "demo"))[-1]
    assert event.action == "role.technical.removed"
    assert event.before is not None and event.before["roles"] == ["technical"]
    assert event.after is not None and event.after["roles"] == []
    missing = await ana.send(f"/contacts remove-technical {DEMO_TECH}")
    assert not missing.ok and "is not a Technical Contact of Demo Corp" in missing.message.text
    assert (await ana.send("/contacts request-technical a@demo.test")).ok
    assert (await ana.send("/contacts request-technical b@demo.test")).ok


async def test_sharing_on_and_off_is_audited(harness: Harness) -> None:
    """Ticket sharing toggles, shows in /contacts, and each change is audited."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    assert "sharing is on" in (await ana.send("/contacts sharing on")).message.text
    assert "ticket sharing on" in (await ana.send("/contacts")).message.text
    assert "sharing is off" in (await ana.send("/contacts sharing off")).message.text
    changes = [(e.before, e.after) for e in await audit_of(harness, "demo")
               if e.action == "org.sharing"]
    assert changes == [({"sharing": False}, {"sharing": True}),
                       ({"sharing": True}, {"sharing": False})]
    refused = await harness.as_(DEMO_TECH).send("/contacts sharing on")
    assert not refused.ok and "not available to you" in refused.message.text


@pytest.mark.parametrize("command", [
    "/contacts set main x@demo.test",
    "/contacts set administrative x@demo.test",
    "/contacts request-technical x@demo.test",
    "/contacts remove-technical tom@demo.test",
    "/contacts sharing on",
])
@pytest.mark.parametrize("who", [DEMO_ADMIN, DEMO_TECH, DEMO_STAFF])
async def test_only_the_main_contact_manages_contacts(
    harness: Harness, command: str, who: str
) -> None:
    """Administrative and Technical Contacts and vendor staff cannot change contacts."""
    await harness.seed_demo()
    before = await contacts_of(harness, "demo")
    reply = await harness.as_(who).send(command)
    assert not reply.ok
    assert "not available to you" in reply.message.text
    assert await contacts_of(harness, "demo") == before


async def test_sole_main_contact_acts_as_technical(harness: Harness) -> None:
    """A Main Contact who is the only contact may use ticket commands; with colleagues,
    they may not."""
    await harness.import_orders(form(
        organization("solo", [contact("main", "sol@solo.test")]),
        organization("duo", [contact("main", "dan@duo.test"),
                             contact("technical", "tia@duo.test")]),
    ))
    sole = await harness.as_("sol@solo.test").send("/ticket list")
    assert "not available to you" not in sole.message.text
    who = await harness.as_("sol@solo.test").send("/subdesk whoami")
    assert "(sole contact)" in who.message.text
    assert "Technical Contact" in who.message.text
    duo = await harness.as_("dan@duo.test").send("/ticket new Printer")
    assert not duo.ok and "not available to you" in duo.message.text

    help_text = (await harness.as_("sol@solo.test").send("/subdesk help")).message.text
    assert "/contacts request-technical" in help_text


async def test_sole_contact_rule_ends_when_a_colleague_arrives(harness: Harness) -> None:
    """Once a Technical Contact is approved, the Main Contact is no longer the sole contact."""
    await harness.import_orders(form(organization("solo", [contact("main", "sol@solo.test")])))
    sol = harness.as_("sol@solo.test")
    assert (await sol.send("/contacts request-technical tia@solo.test")).ok
    await harness.add_staff("root@vendor.test", StaffRole.ADMIN)
    assert (await harness.as_("root@vendor.test").send("/subdesk approve 1")).ok
    reply = await sol.send("/ticket new Printer")
    assert "not available to you" in reply.message.text


async def test_main_contact_cannot_touch_another_organization(harness: Harness) -> None:
    """A Main Contact of one organization can neither see nor change another's contacts,
    nor decide its requests."""
    await harness.import_orders(form(
        organization("alpha", [contact("main", "ana@alpha.test"),
                               contact("technical", "tom@alpha.test")]),
        organization("beta", [contact("main", "bob@beta.test"),
                              contact("technical", "tim@beta.test")]),
    ))
    assert (await harness.as_("bob@beta.test").send(
        "/contacts request-technical new@beta.test")).ok
    beta_before = await contacts_of(harness, "beta")
    beta_audit = len(await audit_of(harness, "beta"))
    ana = harness.as_("ana@alpha.test")

    listing = await ana.send("/contacts")
    assert "beta.test" not in listing.message.text
    removed = await ana.send("/contacts remove-technical tim@beta.test")
    assert not removed.ok and "not a Technical Contact of Alpha Corp" in removed.message.text
    assert not (await ana.send("/subdesk approve 1")).ok
    assert not (await ana.send("/subdesk deny 1")).ok
    assert (await ana.send("/contacts sharing on")).ok
    assert (await ana.send("/contacts set administrative bob@beta.test")).ok

    assert await contacts_of(harness, "beta") == beta_before
    assert len(await audit_of(harness, "beta")) == beta_audit
    alpha = await contacts_of(harness, "alpha")
    assert alpha["bob@beta.test"].roles == {ADMIN}, "only a new contact of alpha was made"
    beta_view = await harness.as_("tim@beta.test").send("/contacts")
    assert "ticket sharing off" in beta_view.message.text
    assert "request #1" in beta_view.message.text


async def test_unknown_user_is_told_to_link(harness: Harness) -> None:
    """Someone unlinked asking for contacts is told how to link, and help says so too."""
    await harness.seed_demo()
    stranger = harness.as_(user_id="stranger")
    reply = await stranger.send("/contacts")
    assert not reply.ok
    assert "/subdesk link EMAIL" in reply.message.text
    help_text = (await stranger.send("/subdesk help")).message.text
    assert "/contacts" not in help_text
    assert "/subdesk link" in help_text
    who = await stranger.send("/subdesk whoami")
    assert "not linked" in who.message.text
    unknown = await harness.as_("nobody@nowhere.test").send("/contacts")
    assert "/subdesk link EMAIL" in unknown.message.text


async def test_help_lists_only_what_the_actor_may_do(harness: Harness) -> None:
    """Help is role-aware: staff see approve, Technical Contacts do not see contact changes."""
    await harness.seed_demo()
    tom = (await harness.as_(DEMO_TECH).send("/subdesk help")).message.text
    assert "/contacts set" not in tom and "/subdesk approve" not in tom
    ana = (await harness.as_(DEMO_MAIN).send("/subdesk help")).message.text
    assert "/contacts set main|administrative EMAIL [NAME]" in ana
    sam = (await harness.as_(DEMO_STAFF).send("/subdesk help")).message.text
    assert "/subdesk approve REQUEST_ID" in sam and "/contacts set" not in sam


async def test_malformed_commands_get_a_usage_line(harness: Harness) -> None:
    """Bad arguments answer with the command's usage, never a stack trace."""
    await harness.seed_demo()
    ana = harness.as_(DEMO_MAIN)
    reply = await ana.send("/contacts set boss x@demo.test")
    assert not reply.ok
    assert "Usage: /contacts set main|administrative EMAIL [NAME]" in reply.message.text
    reply = await ana.send("/contacts frobnicate")
    assert "Usage:" in reply.message.text and "/contacts sharing on|off" in reply.message.text
    for line in ("", "\x00", "x" * 10_240, "'; DROP TABLE contacts; --", "<!channel>"):
        reply = await ana.send(line)
        assert not reply.ok
        assert "Traceback" not in reply.message.text
    assert len(await contacts_of(harness, "demo")) == 3


async def test_existing_contact_can_be_made_technical(harness: Harness) -> None:
    """Requesting an existing contact as technical adds the role; the request is audited."""
    await harness.seed_demo()
    assert (await harness.as_(DEMO_MAIN).send(f"/contacts remove-technical {DEMO_TECH}")).ok
    assert (await harness.as_(DEMO_MAIN).send(f"/contacts request-technical {DEMO_ADMIN}")).ok
    assert (await harness.as_(DEMO_STAFF).send("/subdesk approve 1")).ok
    people = await contacts_of(harness, "demo")
    assert people[DEMO_ADMIN].roles == {ADMIN, TECH}
    assert people[DEMO_ADMIN].name == "Ada Admin"
    requested = [e for e in await audit_of(harness, "demo") if e.action == "technical.requested"]
    assert requested[0].after == {"request": 1, "name": "Ada Admin"}
    assert [m.subject for m in harness.emails_to(DEMO_ADMIN)][-1] == "Support Welcome — Demo Corp"


async def test_concurrent_requests_respect_the_limit(harness: Harness) -> None:
    """Requests racing each other on a basic subscription: exactly one gets through."""
    await harness.import_orders(form(organization(
        "acme", [contact("main", "ana@acme.test"), contact("administrative", "ada@acme.test")],
        level="basic")))
    sessions = [harness.as_("ana@acme.test") for _ in range(4)]
    replies = await asyncio.gather(*(
        s.send(f"/contacts request-technical t{n}@acme.test") for n, s in enumerate(sessions)))
    assert sum(r.ok for r in replies) == 1, [r.message.text for r in replies]
    assert all("allows 1 Technical Contact" in r.message.text for r in replies if not r.ok)


async def test_concurrent_decisions_decide_once(harness: Harness) -> None:
    """Two admins deciding the same request at once: one decision wins, one welcome is sent."""
    await harness.seed_demo()
    await harness.add_staff("root@vendor.test", StaffRole.ADMIN)
    assert (await harness.as_(DEMO_MAIN).send("/contacts request-technical nia@demo.test")).ok
    replies = await asyncio.gather(
        harness.as_(DEMO_STAFF).send("/subdesk approve 1"),
        harness.as_("root@vendor.test").send("/subdesk approve 1"),
    )
    assert sorted(r.ok for r in replies) == [False, True]
    assert any("already approved" in r.message.text for r in replies)
    await harness.drain()
    assert len(harness.emails_to("nia@demo.test")) == 1


async def test_names_are_kept_on_one_line(harness: Harness) -> None:
    """A NAME typed over several lines (Slack allows it) is stored on one line."""
    await harness.seed_demo()
    ana = Sender(Platform.CONSOLE, "local", DEMO_MAIN, asserted_email=DEMO_MAIN)
    reply = await harness.app.core.handle(Invocation(
        ana, "/contacts set administrative bea@demo.test Bea\n  Books\r\nBcc: evil@x.test"))
    assert reply.ok, reply.message.text
    assert (await contacts_of(harness, "demo"))["bea@demo.test"].name == (
        "Bea Books Bcc: evil@x.test")


async def test_commands_of_features_not_built_answer_not_enabled(harness: Harness) -> None:
    """On a deployment with only the directory feature, ticket, billing, triage and alert
    commands parse and answer that they are not enabled, and help leaves them out."""
    await harness.seed_demo()
    services = harness.app.services
    registry = Registry()
    directory.register(registry, services)
    core = Core(services, registry)

    async def send(email: str, line: str) -> str:
        sender = Sender(Platform.CONSOLE, "local", email, asserted_email=email)
        return (await core.handle(Invocation(sender, line))).message.resolved("/").text

    assert await send(DEMO_TECH, "/ticket new sev2 Database down") == (
        "/ticket new is not enabled on this deployment yet.")
    assert await send(DEMO_MAIN, "/billing invoices") == (
        "/billing invoices is not enabled on this deployment yet.")
    assert await send(DEMO_STAFF, "/triage") == (
        "/triage queue is not enabled on this deployment yet.")
    assert await send(DEMO_STAFF, "/alert info all maintenance tonight") == (
        "/alert is not enabled on this deployment yet.")
    assert "not available to you" in await send(DEMO_MAIN, "/ticket new sev3 Printer")
    help_text = await send(DEMO_TECH, "/subdesk help")
    assert "/ticket" not in help_text and "/contacts" in help_text
    assert "Ana Main" in await send(DEMO_TECH, "/contacts")


async def test_replaced_main_contact_is_told(harness: Harness) -> None:
    """The Main Contact who hands the role over hears about it (they lose their access)."""
    await harness.seed_demo()
    reply = await harness.as_(DEMO_MAIN).send("/contacts set main mo@demo.test Mo Main")
    assert reply.ok
    notices = [m for m in harness.emails_to(DEMO_MAIN) if "no longer" in m.text]
    assert len(notices) == 1 and "mo@demo.test" in notices[0].text

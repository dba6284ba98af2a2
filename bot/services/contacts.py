"""Contacts and roles (SPEC §1): designations, Technical Contact requests, sharing, audit."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.delivery.intents import Intent
from bot.domain import (
    Actor,
    Contact,
    ContactRole,
    Organization,
    Platform,
    RequestStatus,
    StaffRole,
)
from bot.policy import Permission, allows, may_manage_contacts
from bot.presentation import notices
from bot.presentation.billing_notices import INVOICE_REMINDER, RENEWAL_NOTICE, notice_of
from bot.presentation.messages import Actions, Button, Fields, Heading, Message, Paragraph, command
from bot.services.base import Denied, Invalid, NotFound, Service, Tx
from bot.services.notify import Notifier
from bot.services.reserved import require_customer_email
from storage.directory import TechnicalRequest

log = logging.getLogger(__name__)

_ROLE_LABEL = {
    ContactRole.MAIN: "Main Contact",
    ContactRole.ADMINISTRATIVE: "Administrative Contact",
    ContactRole.TECHNICAL: "Technical Contact",
}


NAME_MAX = 200  # the width of the name columns


def checked_name(name: str | None) -> str | None:
    """A display name on one line (chat text may span several), within the column width."""
    if name is not None:
        name = " ".join(name.split()) or None
    if name is not None and len(name) > NAME_MAX:
        raise Invalid(f"NAME is too long ({len(name)} characters; at most {NAME_MAX}).")
    return name


def role_label(role: ContactRole) -> str:
    return _ROLE_LABEL[role]


def snapshot(contact: Contact | None) -> dict[str, object] | None:
    if contact is None:
        return None
    return {
        "name": contact.name,
        "email": contact.email,
        "roles": sorted(r.value for r in contact.roles),
    }


@dataclass(frozen=True, slots=True)
class Designation:
    """A designated contact, and what the change means for the people it touches."""

    contact: Contact
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContactsView:
    org: Organization
    contacts: list[Contact]
    pending: list[TechnicalRequest]
    technical_limit: int


class ContactService(Service):
    """The Main Contact's management of the organization's contacts and the admins'
    decisions on Technical Contact requests; every change is audited."""

    def _org_of(self, actor: Actor) -> Organization:
        if actor.contact is None or actor.org is None:
            raise Denied("Only an organization's contacts can do that.")
        return actor.org

    def _require_main(self, actor: Actor) -> Organization:
        org = self._org_of(actor)
        if not may_manage_contacts(actor, org.id):
            raise Denied("Only your organization's Main Contact can change contacts.")
        return org

    async def view(self, actor: Actor) -> ContactsView:
        org = self._org_of(actor)
        async with self.read() as tx:
            contacts = await tx.directory.contacts(org.id)
            pending = await tx.directory.pending_requests(org.id)
            fresh = await tx.directory.org(org.id)
        assert fresh is not None
        return ContactsView(fresh, contacts, pending, self.settings.technical_limit(fresh.level))

    async def designate(
        self, actor: Actor, role: ContactRole, email: str, name: str | None
    ) -> Designation:
        """Make `email` the organization's Main or Administrative Contact, saying what else
        changes: a sole Main Contact stops standing in for the Technical Contact, and a
        replaced contact's open tickets lose their reader."""
        if role is ContactRole.TECHNICAL:
            raise Invalid("Technical Contacts are requested: "
                          + command("contacts request-technical EMAIL"))
        org = self._require_main(actor)
        name = checked_name(name)
        async with self.tx() as tx:
            await require_customer_email(tx, self.settings, email)
            await tx.directory.lock_org(org.id)
            everyone = await tx.directory.contacts(org.id)
            current = [c for c in everyone if role in c.roles]
            target = await tx.directory.contact_by_email(org.id, email)
            notes: list[str] = []
            before = snapshot(target)
            if target is not None and role in target.roles:
                if name and name != target.name:
                    await tx.directory.rename_contact(target.id, name)
                    await self._audit(tx, actor, org, "contact.rename", target.email, before,
                                      {**(before or {}), "name": name})
                    return Designation(await self._reload(tx, target.id))
                raise Invalid(f"{email} is already the {role_label(role)}.")
            # Where billing notices queued for the holders went (handed over below).
            handed = await queued_billing_notices(tx, org, current, role)
            await tx.directory.clear_role(org.id, role)
            for previous in current:
                after_prev = await self._reload(tx, previous.id)
                await self._audit(tx, actor, org, f"role.{role.value}.removed", previous.email,
                                  snapshot(previous), snapshot(after_prev))
                await self.notifier.to_contact(
                    tx, previous,
                    f"role:{role.value}:{org.id}:{previous.id}:removed:{tx.now.isoformat()}",
                    Message(
                        f"{previous.name}, you are no longer the {role_label(role)} of "
                        f"{org.name}: {actor.label} designated {email} instead.",
                        subject=f"You are no longer the {role_label(role)} of {org.name}",
                    ),
                )
                opened = await tx.tickets.for_contacts(org.id, previous.id, active_only=True,
                                                       limit=1)
                if await tx.directory.delete_contact_if_roleless(previous.id) and opened:
                    notes.append(
                        f"{previous.name} is no longer a contact of {org.name}: updates on the "
                        "open tickets they opened now reach no one at the organization."
                    )
            if target is None:
                target = await tx.directory.add_contact(org.id, name or email, email, [role])
            else:
                if name:
                    await tx.directory.rename_contact(target.id, name)
                await tx.directory.set_role(target.id, role, True)
                target = await self._reload(tx, target.id)
            await self._audit(tx, actor, org, f"role.{role.value}.granted", email, before,
                              snapshot(target))
            message = (
                notices.welcome_intent(notices.WELCOME, org, target)
                if role is ContactRole.MAIN
                else notices.role_granted(org, target, role_label(role))
            )
            await self.notifier.to_contact(
                tx, target, f"role:{role.value}:{org.id}:{target.id}:{tx.now.isoformat()}", message
            )
            await hand_over(tx, self.notifier, handed, target)
            notes.extend(await self._sole_contact_ends(tx, org, everyone))
            return Designation(target, tuple(notes))

    async def _sole_contact_ends(
        self, tx: Tx, org: Organization, before: list[Contact]
    ) -> list[str]:
        """When a sole Main Contact (who stood in for the Technical Contact) gains a
        colleague, what changes for them, in one line."""
        if len(before) != 1 or before[0].roles != frozenset({ContactRole.MAIN}):
            return []
        if len(await tx.directory.contacts(org.id)) < 2:
            return []
        sole = before[0]
        return [
            f"{sole.name} is no longer the sole contact of {org.name}: new tickets need a "
            f"Technical Contact ({command('contacts request-technical EMAIL')}); the tickets "
            f"{sole.name} opened stay theirs to follow."
        ]

    async def request_technical(
        self, actor: Actor, email: str, name: str | None
    ) -> tuple[TechnicalRequest, int]:
        """File a request for a vendor admin's approval; with the number of admins told."""
        org = self._require_main(actor)
        assert actor.contact is not None
        name = checked_name(name)
        async with self.tx() as tx:
            await require_customer_email(tx, self.settings, email)
            await tx.directory.lock_org(org.id)
            existing = await tx.directory.contact_by_email(org.id, email)
            if existing is not None and existing.is_technical:
                raise Invalid(f"{email} is already a Technical Contact.")
            pending = await tx.directory.pending_requests(org.id)
            if any(p.email == email for p in pending):
                raise Invalid(f"A request for {email} is already waiting for approval.")
            limit = self.settings.technical_limit(org.level)
            used = await tx.directory.count_role(org.id, ContactRole.TECHNICAL) + len(pending)
            if used >= limit:
                raise Denied(
                    f"Your {org.level.value} subscription allows {limit} Technical "
                    f"Contact{'s' if limit != 1 else ''}; {used} already designated or requested."
                )
            request = await tx.directory.add_request(
                org.id, email, name or (existing.name if existing else email), actor.contact.id
            )
            await self._audit(tx, actor, org, "technical.requested", email, None,
                              {"request": request.id, "name": request.name})
            message = Message(
                text=f"Technical Contact request #{request.id} from {org.name}: "
                f"{request.name} <{email}>.",
                subject=f"Technical Contact request #{request.id} ({org.name})",
                blocks=(
                    Heading(f"Technical Contact request #{request.id}"),
                    Fields(
                        (
                            ("Organization", f"{org.name} ({org.key})"),
                            ("Requested", f"{request.name} <{email}>"),
                            ("By", actor.label),
                        )
                    ),
                    Actions(
                        (
                            Button("Approve", "subdesk.approve",
                                   (("REQUEST_ID", str(request.id)),), "primary"),
                            Button("Deny", "subdesk.deny",
                                   (("REQUEST_ID", str(request.id)),), "danger"),
                        )
                    ),
                    Paragraph(f"{command('subdesk approve', request.id)} or "
                              f"{command('subdesk deny', request.id)}"),
                ),
            )
            told = await self.notifier.to_role(tx, StaffRole.ADMIN,
                                               f"technical-request:{request.id}:admin", message)
            if not told:
                log.warning("technical contact request %s reached no vendor admin: add one "
                            "with `subdesk staff add EMAIL --role admin`", request.id)
            return request, told

    async def remove_technical(self, actor: Actor, email: str) -> None:
        org = self._require_main(actor)
        async with self.tx() as tx:
            await tx.directory.lock_org(org.id)
            contact = await tx.directory.contact_by_email(org.id, email)
            if contact is None or not contact.is_technical:
                raise NotFound(f"{email} is not a Technical Contact of {org.name}.")
            await tx.directory.set_role(contact.id, ContactRole.TECHNICAL, False)
            after = await self._reload(tx, contact.id)
            await self._audit(tx, actor, org, "role.technical.removed", email,
                              snapshot(contact), snapshot(after))
            await tx.directory.delete_contact_if_roleless(contact.id)

    async def set_sharing(self, actor: Actor, on: bool) -> None:
        org = self._require_main(actor)
        async with self.tx() as tx:
            fresh = await tx.directory.org(org.id)
            assert fresh is not None
            await tx.directory.set_sharing(org.id, on)
            await self._audit(tx, actor, org, "org.sharing", org.key,
                              {"sharing": fresh.sharing}, {"sharing": on})

    async def decide(
        self, actor: Actor, request_id: int, approve: bool, reason: str | None = None
    ) -> tuple[TechnicalRequest, Contact | None]:
        """A vendor admin approves or denies a Technical Contact request."""
        if not allows(actor, Permission.STAFF_ADMIN) or actor.staff is None:
            raise Denied("Only vendor admins can decide Technical Contact requests.")
        async with self.tx() as tx:
            request = await tx.directory.request(request_id, lock=True)
            if request is None:
                raise NotFound(f"There is no request #{request_id}.")
            if request.status is not RequestStatus.PENDING:
                raise Invalid(f"Request #{request_id} was already {request.status.value}.")
            await tx.directory.lock_org(request.org_id)
            org = await tx.directory.org(request.org_id)
            assert org is not None
            contact: Contact | None = None
            if approve:
                await require_customer_email(tx, self.settings, request.email)
                limit = self.settings.technical_limit(org.level)
                if await tx.directory.count_role(org.id, ContactRole.TECHNICAL) >= limit:
                    raise Denied(
                        f"{org.name} already has {limit} Technical Contact(s), the limit of "
                        f"its {org.level.value} subscription."
                    )
                contact = await tx.directory.contact_by_email(org.id, request.email)
                before = snapshot(contact)
                if contact is None:
                    contact = await tx.directory.add_contact(
                        org.id, request.name, request.email, [ContactRole.TECHNICAL]
                    )
                else:
                    await tx.directory.set_role(contact.id, ContactRole.TECHNICAL, True)
                    contact = await self._reload(tx, contact.id)
                await tx.directory.decide_request(
                    request_id, RequestStatus.APPROVED, actor.staff.id, reason
                )
                await self._audit(tx, actor, org, "technical.approved", request.email, before,
                                  snapshot(contact))
                await self.notifier.to_contact(
                    tx, contact, f"support-welcome:{org.id}:{contact.email}",
                    notices.welcome_intent(notices.SUPPORT_WELCOME, org, contact),
                )
                outcome = f"approved: {request.name} <{request.email}> is now a Technical Contact."
            else:
                await tx.directory.decide_request(
                    request_id, RequestStatus.DENIED, actor.staff.id, reason
                )
                await self._audit(tx, actor, org, "technical.denied", request.email, None,
                                  {"reason": reason})
                outcome = f"denied: {request.email}" + (f" — {reason}" if reason else "") + "."
            if request.requested_by is not None:
                requester = await tx.directory.contact(request.requested_by)
                if requester is not None:
                    await self.notifier.to_contact(
                        tx, requester, f"technical-request:{request.id}:decision",
                        Message(
                            f"Your Technical Contact request #{request.id} was {outcome}",
                            subject=f"Your Technical Contact request #{request.id}",
                        ),
                    )
            decided = await tx.directory.request(request_id)
            assert decided is not None
            return decided, contact

    async def _reload(self, tx: Tx, contact_id: int) -> Contact:
        contact = await tx.directory.contact(contact_id)
        assert contact is not None
        return contact

    async def _audit(
        self,
        tx: Tx,
        actor: Actor,
        org: Organization,
        action: str,
        target: str,
        before: dict[str, object] | None,
        after: dict[str, object] | None,
    ) -> None:
        await tx.directory.audit(actor.label, org.id, action, target, before, after)


async def queued_billing_notices(
    tx: Tx, org: Organization, holders: Sequence[Contact], role: ContactRole
) -> dict[str, dict[str, Any]]:
    """The billing notices of `org` queued for `holders` of `role` and not sent yet, by
    their key without the address (one per notice, however many accounts it was queued
    to): reminders for a Main or Administrative Contact, renewal notices for a Main. Read
    before the role moves; whoever takes it gets them (`hand_over`), and the holders' own
    are dropped as they go out."""
    kinds = ({INVOICE_REMINDER, RENEWAL_NOTICE} if role is ContactRole.MAIN
             else {INVOICE_REMINDER})
    addresses = [(Platform.EMAIL.value, h.email) for h in holders]
    addresses += [(i.platform.value, i.address) for i in
                  await tx.identities.identities_of_contacts([h.id for h in holders])]
    found: dict[str, dict[str, Any]] = {}
    for item in await tx.outbox.waiting_for(addresses):
        if await notice_of(tx, item.payload, org.id) in kinds:
            found[item.key.removesuffix(f":{item.platform}:{item.target}")] = item.payload
    return found


async def hand_over(tx: Tx, notifier: Notifier, notices: Mapping[str, dict[str, Any]],
                    successor: Contact) -> int:
    """Queue `notices` (from `queued_billing_notices`) for `successor`; the rows queued."""
    queued = 0
    for key, payload in notices.items():
        queued += await notifier.to_contact(tx, successor, f"{key}:to:{successor.id}",
                                            Intent(payload))
    return queued
